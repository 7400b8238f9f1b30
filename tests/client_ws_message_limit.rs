//! A client WebSocket message is never read past the route's body limit: tungstenite's
//! per-message limit follows `RouteOptions::fallback`'s `body_limit` (when lower than the
//! client WebSocket configuration's own), so that a client cannot make the gateway hold more
//! of one message than the route would take.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use axum::{Router, routing::post_service};
use client_ws_support::{Client, close_frame, create, response, send};
use tokio::net::TcpListener;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};
use wsfirst::{
    RouteOptions,
    client_ws::ClientWsConfig,
    core::{Route, TransportMode},
    fallback::FallbackConfig,
    serve::{ServerConfig, serve},
};
use wsfirst_websocket::testing::TestUpstream;

/// The route's body limit; the client WebSocket configuration keeps its default (16 MiB).
const LIMIT: usize = 4096;

/// A gateway whose route takes bodies of at most [`LIMIT`] bytes; a connected client.
async fn connect(upstream: &TestUpstream) -> (Client, tokio::task::JoinHandle<()>) {
    let wsfirst = support::wsfirst();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(TransportMode::Auto)
        .build()
        .unwrap();
    let fallback = FallbackConfig::builder().body_limit(LIMIT).build().unwrap();
    let service = wsfirst.route_with(route, RouteOptions::new().fallback(fallback));
    let clients = wsfirst.client_websocket(&service, ClientWsConfig::default());
    assert_eq!(clients.max_message_size(), LIMIT);
    let app = Router::new().route("/v1/responses", post_service(service).get_service(clients));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        serve(
            listener,
            app,
            ServerConfig::default(),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let (client, _) = connect_async(format!("ws://{addr}/v1/responses"))
        .await
        .unwrap();
    (client, server)
}

/// A `response.create` message of exactly `size` bytes.
fn create_of(size: usize) -> Message {
    let empty = create("", "").into_text().unwrap().len();
    create(&"x".repeat(size - empty), "")
}

#[tokio::test]
async fn a_message_one_byte_over_the_route_s_body_limit_closes_with_1009() {
    let upstream = TestUpstream::start().await;
    let (mut client, server) = connect(&upstream).await;
    send(&mut client, create_of(LIMIT + 1)).await;
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(upstream.ws_requests() + upstream.http_requests(), 0);
    server.abort();
}

#[tokio::test]
async fn a_message_well_within_the_limit_is_served() {
    let upstream = TestUpstream::start().await;
    let (mut client, server) = connect(&upstream).await;
    // The request body the message becomes is a little different in size from the message.
    send(&mut client, create_of(LIMIT - 256)).await;
    let events = response(&mut client).await;
    assert!(
        events.last().unwrap().contains("response.completed"),
        "{events:?}"
    );
    server.abort();
}
