//! Issue 23's settings: the `[server]` connection bounds, the body budget, the allowed hosts and
//! the client WebSocket's queued bytes and allowed origins; each mapped onto its layer, each
//! bad value named by its path.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;

use super::{ROUTE, assert_errors, route_with};
use crate::{Configured, config::Config};

#[test]
fn the_server_connection_bounds_map_onto_the_server_limits() {
    let config = Config::from_toml_str(
        "[server]\nidle_timeout = \"30s\"\nhttp2_keep_alive_interval = \"5s\"\nhttp2_keep_alive_timeout = \"7s\"\nmax_concurrent_streams = 8",
    )
    .unwrap();
    let limits = config.server.to_server_config().unwrap();
    assert_eq!(limits.idle_timeout(), Duration::from_secs(30));
    assert_eq!(limits.http2_keep_alive_interval(), Duration::from_secs(5));
    assert_eq!(limits.http2_keep_alive_timeout(), Duration::from_secs(7));
    assert_eq!(limits.max_concurrent_streams(), 8);
}

#[test]
fn bad_server_values_name_their_path() {
    let server = |extra: &str| format!("[server]\n{extra}");
    assert_errors(&[
        (
            server("idle_timeout = \"0s\""),
            "server.idle_timeout: invalid server config: idle_timeout must not be zero",
        ),
        (
            server("http2_keep_alive_interval = \"0s\""),
            "server.http2_keep_alive_interval: invalid server config: http2_keep_alive_interval must not be zero",
        ),
        (
            server("http2_keep_alive_timeout = \"soon\""),
            r#"server.http2_keep_alive_timeout: invalid duration "soon""#,
        ),
        (
            server("max_concurrent_streams = 0"),
            "server.max_concurrent_streams: invalid server config: max_concurrent_streams must not be zero",
        ),
        (
            server("body_budget = \"lots\""),
            r#"server.body_budget: invalid byte size "lots": expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"#,
        ),
        (
            server("body_budget = 0"),
            "server.body_budget: must not be zero",
        ),
        (
            format!("{ROUTE}body_limit = \"2MiB\"\n[server]\nbody_budget = \"1MiB\""),
            "server.body_budget: 1048576 bytes is less than routes[0]'s body_limit (2097152 bytes): a body of that size could never be buffered; raise body_budget or lower body_limit",
        ),
        (
            server("allowed_hosts = []"),
            "server.allowed_hosts: must not be empty (leave it out to answer any Host)",
        ),
        (
            server("allowed_hosts = [\"localhost\", \"http://gateway.internal/\"]"),
            r#"server.allowed_hosts[1]: invalid host "http://gateway.internal/": expected a name or address with an optional port, such as "localhost" or "127.0.0.1:8080""#,
        ),
        (
            server("allowed_hosts = \"localhost\""),
            r#"server.allowed_hosts: invalid type: string "localhost", expected a sequence"#,
        ),
    ]);
}

#[test]
fn bad_client_websocket_values_name_their_path() {
    assert_errors(&[
        (
            route_with("[routes.client_websocket]\nmax_queued_bytes = 0"),
            "routes[0].client_websocket.max_queued_bytes: invalid client websocket config: max_queued_bytes must not be zero",
        ),
        (
            route_with("[routes.client_websocket]\nmax_queued_bytes = \"1XB\""),
            r#"routes[0].client_websocket.max_queued_bytes: invalid byte size "1XB": expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"#,
        ),
        (
            route_with(
                "[routes.client_websocket]\nallowed_origins = [\"https://app.example.com\", \"app.example.com\"]",
            ),
            r#"routes[0].client_websocket.allowed_origins[1]: invalid origin "app.example.com": expected scheme://host[:port] such as "https://app.example.com""#,
        ),
        (
            route_with(
                "[routes.client_websocket]\nallowed_origins = [\"https://app.example.com/chat\"]",
            ),
            r#"routes[0].client_websocket.allowed_origins[0]: invalid origin "https://app.example.com/chat": expected scheme://host[:port] such as "https://app.example.com""#,
        ),
    ]);
}

