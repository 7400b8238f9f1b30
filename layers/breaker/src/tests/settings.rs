//! Settings belong to the registry, per key: a default, overrides by provider and endpoint, fixed
//! when a key is created.

use super::*;

/// A route to another endpoint of the same provider.
fn batch_route() -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("wss://batch.example/v1/responses")
        .http_url("https://batch.example/v1/responses")
        .build()
        .unwrap()
}

/// How long the key of `route` is pinned for, as the snapshot says.
fn open_for(h: &Harness, route: &Route) -> Duration {
    let snapshot = h.handle.get(route.breaker_key()).unwrap();
    assert_eq!(snapshot.state, BreakerState::Open);
    snapshot.until.unwrap() - snapshot.since
}

#[tokio::test(start_paused = true)]
async fn each_key_trips_at_its_own_settings() {
    let chat = route(TransportMode::Auto);
    let batch = batch_route();
    let registry = BreakerRegistry::builder()
        .config(
            config()
                .consecutive_failures(3)
                .no_failure_rate()
                .build()
                .unwrap(),
        )
        .config_for(
            batch.breaker_key(),
            config()
                .consecutive_failures(1)
                .open_duration(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(registry.config().consecutive_failures(), Some(3));
    assert_eq!(
        registry
            .config_for(batch.breaker_key())
            .consecutive_failures(),
        Some(1)
    );
    let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry));
    // One service, two keys: the override trips at one failure and pins for 5 s...
    h.ws(&batch, Outcome::Fail(refused())).await;
    assert_eq!(open_for(&h, &batch), Duration::from_secs(5));
    // ...the default at three, for 30 s.
    for _ in 0..2 {
        h.ws(&chat, Outcome::Fail(refused())).await;
    }
    let snapshot = h.handle.get(chat.breaker_key()).unwrap();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.consecutive_failures, 2);
    h.ws(&chat, Outcome::Fail(refused())).await;
    assert_eq!(open_for(&h, &chat), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn settings_do_not_depend_on_which_service_reaches_a_key_first() {
    // Before, each layer carried a configuration and the first layer to reach a shared key
    // installed its own: a lenient route reaching the key first left a strict route sharing
    // it with the lenient threshold. Now the key's settings are the registry's, whichever
    // service (or handle) creates it.
    let strict = config().consecutive_failures(1).build().unwrap();
    let route = route(TransportMode::Auto);
    let registry = BreakerRegistry::builder()
        .config(config().consecutive_failures(10).build().unwrap())
        .config_for(route.breaker_key(), strict.clone())
        .build();
    let mut first = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
    let mut second = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
    assert_eq!(first.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(
        second.ws(&route, Outcome::Fail(refused())).await,
        Intent::WebSocket
    );
    assert_eq!(second.state(), BreakerState::Open, "tripped at one failure");
    assert!(pinned(&first.ws(&route, Outcome::Http).await));
    assert_eq!(
        registry
            .config_for(route.breaker_key())
            .differing_field(&strict),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_pinned_by_hand_before_traffic_has_its_settings_from_the_start() {
    let route = route(TransportMode::Auto);
    let registry = BreakerRegistry::builder()
        .config_for(
            route.breaker_key(),
            config()
                .consecutive_failures(1)
                .open_duration(Duration::from_secs(7))
                .half_open_probes(2)
                .build()
                .unwrap(),
        )
        .build();
    let handle = registry.handle();
    handle.pin(route.breaker_key(), Some(Duration::from_secs(10)));
    let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry));
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    advance(Duration::from_secs(10)).await;
    // Two probes, as configured for the key: the third request stays on HTTP.
    let (mut probes, mut sends) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (probe, seen, send) = h.start(request(&route, Intent::WebSocket)).await;
        assert_eq!(seen, Intent::WebSocket);
        probes.push(probe);
        sends.push(send);
    }
    assert_eq!(h.only().probes_in_flight, 2);
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    // A failed probe pins the key for the configured 7 s.
    sends.remove(0).send_error(refused());
    drop(sends);
    for probe in probes {
        probe.await.unwrap_err();
    }
    assert_eq!(open_for(&h, &route), Duration::from_secs(7));
    advance(Duration::from_secs(7)).await;
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
    // One failure trips it, as configured.
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_override_applies_whatever_the_credential() {
    let route = route(TransportMode::Auto);
    // The override is given with a key scoped to some credential: only its provider and
    // endpoint matter.
    let scoped = route
        .breaker_key()
        .with_credential(Some(wsfirst_core::Fingerprint::of("Bearer sk-ops")));
    let registry = BreakerRegistry::builder()
        .config_for(&scoped, config().consecutive_failures(1).build().unwrap())
        .build();
    let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
    for secret in ["Bearer sk-alice", "Bearer sk-bob"] {
        let key = route.breaker_key_for(with_credential(&route, secret).headers());
        assert_eq!(registry.config_for(&key).consecutive_failures(), Some(1));
        let _ = h
            .exchange(with_credential(&route, secret), Outcome::Fail(refused()))
            .await;
        assert_eq!(h.handle.get(&key).unwrap().state, BreakerState::Open);
    }
    h.ws(&route, Outcome::Fail(refused())).await;
    let key = route.breaker_key();
    assert_eq!(h.handle.get(key).unwrap().state, BreakerState::Open);
    // Another endpoint keeps the default.
    let other = batch_route();
    assert_eq!(
        registry
            .config_for(other.breaker_key())
            .consecutive_failures(),
        Some(3)
    );
}

#[test]
fn a_later_override_for_an_endpoint_replaces_the_earlier_one() {
    let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
    let alice = key.with_credential(Some(wsfirst_core::Fingerprint::of("Bearer sk-alice")));
    let registry = BreakerRegistry::builder()
        .config_for(&alice, config().consecutive_failures(1).build().unwrap())
        .config_for(&key, config().consecutive_failures(2).build().unwrap())
        .build();
    assert_eq!(registry.config_for(&alice).consecutive_failures(), Some(2));
    assert_eq!(registry.config_for(&key).consecutive_failures(), Some(2));
}
