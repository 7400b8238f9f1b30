//! Half-open keys: probes admitted, their verdicts, and probes that end without one.

use super::*;

#[tokio::test(start_paused = true)]
async fn half_open_probe_success_closes() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    advance(Duration::from_secs(30)).await;
    // The first request after the deadline is the probe; it succeeds.
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.trips, 1, "the trip count is kept until it decays");
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_one_probe_and_pins_the_rest() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    let pin_ended = Instant::now() + Duration::from_secs(30);
    advance(Duration::from_secs(35)).await;

    let (probe, seen, send) = h.start(request(&route, Intent::WebSocket)).await;
    assert_eq!(seen, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(h.only().probes_in_flight, 1);
    // While the probe is out, everyone else is pinned. The re-open deadline is unknown: the
    // reason carries the deadline that ended the pin, in the past, and says a probe decides.
    for _ in 0..3 {
        let seen = h.ws(&route, Outcome::Http).await;
        let reason = Intent::Http(HttpReason::Pinned {
            until: Some(pin_ended),
        });
        assert_eq!(seen, reason);
        assert_eq!(
            seen.to_string(),
            "http because the websocket path is pinned to http while a probe tries it"
        );
    }
    send.send_response(response(Some(Served::websocket(Duration::ZERO))));
    probe.await.unwrap();
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_whose_error_panics_gives_its_slot_back() {
    /// An error whose `source()` panics: the breaker runs it while looking for a `WsFailure`.
    #[derive(Debug)]
    struct Panicky;
    impl fmt::Display for Panicky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("panicky")
        }
    }
    impl std::error::Error for Panicky {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            panic!("source() of a broken error type")
        }
    }

    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let (probe, send) = h.start_probe(&route).await;
    let polled = tokio::spawn(probe);
    send.send_error(Panicky);
    assert!(polled.await.unwrap_err().is_panic());
    assert_eq!(h.only().probes_in_flight, 0);
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_slot_back() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let (probe, _send) = h.start_probe(&route).await;
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    drop(probe);
    assert_eq!(h.only().probes_in_flight, 0);
    // The next request probes, and its other error (no verdict) gives the slot back too.
    assert_eq!(h.ws(&route, Outcome::Other).await, Intent::WebSocket);
    assert_eq!(h.ws(&route, Outcome::Http).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_probe_failure_gives_its_slot_back() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    advance(Duration::from_secs(30)).await;
    assert_eq!(
        h.ws(&route, Outcome::Fallback(upgrade(429))).await,
        Intent::WebSocket
    );
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(
        h.ws(&route, Outcome::Fail(refused())).await,
        Intent::WebSocket
    );
    assert_eq!(h.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_late_probe_does_not_report_its_body_to_the_next_closed_state() {
    let route = route(TransportMode::Auto);
    let config = config()
        .consecutive_failures(1)
        .no_failure_rate()
        .half_open_probes(2)
        .build()
        .unwrap();
    let mut h = Harness::<Scripted>::with_layer(CircuitBreakerLayer::new(config));
    let handle = h.handle.clone();
    let (future, send) = h.start_ws(&route).await;
    send.send_error(refused());
    future.await.unwrap_err();
    advance(Duration::from_secs(30)).await;
    // Two probes go out; the first to get its first event closes the key.
    let (first, send_first) = h.start_ws(&route).await;
    let (second, seen, send_second) = h.start(request(&route, Intent::WebSocket)).await;
    assert_eq!(seen, Intent::WebSocket);
    send_first.send_response(mid_stream(vec![data()]));
    first.await.unwrap().into_body().collect().await.unwrap();
    assert_eq!(handle.snapshot()[0].state, BreakerState::Closed);
    // The other probe was admitted in the half-open state: its stream failing later is not
    // an outcome of the new closed state.
    send_second.send_response(mid_stream(vec![data(), Err("reset".into())]));
    let body = second.await.unwrap().into_body();
    body.collect().await.unwrap_err();
    let snapshot = handle.snapshot().remove(0);
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.consecutive_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_admits_exactly_k_of_64_concurrent_requests() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::{Barrier, Semaphore};

    const TASKS: usize = 64;
    for round in 0..100u32 {
        let probes = 1 + round % 4;
        let admitted = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let inner = {
            let admitted = admitted.clone();
            let gate = gate.clone();
            tower::service_fn(move |request: Request<()>| {
                let websocket = request.extensions().get::<Intent>() == Some(&Intent::WebSocket);
                if websocket {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
                let gate = gate.clone();
                async move {
                    let served = if websocket {
                        // Hold the probe until every request was admitted or pinned.
                        let _permit = gate.acquire().await;
                        Served::websocket(Duration::ZERO)
                    } else {
                        Served::http(HttpReason::ModeHttp)
                    };
                    Ok::<_, BoxError>(response(Some(served)))
                }
            })
        };
        let layer = CircuitBreakerLayer::new(config().half_open_probes(probes).build().unwrap());
        let handle = layer.handle();
        let service = layer.layer(inner);
        let route = route(TransportMode::Auto);
        // Pinned for no time at all: the next request finds the key due for half-open.
        handle.pin(route.breaker_key(), Some(Duration::ZERO));
        let start = Arc::new(Barrier::new(TASKS));
        let called = Arc::new(Barrier::new(TASKS + 1));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut service = service.clone();
                let (start, called, route) = (start.clone(), called.clone(), route.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let future = service
                        .ready()
                        .await
                        .unwrap()
                        .call(request(&route, Intent::WebSocket));
                    called.wait().await;
                    future.await.unwrap();
                })
            })
            .collect();
        called.wait().await;
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            probes as usize,
            "round {round}"
        );
        assert_eq!(
            handle.get(route.breaker_key()).unwrap().probes_in_flight,
            probes
        );
        gate.add_permits(TASKS);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            handle.get(route.breaker_key()).unwrap().state,
            BreakerState::Closed
        );
    }
}
