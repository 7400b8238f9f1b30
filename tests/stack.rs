//! End-to-end tests of the composed stack (Eligibility -> CircuitBreaker -> Fallback ->
//! WebSocket -> HTTP) against the scriptable upstream on 127.0.0.1, counting what the upstream
//! executed on each transport.

mod support;

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::{NO_STREAM, STREAM, exchange};
use tower::ServiceExt;
use wsfirst::{
    RouteOptions, RouteService, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry, BreakerState},
    core::{FailureKind, Phase, Route, Served, Transport, TransportMode},
    eligibility::EligibilityTable,
    websocket::{
        WebSocketConfig,
        testing::{Answer, TestUpstream, Transport as UpstreamTransport, WsScript},
    },
};

fn table() -> EligibilityTable {
    EligibilityTable::builder()
        .allow("local", "responses")
        .build()
        .unwrap()
}

fn route(upstream: &TestUpstream, mode: TransportMode) -> Route {
    Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(mode)
        .build()
        .unwrap()
}

/// A breaker without jitter, so the open period is exactly `open_for`.
fn breaker(open_for: Duration) -> BreakerConfig {
    BreakerConfig::builder()
        .consecutive_failures(3)
        .open_duration(open_for)
        .jitter(0.0)
        .build()
        .unwrap()
}

/// A stack whose breakers all use [`breaker`] with a 30 s open period.
fn wsfirst_with_breaker() -> Wsfirst {
    Wsfirst::builder()
        .eligibility(table())
        .registry(
            BreakerRegistry::builder()
                .config(breaker(Duration::from_secs(30)))
                .build(),
        )
        .build()
}

fn service(upstream: &TestUpstream, mode: TransportMode) -> (Wsfirst, RouteService) {
    let wsfirst = wsfirst_with_breaker();
    let service = wsfirst.route(route(upstream, mode));
    (wsfirst, service)
}

fn request(body: impl Into<Bytes>) -> Request<Body> {
    Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Body::from(body.into()))
        .unwrap()
}

async fn send(service: &RouteService, body: &str) -> Response<Body> {
    service
        .clone()
        .oneshot(request(body.to_owned()))
        .await
        .unwrap()
}

/// An error and its causes as one string.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}

fn state(wsfirst: &Wsfirst) -> Option<BreakerState> {
    wsfirst.breakers().snapshot().first().map(|key| key.state)
}

#[tokio::test]
async fn healthy_websocket_serves_sequential_requests_on_one_handshake() {
    let upstream = TestUpstream::start().await;
    let (_wsfirst, service) = service(&upstream, TransportMode::Auto);
    let answer = Answer::text("hello world");
    for _ in 0..5 {
        let (status, transport, reason, body) = exchange(&service, STREAM).await;
        assert_eq!(
            (status, transport.as_str(), reason.as_str()),
            (StatusCode::OK, "websocket", "websocket")
        );
        assert_eq!(body, answer.sse());
    }
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.ws_requests(), 5);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test]
async fn upgrade_500_falls_back_then_pins_after_the_threshold() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong endpoint",
    ));
    let (wsfirst, service) = service(&upstream, TransportMode::Auto);
    let mut reasons = Vec::new();
    for _ in 0..10 {
        let (status, transport, reason, body) = exchange(&service, STREAM).await;
        assert_eq!((status, transport.as_str()), (StatusCode::OK, "http"));
        assert_eq!(body, Answer::text("hello world").sse());
        reasons.push(reason);
    }
    assert_eq!(reasons[..3], ["fallback", "fallback", "fallback"]);
    assert!(
        reasons[3..].iter().all(|reason| reason == "pinned"),
        "{reasons:?}"
    );
    // Exactly the threshold's handshakes, then none while pinned; every request executed once.
    assert_eq!(upstream.handshakes(), 3);
    assert_eq!(upstream.ws_requests(), 0);
    assert_eq!(upstream.http_requests(), 10);
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].state, BreakerState::Open);
    let last = snapshot[0].last_failure.as_ref().unwrap();
    assert_eq!(
        last.failure.kind().upgrade_status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
}

