//! The DEBUG event of each decision. Its own test binary: tracing caches per-callsite interest
//! process-wide, and concurrent tests without a subscriber could make this one miss its event.

use std::sync::{Arc, Mutex};

use http::Request;
use tower::{Service, service_fn};
use wsfirst_core::{BoxError, Route};
use wsfirst_eligibility::{Eligibility, EligibilityTable};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_decision_is_a_debug_event_without_credentials() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut service = Eligibility::new(
        service_fn(|_: Request<String>| async { Ok::<_, BoxError>(()) }),
        EligibilityTable::builder()
            .allow("openai", "openai-responses")
            .provider_host("openai", "api.openai.com")
            .build()
            .unwrap(),
    );
    // The incident's shape: an eligible pair whose WebSocket URL is on another provider's host.
    let route = Route::builder("openai", "openai-responses")
        .ws_url("wss://chatgpt.com/backend-api/codex/responses")
        .http_url("https://api.openai.com/v1/responses")
        .build()
        .unwrap();
    let mut request = Request::new(String::new());
    request.extensions_mut().insert(route);
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        "Bearer sk-secret".parse().unwrap(),
    );
    tracing::subscriber::with_default(subscriber, || drop(service.call(request)));

    let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("DEBUG"), "{logged}");
    for field in [
        "provider=\"openai\"",
        "api=\"openai-responses\"",
        "verdict=\"http\"",
        "reason=\"foreign_host\"",
    ] {
        assert!(logged.contains(field), "{field} missing: {logged}");
    }
    assert!(!logged.contains("sk-secret"), "{logged}");
}
