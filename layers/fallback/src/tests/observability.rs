//! The fallback counter (the rate-limited WARN is tested in `tests/logging.rs`, a binary of its
//! own).

use super::*;

#[tokio::test(start_paused = true)]
async fn fallbacks_are_counted_by_provider_cause_and_phase() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (mut service, mut handle) = spawn(FallbackConfig::default());
    for _ in 0..2 {
        let response = send(&mut service, candidate());
        let (_, reply) = next(&mut handle).await;
        reply.send_error(failure(Phase::Handshake));
        let (_, reply) = next(&mut handle).await;
        reply.send_response(Response::new("http"));
        response.await.unwrap().unwrap();
    }
    // Not a fallback: not counted.
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::MidStream));
    response.await.unwrap().unwrap_err();

    let counters: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "wsfirst_fallbacks_total")
        .collect();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let (key, _, _, value) = &counters[0];
    let mut labels: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|label| (label.key().to_owned(), label.value().to_owned()))
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("cause".to_owned(), "upgrade_status".to_owned()),
            ("phase".to_owned(), "handshake".to_owned()),
            ("provider".to_owned(), "openai".to_owned()),
        ]
    );
    assert_eq!(value, &DebugValue::Counter(2));
}
