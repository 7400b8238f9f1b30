//! Warm-ups (`"generate": false`) never reach the upstream's HTTP endpoint, whichever way the
//! stack would send them there: a pinned breaker key, a refused upgrade that the fallback layer
//! would replay, a `POST` whose body says so. The client gets an error (503
//! `websocket_unavailable` while the WebSocket path is down) and the upstream double counts no
//! HTTP request.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use client_ws_support::{Gateway, create, response, send};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{TestUpstream, WsScript},
};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

async fn start() -> (TestUpstream, Gateway) {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let gateway = Gateway::start(&upstream, TransportMode::Auto, ClientWsConfig::default()).await;
    (upstream, gateway)
}

/// The error event of a warm-up the WebSocket path cannot serve now, on its lane.
fn assert_unavailable(event: &Value, lane: &str) {
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["status"], 503, "{event}");
    assert_eq!(event["error"]["code"], "websocket_unavailable", "{event}");
    assert_eq!(event["error"]["param"], "generate", "{event}");
    assert_eq!(event["stream_id"], lane, "{event}");
}

#[tokio::test]
async fn a_warm_up_on_a_pinned_key_is_answered_without_any_http_request() {
    let (upstream, gateway) = start().await;
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer sk-test"));
    let key = gateway.service.route().breaker_key_for(&headers);
    gateway.wsfirst.breakers().pin(&key, None);
    let mut client = gateway.connect().await;
    send(
        &mut client,
        create("warm", r#""stream_id":"main","generate":false"#),
    )
    .await;
    let messages = response(&mut client).await;
    assert_unavailable(&json_of(&messages[0]), "main");
    assert_eq!(upstream.http_requests(), 0);
    assert_eq!(upstream.ws_requests(), 0);
    // The connection stays usable, and the pin still sends ordinary turns over HTTP.
    send(&mut client, create("turn", "")).await;
    let messages = response(&mut client).await;
    assert_eq!(
        json_of(messages.last().unwrap())["type"],
        "response.completed"
    );
    assert_eq!(upstream.http_requests(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_warm_up_whose_upgrade_is_refused_is_not_replayed_over_http() {
    let (upstream, gateway) = start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no websocket here",
    ));
    let mut client = gateway.connect().await;
    send(
        &mut client,
        create("warm", r#""stream_id":"w","generate":false"#),
    )
    .await;
    let messages = response(&mut client).await;
    let event = json_of(&messages[0]);
    assert_unavailable(&event, "w");
    // The refused upgrade is named in the message.
    assert!(
        event["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("500")),
        "{event}"
    );
    assert_eq!(upstream.http_requests(), 0);
    // An ordinary turn still falls back.
    send(&mut client, create("turn", "")).await;
    let messages = response(&mut client).await;
    assert_eq!(
        json_of(messages.last().unwrap())["type"],
        "response.completed"
    );
    assert_eq!(upstream.http_requests(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_post_that_says_generate_false_is_not_replayed_over_http() {
    let (upstream, gateway) = start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no websocket here",
    ));
    let request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            r#"{"model":"gpt-kit","input":"warm","generate":false,"stream":true}"#,
        ))
        .unwrap();
    let response = gateway.service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "websocket_unavailable", "{body}");
    assert_eq!(body["error"]["param"], "generate", "{body}");
    assert_eq!(upstream.http_requests(), 0);
    gateway.stop().await;
}
