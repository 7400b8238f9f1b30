//! What operators see in the logs as a key trips, re-opens after failed probes, heals and is
//! pinned by hand.
//!
//! This is a test binary of its own on purpose: `tracing` caches each call site's interest
//! process-wide, so a thread-local subscriber only sees every event reliably when no other test
//! runs concurrently in the same process.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use wsfirst_breaker::{BreakerConfig, CircuitBreakerLayer};
use wsfirst_core::{BoxError, FailureKind, Intent, Phase, Route, Served, WsFailure};

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

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The lines logged at `level` (`"WARN"`, `"INFO"`, ...).
    fn lines(&self, level: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(level))
            .map(str::to_owned)
            .collect()
    }
}

/// What the upstream stand-in does with the next WebSocket attempt.
#[derive(Clone, Copy, Debug)]
enum Next {
    /// The connection is refused and nothing is replayed.
    Fail,
    /// The connection is refused and HTTP serves the request instead.
    Fallback,
    /// The WebSocket serves it.
    Ws,
}

fn refused() -> WsFailure {
    WsFailure::new(
        Phase::Connect,
        FailureKind::Io {
            kind: std::io::ErrorKind::ConnectionRefused,
            message: "refused".into(),
        },
    )
}

#[tokio::test(start_paused = true)]
async fn transitions_are_logged_at_their_levels_with_the_pin_duration() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let script: Arc<Mutex<VecDeque<Next>>> = Arc::default();
    let upstream = {
        let script = script.clone();
        service_fn(move |_: Request<()>| {
            let next = script.lock().unwrap().pop_front();
            async move {
                let served = match next {
                    Some(Next::Fail) => {
                        return Err::<Response<Full<Bytes>>, BoxError>(refused().into());
                    }
                    Some(Next::Fallback) => Served::fallback(refused(), Duration::ZERO),
                    Some(Next::Ws) => Served::websocket(Duration::ZERO),
                    None => return Err("the test sent more requests than it scripted".into()),
                };
                let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                response.extensions_mut().insert(served);
                Ok(response)
            }
        })
    };
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(2))
        .jitter(0.0)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(config);
    let handle = layer.handle();
    let mut service = layer.layer(upstream);
    let route = Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .build()
        .unwrap();
    let request = || {
        let mut request = Request::new(());
        request.extensions_mut().insert(route.clone());
        request.extensions_mut().insert(Intent::WebSocket);
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-secret"));
        request
    };
    let mut attempt = async |next: Next| {
        script.lock().unwrap().push_back(next);
        if let Ok(response) = service.ready().await.unwrap().call(request()).await {
            response.into_body().collect().await.unwrap();
        }
    };

    attempt(Next::Fail).await;
    let warn = logs.lines("WARN");
    assert_eq!(warn.len(), 1, "{warn:?}");
    assert!(
        warn[0].contains("websocket path pinned to http"),
        "{warn:?}"
    );
    assert!(warn[0].contains("pinned_for=2s"), "{warn:?}");
    assert!(
        warn[0].contains("cause=websocket connect failed"),
        "{warn:?}"
    );

    // Failed probes re-open for twice as long each time: INFO, not another WARN.
    advance(Duration::from_secs(2)).await;
    attempt(Next::Fail).await;
    advance(Duration::from_secs(4)).await;
    attempt(Next::Fallback).await;
    let warn = logs.lines("WARN");
    assert_eq!(warn.len(), 1, "{warn:?}");
    let info = logs.lines("INFO");
    assert_eq!(info.len(), 2, "{info:?}");
    assert!(info[0].contains("websocket probe failed"), "{info:?}");
    assert!(info[0].contains("pinned_for=4s"), "{info:?}");
    assert!(info[1].contains("pinned_for=8s"), "{info:?}");

    // A probe that succeeds: INFO.
    advance(Duration::from_secs(8)).await;
    attempt(Next::Ws).await;
    let info = logs.lines("INFO");
    assert_eq!(info.len(), 3, "{info:?}");
    assert!(info[2].contains("healthy again"), "{info:?}");

    // Pins by hand log their duration, or that they last until unpinned; never a raw instant.
    let key = route.breaker_key_for(request().headers());
    handle.pin(&key, Some(Duration::from_millis(90_500)));
    handle.pin(&key, None);
    let warn = logs.lines("WARN");
    assert_eq!(warn.len(), 3, "{warn:?}");
    assert!(warn[1].contains("pinned_for=1m 30s 500ms"), "{warn:?}");
    assert!(warn[2].contains("pinned_for=until unpinned"), "{warn:?}");
    assert!(
        !warn.iter().any(|line| line.contains("Instant")),
        "{warn:?}"
    );
    let all = logs.text();
    assert!(!all.contains("sk-secret"), "{all}");
}
