//! What the layer tells about a failure that reaches the caller (or the body's reader), and
//! about the upstream's error answers: the `wsfirst_ws_failures_total` and
//! `wsfirst_ws_error_answers_total` counters and a debug log line.

use http::StatusCode;
use wsfirst_core::WsFailure;

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
