//! Valid documents: every field parsed, defaults left to the layers, every form of a size or host,
//! secrets kept out of `Debug`.

use std::time::Duration;

use http::HeaderName;
use wsfirst_core::{Intent, TransportMode};
use wsfirst_eligibility::{Policy, RequestHead};

use super::{FULL, ROUTE};
use crate::config::{BreakerConfig, Config, Pair, PoolConfig, ReplayConfig, TimeoutsConfig};

#[test]
fn the_documented_example_parses() {
    let config = Config::from_toml_str(FULL).unwrap();
    assert_eq!(config.listen, Some("127.0.0.1:8080".parse().unwrap()));
    let eligibility = &config.eligibility;
    assert_eq!(
        eligibility.websocket_pairs,
        [Pair::new("openai", "openai-responses")]
    );
    assert_eq!(
        eligibility.deny_pairs,
        [Pair::new("openai-codex", "openai-codex-responses")]
    );
    assert_eq!(
        eligibility.provider_hosts["openai"],
        ["api.openai.com".to_owned()]
    );
    assert_eq!(
        eligibility.override_header.as_ref().map(HeaderName::as_str),
        Some("x-wsfirst-transport")
    );
    assert_eq!(eligibility.max_message_size, Some(16 << 20));

    let [route] = &config.routes[..] else {
        panic!("one route expected: {:?}", config.routes);
    };
    assert_eq!(route.path, "/v1/responses");
    assert_eq!(route.mode, TransportMode::Auto);
    assert_eq!(route.body_limit, Some(8 << 20));
    assert_eq!(
        route.timeouts,
        TimeoutsConfig {
            handshake_timeout: Some(Duration::from_secs(5)),
            first_event_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(120)),
            http_response: Some(Duration::from_secs(600)),
            http_idle: Some(Duration::from_secs(300)),
        }
    );
    assert_eq!(
        route.breaker,
        BreakerConfig {
            enabled: Some(true),
            consecutive_failures: Some(3),
            failure_rate_threshold: Some(0.5),
            failure_rate_window: Some(20),
            failure_rate_min_calls: Some(10),
            open_duration: Some(Duration::from_secs(30)),
            max_open_duration: Some(Duration::from_secs(600)),
            half_open_probes: Some(1),
        }
    );
    assert_eq!(config.breakers.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(route.pool.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(route.pool.max_age, Some(Duration::from_secs(55 * 60)));
    assert_eq!(route.pool.max_connections_per_key, Some(8));
    assert_eq!(
        route.pool.affinity_header.as_ref().map(HeaderName::as_str),
        Some("x-session-id")
    );
    assert_eq!(route.fallback.replay, Some(ReplayConfig::ConnectOnly));
    assert_eq!(route.forward_headers, ["x-team"]);
    assert_eq!(route.headers["openai-beta"], "responses-websocket=v1");

    let built = route.to_route().unwrap();
    assert_eq!(built.provider(), "openai");
    assert_eq!(built.api(), "openai-responses");
    assert_eq!(
        built.ws_url().map(ToString::to_string).as_deref(),
        Some("wss://api.openai.com/v1/responses")
    );

    let table = eligibility.to_table().unwrap();
    let request = http::Request::builder()
        .header("x-wsfirst-transport", "http")
        .body(())
        .unwrap();
    assert_eq!(
        table
            .decide(&built, &RequestHead::new(&request))
            .reason_label(),
        "request_override"
    );
    let request = http::Request::new(());
    assert_eq!(
        table.decide(&built, &RequestHead::new(&request)),
        Intent::WebSocket
    );
}

#[test]
fn the_gateway_example_parses_with_defaults_left_to_the_layers() {
    let config = Config::from_toml_str(&format!(
        "{}\n[eligibility]\nwebsocket_pairs = [[\"openai\", \"openai-responses\"]]\n{ROUTE}mode = \"auto\"\n[routes.breaker]\nconsecutive_failures = 3\nopen_duration = \"30s\"\n",
        "listen = \"127.0.0.1:8080\""
    ))
    .unwrap();
    let route = &config.routes[0];
    assert_eq!(route.timeouts, TimeoutsConfig::default());
    assert_eq!(route.pool, PoolConfig::default());
    assert_eq!(route.body_limit, None);
    assert!(route.breaker.is_enabled());
    assert_eq!(config.eligibility.max_message_size, None);
    assert_eq!(
        config.eligibility.to_table().unwrap().max_message_size(),
        u64::try_from(wsfirst_core::limits::DEFAULT_MAX_MESSAGE_SIZE).unwrap()
    );
}

#[test]
fn sizes_and_hosts_in_every_form() {
    for (text, bytes) in [
        ("1024", 1024),
        ("\"512KiB\"", 512 * 1024),
        ("\"1MB\"", 1_000_000),
        ("\"2 gib\"", 2 << 30),
        ("\"7\"", 7),
        ("\"7B\"", 7),
    ] {
        let config =
            Config::from_toml_str(&format!("[eligibility]\nmax_message_size = {text}")).unwrap();
        assert_eq!(config.eligibility.max_message_size, Some(bytes), "{text}");
    }
    let config = Config::from_toml_str(
        "[eligibility]\nprovider_hosts = { openai = [\"api.openai.com\", \"eu.api.openai.com\"], local = \"[::1]\" }",
    )
    .unwrap();
    let table = config.eligibility.to_table().unwrap();
    assert_eq!(
        table.provider_hosts("openai").collect::<Vec<_>>(),
        ["api.openai.com", "eu.api.openai.com"]
    );
    assert_eq!(table.provider_hosts("local").collect::<Vec<_>>(), ["[::1]"]);
}

#[test]
fn credential_headers_are_not_in_debug_output() {
    let config = Config::from_toml_str(&format!(
        "{ROUTE}open = true\n[routes.headers]\nAuthorization = \"Bearer sk-secret\"\nOpenAI-Beta = \"responses-websocket=v1\"\n"
    ))
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("sk-secret"), "{debug}");
    assert!(debug.contains("responses-websocket=v1"), "{debug}");
    assert_eq!(
        config.routes[0].headers["authorization"],
        "Bearer sk-secret"
    );
}

