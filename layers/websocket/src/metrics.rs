//! What the layer tells about a failure that reaches the caller (or the body's reader): the
//! `wsfirst_ws_failures_total` counter and a debug log line.

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