#[test]
fn the_body_budget_is_the_one_of_every_route_and_client_websocket() {
    let config = Config::from_toml_str(&route_with(
        "body_limit = \"1MiB\"\n[server]\nbody_budget = \"3MiB\"",
    ))
    .unwrap();
    let configured = Configured::from_config(&config).unwrap();
    assert_eq!(configured.wsfirst.body_budget().capacity(), 3 << 20);
    let clients = configured.client_websockets[0].as_ref().unwrap();
    assert_eq!(clients.budget().capacity(), 3 << 20);
    // Left out: the process's.
    let configured = Configured::from_config(&Config::from_toml_str(ROUTE).unwrap()).unwrap();
    assert_eq!(
        configured.wsfirst.body_budget().capacity(),
        wsfirst::fallback::BodyBudget::DEFAULT_BYTES
    );
}

#[test]
fn max_queued_bytes_reaches_the_client_websocket() {
    let config = Config::from_toml_str(&route_with(
        "[routes.client_websocket]\nmax_queued_bytes = \"64KiB\"",
    ))
    .unwrap();
    let configured = Configured::from_config(&config).unwrap();
    let clients = configured.client_websockets[0].as_ref().unwrap();
    assert_eq!(clients.config().max_queued_bytes(), 64 << 10);
}

/// A WebSocket upgrade of `/v1/responses` with this `Origin`.
fn upgrade(origin: &str) -> Request<Body> {
    Request::get("/v1/responses")
        .header("host", "127.0.0.1:8080")
        .header("origin", origin)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn allowed_origins_reach_the_client_websocket() {
    let config = Config::from_toml_str(&route_with(
        "[routes.client_websocket]\nallowed_origins = [\"https://chat.example.com\"]",
    ))
    .unwrap();
    let router = Configured::from_config(&config).unwrap().router();
    let refused = router
        .clone()
        .oneshot(upgrade("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Past the origin check: without a connection to upgrade, axum's extractor refuses it.
    let listed = router
        .oneshot(upgrade("https://chat.example.com"))
        .await
        .unwrap();
    assert_ne!(listed.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn allowed_hosts_guard_every_route() {
    let config =
        Config::from_toml_str(&format!("{ROUTE}[server]\nallowed_hosts = [\"localhost\"]"))
            .unwrap();
    let router = Configured::from_config(&config).unwrap().router();
    let post = |host: &str| {
        Request::post("/v1/responses")
            .header("host", host)
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap()
    };
    let rebound = router
        .clone()
        .oneshot(post("rebound.example"))
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
    let get = Request::get("/v1/responses")
        .header("host", "rebound.example")
        .body(Body::empty())
        .unwrap();
    let upgrade = router.clone().oneshot(get).await.unwrap();
    assert_eq!(upgrade.status(), StatusCode::MISDIRECTED_REQUEST);
    // An allowed host reaches the route (whose content-type check answers).
    let local = router.oneshot(post("localhost:8080")).await.unwrap();
    assert_eq!(local.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// The route's `body_limit` caps a client WebSocket message (tungstenite reads no more of
/// one): a larger `max_message_size` in the file would never apply.
#[test]
fn a_client_message_limit_above_the_body_limit_is_refused() {
    assert_errors(&[
        (
            route_with(
                "body_limit = \"1MiB\"\n[routes.client_websocket]\nmax_message_size = \"2MiB\"",
            ),
            "routes[0].client_websocket.max_message_size: 2097152 bytes is more than the route's body_limit (1048576 bytes), which caps it: raise body_limit or lower max_message_size",
        ),
        (
            route_with("[routes.client_websocket]\nmax_message_size = \"32MiB\""),
            "routes[0].client_websocket.max_message_size: 33554432 bytes is more than the route's body_limit (16777216 bytes), which caps it: raise body_limit or lower max_message_size",
        ),
    ]);
    let config = Config::from_toml_str(&route_with(
        "body_limit = \"1MiB\"\n[routes.client_websocket]\nmax_message_size = \"1MiB\"",
    ))
    .unwrap();
    let clients = Configured::from_config(&config).unwrap().client_websockets[0]
        .clone()
        .unwrap();
    assert_eq!(clients.max_message_size(), 1 << 20);
    // Left out: the route's body limit.
    let config = Config::from_toml_str(&route_with("body_limit = \"64KiB\"")).unwrap();
    let clients = Configured::from_config(&config).unwrap().client_websockets[0]
        .clone()
        .unwrap();
    assert_eq!(clients.max_message_size(), 64 << 10);
}
