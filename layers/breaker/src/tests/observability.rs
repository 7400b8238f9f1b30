//! What transitions report: the callback and the metrics.

use super::*;

#[tokio::test(start_paused = true)]
async fn transitions_are_reported_once_each() {
    let seen: Arc<Mutex<Vec<(BreakerState, BreakerState)>>> = Arc::default();
    let sink = seen.clone();
    let registry = BreakerRegistry::builder()
        .config(config().consecutive_failures(1).build().unwrap())
        .on_transition(move |t: &Transition| sink.lock().unwrap().push((t.from, t.to)))
        .build();
    let layer = CircuitBreakerLayer::from_registry(registry);
    let mut h = Harness::with_layer(layer);
    let route = route(TransportMode::Auto);
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    h.ws(&route, Outcome::Fail(refused())).await;
    for _ in 0..3 {
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
    }
    advance(Duration::from_secs(30)).await;
    h.ws(&route, Outcome::Ws).await;
    use BreakerState::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    let metrics = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        metrics
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| {
                (
                    key.key()
                        .labels()
                        .map(|l| format!("{}={}", l.key(), l.value()))
                        .collect::<Vec<_>>(),
                    format!("{value:?}"),
                )
            })
            .collect::<Vec<_>>()
    };
    let pinned_requests = find("wsfirst_breaker_pinned_requests_total");
    assert_eq!(pinned_requests.len(), 1, "{pinned_requests:?}");
    assert_eq!(pinned_requests[0].0, ["provider=openai"]);
    assert!(pinned_requests[0].1.contains('3'), "{pinned_requests:?}");
    assert_eq!(find("wsfirst_breaker_transitions_total").len(), 3);
    let gauge = find("wsfirst_breaker_state");
    assert_eq!(gauge.len(), 1);
    assert!(gauge[0].1.contains("0.0"), "closed again: {gauge:?}");
}
