//! What the layer tells about a failure that reaches the caller (or the body's reader), about
//! a request it sends again, and about the upstream's error answers: the
//! `wsfirst_ws_failures_total`, `wsfirst_ws_resends_total` and `wsfirst_ws_error_answers_total`
//! counters and a debug log line.
//!
//! `wsfirst_ws_resends_total{reason}` counts each request this layer sent again on a fresh
//! connection (at most once per request), by [`Resend::as_str`]:
//!
//! | `reason` | the first connection | what the upstream got |
//! |---|---|---|
//! | `closed_before_write` | a reused one, found closed (or with something unexpected waiting) right before the write | nothing |
//! | `write_failed` | a reused one, whose write failed or timed out before the message was complete | an incomplete message |
//! | `refused` | any, answered with an error event of `ErrorScope::Connection` before any event | the request, refused and not executed |
//!
//! The fallback layer counts its replays over HTTP in `wsfirst_fallbacks_total`: the two
//! counters together count every time a request is sent again.

use http::StatusCode;
use wsfirst_core::WsFailure;

/// Why the layer sent a request again on a fresh connection: the `reason` label of
/// `wsfirst_ws_resends_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// A reused connection was found closed right before the write.
    ClosedBeforeWrite,
    /// The write on a reused connection failed before the message was complete.
    WriteFailed,
    /// The upstream refused the request on this connection without executing it.
    Refused,
}

impl Resend {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resend::ClosedBeforeWrite => "closed_before_write",
            Resend::WriteFailed => "write_failed",
            Resend::Refused => "refused",
        }
    }
}

/// Counts a request sent again on a fresh connection after `failure`, and logs it at debug
/// level.
pub(crate) fn record_resend(reason: Resend, failure: &WsFailure) {
    metrics::counter!("wsfirst_ws_resends_total", "reason" => reason.as_str()).increment(1);
    tracing::debug!(
        reason = reason.as_str(),
        error = %failure,
        "sending the request again on a fresh websocket connection"
    );
}

/// Counts a failure that reaches the caller (or the body's reader) and logs it at debug level.
pub(crate) fn record_failure(failure: &WsFailure) {
    metrics::counter!(
        "wsfirst_ws_failures_total",
        "phase" => failure.phase().as_str(),
        "kind" => failure.kind().as_str(),
    )
    .increment(1);
    tracing::debug!(phase = failure.phase().as_str(), kind = failure.kind().as_str(), error = %failure, "websocket attempt failed");
}

/// Counts an answer of the upstream's own with an error status (such as a 400 or a 429 error
/// event), which the caller gets as the response: `wsfirst_ws_error_answers_total` with
/// `answer = "response"` and the status.
pub(crate) fn record_rejection(status: StatusCode) {
    metrics::counter!(
        "wsfirst_ws_error_answers_total",
        "answer" => "response",
        "status" => status.as_str().to_owned(),
    )
    .increment(1);
    tracing::debug!(
        status = status.as_u16(),
        "the upstream answered the websocket request with an error"
    );
}

/// Counts an upstream error that ended a stream after its first event the way the HTTP
/// stream would have (its frame forwarded, then a clean end): `wsfirst_ws_error_answers_total`
/// with `answer = "stream"` (no status: the stream's was 200).
pub(crate) fn record_stream_error(code: Option<&str>, message: &str) {
    metrics::counter!(
        "wsfirst_ws_error_answers_total",
        "answer" => "stream",
        "status" => "none",
    )
    .increment(1);
    tracing::debug!(
        code,
        message,
        "the upstream ended the websocket stream with an error event"
    );
}
