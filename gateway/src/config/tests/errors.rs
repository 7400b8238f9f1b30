//! Invalid documents: each error names the path of the value in the file.

use super::{FULL, ROUTE, assert_errors, route_with, second_route};
use crate::config::{Config, ConfigError};

#[test]
fn values_that_do_not_parse_name_their_path() {
    let cases: Vec<(String, &str)> = vec![
        (
            second_route("[routes.breaker]\nopen_duration = \"3x\""),
            r#"routes[1].breaker.open_duration: invalid duration "3x""#,
        ),
        (
            route_with("[routes.timeouts]\nhandshake_timeout = \"500000000000y\""),
            r#"routes[0].timeouts.handshake_timeout: invalid duration "500000000000y": longer than 100 years"#,
        ),
        (
            route_with("[routes.timeouts]\nhandshake_timeout = 5"),
            r#"routes[0].timeouts.handshake_timeout: invalid type: integer `5`, expected a duration such as "30s" or "10m""#,
        ),
        (
            route_with("mode = \"sometimes\""),
            r#"routes[0].mode: invalid mode "sometimes": expected "auto", "websocket" or "http""#,
        ),
        (
            route_with("[routes.fallback]\nreplay = \"always\""),
            "routes[0].fallback.replay: unknown variant `always`, expected `before_first_event` or `connect_only`",
        ),
        (
            route_with("[routes.breaker]\nconsecutive_failures = -1"),
            "routes[0].breaker.consecutive_failures: invalid value: integer `-1`, expected u32",
        ),
        (
            route_with("[routes.breaker]\nopen_fro = \"30s\""),
            "routes[0].breaker.open_fro: unknown field `open_fro`, expected one of `enabled`, `consecutive_failures`, `failure_rate`, `failure_rate_threshold`, `failure_rate_window`, `window`, `failure_rate_min_calls`, `min_calls`, `open_duration`, `open_for`, `max_open_duration`, `max_open_for`, `half_open_probes`, `probes`",
        ),
        (
            route_with("[routes.pool]\naffinity_header = \"x session\""),
            r#"routes[0].pool.affinity_header: invalid header name "x session""#,
        ),
        (
            route_with("body_limit = \"8XB\""),
            r#"routes[0].body_limit: invalid byte size "8XB": expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"#,
        ),
        (
            route_with("body_limit = -5"),
            "routes[0].body_limit: invalid byte size -5: negative",
        ),
        (
            route_with("[routes.headers]\nX-Team = \"caf\u{e9}\""),
            r#"routes[0].headers: invalid value for header "x-team""#,
        ),
        (
            route_with("[routes.headers]\nUpgrade = \"h2c\""),
            r#"routes[0].headers: header "upgrade" is set by the websocket handshake and cannot be configured"#,
        ),
        (
            route_with("[routes.headers]\nSec-WebSocket-Protocol = \"v1\""),
            r#"routes[0].headers: header "sec-websocket-protocol" is set by the websocket handshake and cannot be configured"#,
        ),
        (
            route_with("[routes.headers]\nTransfer-Encoding = \"chunked\""),
            r#"routes[0].headers: header "transfer-encoding" is set by the websocket handshake and cannot be configured"#,
        ),
        (
            second_route("").replace("api = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n\n", ""),
            "routes[1]: missing field `api`",
        ),
        (
            route_with("colour = \"blue\""),
            "routes[0].colour: unknown field `colour`, expected one of `path`, `provider`, `api`, `http_url`, `ws_url`, `mode`, `body_limit`, `timeouts`, `breaker`, `pool`, `fallback`, `forward_headers`, `headers`, `client_websocket`, `client_tokens_env`, `open`",
        ),
        (
            "listen = \"localhost\"".to_owned(),
            r#"listen: invalid socket address "localhost": expected ip:port such as "127.0.0.1:8080""#,
        ),
        (
            "[eligibility]\nwebsocket_pairs = [[\"openai\", \"openai-responses\"], [\"openai\"]]"
                .to_owned(),
            "eligibility.websocket_pairs[1]: invalid length 1, expected a tuple of size 2",
        ),
        (
            "[eligibility]\noverride_header = \"\"".to_owned(),
            r#"eligibility.override_header: invalid header name """#,
        ),
        (
            "[eligibility]\nallow = []".to_owned(),
            "eligibility.allow: unknown field `allow`, expected one of `websocket_pairs`, `deny_pairs`, `provider_hosts`, `override_header`, `max_message_size`",
        ),
        (
            "lissen = \"127.0.0.1:1\"".to_owned(),
            "lissen: unknown field `lissen`, expected one of `listen`, `eligibility`, `breakers`, `admin`, `server`, `routes`, `fingerprint_key_env`, `breaker_store`",
        ),
        (
            "[eligibility]\nprovider_hosts = { \"my.provider\" = [\"a.example\", 5] }".to_owned(),
            r#"eligibility.provider_hosts."my.provider"[1]: invalid type: integer `5`, expected a string"#,
        ),
        (
            "routes = [{ path = \"/x\", provider = \"p\", api = \"a\", http_url = \"https://x/\", breaker = { open_duration = \"3x\" } }]".to_owned(),
            r#"routes[0].breaker.open_duration: invalid duration "3x""#,
        ),
        (
            second_route("breaker.open_duration = \"3x\""),
            r#"routes[1].breaker.open_duration: invalid duration "3x""#,
        ),
        (
            second_route("[routes.headers]\n\"X Team\" = \"a\""),
            r#"routes[1].headers: invalid header name "X Team""#,
        ),
    ];
    assert_errors(&cases);
}

