//! Client WebSocket mode bounded in bytes: what the gateway sends back does not grow with what
//! a client sends (an unknown event type is not echoed in full), and queued messages hold bytes
//! of the process's body budget (none left: a `503` error event, nothing sent upstream).

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use axum::{Router, routing::post_service};
use client_ws_support::{Gateway, create, response, send};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::{connect_async, tungstenite::Message};
use wsfirst::{
    client_ws::ClientWsConfig, core::TransportMode, fallback::BodyBudget, serve::ServerConfig,
    websocket::testing::TestUpstream,
};

#[tokio::test]
async fn an_unknown_event_type_is_not_echoed_back_in_full() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&upstream, TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    // Control characters are escaped several bytes each: 2 bytes in, 8 out, before the fix.
    let kind = "\u{1}".repeat(100_000);
    let message = serde_json::json!({"type": kind}).to_string();
    send(&mut client, Message::text(message.clone())).await;
    let events = response(&mut client).await;
    assert_eq!(events.len(), 1);
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["error"]["code"], "unsupported_event_type");
    assert!(
        events[0].len() < 1024,
        "{} bytes answered {} bytes",
        message.len(),
        events[0].len()
    );
    assert_eq!(upstream.ws_requests() + upstream.http_requests(), 0);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_message_past_the_body_budget_gets_a_503_event() {
    let upstream = TestUpstream::start().await;
    let (wsfirst, service) = support::stack(&upstream, TransportMode::Auto);
    let budget = BodyBudget::new(256);
    let clients = wsfirst
        .client_websocket(&service, ClientWsConfig::default())
        .with_budget(budget.clone());
    let app = Router::new().route("/v1/responses", post_service(service).get_service(clients));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(wsfirst::serve::serve(
        listener,
        app,
        ServerConfig::default(),
        std::future::pending(),
    ));
    let (mut client, _) = connect_async(format!("ws://{addr}/v1/responses"))
        .await
        .unwrap();
    send(&mut client, create(&"x".repeat(1000), "")).await;
    let events = response(&mut client).await;
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["status"], 503, "{event}");
    assert_eq!(event["error"]["code"], "body_budget_exhausted");
    assert_eq!(upstream.ws_requests() + upstream.http_requests(), 0);
    assert_eq!(budget.available(), 256, "nothing is held once refused");
    // A message within the budget is served on the same connection.
    send(&mut client, create("hi", "")).await;
    let events = response(&mut client).await;
    assert!(
        events.last().unwrap().contains("response.completed"),
        "{events:?}"
    );
    server.abort();
    wsfirst.shutdown().await;
}
