//! What the breaker shows of secrets, wherever it shows keys and failures (logs at every level,
//! the `wsfirst_breaker_state` metric's labels, the admin JSON of the snapshot): the credential
//! only as a keyed, truncated fingerprint; URLs without userinfo or query string; no body of an
//! upgrade refused with 401 or 403.
//!
//! A test binary of its own: `tracing` caches each call site's interest process-wide, so a
//! thread-local subscriber only sees every event reliably when no other test runs concurrently
//! in the same process (see `logging.rs`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use wsfirst_breaker::{
    BreakerConfig, BreakerState, CircuitBreakerLayer, Classify, DefaultClassifier, Verdict,
};
use wsfirst_core::{
    BoxError, FailureKind, Fingerprint, FingerprintKey, Intent, Phase, Route, WsFailure,
};

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts every failure, refused credentials included (the default ignores 401 and 403), so
/// that a refused upgrade becomes the key's last failure and trips it.
#[derive(Debug)]
struct CountEverything;

impl Classify for CountEverything {
    fn classify(&self, failure: &WsFailure) -> Verdict {
        match DefaultClassifier.classify(failure) {
            Verdict::Ignore => Verdict::Count,
            other => other,
        }
    }
}

const QUERY_SECRET: &str = "sk-in-the-query";
const PASSWORD: &str = "hunter2-password";
const CREDENTIAL: &str = "Bearer sk-in-the-header";
const BODY_SECRET: &str = "Incorrect API key provided: sk-in-the-body";

#[tokio::test(start_paused = true)]
async fn keys_and_failures_show_no_secret_in_logs_metrics_or_snapshots() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    // Every upgrade is refused with 401 and a body that repeats the credential.
    let upstream = service_fn(|_: Request<()>| async {
        let refused = WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: StatusCode::UNAUTHORIZED,
                body: Bytes::from_static(BODY_SECRET.as_bytes()),
            },
        );
        Err::<Response<Full<Bytes>>, BoxError>(refused.into())
    });
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .jitter(0.0)
        .classifier(CountEverything)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(config);
    let handle = layer.handle();
    let mut service = layer.layer(upstream);
    let key = FingerprintKey::from_secret("the gateway's configured secret").unwrap();
    let ws_url = format!("wss://user:{PASSWORD}@live.example/v1/ws?key={QUERY_SECRET}");
    let route = Route::builder("live", "live-api")
        .ws_url(&ws_url)
        .http_url(format!(
            "https://user:{PASSWORD}@live.example/v1?key={QUERY_SECRET}"
        ))
        .fingerprint_key(key.clone())
        .build()
        .unwrap();
    let mut request = Request::new(());
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(Intent::WebSocket);
    request
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static(CREDENTIAL));
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "websocket handshake failed: upgrade answered with status 401"
    );

    let snapshot = handle.snapshot();
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    let only = &snapshot[0];
    assert_eq!(only.state, BreakerState::Open);
    // The credential: the route key's fingerprint, truncated.
    let fingerprint = Fingerprint::of_keyed(&key, CREDENTIAL);
    assert_eq!(only.credential.as_deref(), Some(&*fingerprint.to_string()));
    assert_eq!(fingerprint.to_string().len(), 12);
    // The endpoint: no userinfo, no query, a fingerprint of them instead.
    assert_eq!(
        only.endpoint,
        format!(
            "wss://live.example/v1/ws?redacted:{}",
            Fingerprint::of_keyed(&key, &ws_url)
        )
    );
    // The last failure: status, no body.
    let last = only.last_failure.as_ref().unwrap();
    assert_eq!(
        last.message,
        "websocket handshake failed: upgrade answered with status 401"
    );

    // Logs at every level, metric labels, the admin JSON and Debug output: none of the secrets.
    let json = serde_json::to_string(&snapshot).unwrap();
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("websocket path pinned to http"), "{logs}");
    let labels: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .flat_map(|(key, ..)| {
            key.key()
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        labels
            .iter()
            .any(|label| label.contains("wss://live.example/v1/ws")),
        "{labels:?}"
    );
    let debug = format!("{service:?} {snapshot:?}");
    for (place, text) in [
        ("logs", &logs),
        ("labels", &labels.join(" ")),
        ("json", &json),
        ("debug", &debug),
    ] {
        for secret in [QUERY_SECRET, PASSWORD, "sk-in-the-header", "sk-in-the-body"] {
            assert!(!text.contains(secret), "{secret} in the {place}: {text}");
        }
    }
}