#[test]
fn values_that_break_a_rule_name_their_path() {
    let cases: Vec<(String, &str)> = vec![
        (
            route_with("[routes.breaker]\nfailure_rate_threshold = 1.5"),
            "routes[0].breaker.failure_rate_threshold: invalid breaker config: failure_rate must be between 0.0 and 1.0, got 1.5",
        ),
        (
            route_with("[routes.breaker]\nfailure_rate_threshold = -0.1"),
            "routes[0].breaker.failure_rate_threshold: invalid breaker config: failure_rate must be between 0.0 and 1.0, got -0.1",
        ),
        (
            route_with("[routes.breaker]\nfailure_rate_window = 0"),
            "routes[0].breaker.failure_rate_window: invalid breaker config: window must not be zero",
        ),
        (
            route_with("[routes.breaker]\nhalf_open_probes = 0"),
            "routes[0].breaker.half_open_probes: invalid breaker config: half_open_probes must not be zero",
        ),
        (
            route_with("[routes.breaker]\nfailure_rate_window = 5\nfailure_rate_min_calls = 6"),
            "routes[0].breaker.failure_rate_window: invalid breaker config: window: 5 calls must not be fewer than min_calls (6)",
        ),
        (
            route_with("[routes.timeouts]\nhttp_response = \"0s\""),
            "routes[0].timeouts.http_response: invalid http upstream config: response_timeout must not be zero",
        ),
        (
            // The breaker's default minimum (10 calls) stays: a smaller window alone is refused.
            route_with("[routes.breaker]\nfailure_rate_window = 5"),
            "routes[0].breaker.failure_rate_window: invalid breaker config: window: 5 calls must not be fewer than min_calls (10)",
        ),
        (
            route_with("[routes.breaker]\nopen_duration = \"0s\""),
            "routes[0].breaker.open_duration: invalid breaker config: open_duration must not be zero",
        ),
        (
            route_with("[routes.breaker]\nopen_duration = \"1m\"\nmax_open_for = \"30s\""),
            "routes[0].breaker.max_open_duration: invalid breaker config: max_open_duration: 30s must not be shorter than open_duration (60s)",
        ),
        (
            route_with("[routes.pool]\nmax_connections_per_key = 0"),
            "routes[0].pool.max_connections_per_key: invalid websocket config: max_connections_per_key must not be zero",
        ),
        (
            route_with("body_limit = 0"),
            "routes[0].body_limit: invalid fallback config: body_limit must not be zero",
        ),
        (
            second_route("").replace(
                "http_url = \"https://api.openai.com/v1/responses\"\n\n",
                "http_url = \"ftp://example.com/x\"\n",
            ),
            r#"routes[1].http_url: invalid url "ftp://example.com/x": expected an absolute http:// or https:// url"#,
        ),
        (
            second_route("ws_url = \"https://api.openai.com/v1/responses\""),
            r#"routes[1].ws_url: invalid url "https://api.openai.com/v1/responses": expected an absolute ws:// or wss:// url"#,
        ),
        (
            second_route("ws_url = \"wss://bad host/x\""),
            r#"routes[1].ws_url: invalid url "wss://bad host/x": expected an absolute ws:// or wss:// url"#,
        ),
        (
            second_route("mode = \"websocket\""),
            r#"routes[1].ws_url: required when mode is "websocket""#,
        ),
        (
            // Two routes that reach one breaker key (provider + WebSocket endpoint) must agree.
            format!(
                "{}[routes.breaker]\nconsecutive_failures = 5\n",
                second_route("ws_url = \"wss://api.openai.com/v1/responses\"")
            )
            .replacen("[[routes]]", "[[routes]]\nbreaker = { consecutive_failures = 4 }", 1),
            r#"routes[1].breaker.consecutive_failures: differs from routes[0] (path "/v1/responses"), which reaches the same breaker key (provider "openai", endpoint "wss://api.openai.com/v1/responses"): routes that share a key must have the same breaker settings (or set them once, in [[breakers.keys]])"#,
        ),
        (
            second_route("").replace("path = \"/v1/other\"", "path = \"/v1/responses\""),
            r#"routes[1].path: duplicate path "/v1/responses" (already used by routes[0])"#,
        ),
        (
            second_route("").replace("path = \"/v1/other\"", "path = \"v1/other\""),
            r#"routes[1].path: invalid path "v1/other": must start with '/'"#,
        ),
        (
            second_route("").replace("provider = \"openai\"\napi = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n\n", "provider = \"\"\napi = \"a\"\nhttp_url = \"https://x/\"\n"),
            "routes[1].provider: must not be empty",
        ),
        (
            "[eligibility]\nmax_message_size = \"0MiB\"".to_owned(),
            "eligibility.max_message_size: invalid eligibility table: max_message_size must not be zero",
        ),
        (
            "[eligibility]\ndeny_pairs = [[\"\", \"x\"]]".to_owned(),
            "eligibility.deny_pairs[0]: invalid eligibility table: deny_pairs: the provider must not be empty",
        ),
        (
            "[eligibility]\nprovider_hosts = { openai = \"https://api.openai.com\" }".to_owned(),
            r#"eligibility.provider_hosts.openai: invalid eligibility table: provider_hosts: invalid host "https://api.openai.com" for provider "openai": expected a host name without scheme, port or path, such as "api.openai.com""#,
        ),
        (
            "[eligibility]\nprovider_hosts = { openai = \"api.openai.com:443\" }".to_owned(),
            r#"eligibility.provider_hosts.openai: invalid eligibility table: provider_hosts: invalid host "api.openai.com:443" for provider "openai": expected a host name without scheme, port or path, such as "api.openai.com""#,
        ),
    ];
    assert_errors(&cases);
}

