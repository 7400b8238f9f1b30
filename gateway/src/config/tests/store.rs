//! `[breaker_store]`: the table maps onto the store's builder, errors name the field under
//! `breaker_store`, and replicas must share the fingerprint key.

use std::time::Duration;

use crate::config::{Config, ConfigError};

const STORE: &str = r#"
fingerprint_key_env = "CARGO_PKG_DESCRIPTION"

[breaker_store]
redis_url = "redis://127.0.0.1:6379/0"
prefix = "gw:breaker"
timeout = "100ms"
failure_window = "5s"
"#;

#[test]
fn the_table_maps_onto_the_store_builder() {
    let config = Config::from_toml_str(STORE).unwrap();
    let store = config
        .breaker_store
        .as_ref()
        .unwrap()
        .to_store_config()
        .unwrap();
    assert_eq!(store.prefix(), "gw:breaker");
    assert_eq!(store.timeout(), Duration::from_millis(100));
    assert_eq!(store.failure_window(), Duration::from_secs(5));
    assert_eq!(
        store.key_ttl(),
        Duration::from_secs(3600),
        "the store's default"
    );
    // Checked, not connected: no runtime is needed to validate.
    assert!(config.layers().unwrap().store.is_none());
}

#[test]
fn errors_name_the_field_under_breaker_store() {
    let error = |text: &str| Config::from_toml_str(text).unwrap_err().to_string();
    assert_eq!(
        error(&STORE.replace("100ms", "0s")),
        "breaker_store.timeout: invalid breaker store config: timeout must be at least 1ms, got 0ns"
    );
    assert!(
        error(&STORE.replace("redis://127.0.0.1:6379/0", "http://x"))
            .starts_with("breaker_store.redis_url: "),
    );
    assert_eq!(
        error(&STORE.replace("prefix = \"gw:breaker\"", "prefix = \"a b\"")),
        "breaker_store.prefix: invalid breaker store config: prefix: \"a b\" must be non-empty without spaces"
    );
    assert!(
        error(&STORE.replace("[breaker_store]", "[breaker_store]\nport = 1"))
            .contains("unknown field `port`")
    );
}

#[test]
fn replicas_must_share_the_fingerprint_key() {
    let text = STORE.replace("fingerprint_key_env = \"CARGO_PKG_DESCRIPTION\"", "");
    let error = Config::from_toml_str(&text).unwrap_err();
    assert_eq!(error.path(), Some("breaker_store"));
    assert!(error.to_string().contains("fingerprint_key_env"), "{error}");
}

#[test]
fn a_store_needs_a_runtime_to_run() {
    let config = Config::from_toml_str(STORE).unwrap();
    let error = crate::Configured::from_config(&config).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid { path, .. } if path == "breaker_store.runtime"),
        "{error}"
    );
}

#[tokio::test]
async fn a_store_that_is_down_does_not_stop_the_gateway() {
    // Nothing listens on port 1: the store connects in the background and the stack is built.
    let text = STORE.replace("127.0.0.1:6379", "127.0.0.1:1");
    let configured =
        crate::Configured::from_config(&Config::from_toml_str(&text).unwrap()).unwrap();
    let store = configured.breaker_store.as_ref().unwrap();
    assert!(!store.is_connected());
}
