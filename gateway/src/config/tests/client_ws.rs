//! `[routes.client_websocket]`: mapped onto the client WebSocket's builder, errors named by
//! path, and `enabled = false` leaving the route's `GET` unmounted.

use std::time::Duration;

use super::{assert_errors, route_with};
use wsfirst::client_ws::ClientWsConfig;

use crate::{Configured, config::Config};

#[test]
fn the_table_maps_onto_the_builder_and_left_out_fields_keep_its_defaults() {
    let config = Config::from_toml_str(&route_with(
        "[routes.client_websocket]\nmax_message_size = \"1MiB\"\nidle_timeout = \"2m\"\nping_interval = \"15s\"\nmax_lifetime = \"30m\"\nsend_buffer = \"512KiB\"\nmax_queued = 4\nmax_connections = 9\nshutdown_grace = \"0s\"",
    ))
    .unwrap();
    let limits = config.routes[0].client_websocket.to_config().unwrap();
    let expected = ClientWsConfig::builder()
        .max_message_size(1 << 20)
        .idle_timeout(Duration::from_secs(120))
        .ping_interval(Some(Duration::from_secs(15)))
        .max_lifetime(Duration::from_secs(1800))
        .send_buffer(512 << 10)
        .max_queued(4)
        .max_connections(9)
        .shutdown_grace(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(limits, expected);
    let config = Config::from_toml_str(&route_with("")).unwrap();
    assert_eq!(
        config.routes[0].client_websocket.to_config().unwrap(),
        ClientWsConfig::default()
    );
}

#[test]
fn bad_values_name_their_path() {
    assert_errors(&[
        (
            route_with("[routes.client_websocket]\nmax_queued = 0"),
            "routes[0].client_websocket.max_queued: invalid client websocket config: max_queued must not be zero",
        ),
        (
            route_with("[routes.client_websocket]\nidle_timeout = \"0s\""),
            "routes[0].client_websocket.idle_timeout: invalid client websocket config: idle_timeout must not be zero",
        ),
        (
            route_with("[routes.client_websocket]\nsend_bufer = 1"),
            "routes[0].client_websocket.send_bufer: unknown field `send_bufer`, expected one of `enabled`, `max_message_size`, `idle_timeout`, `ping_interval`, `max_lifetime`, `send_buffer`, `max_queued`, `max_queued_bytes`, `max_lanes`, `max_connections`, `shutdown_grace`, `allowed_origins`",
        ),
    ]);
}

#[tokio::test]
async fn the_get_is_mounted_unless_disabled() {
    use tower::ServiceExt;
    for (extra, mounted) in [
        ("", true),
        ("[routes.client_websocket]\nenabled = false", false),
    ] {
        let config = Config::from_toml_str(&route_with(extra)).unwrap();
        let configured = Configured::from_config(&config).unwrap();
        assert_eq!(configured.client_websockets[0].is_some(), mounted);
        let request = http::Request::get("/v1/responses")
            .body(axum::body::Body::empty())
            .unwrap();
        let status = configured.router().oneshot(request).await.unwrap().status();
        // Mounted: a plain GET is a bad upgrade (400); not mounted: 405.
        let expected = if mounted { 400 } else { 405 };
        assert_eq!(status.as_u16(), expected, "{extra}");
    }
}
