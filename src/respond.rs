//! How a route's result becomes a response: transport headers on success, a
//! small JSON error body on failure.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use wsfirst::core::{FailureKind, Phase, WsFailure};
//! use wsfirst::respond::{REASON_HEADER, error_response};
//!
//! // A strict route's WebSocket failure reaches the caller as a 502 naming it.
//! let failure = WsFailure::new(
//!     Phase::Handshake,
//!     FailureKind::UpgradeStatus { status: StatusCode::INTERNAL_SERVER_ERROR, body: "oops".into() },
//! );
//! let response = error_response(&failure);
//! assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
//! assert_eq!(response.headers()[REASON_HEADER], "upgrade_status");
//! assert_eq!(response.headers()["content-type"], "application/json");
//! ```

use std::error::Error;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use wsfirst_core::{BoxError, MissingExtension, Served, find_ws_failure};
use wsfirst_fallback::{BodyTooLarge, BudgetExhausted, ReadBodyError};

use crate::{serve::BodyReadTimeout, upstream::HttpUpstreamError};

/// The response header naming the transport that served the response: `websocket` or `http`.
pub const TRANSPORT_HEADER: &str = "x-wsfirst-transport";

/// The response header naming why HTTP served the response (`websocket` when the WebSocket did),
/// such as `pinned`, `fallback` or `foreign_host`.
pub const REASON_HEADER: &str = "x-wsfirst-reason";

/// Adds the transport headers and erases the body type.
pub(crate) fn success<B>(response: Response<B>) -> Response<axum::body::Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    if let Some(served) = parts.extensions.get::<Served>() {
        let transport = HeaderValue::from_static(served.transport().as_str());
        let reason = HeaderValue::from_static(served.reason_label());
        parts.headers.insert(TRANSPORT_HEADER, transport);
        parts.headers.insert(REASON_HEADER, reason);
    }
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// Answers a failed request: `502` with `{"error": {"type", "code", "message"}}` for upstream
/// failures, `504` (same shape, code `upstream_timeout`) when the HTTP upstream timed out
/// (connect, response headers), `413` for a body over the buffer limit, `503` (code
/// `body_budget_exhausted`) when the process's [budget of buffered bodies](wsfirst_fallback::BodyBudget)
/// has no room for it, `408` for a body that did
/// not arrive within [`serve`](crate::serve::serve)'s body read timeout, `400` for an unreadable
/// request body, `500` for a mis-assembled stack.
pub fn error_response(error: &(dyn Error + 'static)) -> Response<axum::body::Body> {
    let (status, code) = classify(error);
    let body = serde_json::json!({
        "error": {
            "type": "wsfirst_error",
            "code": code,
            "message": error_chain(error),
        }
    });
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(failure) = find_ws_failure(error) {
        // A failure that reaches the caller either was strict (websocket) or came after HTTP.
        response.headers_mut().insert(
            REASON_HEADER,
            HeaderValue::from_static(failure.kind().as_str()),
        );
    }
    response
}

fn classify(error: &(dyn Error + 'static)) -> (StatusCode, &'static str) {
    // The client's own slowness, wherever a layer wrapped it.
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyReadTimeout>() {
            return (StatusCode::REQUEST_TIMEOUT, "request_body_timeout");
        }
        current = error.source();
    }
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyTooLarge>() {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request_body_too_large");
        }
        if error.is::<BudgetExhausted>() {
            return (StatusCode::SERVICE_UNAVAILABLE, "body_budget_exhausted");
        }
        if error.is::<ReadBodyError>() {
            return (StatusCode::BAD_REQUEST, "request_body_unreadable");
        }
        if error.is::<MissingExtension>() {
            return (StatusCode::INTERNAL_SERVER_ERROR, "stack_misconfigured");
        }
        if error
            .downcast_ref::<HttpUpstreamError>()
            .is_some_and(HttpUpstreamError::is_timeout)
        {
            return (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
        }
        current = error.source();
    }
    match find_ws_failure(error) {
        Some(failure) if failure.phase().is_before_first_event() => {
            (StatusCode::BAD_GATEWAY, "websocket_failed")
        }
        Some(_) => (StatusCode::BAD_GATEWAY, "websocket_failed_mid_stream"),
        None => (StatusCode::BAD_GATEWAY, "upstream_failed"),
    }
}

/// The error and its causes as one line, skipping causes whose text the previous one already
/// contains.
pub(crate) fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        current = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use wsfirst_core::{FailureKind, Phase, WsFailure};

    async fn json(response: Response<axum::body::Body>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn websocket_failures_become_502_naming_the_failure() {
        let failure = WsFailure::new(
            Phase::MidStream,
            FailureKind::Closed {
                code: Some(1011),
                reason: String::new(),
            },
        );
        let response = error_response(&failure);
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[REASON_HEADER], "closed");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "websocket_failed_mid_stream");
        assert_eq!(
            body["error"]["message"],
            "websocket failed mid-stream: connection closed by the upstream with code 1011"
        );
    }

    #[tokio::test]
    async fn stack_errors_get_their_own_status() {
        assert_eq!(
            error_response(&MissingExtension::ROUTE).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            error_response(&BodyTooLarge::new(8)).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let busy = error_response(&BudgetExhausted::new(8));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(busy).await["error"]["code"], "body_budget_exhausted");
        let io = std::io::Error::other("refused");
        let body = json(error_response(&io)).await;
        assert_eq!(body["error"]["code"], "upstream_failed");
        assert_eq!(body["error"]["message"], "refused");
    }

    #[test]
    fn chain_skips_repeated_causes() {
        let io = std::io::Error::other("refused");
        let failure = WsFailure::new(
            Phase::Connect,
            FailureKind::Io {
                kind: io.kind(),
                message: "refused".into(),
            },
        )
        .with_source(io);
        assert_eq!(
            error_chain(&failure),
            "websocket connect failed: i/o error: refused"
        );
    }
}
