//! Warm connections (`PoolBuilder::min_idle`) against the scriptable upstream: opened before any
//! request, taken by the first request, replaced when the upstream closes one, nothing opened
//! while the breaker's gate says no and reopened once it says yes, failed warm-ups backed off
//! and not reported, and nothing more after shutdown. Virtual time where timers matter.
#![cfg(feature = "testing")]

mod ws_support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{HeaderValue, StatusCode, header::AUTHORIZATION};
use ws_support::*;
use wsfirst_core::{HandshakeGate, HandshakeObserver, Route, WsFailure, headers::HeaderPolicy};
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{TestUpstream, WsScript},
};

fn config() -> WebSocketConfig {
    WebSocketConfig::builder().build().unwrap()
}

/// A route whose gateway holds the credential: the key is known before any request.
fn gateway_route(upstream: &TestUpstream) -> Route {
    let policy = HeaderPolicy::responses()
        .to_builder()
        .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-gateway"))
        .build()
        .unwrap();
    Route::builder("test", "test-responses")
        .ws_url(upstream.ws_url())
        .http_url("http://127.0.0.1:9/v1/responses")
        .headers(policy)
        .build()
        .unwrap()
}

fn warm_pool(min_idle: usize) -> Pool {
    Pool::builder().min_idle(min_idle).build().unwrap()
}

/// Sends one request and reads its whole answer, which returns the connection to the pool.
async fn complete(service: &mut Svc, request: http::Request<http_body_util::Full<bytes::Bytes>>) {
    let response = call(service, request).await.expect("the attempt succeeds");
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
}

/// Lets `by` pass in virtual time, then lets real time run again for real I/O.
async fn time_passes(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Gives the runtime many turns, so that anything that would happen now (a handshake the
/// warmer starts) gets the chance to.
async fn settle() {
    for _ in 0..2000 {
        tokio::task::yield_now().await;
    }
}

/// A breaker stand-in: lets connections open while `open` is true, and counts the failures
/// reported to it.
#[derive(Debug, Default)]
struct Breaker {
    pinned: AtomicBool,
    reported: AtomicUsize,
}

impl HandshakeObserver for Breaker {
    fn may_open(&self, _token: u64) -> bool {
        !self.pinned.load(Ordering::SeqCst)
    }

    fn failed(&self, _token: u64, _failure: &WsFailure) -> bool {
        self.reported.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// A request of `route` carrying the gate of `breaker`.
fn gated(
    route: &Route,
    breaker: &Arc<Breaker>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = request(route, true);
    let observer: Arc<dyn HandshakeObserver> = breaker.clone();
    request
        .extensions_mut()
        .insert(HandshakeGate::new(observer, 0));
    request
}

#[tokio::test]
async fn at_start_the_upstream_sees_min_idle_handshakes_and_the_first_request_none() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(2);
    let route = gateway_route(&upstream);
    pool.warm(&route, &config());
    until(|| pool.idle_connections() == 2).await;
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 0));

    let (mut service, _) = service(config(), &pool);
    complete(&mut service, request(&route, true)).await;
    let captured = upstream.captured();
    // Served on one of the two warm connections (numbered 1 and 2 in order of upgrade).
    assert!(
        matches!(captured[0].connection, Some(1 | 2)),
        "{:?}",
        captured[0].connection
    );
    // The warmer replaced the one taken; the request's own connection came back too.
    until(|| upstream.handshakes() == 3 && pool.idle_connections() == 3).await;
    assert_eq!(pool.warm_keys(), 1);
}

#[tokio::test]
async fn a_key_seen_at_runtime_is_kept_warm_after_its_first_request() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(1);
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    assert_eq!(pool.warm_keys(), 1);
    // The request's own connection came back, and the warmer opened one more meanwhile.
    until(|| pool.idle_connections() == 2).await;
    assert_eq!(upstream.handshakes(), 2);
    // Two requests at once (streaming answers hold their connections): no handshake of their own.
    let first = call(&mut service, request(&route, true)).await.unwrap();
    let second = call(&mut service, request(&route, true)).await.unwrap();
    let served: Vec<_> = upstream.captured()[1..]
        .iter()
        .map(|captured| captured.connection.unwrap())
        .collect();
    assert!(served.iter().all(|id| *id <= 2), "served on {served:?}");
    drop((first, second));
}

