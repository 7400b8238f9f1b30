//! The handshake gate a WebSocket request carries: a failed handshake counts the moment the
//! WebSocket layer reports it, once, and a request admitted while the key was closed opens no
//! connection after the key tripped.

use wsfirst_core::{HandshakeGate, HandshakeGates};

use super::*;

/// Calls the service with a WebSocket request on `route`; returns its response future, the
/// gate the WebSocket layer would use (the one the request carries, else the registry's) and
/// the upstream's side of the exchange.
async fn start_gated(h: &mut Harness, route: &Route) -> (Future, HandshakeGate, Send) {
    let future = h
        .service
        .ready()
        .await
        .unwrap()
        .call(request(route, Intent::WebSocket));
    let (seen, send) = h.upstream.next_request().await.unwrap();
    let gate = match seen.extensions().get::<HandshakeGate>() {
        Some(gate) => gate.clone(),
        None => h.service.registry().gate(route, seen.headers()).unwrap(),
    };
    (future, gate, send)
}

/// Calls the service with a WebSocket request on `route`; returns its response future, whether
/// the request carried a gate, and the upstream's side.
async fn start(h: &mut Harness, route: &Route) -> (Future, bool, Send) {
    let future = h
        .service
        .ready()
        .await
        .unwrap()
        .call(request(route, Intent::WebSocket));
    let (seen, send) = h.upstream.next_request().await.unwrap();
    let carried = seen.extensions().get::<HandshakeGate>().is_some();
    (future, carried, send)
}

#[tokio::test(start_paused = true)]
async fn a_request_on_a_closed_key_carries_no_gate_and_the_registry_gates_it() {
    let mut h = Harness::new(
        config()
            .consecutive_failures(1)
            .no_failure_rate()
            .build()
            .unwrap(),
    );
    let route = route(TransportMode::Auto);
    let headers = request(&route, Intent::WebSocket).headers().clone();
    // No breaker has looked the key up yet: nothing gates it.
    assert!(h.service.registry().gate(&route, &headers).is_none());
    // The first request looks the key up, the second is on the remembered closed key: neither
    // carries anything, the registry gates them.
    let (first, carried, send) = start(&mut h, &route).await;
    assert!(
        !carried,
        "a request admitted on a closed key carries no gate"
    );
    send.send_response(response(Some(Served::websocket(Duration::from_millis(5)))));
    first.await.unwrap().into_body().collect().await.unwrap();
    let (second, carried, send) = start(&mut h, &route).await;
    assert!(
        !carried,
        "the closed-state path puts nothing in the request"
    );
    let gate = h.service.registry().gate(&route, &headers).unwrap();
    assert!(gate.may_open());
    assert!(gate.report(refused()).is_shared(), "counted at once");
    assert_eq!(h.state(), BreakerState::Open);
    // Once the key is open, a request admitted before may not open a connection; a strict
    // request gets no gate from the registry (its failure goes back with its answer).
    assert!(
        !h.service
            .registry()
            .gate(&route, &headers)
            .unwrap()
            .may_open()
    );
    let strict = super::route(TransportMode::WebSocket);
    assert!(h.service.registry().gate(&strict, &headers).is_none());
    send.send_response(fallback(refused().shared()));
    second.await.unwrap().into_body().collect().await.unwrap();
    assert_eq!(h.only().trips, 1);
}

fn fallback(failure: WsFailure) -> Response<Body> {
    response(Some(Served::fallback(failure, Duration::from_millis(5))))
}

#[tokio::test(start_paused = true)]
async fn a_reported_handshake_counts_at_once_and_not_again_on_the_way_back() {
    let mut h = Harness::new(
        config()
            .consecutive_failures(3)
            .no_failure_rate()
            .build()
            .unwrap(),
    );
    let route = route(TransportMode::Auto);
    // Four requests in flight, all admitted while the key is closed.
    let mut started = Vec::new();
    for _ in 0..4 {
        started.push(start_gated(&mut h, &route).await);
    }
    for (n, (_, gate, _)) in started.iter().take(3).enumerate() {
        assert!(gate.may_open());
        let reported = gate.report(refused());
        assert!(reported.is_shared(), "taken by the breaker");
        let snapshot = h.only();
        if n < 2 {
            assert_eq!(
                (snapshot.state, snapshot.consecutive_failures),
                (BreakerState::Closed, n as u32 + 1)
            );
        } else {
            assert_eq!((snapshot.state, snapshot.trips), (BreakerState::Open, 1));
        }
    }
    // The fourth was admitted before the trip: it may no longer open a connection.
    assert!(!started[3].1.may_open());
    // The answers that replaced the refused handshakes carry the shared copies: not counted
    // again (the key would otherwise be open longer, after a second trip).
    for (future, _, send) in started {
        send.send_response(fallback(refused().shared()));
        future.await.unwrap().into_body().collect().await.unwrap();
    }
    let snapshot = h.only();
    assert_eq!((snapshot.state, snapshot.trips), (BreakerState::Open, 1));
}

#[tokio::test(start_paused = true)]
async fn a_failure_the_classifier_ignores_is_left_to_the_way_back() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let (future, gate, send) = start_gated(&mut h, &route).await;
    let local = WsFailure::new(Phase::Connect, FailureKind::Local("pool closed".into()));
    let reported = gate.report(local.clone());
    assert!(!reported.is_shared());
    send.send_response(fallback(reported));
    future.await.unwrap();
    assert_eq!(h.only().state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn probes_and_strict_requests_may_open_and_a_probe_reports_once() {
    let mut h = Harness::new(
        config()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let strict = route(TransportMode::WebSocket);
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open);
    // A strict request on the open key may open a connection; its failure is remembered, not
    // counted.
    let (future, gate, send) = start_gated(&mut h, &strict).await;
    assert!(gate.may_open());
    send.send_response(fallback(gate.report(upgrade(500))));
    future.await.unwrap();
    assert_eq!((h.state(), h.only().trips), (BreakerState::Open, 1));

    advance(Duration::from_secs(30)).await;
    let (probe, gate, send) = start_gated(&mut h, &route).await;
    assert_eq!(h.only().probes_in_flight, 1);
    assert!(gate.may_open());
    let reported = gate.report(refused());
    assert!(reported.is_shared());
    // Back to open at once, the second trip.
    assert_eq!((h.state(), h.only().trips), (BreakerState::Open, 2));
    send.send_response(fallback(reported));
    probe.await.unwrap();
    let snapshot = h.only();
    assert_eq!(
        (snapshot.state, snapshot.trips, snapshot.probes_in_flight),
        (BreakerState::Open, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn http_and_pinned_requests_carry_no_gate() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    for intent in [Intent::Http(HttpReason::ModeHttp), Intent::WebSocket] {
        if intent.is_websocket() {
            h.ws(&route, Outcome::Fail(refused())).await;
        }
        let future = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, intent));
        let (seen, send) = h.upstream.next_request().await.unwrap();
        assert!(seen.extensions().get::<HandshakeGate>().is_none());
        send.send_response(response(None));
        future.await.unwrap();
    }
}
