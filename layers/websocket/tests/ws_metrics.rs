//! The layer's metrics: failures by phase and kind, handshake and first-event latency, pool
//! sizes, the upstream's error answers. (One test: it installs the process-wide recorder of this test binary.)
#![cfg(feature = "testing")]

mod ws_support;

use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use ws_support::*;
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

fn value<'a>(
    snapshot: &'a [(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let matches = key.name() == name
            && labels.iter().all(|(label, expected)| {
                key.labels()
                    .any(|l| l.key() == *label && l.value() == *expected)
            });
        matches.then_some(value)
    })
}

// Paused time: an error that failed to end the answer would wait for the idle timeout (300 s).
#[tokio::test(start_paused = true)]
async fn failures_latencies_and_pool_sizes_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::refuse(StatusCode::NOT_FOUND, "no"));
    let pool = Pool::new();
    let config = WebSocketConfig::builder().build().unwrap();
    let (mut service, _) = service(config, &pool);
    let route = route(&upstream);
    failure_of(call(&mut service, request(&route, true)).await);
    let response = call(&mut service, request(&route, true)).await.unwrap();
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none());

    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(
        value(
            &snapshot,
            "wsfirst_ws_failures_total",
            &[("phase", "handshake"), ("kind", "upgrade_status")]
        ),
        Some(&DebugValue::Counter(1))
    );
    for name in [
        "wsfirst_ws_handshake_seconds",
        "wsfirst_ws_first_event_seconds",
    ] {
        match value(&snapshot, name, &[]) {
            Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 1, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    match value(
        &snapshot,
        "wsfirst_ws_pool_connections",
        &[("state", "idle")],
    ) {
        Some(DebugValue::Gauge(idle)) => assert_eq!(idle.into_inner(), 1.0),
        other => panic!("{other:?}"),
    }
    match value(
        &snapshot,
        "wsfirst_ws_pool_connections",
        &[("state", "in_use")],
    ) {
        Some(DebugValue::Gauge(busy)) => assert_eq!(busy.into_inner(), 0.0),
        other => panic!("{other:?}"),
    }

    // The upstream's error answers are counted as answers, not as failures.
    upstream.push_answer(Answer::error(
        StatusCode::BAD_REQUEST,
        "invalid_value",
        "bad",
    ));
    let response = call(&mut service, request(&route, true)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    upstream.push_answer(Answer::text("hello").interrupted(
        2,
        &Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "lost"),
    ));
    let response = call(&mut service, request(&route, true)).await.unwrap();
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none());
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(
        value(
            &snapshot,
            "wsfirst_ws_error_answers_total",
            &[("answer", "response"), ("status", "400")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value(
            &snapshot,
            "wsfirst_ws_error_answers_total",
            &[("answer", "stream")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value(
            &snapshot,
            "wsfirst_ws_failures_total",
            &[("kind", "upstream_error")]
        ),
        None
    );
}