#[tokio::test]
async fn keys_with_an_affinity_value_are_not_warmed() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(1);
    let config = WebSocketConfig::builder()
        .affinity_header("x-session-id")
        .build()
        .unwrap();
    let (mut service, _) = service(config, &pool);
    let route = route(&upstream);
    let request = request_with(&route, body(true), &[("x-session-id", "a")]);
    complete(&mut service, request).await;
    settle().await;
    assert_eq!((pool.warm_keys(), upstream.handshakes()), (0, 1));
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closes_is_replaced() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(1);
    let route = gateway_route(&upstream);
    pool.warm(&route, &config());
    until(|| pool.idle_connections() == 1).await;
    upstream.close_ws_connections();
    until(|| upstream.open_ws_connections() == 0).await;
    settle().await;
    // The reaper's next tick (every half idle timeout) finds it closed; the warmer replaces it.
    time_passes(Duration::from_secs(31)).await;
    until(|| upstream.handshakes() == 2 && upstream.open_ws_connections() == 1).await;
    until(|| pool.idle_connections() == 1).await;
}

#[tokio::test]
async fn warm_connections_outlive_the_idle_timeout() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::builder()
        .min_idle(1)
        .idle_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let route = gateway_route(&upstream);
    pool.warm(&route, &config());
    until(|| pool.idle_connections() == 1).await;
    for _ in 0..3 {
        time_passes(Duration::from_secs(6)).await;
        settle().await;
    }
    assert_eq!((upstream.handshakes(), pool.idle_connections()), (1, 1));
    let (mut service, _) = service(config(), &pool);
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.captured()[0].connection, Some(1));
}

#[tokio::test]
async fn nothing_is_opened_while_the_gate_says_no_and_the_key_is_warmed_again_after() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(1);
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    let breaker = Arc::new(Breaker::default());
    complete(&mut service, gated(&route, &breaker)).await;
    until(|| pool.idle_connections() == 2).await;
    let opened = upstream.handshakes();

    // Pinned: the upstream drops every connection, the pool notices, and opens nothing.
    breaker.pinned.store(true, Ordering::SeqCst);
    upstream.close_ws_connections();
    until(|| upstream.open_ws_connections() == 0).await;
    settle().await;
    for _ in 0..5 {
        time_passes(Duration::from_secs(31)).await;
        settle().await;
    }
    assert_eq!(pool.idle_connections(), 0);
    assert_eq!(upstream.handshakes(), opened);

    // Recovered: the warmer asks the gate again within a second and warms the key up.
    breaker.pinned.store(false, Ordering::SeqCst);
    time_passes(Duration::from_secs(1)).await;
    until(|| pool.idle_connections() == 1).await;
    assert_eq!(upstream.handshakes(), opened + 1);
    assert_eq!(breaker.reported.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failed_warm_ups_back_off_and_are_not_reported_to_the_breaker() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(2);
    let (mut service, calls) = service(config(), &pool);
    let route = route(&upstream);
    let breaker = Arc::new(Breaker::default());
    complete(&mut service, gated(&route, &breaker)).await;
    until(|| pool.idle_connections() >= 2).await;
    assert_eq!(breaker.reported.load(Ordering::SeqCst), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The upstream now refuses upgrades; the idle connections are closed by it.
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::SERVICE_UNAVAILABLE, "down"));
    upstream.close_ws_connections();
    until(|| upstream.open_ws_connections() == 0).await;
    settle().await;
    let before = upstream.handshakes();
    time_passes(Duration::from_secs(31)).await;
    // Two wanted, both refused (the back-off doubles with each failure: 2 s now), then one at a
    // time, 2 s, 4 s, 8 s apart.
    // (Each refusal is back in the pool's books when it counts no connection.)
    until(|| upstream.handshakes() == before + 2 && pool.connections() == 0).await;
    for (seen, wait) in (before + 2..).zip([2, 4, 8]) {
        time_passes(Duration::from_millis(wait * 1000 - 100)).await;
        settle().await;
        assert_eq!(
            upstream.handshakes(),
            seen,
            "before the {wait} s back-off ends"
        );
        time_passes(Duration::from_millis(100)).await;
        until(|| upstream.handshakes() == seen + 1 && pool.connections() == 0).await;
    }
    assert_eq!(breaker.reported.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutdown_stops_warming() {
    let upstream = TestUpstream::start().await;
    let pool = warm_pool(1);
    let route = gateway_route(&upstream);
    pool.warm(&route, &config());
    until(|| pool.idle_connections() == 1).await;
    assert_eq!(pool.shutdown(SECOND).await, 0);
    until(|| upstream.open_ws_connections() == 0).await;
    assert_eq!(pool.warm_keys(), 0);
    // Neither the closed connection nor a later registration opens anything.
    pool.warm(&route, &config());
    for _ in 0..3 {
        time_passes(Duration::from_secs(31)).await;
        settle().await;
    }
    assert_eq!((upstream.handshakes(), pool.connections()), (1, 0));
}

#[tokio::test]
async fn min_idle_above_the_per_key_maximum_is_refused() {
    let error = Pool::builder()
        .max_connections_per_key(2)
        .min_idle(3)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "min_idle");
    assert!(
        error
            .to_string()
            .contains("min_idle must be at most 2, got 3"),
        "{error}"
    );
}
