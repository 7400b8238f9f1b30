//! The write-stall deadline against the scriptable upstream: a caller that stops reading a
//! streaming answer loses its WebSocket after the pool's `write_stall_timeout` (the upstream sees
//! it close, the pool no longer has it, the body ends with a local failure), while a caller that
//! waits on a slow upstream keeps it. Paused time drives the deadline.
#![cfg(feature = "testing")]

mod ws_support;

use std::time::Duration;

use http_body_util::BodyExt;
use ws_support::*;
use wsfirst_core::{FailureKind, Phase, find_ws_failure};
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

const STALL: Duration = Duration::from_secs(60);

fn pool() -> Pool {
    Pool::builder().write_stall_timeout(STALL).build().unwrap()
}

fn config() -> WebSocketConfig {
    WebSocketConfig::builder().build().unwrap()
}

/// Lets paused time run until `condition` holds (each sleep lets the clock jump when the
/// runtime has nothing else to do, and lets loopback I/O through).
async fn eventually(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}

/// The failure that ends a stalled body: local (the breaker ignores it), mid-stream.
fn assert_stalled(error: &wsfirst_core::BoxError) {
    let failure = find_ws_failure(&**error).expect("a WsFailure ends the body");
    assert_eq!(failure.phase(), Phase::MidStream);
    assert!(matches!(failure.kind(), FailureKind::Local(_)), "{failure}");
    assert!(failure.to_string().contains("read nothing"), "{failure}");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_stops_reading_loses_its_websocket() {
    let upstream = TestUpstream::start().await;
    // 64 deltas of 16 KiB: more than the sockets buffer, so the upstream is stuck writing.
    upstream.set_answer(Answer::large_text(1 << 20));
    let pool = pool();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    let response = call(&mut service, request(&route, true)).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(!first.into_data().unwrap().is_empty());
    assert_eq!(upstream.open_ws_connections(), 1);
    assert_eq!(pool.connections(), 1);

    // The caller reads nothing more (its client no longer reads its socket).
    tokio::time::sleep(STALL - Duration::from_secs(1)).await;
    assert_eq!(pool.connections(), 1, "not before the deadline");
    eventually(|| upstream.open_ws_connections() == 0).await;
    assert_eq!(pool.connections(), 0);
    assert_eq!(pool.idle_connections(), 0);

    // When the caller comes back, the body ends with the failure, then ends for good.
    let error = body.frame().await.unwrap().unwrap_err();
    assert_stalled(&error);
    assert!(body.frame().await.is_none());

    // The next request gets a connection of its own, and reads its answer whole.
    upstream.set_answer(Answer::text("hello again"));
    let response = call(&mut service, request(&route, true)).await.unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert!(!bytes.is_empty());
    assert_eq!(upstream.ws_connections(), 2);
    assert_eq!(pool.idle_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_nobody_polls_loses_its_websocket_too() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("never read"));
    let pool = pool();
    let (mut service, _) = service(config(), &pool);
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    eventually(|| upstream.open_ws_connections() == 0).await;
    assert_eq!(pool.connections(), 0);
    // The first event's frame was already in hand: it comes first, then the failure.
    let mut body = response.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    assert_stalled(&body.frame().await.unwrap().unwrap_err());
}

#[tokio::test(start_paused = true)]
async fn a_caller_waiting_on_a_slow_upstream_keeps_its_websocket() {
    let upstream = TestUpstream::start().await;
    // Each event comes 90 s after the previous one (the first one too): longer than the stall
    // deadline, shorter than the idle timeout between events (300 s). The caller is reading
    // all along.
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(90),
    });
    upstream.set_answer(Answer::text("slow but fine"));
    let pool = pool();
    let config = WebSocketConfig::builder()
        .first_event_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let (mut service, _) = service(config, &pool);
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .contains("response.completed")
    );
    assert!(
        started.elapsed() > STALL * 3,
        "the answer took several deadlines"
    );
    assert_eq!(
        pool.idle_connections(),
        1,
        "pooled again after its whole answer"
    );
    assert_eq!(upstream.open_ws_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_caller_reading_slowly_within_the_deadline_keeps_its_websocket() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(
        "a long answer read slowly, one frame a minute or so",
    ));
    let pool = pool();
    let (mut service, _) = service(config(), &pool);
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        assert!(frame.is_ok(), "{:?}", frame.err());
        frames += 1;
        tokio::time::sleep(STALL - Duration::from_secs(1)).await;
    }
    assert!(frames > 3);
    assert_eq!(pool.idle_connections(), 1);
}
