//! What the facade's integration tests share: a stack in front of the test kit, one request read
//! to the end, small helpers (bounded waits, headers, error chains, task counts) and a WebSocket
//! upstream that records how its connections ended. Each test binary uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wsfirst::{
    RouteService, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry},
    core::{Route, TransportMode},
    eligibility::EligibilityTable,
    websocket::testing::TestUpstream,
};

/// A streaming Responses request body.
pub(crate) const STREAM: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;
/// A non-streaming Responses request body.
pub(crate) const NO_STREAM: &str = r#"{"model":"gpt-test","input":"hi"}"#;

/// A stack that allows `local` / `responses` on the WebSocket, whose breakers trip after 3
/// failures in a row and stay open 30 s (no jitter), and one route to `upstream` in `mode`.
pub(crate) fn stack(upstream: &TestUpstream, mode: TransportMode) -> (Wsfirst, RouteService) {
    let wsfirst = wsfirst();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(mode)
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    (wsfirst, service)
}

/// The stack of [`stack`], without a route.
pub(crate) fn wsfirst() -> Wsfirst {
    Wsfirst::builder()
        .eligibility(
            EligibilityTable::builder()
                .allow("local", "responses")
                .build()
                .unwrap(),
        )
        .registry(
            BreakerRegistry::builder()
                .config(
                    BreakerConfig::builder()
                        .consecutive_failures(3)
                        .open_duration(Duration::from_secs(30))
                        .jitter(0.0)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
}

/// Sends a request with `Authorization: Bearer sk-test` and reads the whole answer: (status,
/// transport header, reason header, body).
pub(crate) async fn exchange(
    service: &RouteService,
    body: &str,
) -> (StatusCode, String, String, Bytes) {
    exchange_as(service, "Bearer sk-test", body).await
}

/// [`exchange`] with this `Authorization` value.
pub(crate) async fn exchange_as(
    service: &RouteService,
    credential: &str,
    body: &str,
) -> (StatusCode, String, String, Bytes) {
    let request = Request::post("/v1/responses")
        .header("authorization", credential)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (transport, reason) = (header("x-wsfirst-transport"), header("x-wsfirst-reason"));
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, transport, reason, bytes)
}

pub(crate) mod recorder;

/// The eligibility table of these tests: `local` / `responses` may use the WebSocket.
pub(crate) fn local_table() -> EligibilityTable {
    EligibilityTable::builder()
        .allow("local", "responses")
        .build()
        .unwrap()
}

/// The transport and reason headers of a response (empty when absent).
pub(crate) fn transport_headers<B>(response: &http::Response<B>) -> (String, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (header("x-wsfirst-transport"), header("x-wsfirst-reason"))
}

/// An error and its causes as one string.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}

/// Waits until `done` holds, checking every 10 ms, at most 20 s (then fails naming `what`).
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// The number of tasks alive in the current runtime.
pub(crate) fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}
