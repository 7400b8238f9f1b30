//! At TRACE, with the gateway's own subscriber and access log, no credential a client sends
//! (nor one the gateway holds) reaches the log, whichever transport serves the request.
//!
//! A test binary of its own: `tracing` caches each call site's interest process-wide, so a
//! thread-local subscriber only sees every event reliably when no other test runs in the same
//! process.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;
use wsfirst::websocket::testing::TestUpstream;
use wsfirst_gateway::{Configured, access_log::AccessLog, config::Config, logging};

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

/// Credentials a client sends, in headers a route forwards (`api-key`, `x-tenant`) or that only
/// their name marks as credentials.
const CLIENT_HEADERS: [(&str, &str); 6] = [
    ("authorization", "Bearer sk-client-authorization"),
    ("api-key", "azure-client-api-key"),
    ("x-goog-api-key", "goog-client-api-key"),
    ("x-auth-token", "client-auth-token"),
    ("cookie", "session=client-cookie"),
    ("x-tenant", "tenant-forwarded-value"),
];

#[tokio::test(flavor = "current_thread")]
async fn no_credential_is_logged_at_trace_on_either_transport() {
    let upstream = TestUpstream::start().await;
    let config = Config::from_toml_str(&format!(
        r#"
        [eligibility]
        websocket_pairs = [["local", "responses"]]
        override_header = "x-wsfirst-transport"

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"
        forward_headers = ["api-key", "x-tenant"]
        open = true

        [routes.headers]
        x-api-key = "gateway-held-api-key"
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .unwrap();
    let app = AccessLog::new(&config).layer(Configured::from_config(&config).unwrap().router());

    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = logging::subscriber(EnvFilter::new("trace"), move || writer.clone(), false);
    let _guard = tracing::subscriber::set_default(subscriber);
    for transport in ["websocket", "http"] {
        let mut request = Request::post("/v1/responses")
            .header("content-type", "application/json")
            .header("accept", "text/event-stream");
        for (name, value) in CLIENT_HEADERS {
            request = request.header(name, value);
        }
        if transport == "http" {
            request = request.header("x-wsfirst-transport", "http");
        }
        let request = request
            .body(Body::from(r#"{"model":"m","input":"hi","stream":true}"#))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-wsfirst-transport"], transport);
        response.into_body().collect().await.unwrap();
    }
    drop(_guard);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The access log ran at TRACE (so a leak would show) and masked what it printed.
    assert!(text.contains("request headers"), "{text}");
    assert!(text.contains("Sensitive"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    for secret in CLIENT_HEADERS
        .iter()
        .map(|(_, value)| *value)
        .chain(["gateway-held-api-key"])
    {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    // The forwarded credentials reached the upstream on both transports all the same (the
    // masks are for logs only).
    let captured = upstream.captured();
    assert_eq!(captured.len(), 2);
    for request in captured {
        assert_eq!(request.headers["api-key"], "azure-client-api-key");
        assert_eq!(request.headers["x-api-key"], "gateway-held-api-key");
    }
}
