//! How a route's result becomes a response: [`RespondLayer`] turns the stack's errors into
//! responses (a small JSON error body, see [`error_response`]) and adds the transport headers
//! ([`TRANSPORT_HEADER`], [`REASON_HEADER`]) to every answer, so that the route is a service with
//! `Error = Infallible`, as an axum router needs.
//!
//! The outermost piece of a route's stack, in the manner of tower-http's `map_response_body`:
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use wsfirst::core::BoxError;
//! use wsfirst::respond::RespondLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let failing = service_fn(|_: Request<()>| async {
//!     Err::<Response<http_body_util::Empty<bytes::Bytes>>, BoxError>("connection refused".into())
//! });
//! let service = ServiceBuilder::new().layer(RespondLayer::new()).service(failing);
//! let response: Result<_, Infallible> = service.oneshot(Request::new(())).await;
//! assert_eq!(response.unwrap().status(), StatusCode::BAD_GATEWAY);
//! # }
//! ```
//!
//! [`error_response`] alone:
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

use std::{
    convert::Infallible,
    error::Error,
    fmt,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header::CONTENT_TYPE};
use tower_layer::Layer;
use tower_service::Service;
use wsfirst_core::{
    BoxError, MissingExtension, Served, WebSocketRequired, find_websocket_required, find_ws_failure,
};
use wsfirst_fallback::{BodyTooLarge, BudgetExhausted, ReadBodyError};

use crate::{future::ResponseFuture, serve::BodyReadTimeout, upstream::HttpUpstreamError};

/// Turns the failures of the service under it into responses; builds [`Respond`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RespondLayer {
    _private: (),
}

impl RespondLayer {
    /// The layer (it has no settings).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for RespondLayer {
    type Service = Respond<S>;

    fn layer(&self, inner: S) -> Respond<S> {
        Respond::new(inner)
    }
}

/// Answers every request with a response: the inner service's, with the transport headers that
/// its [`Served`] extension names, or one made from its error by [`error_response`]. Its
/// `Error` is [`Infallible`] and its body [`axum::body::Body`], so an axum router mounts it.
///
/// A readiness error of the inner service is answered by the next `call` the same way. See the
/// [module docs](self).
pub struct Respond<S> {
    inner: S,
    /// A readiness error of the inner service, answered by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S> Respond<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            not_ready: None,
        }
    }

    /// A layer building this service.
    pub fn layer() -> RespondLayer {
        RespondLayer::new()
    }

    wsfirst_core::define_inner_service_accessors!();
}

impl<S: Clone> Clone for Respond<S> {
    fn clone(&self) -> Self {
        // A clone must be polled ready on its own, so it starts without the pending error.
        Self::new(self.inner.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Respond<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Respond")
            .field("inner", &self.inner)
            .field("not_ready", &self.not_ready)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for Respond<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(error.into());
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.not_ready.take() {
            Some(error) => ResponseFuture::failed(error),
            None => ResponseFuture::new(self.inner.call(request)),
        }
    }
}

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
    let body = match find_websocket_required(error) {
        // A request field only the WebSocket mode knows: named, as the API names a parameter.
        Some(refused) => serde_json::json!({
            "error": {
                "type": if refused.is_temporary() { "server_error" } else { "invalid_request_error" },
                "code": code,
                "message": error_chain(error),
                "param": refused.field(),
            }
        }),
        None => serde_json::json!({
            "error": {
                "type": "wsfirst_error",
                "code": code,
                "message": error_chain(error),
            }
        }),
    };
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
        if let Some(refused) = error.downcast_ref::<WebSocketRequired>() {
            return if refused.is_temporary() {
                (StatusCode::SERVICE_UNAVAILABLE, "websocket_unavailable")
            } else {
                (StatusCode::BAD_REQUEST, "websocket_required")
            };
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
