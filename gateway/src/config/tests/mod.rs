//! Tests of the configuration file, by topic; the fixtures they share.

mod bounds;
mod breakers;
mod client_ws;
mod documents;
mod errors;
mod fingerprint;
mod fuzz;
mod guards;
mod secrets;
mod store;

use super::Config;

/// The reference document: every field set.
const FULL: &str = r#"
listen = "127.0.0.1:8080"            # optional
[eligibility]
websocket_pairs = [["openai", "openai-responses"]]
deny_pairs = [["openai-codex", "openai-codex-responses"]]   # optional
provider_hosts = { openai = "api.openai.com" }               # optional
override_header = "x-wsfirst-transport"                       # optional
max_message_size = "16MiB"                                    # optional
[breakers]
idle_timeout = "10m"                                            # optional
max_keys = 10000                                              # optional
state_gauge_per_credential = false                                  # optional
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"                 # optional
mode = "auto"                                                 # auto | websocket | http
body_limit = "8MiB"                                           # optional
forward_headers = ["x-team"]                                  # optional
[routes.timeouts]
handshake_timeout = "5s"
first_event_timeout = "30s"
idle_timeout = "120s"
http_response = "10m"
http_idle = "5m"
[routes.breaker]
consecutive_failures = 3
failure_rate_threshold = 0.5
failure_rate_window = 20
failure_rate_min_calls = 10
open_duration = "30s"
max_open_duration = "10m"
half_open_probes = 1
enabled = true
[routes.pool]
idle_timeout = "60s"
max_age = "55m"
max_connections_per_key = 8
max_connections = 512
max_idle_connections = 128
write_stall_timeout = "60s"
affinity_header = "x-session-id"
[routes.fallback]
replay = "connect_only"
[routes.headers]
"OpenAI-Beta" = "responses-websocket=v1"
"#;

/// A valid route, for tests that append to it.
const ROUTE: &str = r#"
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"
"#;

/// `ROUTE` followed by `extra`.
fn route_with(extra: &str) -> String {
    format!("{ROUTE}{extra}\n")
}

/// `ROUTE`, then a second valid route (`/v1/other`) followed by `extra`.
fn second_route(extra: &str) -> String {
    format!(
        "{ROUTE}\n[[routes]]\npath = \"/v1/other\"\nprovider = \"openai\"\napi = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n{extra}\n"
    )
}

/// Parses each document and checks that it fails with exactly the expected message.
fn assert_errors(cases: &[(String, &str)]) {
    let mut failures = Vec::new();
    for (text, expected) in cases {
        match Config::from_toml_str(text) {
            Ok(config) => failures.push(format!("accepted: {expected}\n{config:?}")),
            Err(error) if error.to_string() != *expected => {
                failures.push(format!("expected: {expected}\n     got: {error}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
