//! Which transport served a response, and why.

use std::{fmt, time::Duration};

use crate::{HttpReason, WsFailure};

/// A transport to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The upstream's WebSocket endpoint.
    WebSocket,
    /// The upstream's HTTP endpoint.
    Http,
}

impl Transport {
    /// `"websocket"` or `"http"`, for metric labels and the `x-wsfirst-transport` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response extension that says which transport served the response, why HTTP was used if it
/// was, and how long the WebSocket attempt took.
///
/// Callers, logs, metrics and the circuit breaker read it; the response body is the same
/// whichever transport served.
///
/// A response served by the WebSocket is the upstream's answer, whatever its status: an error
/// the upstream reports with a status of its own (a 400 for an invalid request, a 429 with its
/// `retry-after`) reaches the caller as that response, stamped `Served::websocket`, so the
/// fallback never replays it and the breaker does not count it as a failure.
///
/// ```
/// use std::time::Duration;
/// use wsfirst_core::{FailureKind, Phase, Served, Transport, WsFailure};
///
/// let failure = WsFailure::new(Phase::Handshake, FailureKind::Timeout(Duration::from_secs(5)));
/// let served = Served::fallback(failure.clone(), Duration::from_secs(5));
/// assert_eq!(served.transport(), Transport::Http);
/// assert_eq!(served.fallback_cause(), Some(&failure));
/// assert_eq!(served.ws_attempt(), Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    transport: Transport,
    reason: Option<HttpReason>,
    ws_attempt: Option<Duration>,
}

impl Served {
    /// Served by the WebSocket; `attempt` is the time from the start of the attempt to the first
    /// event (or to the upstream's error answer, when it answered with one before any event).
    pub fn websocket(attempt: Duration) -> Self {
        Self {
            transport: Transport::WebSocket,
            reason: None,
            ws_attempt: Some(attempt),
        }
    }

    /// Served by HTTP for `reason`, with no WebSocket attempt.
    pub fn http(reason: HttpReason) -> Self {
        Self {
            transport: Transport::Http,
            reason: Some(reason),
            ws_attempt: None,
        }
    }

    /// Served by HTTP after a WebSocket attempt that took `attempt` failed with `failure`.
    pub fn fallback(failure: WsFailure, attempt: Duration) -> Self {
        Self {
            transport: Transport::Http,
            reason: Some(HttpReason::Fallback(failure)),
            ws_attempt: Some(attempt),
        }
    }

    /// The transport that served the response.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Why HTTP served the response (`None` when the WebSocket did).
    pub fn reason(&self) -> Option<&HttpReason> {
        self.reason.as_ref()
    }

    /// The WebSocket failure that caused a fallback to HTTP, if any.
    pub fn fallback_cause(&self) -> Option<&WsFailure> {
        match &self.reason {
            Some(HttpReason::Fallback(failure)) => Some(failure),
            _ => None,
        }
    }

    /// How long the WebSocket attempt took, if there was one.
    pub fn ws_attempt(&self) -> Option<Duration> {
        self.ws_attempt
    }

    /// A short stable name of the reason (`"websocket"` when the WebSocket served), for the
    /// `x-wsfirst-reason` header and metric labels.
    pub fn reason_label(&self) -> &'static str {
        self.reason.as_ref().map_or("websocket", HttpReason::label)
    }
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            None => write!(f, "served by {}", self.transport),
            Some(reason) => write!(f, "served by {} because {reason}", self.transport),
        }
    }
}
