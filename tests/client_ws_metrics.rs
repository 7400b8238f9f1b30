//! The client WebSocket's metrics, in a binary of its own (the recorder is process-wide): the
//! gauge of connections open, responses by transport and reason, and connections closed by
//! cause.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::{collections::HashMap, time::Duration};

use client_ws_support::{Gateway, WAIT, create, response, send};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{Answer, TestUpstream},
};

/// Every metric's value so far: the debugging recorder hands out what changed since its last
/// snapshot (it resets counters and gauges), so the snapshots are added up.
struct Ledger {
    snapshotter: Snapshotter,
    values: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Ledger {
    fn update(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            let delta = match value {
                DebugValue::Counter(count) => count as f64,
                DebugValue::Gauge(value) => value.into_inner(),
                DebugValue::Histogram(_) => continue,
            };
            *self
                .values
                .entry((key.key().name().to_owned(), labels))
                .or_default() += delta;
        }
    }

    /// The sum of metric `name` over the series whose labels include `labels`.
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.update();
        self.values
            .iter()
            .filter(|((metric, series), _)| {
                metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// Waits until metric `name` reaches `expected`.
    async fn wait_for(&mut self, name: &str, labels: &[(&str, &str)], expected: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.get(name, labels);
            if value == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} {labels:?} is {value}, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn connections_responses_and_closes_are_measured() {
    let recorder = DebuggingRecorder::new();
    let mut ledger = Ledger {
        snapshotter: recorder.snapshotter(),
        values: HashMap::new(),
    };
    recorder
        .install()
        .expect("the only recorder of this binary");

    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("measured"));
    let gateway = Gateway::start(&upstream, TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("one", "")).await;
    response(&mut client).await;
    // Counted once the answer's end was handed to the client.
    let served = [
        ("provider", "local"),
        ("transport", "websocket"),
        ("reason", "websocket"),
        ("outcome", "ok"),
    ];
    ledger
        .wait_for("wsfirst_client_ws_responses_total", &served, 1.0)
        .await;
    let open = ledger.get("wsfirst_client_ws_connections", &[("provider", "local")]);
    assert_eq!(open, 1.0);

    drop(client);
    ledger
        .wait_for("wsfirst_client_ws_connections", &[], 0.0)
        .await;
    ledger
        .wait_for(
            "wsfirst_client_ws_closed_total",
            &[("cause", "client")],
            1.0,
        )
        .await;
    gateway.stop().await;
}
