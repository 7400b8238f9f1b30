//! The access log: a `request` span per request (method, path), one DEBUG line when its
//! response head is ready (status, transport, reason, time to the head), and the request's
//! headers at TRACE, every credential masked.
//!
//! A header's value is shown as `Sensitive` when its name says it is a credential
//! ([`is_credential_header`]: `authorization`, `cookie`, `x-api-key`, `api-key`...), when a route
//! forwards it upstream (`forward_headers`: the operator listed it because the upstream reads
//! it), when a route sets it (`[routes.headers]`), or when it is already marked sensitive.
//!
//! # Example
//!
//! ```
//! use wsfirst_gateway::{access_log::AccessLog, config::Config};
//!
//! let config = Config::from_toml_str(r#"
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "azure"
//!     api = "openai-responses"
//!     http_url = "https://example.openai.azure.com/openai/v1/responses"
//!     forward_headers = ["x-ms-client-request-id"]
//! "#)?;
//! let log = AccessLog::new(&config);
//! let mut headers = http::HeaderMap::new();
//! headers.insert("api-key", "azure-secret".parse()?);
//! headers.insert("x-ms-client-request-id", "abc".parse()?);
//! headers.insert("accept", "text/event-stream".parse()?);
//! let shown = format!("{:?}", log.masked(&headers));
//! assert!(!shown.contains("azure-secret") && !shown.contains("abc"), "{shown}");
//! assert!(shown.contains("text/event-stream"), "{shown}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{collections::HashSet, fmt, sync::Arc, time::Duration};

use axum::{Router, extract::Request, response::Response};
use http::{HeaderMap, HeaderName};
use tower_http::trace::TraceLayer;
use tracing::Span;
use wsfirst::{REASON_HEADER, TRANSPORT_HEADER};

use crate::config::{Config, MaskedHeaders, is_credential_header};

/// Which request headers the access log masks; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AccessLog {
    /// The headers the routes forward or set, masked whatever their name.
    routed: Arc<HashSet<HeaderName>>,
}

impl AccessLog {
    /// The masks of `config`'s routes.
    pub fn new(config: &Config) -> Self {
        let mut routed = HashSet::new();
        for route in &config.routes {
            routed.extend(
                route
                    .forward_headers
                    .iter()
                    .filter_map(|name| HeaderName::try_from(name.as_str()).ok()),
            );
            routed.extend(route.headers.keys().cloned());
        }
        Self {
            routed: Arc::new(routed),
        }
    }

    /// Whether the value of `name` is never shown.
    pub fn masks(&self, name: &HeaderName) -> bool {
        is_credential_header(name) || self.routed.contains(name)
    }

    /// `headers` for a log line: `Debug` shows every masked value as `Sensitive`.
    pub fn masked<'a>(&'a self, headers: &'a HeaderMap) -> Masked<'a> {
        Masked { log: self, headers }
    }

    /// `app` with the access log around it, target `wsfirst_gateway::access_log`.
    pub fn layer(self, app: Router) -> Router {
        let trace = TraceLayer::new_for_http()
            .make_span_with(|request: &Request| {
                tracing::debug_span!("request", method = %request.method(), path = request.uri().path())
            })
            .on_request(move |request: &Request, _: &Span| {
                tracing::trace!(headers = ?self.masked(request.headers()), "request headers");
            })
            .on_response(|response: &Response, latency: Duration, _: &Span| {
                // A header the response does not have leaves its field out.
                let header = |name: &str| response.headers().get(name)?.to_str().ok();
                tracing::debug!(
                    status = response.status().as_u16(),
                    transport = header(TRANSPORT_HEADER),
                    reason = header(REASON_HEADER),
                    head_ms = latency.as_millis() as u64,
                    "request"
                );
            })
            // A 5xx answer is already in the line above; the layers log why.
            .on_failure(())
            .on_eos(());
        app.layer(trace)
    }
}

/// Request headers whose credentials `Debug` shows as `Sensitive` ([`AccessLog::masked`]).
pub struct Masked<'a> {
    log: &'a AccessLog,
    headers: &'a HeaderMap,
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routed = |name: &HeaderName| self.log.routed.contains(name);
        MaskedHeaders {
            headers: self.headers,
            also: routed,
        }
        .fmt(f)
    }
}
