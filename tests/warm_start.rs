//! Warm connections through the facade: a route whose gateway holds the credential is warmed
//! when the route is built (the gateway's start), its first request pays no handshake, and the
//! breaker's pin keeps the warmer off the key until the key is unpinned.

mod support;

use std::time::Duration;

use http::{HeaderValue, header::AUTHORIZATION};
use support::{STREAM, exchange, until};
use wsfirst::{
    RouteService, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry},
    core::{Route, headers::HeaderPolicy},
    websocket::{Pool, testing::TestUpstream},
};

/// [`support::wsfirst`]'s shared parts with `pool`.
fn warm_wsfirst(pool: &Pool) -> Wsfirst {
    Wsfirst::builder()
        .eligibility(support::local_table())
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
        .pool(pool.clone())
        .build()
}

/// The shared stack of the facade's tests with a pool that keeps `min_idle` connections warm,
/// and a route to `upstream` whose `Authorization` the gateway sets.
fn warm_stack(upstream: &TestUpstream, min_idle: usize) -> (Wsfirst, Pool, Route, RouteService) {
    let pool = Pool::builder().min_idle(min_idle).build().unwrap();
    let wsfirst = warm_wsfirst(&pool);
    let policy = HeaderPolicy::responses()
        .to_builder()
        .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-gateway"))
        .build()
        .unwrap();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .headers(policy)
        .build()
        .unwrap();
    let service = wsfirst.route(route.clone());
    (wsfirst, pool, route, service)
}

/// Lets `by` pass in virtual time, then lets real time run again for real I/O.
async fn time_passes(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn the_route_is_warm_before_its_first_request_which_pays_no_handshake() {
    let upstream = TestUpstream::start().await;
    let (_wsfirst, pool, _route, service) = warm_stack(&upstream, 2);
    until("two warm connections", || pool.idle_connections() == 2).await;
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 0));

    let (status, transport, _, _) = exchange(&service, STREAM).await;
    assert_eq!((status.as_u16(), transport.as_str()), (200, "websocket"));
    let captured = upstream.captured();
    assert!(
        matches!(captured[0].connection, Some(1 | 2)),
        "served on {:?}",
        captured[0].connection
    );
}

#[tokio::test]
async fn a_pinned_key_is_not_warmed_until_it_is_unpinned() {
    let upstream = TestUpstream::start().await;
    let (wsfirst, pool, route, service) = warm_stack(&upstream, 1);
    // A request hands its breaker's gate to the warmer.
    let (_, transport, _, _) = exchange(&service, STREAM).await;
    assert_eq!(transport, "websocket");
    until("warm again", || pool.idle_connections() >= 1).await;
    let opened = upstream.handshakes();

    wsfirst.breakers().pin(route.breaker_key(), None);
    upstream.close_ws_connections();
    until("closed upstream", || upstream.open_ws_connections() == 0).await;
    for _ in 0..4 {
        // The reaper's tick (every half idle timeout) finds the closed ones.
        time_passes(Duration::from_secs(31)).await;
        until("the pool noticed", || pool.idle_connections() == 0).await;
    }
    assert_eq!(upstream.handshakes(), opened);

    assert!(wsfirst.breakers().unpin(route.breaker_key()));
    time_passes(Duration::from_secs(1)).await;
    until("warm after the pin", || pool.idle_connections() == 1).await;
    assert_eq!(upstream.handshakes(), opened + 1);
}

#[tokio::test]
async fn a_route_reading_the_client_credential_is_not_warmed_at_start() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::builder().min_idle(1).build().unwrap();
    let wsfirst = warm_wsfirst(&pool);
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    assert_eq!(pool.warm_keys(), 0);
    // Its first request makes its key known.
    exchange(&service, STREAM).await;
    assert_eq!(pool.warm_keys(), 1);
}
