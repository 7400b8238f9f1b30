//! Requests on a closed key: what passes untouched, what counts, what trips.

use super::*;

#[tokio::test(start_paused = true)]
async fn http_requests_pass_through_uncounted() {
    let mut h = Harness::new(config().build().unwrap());
    let route = route(TransportMode::Auto);
    let intent = Intent::Http(HttpReason::ModeHttp);
    for _ in 0..5 {
        let (seen, result) = h
            .exchange(
                request(&route, intent.clone()),
                Outcome::Fallback(refused()),
            )
            .await;
        assert_eq!(seen, intent);
        assert_eq!(&result.unwrap()[..], b"ok");
    }
    assert!(h.handle.snapshot().is_empty(), "no key was created");
}

#[tokio::test(start_paused = true)]
async fn missing_extensions_are_errors() {
    let mut h = Harness::new(config().build().unwrap());
    let mut no_intent = Request::new(());
    no_intent
        .extensions_mut()
        .insert(route(TransportMode::Auto));
    let error = h
        .service
        .ready()
        .await
        .unwrap()
        .call(no_intent)
        .await
        .unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::INTENT)
    );
    let mut no_route = Request::new(());
    no_route.extensions_mut().insert(Intent::WebSocket);
    let error = h
        .service
        .ready()
        .await
        .unwrap()
        .call(no_route)
        .await
        .unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::ROUTE)
    );
    // A request already on HTTP does not need a route.
    let mut http_only = Request::new(());
    http_only
        .extensions_mut()
        .insert(Intent::Http(HttpReason::ModeHttp));
    let (future, _, send) = h.start(http_only).await;
    send.send_response(response(None));
    assert!(future.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_pin_the_key_for_the_base_duration() {
    let mut h = Harness::new(config().no_failure_rate().build().unwrap());
    let route = route(TransportMode::Auto);
    for _ in 0..2 {
        assert_eq!(
            h.ws(&route, Outcome::Fail(refused())).await,
            Intent::WebSocket
        );
    }
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.only().consecutive_failures, 2);
    let tripped_at = Instant::now();
    h.ws(&route, Outcome::Fallback(refused())).await;
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.until, Some(tripped_at + Duration::from_secs(30)));
    assert_eq!(snapshot.last_failure.as_ref().unwrap().failure, refused());

    let seen = h.ws(&route, Outcome::Http).await;
    assert_eq!(
        seen,
        Intent::Http(HttpReason::Pinned {
            until: Some(tripped_at + Duration::from_secs(30))
        })
    );
    advance(Duration::from_secs(29)).await;
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_streak() {
    let mut h = Harness::new(config().no_failure_rate().build().unwrap());
    let route = route(TransportMode::Auto);
    for _ in 0..10 {
        h.ws(&route, Outcome::Fail(refused())).await;
        h.ws(&route, Outcome::Fail(refused())).await;
        h.ws(&route, Outcome::Ws).await;
    }
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.only().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_a_sliding_window_trips() {
    let config = config()
        .no_consecutive_failures()
        .failure_rate(0.5, 4, 4)
        .build()
        .unwrap();
    let mut h = Harness::new(config);
    let route = route(TransportMode::Auto);
    // F S F S: 2 of 4 (= 0.5) would trip, but the window is not full until the 4th call,
    // which is a success; failures are only judged on a failure.
    h.ws(&route, Outcome::Fail(refused())).await;
    h.ws(&route, Outcome::Ws).await;
    h.ws(&route, Outcome::Ws).await;
    h.ws(&route, Outcome::Ws).await;
    // window: F S S S -> next failure makes S S S F = 1/4
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!((h.only().window_calls, h.only().window_failures), (4, 1));
    // S S F S -> the oldest successes slide out one at a time
    h.ws(&route, Outcome::Ws).await;
    // S F S F = 2/4 trips
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn failures_slide_out_of_the_window() {
    let config = config()
        .no_consecutive_failures()
        .failure_rate(0.5, 4, 2)
        .build()
        .unwrap();
    let mut h = Harness::new(config);
    let route = route(TransportMode::Auto);
    for _ in 0..4 {
        h.ws(&route, Outcome::Ws).await;
    }
    h.ws(&route, Outcome::Fail(refused())).await; // S S S F
    for _ in 0..4 {
        h.ws(&route, Outcome::Ws).await; // the failure slides out
    }
    assert_eq!(h.only().window_failures, 0);
    h.ws(&route, Outcome::Fail(refused())).await; // S S S F = 1/4
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn not_a_websocket_endpoint_trips_at_once() {
    for status in [404, 405, 426, 501] {
        let mut h = Harness::new(config().build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fallback(upgrade(status))).await;
        assert_eq!(h.state(), BreakerState::Open, "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn ignored_failures_and_other_errors_do_not_count() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let limit = WsFailure::new(
        Phase::BeforeFirstEvent,
        FailureKind::UpstreamError {
            code: Some("websocket_connection_limit_reached".into()),
            message: "reconnect".into(),
            scope: wsfirst_core::ErrorScope::Connection,
        },
    );
    let local = WsFailure::new(
        Phase::Connect,
        FailureKind::Local("connection pool exhausted".into()),
    );
    for _ in 0..5 {
        h.ws(&route, Outcome::Fallback(upgrade(429))).await;
        h.ws(&route, Outcome::Fail(limit.clone())).await;
        h.ws(&route, Outcome::Fail(local.clone())).await;
        h.ws(&route, Outcome::Fallback(local.clone())).await;
        h.ws(&route, Outcome::Other).await;
        h.ws(&route, Outcome::Http).await;
    }
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.consecutive_failures, 0);
    assert!(snapshot.last_failure.is_none());
    // ...while a counted one does.
    h.ws(&route, Outcome::Fail(upgrade(502))).await;
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_of_an_earlier_state_are_ignored() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    // A request admitted while closed...
    let (slow, slow_send) = h.start_ws(&route).await;
    // ...meanwhile the key trips and is pinned.
    h.ws(&route, Outcome::Fail(refused())).await;
    let until = h.only().until;
    // The slow request's failure does not extend the pin, its success does not close it.
    slow_send.send_error(refused());
    slow.await.unwrap_err();
    assert_eq!(h.only().until, until);
    assert_eq!(h.only().trips, 1);
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn strict_routes_are_never_rerouted_but_are_recorded() {
    let mut h = Harness::new(config().consecutive_failures(2).build().unwrap());
    let strict = route(TransportMode::WebSocket);
    h.ws(&strict, Outcome::Fail(refused())).await;
    h.ws(&strict, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open, "strict failures count");
    // An auto route to the same upstream shares the key and is pinned...
    let auto = route(TransportMode::Auto);
    assert!(pinned(&h.ws(&auto, Outcome::Http).await));
    // ...but the strict route still goes to the WebSocket, and its failures do not extend
    // the pin.
    let until = h.only().until;
    assert_eq!(
        h.ws(&strict, Outcome::Fail(upgrade(500))).await,
        Intent::WebSocket
    );
    assert_eq!(h.only().until, until);
    assert_eq!(h.only().last_failure.unwrap().failure, upgrade(500));
    // A strict success shows the path is healthy: the key closes.
    assert_eq!(h.ws(&strict, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.ws(&auto, Outcome::Ws).await, Intent::WebSocket);
}
