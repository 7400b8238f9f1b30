//! Requests that only the upstream's WebSocket may serve: the [`WebSocketOnly`] marker and the
//! [`WebSocketRequired`] error that answers such a request when it would go over HTTP.
//!
//! The Responses API's WebSocket mode has fields that `POST /v1/responses` does not know: a
//! warm-up (`"generate": false`, the `openai` SDK's `ResponseCreate`, Codex's prewarm) prepares
//! the connection's state and produces no output. Sent over HTTP it is refused as an unknown
//! parameter, and a warm-up "answered" over HTTP would leave the next turn naming a response
//! the upstream never had. So such a request is never sent over HTTP: whoever learns that a
//! request is WebSocket-only (the client WebSocket session for its warm-ups, the WebSocket
//! layer's codec for a `POST` body) marks it, and every layer that would send it over HTTP
//! (eligibility, the WebSocket layer's pass-through, which a breaker's pin reaches, the fallback
//! layer's replay) answers [`WebSocketRequired`] instead.
//!
//! ```
//! use wsfirst_core::{HttpReason, WebSocketOnly, find_websocket_required};
//!
//! let marker = WebSocketOnly::new("generate");
//! let error: wsfirst_core::BoxError = Box::new(marker.refuse(HttpReason::ModeHttp));
//! let refused = find_websocket_required(&*error).unwrap();
//! assert_eq!(refused.field(), "generate");
//! assert!(!refused.is_temporary()); // the route never uses the websocket: a client error
//! assert!(error.to_string().contains("the route's mode is http"), "{error}");
//! ```

use std::{error::Error, fmt};

use crate::HttpReason;

/// A request extension: the request must be served by the upstream's WebSocket, never by its
/// HTTP endpoint. `field` names the request field that makes it so (`"generate"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSocketOnly {
    field: &'static str,
}

impl WebSocketOnly {
    /// A marker for a request made WebSocket-only by `field`.
    pub const fn new(field: &'static str) -> Self {
        Self { field }
    }

    /// The field that makes the request WebSocket-only.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The error that answers the request when it would go over HTTP because of `reason`.
    pub fn refuse(self, reason: HttpReason) -> WebSocketRequired {
        WebSocketRequired {
            field: self.field,
            reason,
        }
    }
}

/// A [`WebSocketOnly`] request that would have gone over HTTP, answered without sending it.
///
/// [`is_temporary`](Self::is_temporary) says whether the WebSocket path is merely unavailable
/// now (the breaker pins the key, or the attempt failed before anything was delivered: the
/// facade answers `503`) or not used by this route or request at all (mode `http`, ineligible:
/// `400`). After a failed attempt its [`source`](Error::source) is that
/// [`WsFailure`](crate::WsFailure), so a breaker still counts it.
#[derive(Clone, Debug)]
pub struct WebSocketRequired {
    field: &'static str,
    reason: HttpReason,
}

impl WebSocketRequired {
    /// The field that makes the request WebSocket-only.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the request would have gone over HTTP.
    pub fn reason(&self) -> &HttpReason {
        &self.reason
    }

    /// Whether the WebSocket path is unavailable only for now (pinned, or the attempt failed).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self.reason,
            HttpReason::Pinned { .. } | HttpReason::Fallback(_)
        )
    }
}

impl fmt::Display for WebSocketRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is served by the upstream's websocket only, and this request would go over \
             http because {}: it was not sent",
            self.field, self.reason
        )
    }
}

impl Error for WebSocketRequired {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.reason {
            HttpReason::Fallback(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Finds the first [`WebSocketRequired`] in an error's source chain, the error itself included.
pub fn find_websocket_required<'a>(
    error: &'a (dyn Error + 'static),
) -> Option<&'a WebSocketRequired> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<WebSocketRequired>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{FailureKind, Phase, WsFailure, find_ws_failure};

    #[test]
    fn pinned_and_fallback_are_temporary_and_keep_the_failure() {
        let marker = WebSocketOnly::new("generate");
        assert!(
            marker
                .refuse(HttpReason::Pinned { until: None })
                .is_temporary()
        );
        let failure = WsFailure::new(Phase::Connect, FailureKind::Timeout(Duration::from_secs(1)));
        let refused = marker.refuse(HttpReason::Fallback(failure.clone()));
        assert!(refused.is_temporary());
        assert_eq!(find_ws_failure(&refused), Some(&failure));
        assert!(!marker.refuse(HttpReason::ModeHttp).is_temporary());
        assert!(find_ws_failure(&marker.refuse(HttpReason::ModeHttp)).is_none());
    }
}