#[tokio::test]
async fn upgrade_426_pins_after_one_handshake() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::UPGRADE_REQUIRED, ""));
    let (wsfirst, service) = service(&upstream, TransportMode::Auto);
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let (status, _, reason, _) = exchange(&service, STREAM).await;
        assert_eq!(status, StatusCode::OK);
        reasons.push(reason);
    }
    assert_eq!(reasons, ["fallback", "pinned", "pinned", "pinned"]);
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.http_requests(), 4);
    assert_eq!(state(&wsfirst), Some(BreakerState::Open));
}

#[tokio::test(start_paused = true)]
async fn hung_upgrade_falls_back_after_the_handshake_timeout() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Hang);
    let wsfirst = Wsfirst::builder().eligibility(table()).build();
    let websocket = WebSocketConfig::builder()
        .handshake_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let service = wsfirst.route_with(
        route(&upstream, TransportMode::Auto),
        RouteOptions::new().websocket(websocket),
    );
    let response = send(&service, STREAM).await;
    let served = response.extensions().get::<Served>().unwrap().clone();
    assert_eq!(served.transport(), Transport::Http);
    let cause = served.fallback_cause().unwrap();
    assert_eq!(cause.phase(), Phase::Handshake);
    assert_eq!(cause.kind(), &FailureKind::Timeout(Duration::from_secs(5)));
    // A dead endpoint costs one handshake timeout, not more.
    assert_eq!(served.ws_attempt(), Some(Duration::from_secs(5)));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Answer::text("hello world").sse());
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.http_requests(), 1);
}

#[tokio::test]
async fn close_before_the_first_event_is_not_replayed_the_upstream_had_the_request() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::CloseBeforeFirstEvent { code: 1011 });
    let (_wsfirst, service) = service(&upstream, TransportMode::Auto);
    let (status, _, _, body) = exchange(&service, STREAM).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "websocket_failed");
    // Executed upstream once: the WebSocket had the request when it closed.
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test]
async fn close_mid_stream_reaches_the_caller_and_http_executes_nothing() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::CloseAfterEvents {
        events: 3,
        code: 1011,
    });
    let (wsfirst, service) = service(&upstream, TransportMode::Auto);
    let response = send(&service, STREAM).await;
    assert_eq!(response.headers()["x-wsfirst-transport"], "websocket");
    let error = response.into_body().collect().await.unwrap_err();
    let text = chain(&error);
    assert!(text.contains("mid-stream"), "{text}");
    // Executed upstream exactly once: over the WebSocket, never replayed over HTTP.
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);
    // The breaker counted the mid-stream failure.
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(snapshot[0].consecutive_failures, 1);
}

#[tokio::test]
async fn non_streaming_close_mid_answer_is_a_502_and_never_replayed() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::CloseAfterEvents {
        events: 2,
        code: 1011,
    });
    let (_wsfirst, service) = service(&upstream, TransportMode::Auto);
    let (status, _, _, body) = exchange(&service, NO_STREAM).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "websocket_failed_mid_stream");
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test]
async fn strict_mode_surfaces_failures_and_is_never_pinned() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));
    let (_wsfirst, service) = service(&upstream, TransportMode::WebSocket);
    for _ in 0..5 {
        let (status, _, reason, body) = exchange(&service, STREAM).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(reason, "upgrade_status");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "websocket_failed");
        assert_eq!(
            body["error"]["message"],
            "websocket handshake failed: upgrade answered with status 500: boom"
        );
    }
    // Strict: every request tried the WebSocket, none went to HTTP, none was rerouted.
    assert_eq!(upstream.handshakes(), 5);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test]
async fn http_mode_never_handshakes() {
    let upstream = TestUpstream::start().await;
    let (_wsfirst, service) = service(&upstream, TransportMode::Http);
    for _ in 0..3 {
        let (status, transport, reason, body) = exchange(&service, STREAM).await;
        assert_eq!(
            (status, transport.as_str(), reason.as_str()),
            (StatusCode::OK, "http", "mode_http")
        );
        assert_eq!(body, Answer::text("hello world").sse());
    }
    assert_eq!(upstream.handshakes(), 0);
    assert_eq!(upstream.http_requests(), 3);
}

