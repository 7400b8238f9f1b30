//! Verdicts of WebSocket-served bodies: the end of the stream, an error in it, a body dropped.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_mid_stream_body_error_counts() {
    let route = route(TransportMode::Auto);
    let mut h = Harness::<Scripted>::with_layer(CircuitBreakerLayer::new(
        config().consecutive_failures(3).build().unwrap(),
    ));
    let handle = h.handle.clone();
    let mut call = async |frames| {
        let (future, send) = h.start_ws(&route).await;
        send.send_response(mid_stream(frames));
        future.await.unwrap().into_body().collect().await
    };
    let closed = WsFailure::new(
        Phase::MidStream,
        FailureKind::Closed {
            code: None,
            reason: String::new(),
        },
    );
    // A WsFailure in the body error's chain.
    let error = call(vec![data(), Err(Box::new(closed.clone()))])
        .await
        .unwrap_err();
    assert_eq!(wsfirst_core::find_ws_failure(&*error), Some(&closed));
    let snapshot = handle.snapshot().remove(0);
    assert_eq!(snapshot.consecutive_failures, 1);
    assert_eq!(snapshot.last_failure.unwrap().phase, "mid_stream");
    // Any other body error is a generic mid-stream failure.
    call(vec![data(), Err("reset".into())]).await.unwrap_err();
    let snapshot = handle.snapshot().remove(0);
    assert_eq!(snapshot.consecutive_failures, 2);
    assert_eq!(snapshot.last_failure.unwrap().kind, "io");
    // A body that ends is the success that resets the streak.
    call(vec![data(), data()]).await.unwrap();
    assert_eq!(handle.snapshot()[0].consecutive_failures, 0);
    for _ in 0..3 {
        call(vec![Err("reset".into())]).await.unwrap_err();
    }
    assert_eq!(handle.snapshot()[0].state, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_unfinished_has_no_verdict() {
    let route = route(TransportMode::Auto);
    let mut h = Harness::<Scripted>::with_layer(CircuitBreakerLayer::new(
        config().consecutive_failures(1).build().unwrap(),
    ));
    let handle = h.handle.clone();
    // One failure, then a success whose body is dropped before its end.
    let (future, send) = h.start_ws(&route).await;
    send.send_error(upgrade(500));
    future.await.unwrap_err();
    assert_eq!(handle.snapshot()[0].state, BreakerState::Open);
    advance(Duration::from_secs(30)).await;
    // The probe succeeds at its first event, and its body is then dropped unfinished.
    let (future, send) = h.start_ws(&route).await;
    send.send_response(mid_stream(vec![data(), data()]));
    let response = future.await.unwrap();
    assert_eq!(handle.snapshot()[0].state, BreakerState::Closed);
    drop(response);
    let snapshot = handle.snapshot().remove(0);
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.window_calls, 0, "no verdict recorded");
}