#[test]
fn the_admin_table_is_its_own_listener_and_token_variable() {
    let config = Config::from_toml_str("").unwrap();
    assert_eq!(config.admin, None, "no [admin]: no admin surface");
    let config = Config::from_toml_str(
        "[admin]\nlisten = \"127.0.0.1:9091\"\ntoken_env = \"WSFIRST_TEST_SURELY_UNSET_VARIABLE\"",
    )
    .unwrap();
    let admin = config.admin.unwrap();
    assert_eq!(admin.listen, "127.0.0.1:9091".parse().unwrap());
    let error = admin.token().unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(r#"admin.token_env: environment variable "WSFIRST_TEST_SURELY_UNSET_VARIABLE" is not set"#),
        "{error}"
    );
    let error = Config::from_toml_str("[admin]\ntoken_env = \"X\"").unwrap_err();
    assert_eq!(error.to_string(), "admin: missing field `listen`");
}

#[test]
fn the_server_table_maps_onto_the_server_limits() {
    let config = Config::from_toml_str(
        "[server]\nheader_read_timeout = \"5s\"\nbody_read_timeout = \"30s\"\nmax_connections = 10\nmax_header_bytes = \"16KiB\"\nshutdown_grace = \"3s\"",
    )
    .unwrap();
    let limits = config.server.to_server_config().unwrap();
    assert_eq!(limits.header_read_timeout(), Duration::from_secs(5));
    assert_eq!(limits.body_read_timeout(), Duration::from_secs(30));
    assert_eq!(limits.max_connections(), 10);
    assert_eq!(limits.max_header_bytes(), 16 * 1024);
    assert_eq!(limits.shutdown_grace(), Duration::from_secs(3));
    let error = Config::from_toml_str("[server]\nmax_header_bytes = 100").unwrap_err();
    assert_eq!(
        error.to_string(),
        "server.max_header_bytes: invalid server config: max_header_bytes must be at least 8192, got 100"
    );
}

/// `forward_headers` and `[routes.headers]` make the one header policy of the route, which both
/// transports read from the `Route`.
#[test]
fn route_headers_make_the_route_s_header_policy() {
    let config = Config::from_toml_str(&format!(
        "{ROUTE}forward_headers = [\"X-Team\", \"cookie\"]\nopen = true\n[routes.headers]\nAuthorization = \"Bearer sk-gateway\"\n"
    ))
    .unwrap();
    let layers = config.layers().unwrap();
    let policy = layers.routes[0].route.headers();
    let forwarded: Vec<&str> = policy
        .forward_headers()
        .iter()
        .map(HeaderName::as_str)
        .collect();
    assert_eq!(
        forwarded,
        [
            "authorization",
            "openai-beta",
            "openai-organization",
            "openai-project",
            "x-team",
            "cookie"
        ]
    );
    let [(name, value)] = policy.static_headers() else {
        panic!("one static header expected: {policy:?}");
    };
    assert_eq!(
        (name.as_str(), value.to_str().unwrap()),
        ("authorization", "Bearer sk-gateway")
    );
}