#[tokio::test]
async fn recovery_a_probe_after_the_open_period_closes_the_key() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::BAD_GATEWAY, ""));
    let (wsfirst, service) = service(&upstream, TransportMode::Auto);
    for _ in 0..3 {
        exchange(&service, STREAM).await;
    }
    assert_eq!(state(&wsfirst), Some(BreakerState::Open));
    // The WebSocket heals, but the key stays pinned until the open period ends.
    upstream.set_default_ws_script(WsScript::Accept);
    let (_, _, reason, _) = exchange(&service, STREAM).await;
    assert_eq!(reason, "pinned");
    assert_eq!(upstream.handshakes(), 3);

    // Jump the clock past the open period (sockets stay on real time around the jump).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();

    let (status, transport, _, body) = exchange(&service, STREAM).await;
    assert_eq!((status, transport.as_str()), (StatusCode::OK, "websocket"));
    assert_eq!(body, Answer::text("hello world").sse());
    assert_eq!(upstream.handshakes(), 4);
    assert_eq!(state(&wsfirst), Some(BreakerState::Closed));
    // Closed again: the next request uses the WebSocket too.
    let (_, transport, _, _) = exchange(&service, STREAM).await;
    assert_eq!(transport, "websocket");
}

#[tokio::test]
async fn bytes_are_identical_whichever_transport_served() {
    let upstream = TestUpstream::start().await;
    let (_wsfirst, websocket) = service(&upstream, TransportMode::Auto);
    let (_wsfirst, http) = service(&upstream, TransportMode::Http);
    for body in [STREAM, NO_STREAM] {
        let (_, ws_transport, _, over_websocket) = exchange(&websocket, body).await;
        let (_, http_transport, _, over_http) = exchange(&http, body).await;
        assert_eq!(
            (ws_transport.as_str(), http_transport.as_str()),
            ("websocket", "http")
        );
        assert_eq!(over_websocket, over_http, "request {body}");
    }
    // And after a fallback.
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "down"));
    let (_wsfirst, falling_back) = service(&upstream, TransportMode::Auto);
    let (_, transport, reason, replayed) = exchange(&falling_back, STREAM).await;
    assert_eq!((transport.as_str(), reason.as_str()), ("http", "fallback"));
    assert_eq!(replayed, Answer::text("hello world").sse());
}

#[tokio::test]
async fn one_mib_body_is_replayed_over_http_byte_identical() {
    let upstream = TestUpstream::start().await;
    // The upstream refuses the request on each connection without executing it (the connection
    // limit), so it is sent once more on a fresh connection, then replayed over HTTP.
    upstream.push_answer(Answer::connection_limit_reached());
    upstream.push_answer(Answer::connection_limit_reached());
    let (_wsfirst, service) = service(&upstream, TransportMode::Auto);
    let input: String = (0..1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body =
        serde_json::json!({ "model": "gpt-test", "input": input, "stream": true }).to_string();
    assert!(body.len() > 1024 * 1024);
    let (status, _, reason, _) = exchange(&service, &body).await;
    assert_eq!((status, reason.as_str()), (StatusCode::OK, "fallback"));
    let http: Vec<_> = upstream
        .captured()
        .into_iter()
        .filter(|request| request.transport == UpstreamTransport::Http)
        .collect();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].body, body.as_bytes());
    // The WebSocket attempts carried the same request before they were refused.
    assert_eq!(upstream.ws_requests(), 2);
}

#[tokio::test]
async fn routes_to_the_same_upstream_share_a_breaker() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, ""));
    let wsfirst = Wsfirst::builder()
        .eligibility(
            table()
                .to_builder()
                .allow("local", "other")
                .build()
                .unwrap(),
        )
        .registry(
            BreakerRegistry::builder()
                .config(breaker(Duration::from_secs(30)))
                .build(),
        )
        .build();
    let options = RouteOptions::new();
    let first = wsfirst.route_with(route(&upstream, TransportMode::Auto), options.clone());
    let other_route = Route::builder("local", "other")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .build()
        .unwrap();
    let second = wsfirst.route_with(other_route, options);
    for service in [&first, &second, &first] {
        exchange(service, STREAM).await;
    }
    // Three failures across two routes tripped the one shared key.
    let (_, _, reason, _) = exchange(&second, STREAM).await;
    assert_eq!(reason, "pinned");
    assert_eq!(upstream.handshakes(), 3);
    assert_eq!(wsfirst.breakers().snapshot().len(), 1);
}

