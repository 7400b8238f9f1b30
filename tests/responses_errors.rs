//! The Responses API's error events through the whole stack (Eligibility -> CircuitBreaker ->
//! Fallback -> WebSocket -> HTTP) against the scriptable upstream on 127.0.0.1: a client error
//! is answered as the HTTP endpoint would answer it, executed once and never counted; a server
//! error before output is a failure, never replayed (the upstream had the request); an error
//! after output ends the stream cleanly.

mod support;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{NO_STREAM, STREAM, stack};
use tower::ServiceExt;
use wsfirst::{
    RouteService, Wsfirst,
    breaker::BreakerState,
    core::TransportMode,
    websocket::testing::{Answer, TestUpstream},
};

async fn send(service: &RouteService, body: &'static str) -> Response<Body> {
    let request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    service.clone().oneshot(request).await.unwrap()
}

struct Answered {
    status: StatusCode,
    transport: String,
    reason: String,
    retry_after: Option<String>,
    body: Bytes,
}

async fn exchange(service: &RouteService, body: &'static str) -> Answered {
    let response = send(service, body).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let transport = header("x-wsfirst-transport").unwrap_or_default();
    let reason = header("x-wsfirst-reason").unwrap_or_default();
    let retry_after = header("retry-after");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body ends cleanly")
        .to_bytes();
    Answered {
        status,
        transport,
        reason,
        retry_after,
        body,
    }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn breaker_state(wsfirst: &Wsfirst) -> Option<BreakerState> {
    wsfirst.breakers().snapshot().first().map(|key| key.state)
}

#[tokio::test]
async fn a_bad_request_is_answered_400_with_the_http_error_body_and_executed_once() {
    let upstream = TestUpstream::start().await;
    let invalid = Answer::error(
        StatusCode::BAD_REQUEST,
        "invalid_value",
        "Invalid value: 'banana'.",
    );
    upstream.set_answer(invalid.clone());
    let (_wsfirst, service) = stack(&upstream, TransportMode::Auto);
    let mut executed = 0;
    for body in [STREAM, NO_STREAM, STREAM, NO_STREAM, STREAM, NO_STREAM] {
        let answered = exchange(&service, body).await;
        assert_eq!(answered.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (answered.transport.as_str(), answered.reason.as_str()),
            ("websocket", "websocket")
        );
        assert_eq!(
            json_of(&answered.body),
            json_of(invalid.http_error_body().unwrap().as_bytes())
        );
        executed += 1;
        // One execution per bad request, on the WebSocket; none replayed over HTTP.
        assert_eq!(
            (upstream.ws_requests(), upstream.http_requests()),
            (executed, 0)
        );
    }
}

#[tokio::test]
async fn a_hundred_client_errors_leave_the_breaker_closed_and_the_websocket_in_use() {
    let upstream = TestUpstream::start().await;
    let (wsfirst, service) = stack(&upstream, TransportMode::Auto);
    for index in 0..100 {
        let answer = match index % 4 {
            0 => Answer::error(StatusCode::BAD_REQUEST, "invalid_value", "bad"),
            1 => Answer::error(StatusCode::UNAUTHORIZED, "invalid_api_key", "no"),
            2 => Answer::previous_response_not_found("resp_gone"),
            _ => Answer::rate_limited(1),
        };
        upstream.push_answer(answer);
        let answered = exchange(&service, STREAM).await;
        assert!(answered.status.is_client_error(), "{}", answered.status);
        assert_eq!(answered.transport, "websocket");
    }
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].state, BreakerState::Closed);
    assert_eq!(snapshot[0].consecutive_failures, 0);
    assert_eq!(snapshot[0].window_failures, 0);
    assert!(snapshot[0].last_failure.is_none());
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (100, 0));
    // One connection served them all.
    assert_eq!(upstream.handshakes(), 1);

    // The next healthy request still goes over the WebSocket.
    let answered = exchange(&service, STREAM).await;
    assert_eq!(
        (answered.status, answered.transport.as_str()),
        (StatusCode::OK, "websocket")
    );
    assert_eq!(answered.body, Answer::default().sse());
}

#[tokio::test]
async fn a_rate_limit_reaches_the_client_with_its_retry_after_and_is_not_replayed() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::rate_limited(20));
    let (wsfirst, service) = stack(&upstream, TransportMode::Auto);
    for body in [STREAM, NO_STREAM] {
        let answered = exchange(&service, body).await;
        assert_eq!(answered.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answered.retry_after.as_deref(), Some("20"));
        assert_eq!(
            json_of(&answered.body)["error"]["code"],
            "rate_limit_exceeded"
        );
    }
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (2, 0));
    assert_eq!(breaker_state(&wsfirst), Some(BreakerState::Closed));
}

#[tokio::test]
async fn a_server_error_before_output_is_a_502_never_replayed_and_counts() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("over http"));
    let (wsfirst, service) = stack(&upstream, TransportMode::Auto);
    for round in 1..=3 {
        upstream.push_answer(Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error.",
        ));
        let answered = exchange(&service, STREAM).await;
        assert_eq!(answered.status, StatusCode::BAD_GATEWAY);
        assert_eq!(json_of(&answered.body)["error"]["code"], "websocket_failed");
        // The upstream had the request and may have started on it: executed once, not replayed.
        assert_eq!(
            (upstream.ws_requests(), upstream.http_requests()),
            (round, 0)
        );
    }
    // Three provider failures in a row: pinned.
    assert_eq!(breaker_state(&wsfirst), Some(BreakerState::Open));
}

// Paused time: an error that failed to end the answer would wait for the idle timeout (300 s).
#[tokio::test(start_paused = true)]
async fn an_error_after_output_ends_the_stream_cleanly_and_is_not_a_failure() {
    let upstream = TestUpstream::start().await;
    let text = Answer::text("hello world");
    let error = Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "lost");
    let (wsfirst, service) = stack(&upstream, TransportMode::Auto);
    for _ in 0..5 {
        upstream.push_answer(text.interrupted(4, &error));
        let answered = exchange(&service, STREAM).await;
        assert_eq!(
            (answered.status, answered.transport.as_str()),
            (StatusCode::OK, "websocket")
        );
        let body = String::from_utf8(answered.body.to_vec()).unwrap();
        assert!(
            body.ends_with(
                "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"lost\",\"param\":null,\"sequence_number\":4}\n\n"
            ),
            "{body}"
        );
    }
    // Executed once each, and the breaker learned five answers carried to their end.
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (5, 0));
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(snapshot[0].state, BreakerState::Closed);
    assert_eq!(snapshot[0].window_failures, 0);
}
