//! The offline mode (no configuration file): an embedded configuration whose upstream is a fake
//! Responses API on `127.0.0.1`, started in-process, and two endpoints to steer it:
//! `POST /demo/websocket/break` makes the upstream refuse WebSocket upgrades with `500` (and
//! drops its open WebSockets), `POST /demo/websocket/heal` accepts them again.

use std::sync::Arc;

use axum::{
    Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use wsfirst::core::BoxError;
use wsfirst_websocket::testing::{TestUpstream, WsScript};

use crate::config::Config;

/// The embedded configuration: `{http}` and `{ws}` become the loopback upstream's URLs.
const EMBEDDED: &str = r#"
listen = "127.0.0.1:8080"

# Breakers and metrics, on loopback only, never on the public listener.
[admin]
listen = "127.0.0.1:9091"

[eligibility]
websocket_pairs = [["openai", "openai-responses"]]

# Tries the WebSocket first, falls back to HTTP, pins to HTTP after 3 failures in a row.
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "{http}"
ws_url = "{ws}"
mode = "auto"

[routes.breaker]
consecutive_failures = 3
open_duration = "30s"

# Not in websocket_pairs: always HTTP (reason `unknown_provider`).
[[routes]]
path = "/codex/v1/responses"
provider = "openai-codex"
api = "openai-codex-responses"
http_url = "{http}"
"#;

/// Starts the loopback upstream; the embedded configuration pointed at it.
pub async fn start() -> Result<(Config, Arc<TestUpstream>), BoxError> {
    let upstream = Arc::new(TestUpstream::try_start().await?);
    // Nobody reads what it saw: keep the counters only, so memory stays flat however long it
    // serves.
    upstream.set_capture_limit(0);
    let text = EMBEDDED
        .replace("{http}", &upstream.http_url())
        .replace("{ws}", &upstream.ws_url());
    Ok((Config::from_toml_str(&text)?, upstream))
}

/// `POST /demo/websocket/break` and `/heal`: steer the embedded upstream's WebSocket endpoint.
pub fn demo_router(upstream: Arc<TestUpstream>) -> Router {
    let broken = Arc::clone(&upstream);
    Router::new()
        .route(
            "/demo/websocket/break",
            post(move || async move {
                broken.set_default_ws_script(WsScript::refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "wrong websocket endpoint",
                ));
                broken.close_ws_connections();
                said("the upstream now refuses websocket upgrades with 500")
            }),
        )
        .route(
            "/demo/websocket/heal",
            post(move || async move {
                upstream.set_default_ws_script(WsScript::Accept);
                said("the upstream accepts websocket upgrades again")
            }),
        )
}

/// Logs what a demo endpoint did and says it to the caller.
fn said(what: &'static str) -> Response {
    tracing::info!("demo: {what}");
    (StatusCode::OK, format!("{what}\n")).into_response()
}