#[tokio::test]
async fn concurrent_requests_to_a_refusing_endpoint_cost_one_handshake() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong endpoint",
    ));
    let (wsfirst, service) = service(&upstream, TransportMode::Auto);
    let requests = (0..64).map(|_| exchange(&service, STREAM));
    let answers = futures_util::future::join_all(requests).await;
    for (status, transport, reason, body) in answers {
        assert_eq!(
            (status, transport.as_str(), reason.as_str()),
            (StatusCode::OK, "http", "fallback")
        );
        assert_eq!(body, Answer::text("hello world").sse());
    }
    // The handshakes were coalesced, every request executed exactly once over HTTP, and the
    // one refused handshake is one failure of the path, not 64 (the waiters' copies are not
    // counted): the key trips at its threshold of refused handshakes (3), then costs nothing.
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.http_requests(), 64);
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(
        (snapshot[0].state, snapshot[0].consecutive_failures),
        (BreakerState::Closed, 1)
    );
    for _ in 0..2 {
        let (_, _, reason, _) = exchange(&service, STREAM).await;
        assert_eq!(reason, "fallback");
    }
    assert_eq!(state(&wsfirst), Some(BreakerState::Open));
    let (_, _, reason, _) = exchange(&service, STREAM).await;
    assert_eq!(reason, "pinned");
    assert_eq!(upstream.handshakes(), 3);
}

#[tokio::test]
async fn the_incident_a_websocket_url_on_another_providers_host_never_handshakes() {
    let upstream = TestUpstream::start().await;
    // `openai` is eligible and registered on api.openai.com, but the route's WebSocket URL points
    // at another host (here the loopback upstream): eligibility keeps it on HTTP.
    let wsfirst = Wsfirst::builder()
        .eligibility(wsfirst::openai_responses_table())
        .build();
    let route = Route::builder("openai", "openai-responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    for _ in 0..3 {
        let (status, transport, reason, body) = exchange(&service, STREAM).await;
        assert_eq!(
            (status, transport.as_str(), reason.as_str()),
            (StatusCode::OK, "http", "foreign_host")
        );
        assert_eq!(body, Answer::text("hello world").sse());
    }
    assert_eq!(upstream.handshakes(), 0);
    assert_eq!(upstream.http_requests(), 3);
    assert!(wsfirst.breakers().snapshot().is_empty());
}

/// A route without a breaker and a route with one reach the same key: the one without never
/// decides the other's settings (it has no breaker layer at all), so the key still pins after the
/// breaker route's own threshold (3 failures by default), whichever route came first.
#[tokio::test]
async fn a_route_without_breaker_does_not_disable_the_breaker_of_a_route_sharing_its_key() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "wrong"));
    let wsfirst = Wsfirst::builder().eligibility(table()).build();
    let unguarded = wsfirst.route_with(
        route(&upstream, TransportMode::Auto),
        RouteOptions::new().no_breaker(),
    );
    let guarded = wsfirst.route_with(route(&upstream, TransportMode::Auto), RouteOptions::new());
    let (_, transport, reason, _) = exchange(&unguarded, STREAM).await;
    assert_eq!((transport.as_str(), reason.as_str()), ("http", "fallback"));
    for _ in 0..3 {
        let (_, transport, _, _) = exchange(&guarded, STREAM).await;
        assert_eq!(transport, "http");
    }
    assert_eq!(state(&wsfirst), Some(BreakerState::Open));
    let handshakes = upstream.handshakes();
    let (_, _, reason, _) = exchange(&guarded, STREAM).await;
    assert_eq!(reason, "pinned");
    assert_eq!(
        upstream.handshakes(),
        handshakes,
        "a pinned key pays no handshake"
    );
}

/// An HTTP upstream that does not answer within the route's timeout is a `504` with the same
/// JSON error shape as the other failures.
#[tokio::test(start_paused = true)]
async fn an_http_upstream_timeout_is_a_504() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_http_script(wsfirst::websocket::testing::HttpScript::SlowEvents {
        delay: Duration::from_secs(60),
    });
    let wsfirst = Wsfirst::builder().eligibility(table()).build();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(TransportMode::Http)
        .http_timeouts(wsfirst::upstream::HttpTimeouts {
            response: Some(Duration::from_secs(5)),
            idle: None,
        })
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    let (status, _, _, body) = exchange(&service, NO_STREAM).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "upstream_timeout");
    assert_eq!(json["error"]["type"], "wsfirst_error");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no response within the response timeout"),
        "{json}"
    );
}
