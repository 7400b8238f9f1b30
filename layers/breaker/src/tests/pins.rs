//! Steering keys by hand through the handle: pins, unpins, resets.

use super::*;

#[tokio::test(start_paused = true)]
async fn the_handle_pins_unpins_and_resets() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let key = route.breaker_key().clone();
    // Pinned by hand before any traffic, until unpinned.
    h.handle.pin(&key, None);
    let seen = h.ws(&route, Outcome::Http).await;
    assert_eq!(seen, Intent::Http(HttpReason::Pinned { until: None }));
    advance(Duration::from_secs(24 * 3600)).await;
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    // A strict success does not undo a pin by hand.
    h.ws(&self::route(TransportMode::WebSocket), Outcome::Ws)
        .await;
    assert_eq!(h.state(), BreakerState::Open);
    assert!(h.only().pinned_by_hand);
    assert!(h.handle.unpin(&key));
    assert!(!h.handle.unpin(&key), "already closed");
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);

    // An absurd duration does not overflow the clock: it is cut to 100 years.
    h.handle.pin(&key, Some(Duration::MAX));
    let snapshot = h.only();
    assert_eq!(
        snapshot.until,
        Some(Instant::now() + wsfirst_core::MAX_DURATION)
    );
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    assert!(h.handle.unpin(&key));

    // Pinned for a while: then half-open as after a trip.
    h.handle.pin(&key, Some(Duration::from_secs(10)));
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    advance(Duration::from_secs(10)).await;
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);

    // Reset forgets trips and the last failure.
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.only().trips, 1);
    assert!(h.handle.reset(&key));
    let snapshot = h.only();
    assert_eq!((snapshot.state, snapshot.trips), (BreakerState::Closed, 0));
    assert!(snapshot.last_failure.is_none());
    assert_eq!(h.handle.key_named(&key.to_string()), Some(key.clone()));
    let unknown = BreakerKey::new("other", "wss://x", None);
    assert!(!h.handle.reset(&unknown));
    assert!(h.handle.get(&unknown).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_timed_pin_by_hand_ends_with_its_period() {
    let mut h = Harness::new(config().build().unwrap());
    let auto = route(TransportMode::Auto);
    let strict = route(TransportMode::WebSocket);
    h.handle
        .pin(auto.breaker_key(), Some(Duration::from_secs(10)));
    assert!(h.only().pinned_by_hand);
    advance(Duration::from_secs(10)).await;
    // Over, even before a request moves the key to half-open.
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert!(!snapshot.pinned_by_hand);
    // Half-open probes as after a trip (an ignored probe failure keeps it half-open).
    assert_eq!(
        h.ws(&auto, Outcome::Fallback(upgrade(429))).await,
        Intent::WebSocket
    );
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::HalfOpen);
    assert!(!snapshot.pinned_by_hand);
    // A strict success closes it, as it would close any half-open key.
    assert_eq!(h.ws(&strict, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_admitted_before_a_reset_are_ignored() {
    let mut h = Harness::new(config().consecutive_failures(2).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    let (slow, slow_send) = h.start_ws(&route).await;
    assert!(h.handle.reset(route.breaker_key()));
    slow_send.send_error(refused());
    slow.await.unwrap_err();
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.consecutive_failures, 0);
    assert_eq!(snapshot.window_calls, 0);
    assert!(snapshot.last_failure.is_none());
}

#[tokio::test(start_paused = true)]
async fn pins_set_centuries_after_the_registry_started_keep_their_deadline() {
    const YEAR: u64 = 365 * 24 * 3600;
    let mut h = Harness::new(config().build().unwrap());
    let route = route(TransportMode::Auto);
    let key = route.breaker_key().clone();
    h.ws(&route, Outcome::Ws).await;
    advance(Duration::from_secs(490 * YEAR)).await;
    h.handle.pin(&key, Some(wsfirst_core::MAX_DURATION));
    let until = h.only().until;
    assert!(until.is_some());
    let seen = h.ws(&route, Outcome::Http).await;
    assert_eq!(seen, Intent::Http(HttpReason::Pinned { until }));
    advance(Duration::from_secs(99 * YEAR)).await;
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    advance(wsfirst_core::MAX_DURATION).await;
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}
