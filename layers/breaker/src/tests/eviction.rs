//! Idle keys evicted, the keys kept, and what happens to requests in flight for an evicted key.

use super::*;

#[tokio::test(start_paused = true)]
async fn keys_in_use_on_the_closed_path_are_not_evicted() {
    let mut h = Harness::evicting_after_60s(
        config()
            .consecutive_failures(2)
            .no_failure_rate()
            .build()
            .unwrap(),
    );
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    // Used every 30 s (served over HTTP: no verdict) through the remembered key, so swept
    // every 30 s and never idle for 60 s.
    for _ in 0..4 {
        advance(Duration::from_secs(30)).await;
        h.ws(&route, Outcome::Http).await;
        assert_eq!(h.handle.evict_idle(), 0);
    }
    assert_eq!(h.only().consecutive_failures, 1, "the key kept its count");
}

#[tokio::test(start_paused = true)]
async fn an_idle_key_whose_timed_pin_by_hand_ended_is_evicted() {
    let registry = BreakerRegistry::builder()
        .idle_timeout(Duration::from_secs(60))
        .build();
    let handle = registry.handle();
    let timed = BreakerKey::new("timed", "wss://timed", None);
    let forever = BreakerKey::new("forever", "wss://forever", None);
    handle.pin(&timed, Some(Duration::from_secs(10)));
    handle.pin(&forever, None);
    handle.evict_idle(); // clears the "used" marks
    advance(Duration::from_secs(60)).await;
    assert_eq!(handle.evict_idle(), 1);
    assert!(handle.get(&timed).is_none());
    assert!(handle.get(&forever).unwrap().pinned_by_hand);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_but_pins_by_hand_are_kept() {
    let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    for i in 0..50 {
        let secret = format!("Bearer sk-{i}");
        let mut request = request(&route, Intent::WebSocket);
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_str(&secret).unwrap());
        let _ = h.exchange(request, Outcome::Ws).await;
    }
    let pinned_key = BreakerKey::new("ops", "wss://ops", None);
    h.handle.pin(&pinned_key, None);
    assert_eq!(h.handle.snapshot().len(), 51);
    // Keep one key busy.
    for _ in 0..4 {
        advance(Duration::from_secs(30)).await;
        let _ = h
            .exchange(with_credential(&route, "Bearer sk-busy"), Outcome::Ws)
            .await;
        h.handle.evict_idle();
    }
    let left: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&pinned_key));
    // Adding keys sweeps on its own.
    advance(Duration::from_secs(120)).await;
    let _ = h
        .exchange(with_credential(&route, "Bearer sk-new"), Outcome::Ws)
        .await;
    let left: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&pinned_key));
}

#[tokio::test(start_paused = true)]
async fn evicted_keys_are_freed_and_their_late_outcomes_ignored() {
    let reported = Arc::new(Mutex::new(0usize));
    let sink = reported.clone();
    let registry = BreakerRegistry::builder()
        .config(config().consecutive_failures(1).build().unwrap())
        .idle_timeout(Duration::from_secs(60))
        .on_transition(move |_: &Transition| *sink.lock().unwrap() += 1)
        .build();
    let layer = CircuitBreakerLayer::from_registry(registry.clone());
    let mut h = Harness::with_layer(layer);
    let route = route(TransportMode::Auto);
    // A request admitted on a closed key stays in flight while the key is evicted.
    let (slow, slow_send) = h.start_ws(&route).await;
    let state = Arc::downgrade(&registry.existing(route.breaker_key()).unwrap());
    assert_eq!(h.handle.evict_idle(), 0, "used since the last sweep");
    advance(Duration::from_secs(60)).await;
    assert_eq!(h.handle.evict_idle(), 1);
    assert!(registry.is_empty());
    assert!(
        state.upgrade().is_some(),
        "the request in flight still holds it"
    );
    // Its failure (enough to trip a live key) reaches no key and reports nothing.
    slow_send.send_error(refused());
    slow.await.unwrap_err();
    assert!(h.handle.snapshot().is_empty());
    assert_eq!(*reported.lock().unwrap(), 0);
    // The next request gets a fresh key; the evicted state is freed.
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert!(state.upgrade().is_none(), "evicted state freed");
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.window_calls, 1);
    assert_eq!(*reported.lock().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_half_open_key_without_probes_is_evicted() {
    let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    advance(Duration::from_secs(30)).await;
    // A probe still in flight keeps the key...
    let (probe, send) = h.start_ws(&route).await;
    assert_eq!(h.handle.evict_idle(), 0, "used since the last sweep");
    advance(Duration::from_secs(60)).await;
    assert_eq!(h.handle.evict_idle(), 0, "a probe is in flight");
    // ...but once its caller gave up, nothing holds the half-open key: a stream of distinct
    // credentials doing this must not grow the registry without bound.
    drop((probe, send));
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::HalfOpen);
    assert_eq!(snapshot.probes_in_flight, 0);
    assert_eq!(h.handle.evict_idle(), 1);
    assert!(h.handle.snapshot().is_empty());
    // The service recovers with a fresh key.
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn evicting_an_open_key_sets_its_state_gauge_back_to_closed() {
    let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let gauge = || {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, ..)| key.key().name() == "wsfirst_breaker_state")
            .map(|(.., value)| format!("{value:?}"))
    };
    // The trip sets the gauge to 1 (read only once, at the end: a snapshot zeroes gauges).
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open);
    // Nobody comes back: the expired pin is evicted with its key.
    h.handle.evict_idle();
    advance(Duration::from_secs(60)).await;
    assert_eq!(h.handle.evict_idle(), 1);
    assert_eq!(
        gauge().as_deref(),
        Some("Gauge(0.0)"),
        "an evicted key is not shown open forever"
    );
}
