//! Secrets in the configuration: `Debug` never shows them, and an admin listener off loopback
//! needs a token.

use crate::config::Config;

const SECRETS: [&str; 4] = [
    "hunter2-redis-password",
    "sk-in-the-query",
    "userinfo-password",
    "sk-held-by-the-gateway",
];

#[test]
fn debug_redacts_the_redis_password_secret_urls_and_held_credentials() {
    let config = Config::from_toml_str(
        r#"
        fingerprint_key_env = "CARGO_PKG_DESCRIPTION"

        [breaker_store]
        redis_url = "redis://:hunter2-redis-password@redis.internal:6379/0"

        [[routes]]
        path = "/v1/responses"
        provider = "openai"
        api = "openai-responses"
        http_url = "https://api.example/v1/responses?key=sk-in-the-query"
        ws_url = "wss://user:userinfo-password@api.example/v1/responses"
        open = true

        [routes.headers]
        Authorization = "Bearer sk-held-by-the-gateway"
        api-key = "sk-held-by-the-gateway"
        OpenAI-Beta = "responses=v1"
        "#,
    )
    .unwrap();
    for shown in [format!("{config:?}"), format!("{config:#?}")] {
        for secret in SECRETS {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // What is not secret still shows, so the output stays useful.
        for visible in [
            "redis.internal:6379",
            "https://api.example/v1/responses",
            "responses=v1",
        ] {
            assert!(shown.contains(visible), "{visible} not in {shown}");
        }
    }
}

#[test]
fn debug_masks_credential_headers_of_a_config_built_in_code() {
    let mut config = Config::from_toml_str(
        r#"
        [[routes]]
        path = "/v1/responses"
        provider = "azure"
        api = "openai-responses"
        http_url = "https://api.example/v1/responses"
        "#,
    )
    .unwrap();
    // Not marked sensitive: only its name says it is a credential.
    config.routes[0]
        .headers
        .insert("x-goog-api-key", "sk-held-by-the-gateway".parse().unwrap());
    let shown = format!("{config:?}");
    assert!(!shown.contains("sk-held-by-the-gateway"), "{shown}");
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let admin = |listen: &str, token: &str| {
        Config::from_toml_str(&format!("[admin]\nlisten = \"{listen}\"\n{token}"))
    };
    let error = admin("0.0.0.0:9091", "").unwrap_err();
    assert_eq!(
        error.to_string(),
        "admin.token_env: required when admin.listen (0.0.0.0:9091) is not a loopback address: \
         set token_env to the environment variable that holds the admin token"
    );
    assert!(admin("10.0.0.5:9091", "").is_err());
    assert!(admin("[::]:9091", "").is_err());
    admin("127.0.0.1:9091", "").unwrap();
    admin("[::1]:9091", "").unwrap();
    admin("0.0.0.0:9091", "token_env = \"WSFIRST_ADMIN_TOKEN\"").unwrap();
}