#[test]
fn headers_that_are_never_forwarded_name_their_path() {
    let override_header = "[eligibility]\noverride_header = \"x-wsfirst-transport\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            route_with("forward_headers = [\"x-team\", \"X Team\"]"),
            r#"routes[0].forward_headers: invalid header policy: forward_headers: "X Team" is not a header name"#,
        ),
        (
            route_with("forward_headers = [\"Connection\"]"),
            "routes[0].forward_headers: invalid header policy: forward_headers: connection is a hop-by-hop or handshake header and is never forwarded",
        ),
        (
            route_with("forward_headers = [\"host\"]"),
            "routes[0].forward_headers: invalid header policy: forward_headers: host is a hop-by-hop or handshake header and is never forwarded",
        ),
        (
            format!(
                "{override_header}{}",
                route_with("forward_headers = [\"X-WsFirst-Transport\"]")
            ),
            "routes[0].forward_headers: x-wsfirst-transport is the eligibility override header, which is never forwarded",
        ),
        (
            format!(
                "{override_header}{}",
                second_route("[routes.headers]\nx-wsfirst-transport = \"http\"")
            ),
            "routes[1].headers: x-wsfirst-transport is the eligibility override header, which is never forwarded",
        ),
    ];
    assert_errors(&cases);
}

#[test]
fn syntax_errors_keep_toml_line_and_column() {
    let error = Config::from_toml_str("listen = ").unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("invalid toml: TOML parse error at line 1"),
        "{error}"
    );
    assert_eq!(error.path(), None);
}

#[test]
fn from_path_reads_files_and_names_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("wsfirst-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, FULL).unwrap();
    assert_eq!(Config::from_path(&file).unwrap().routes.len(), 1);
    let missing = dir.join("missing.toml");
    let error = Config::from_path(&missing).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read config file {}: ", missing.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn to_route_names_fields_relative_to_the_route() {
    let mut route = Config::from_toml_str(ROUTE).unwrap().routes.remove(0);
    route.ws_url = Some("ws:/nohost".to_owned());
    let error = route.to_route().unwrap_err();
    assert_eq!(error.path(), Some("ws_url"));
}

/// The breaker owns the rules of its settings: the file accepts what the breaker accepts.
#[test]
fn a_breaker_rule_has_one_owner() {
    let config = Config::from_toml_str(&route_with(
        "[routes.breaker]\nfailure_rate_threshold = 0.0",
    ))
    .unwrap();
    assert_eq!(config.routes[0].breaker.failure_rate_threshold, Some(0.0));
}

/// Routes that share a breaker key with the same settings, or where only one has a breaker, are
/// fine; `idle_evict` is the registry's, under `[breakers]`, no longer a route's.
#[test]
fn routes_sharing_a_key_agree_or_opt_out() {
    let ws = "ws_url = \"wss://api.openai.com/v1/responses\"";
    let same = format!(
        "{}[routes.breaker]\nopen_duration = \"30s\"\n",
        second_route(ws).replacen(
            "ws_url = \"wss://api.openai.com/v1/responses\"\n",
            "ws_url = \"wss://api.openai.com/v1/responses\"\n[routes.breaker]\nopen_duration = \"30s\"\n",
            1,
        )
    );
    Config::from_toml_str(&same).unwrap();
    let opted_out = format!("{}[routes.breaker]\nenabled = false\n", second_route(ws));
    Config::from_toml_str(&opted_out).unwrap();
    let error =
        Config::from_toml_str(&route_with("[routes.breaker]\nidle_evict = \"1h\"")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("routes[0].breaker.idle_evict: unknown field"),
        "{error}"
    );
    let config = Config::from_toml_str("[breakers]\nidle_timeout = \"1h\"").unwrap();
    assert_eq!(
        config.breakers.idle_timeout,
        Some(std::time::Duration::from_secs(3600))
    );
}
