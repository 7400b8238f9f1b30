//! Typed WebSocket failures: how far the request got decides whether it may be sent again, the
//! kind how much it counts.

use std::{error::Error, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::StatusCode;

use crate::Delivery;

/// The phase of a WebSocket attempt in which a failure happened.
///
/// The phase alone does not say whether the request may be sent again: the upstream may have
/// executed a request whose attempt failed before the first event (see [`Delivery`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Opening the TCP (and TLS) connection, DNS included.
    Connect,
    /// The HTTP upgrade to WebSocket.
    Handshake,
    /// Sending the request's messages.
    Send,
    /// Waiting for the upstream's first event.
    BeforeFirstEvent,
    /// After the first event was delivered to the caller.
    MidStream,
}

impl Phase {
    /// Whether nothing of the answer had reached the caller: every phase but
    /// [`Phase::MidStream`].
    pub fn is_before_first_event(self) -> bool {
        !matches!(self, Phase::MidStream)
    }

    /// A short stable name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Handshake => "handshake",
            Phase::Send => "send",
            Phase::BeforeFirstEvent => "before_first_event",
            Phase::MidStream => "mid_stream",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Handshake => "handshake",
            Phase::Send => "send",
            Phase::BeforeFirstEvent => "before the first event",
            Phase::MidStream => "mid-stream",
        })
    }
}

/// What went wrong in a WebSocket attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The upstream's host name could not be resolved.
    Dns(String),
    /// An I/O error, such as a refused or reset connection.
    Io {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
    /// The TLS handshake failed.
    Tls(String),
    /// A per-phase timeout elapsed (connect + handshake, first event, or idle between events).
    Timeout(Duration),
    /// The upgrade was answered with a non-101 status, such as the 500 of the incident.
    UpgradeStatus {
        /// The status the upstream answered the upgrade with.
        status: StatusCode,
        /// The first bytes of the answer's body; always empty for 401 and 403, whose bodies may
        /// echo the refused credential ([`WsFailure::new`] drops them, and `Display` never shows
        /// them).
        body: Bytes,
    },
    /// The upstream closed the connection.
    Closed {
        /// The close code, if the upstream sent a close frame.
        code: Option<u16>,
        /// The close frame's reason text (may be empty).
        reason: String,
    },
    /// The upstream broke the WebSocket protocol or sent something the codec cannot read.
    Protocol(String),
    /// The upstream sent an error event that fails the attempt (an error the API's codec reads
    /// as the upstream's own answer to the request, such as a client error with status 400 or
    /// 429, is not a failure: the caller gets it as a response, see `Decoded::Reject` in
    /// `wsfirst-websocket`).
    UpstreamError {
        /// The error code, such as `websocket_connection_limit_reached`.
        code: Option<String>,
        /// The error message.
        message: String,
        /// What the error is about, as the API's codec reads it: the connection, the request,
        /// or the provider's WebSocket path.
        scope: ErrorScope,
    },
    /// A local condition, not the upstream's fault: the route has no usable WebSocket URL, the
    /// pool is closed or every connection of the key is busy, the request cannot be encoded.
    /// The request was not sent, so it is replay-safe; the breaker ignores it by default.
    Local(String),
    /// A message exceeded the size limit.
    TooLarge {
        /// The message size in bytes (or the size known so far).
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
}

impl FailureKind {
    /// A short stable name, for metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Dns(_) => "dns",
            FailureKind::Io { .. } => "io",
            FailureKind::Tls(_) => "tls",
            FailureKind::Timeout(_) => "timeout",
            FailureKind::UpgradeStatus { .. } => "upgrade_status",
            FailureKind::Closed { .. } => "closed",
            FailureKind::Protocol(_) => "protocol",
            FailureKind::UpstreamError { .. } => "upstream_error",
            FailureKind::Local(_) => "local",
            FailureKind::TooLarge { .. } => "too_large",
        }
    }

    /// The upgrade's status, if the upgrade was answered with one.
    pub fn upgrade_status(&self) -> Option<StatusCode> {
        match self {
            FailureKind::UpgradeStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The upstream error event's scope, if this is one.
    pub fn error_scope(&self) -> Option<ErrorScope> {
        match self {
            FailureKind::UpstreamError { scope, .. } => Some(*scope),
            _ => None,
        }
    }

    /// The upstream error event's code, if this is one.
    pub fn upstream_code(&self) -> Option<&str> {
        match self {
            FailureKind::UpstreamError { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// What an upstream error event is about, as the API's codec classifies it.
///
/// Generic layers never read error codes: the codec that knows the API decides the scope, the
/// WebSocket layer retries a [`Connection`](ErrorScope::Connection) error once on a fresh
/// connection, and the breaker's default classifier counts only
/// [`Provider`](ErrorScope::Provider) errors against the path.
///
/// ```
/// use wsfirst_core::{ErrorScope, FailureKind};
///
/// let kind = FailureKind::UpstreamError {
///     code: Some("rate_limit_exceeded".into()),
///     message: "slow down".into(),
///     scope: ErrorScope::Request,
/// };
/// assert_eq!(kind.error_scope(), Some(ErrorScope::Request));
/// assert!(!ErrorScope::Request.counts_against_path());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorScope {
    /// This connection is finished (too old, over the upstream's connection limit): another
    /// connection may succeed. Before any event it also says that the upstream refused the
    /// request without executing it ([`Delivery::Refused`]), so a codec puts an error here only
    /// when its API says so.
    Connection,
    /// About this request or this client (a rate limit, an invalid request, a response id the
    /// upstream does not know), not the path's health.
    Request,
    /// The provider failed: counts against its WebSocket path. The default for an error the
    /// codec does not know.
    #[default]
    Provider,
}

impl ErrorScope {
    /// Whether an error of this scope says something about the provider's WebSocket path.
    pub fn counts_against_path(self) -> bool {
        matches!(self, ErrorScope::Provider)
    }

    /// A short stable name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorScope::Connection => "connection",
            ErrorScope::Request => "request",
            ErrorScope::Provider => "provider",
        }
    }
}

/// How many bytes of an upgrade answer's body `Display` shows.
const BODY_SNIPPET: usize = 200;

/// Whether an upgrade answered with `status` refused the request's credential (401, 403): the
/// answer's body may repeat part of it (`Incorrect API key provided: sk-...`), so it is dropped.
fn refuses_credential(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Dns(message) => write!(f, "dns lookup failed: {message}"),
            FailureKind::Io { message, .. } => write!(f, "i/o error: {message}"),
            FailureKind::Tls(message) => write!(f, "tls error: {message}"),
            FailureKind::Timeout(after) => write!(f, "timed out after {after:?}"),
            FailureKind::UpgradeStatus { status, body } => {
                write!(f, "upgrade answered with status {}", status.as_u16())?;
                if refuses_credential(*status) {
                    return Ok(());
                }
                let snippet = String::from_utf8_lossy(&body[..body.len().min(BODY_SNIPPET)]);
                let snippet = snippet.trim();
                if !snippet.is_empty() {
                    write!(f, ": {snippet}")?;
                }
                Ok(())
            }
            FailureKind::Closed {
                code: Some(code),
                reason,
            } if !reason.is_empty() => {
                write!(
                    f,
                    "connection closed by the upstream with code {code} ({reason})"
                )
            }
            FailureKind::Closed {
                code: Some(code), ..
            } => {
                write!(f, "connection closed by the upstream with code {code}")
            }
            FailureKind::Closed { code: None, .. } => {
                f.write_str("connection closed by the upstream without a close frame")
            }
            FailureKind::Protocol(message) => write!(f, "protocol error: {message}"),
            FailureKind::UpstreamError {
                code: Some(code),
                message,
                ..
            } => {
                write!(f, "upstream sent an error event ({code}): {message}")
            }
            FailureKind::UpstreamError {
                code: None,
                message,
                ..
            } => {
                write!(f, "upstream sent an error event: {message}")
            }
            FailureKind::Local(message) => f.write_str(message),
            FailureKind::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
        }
    }
}

/// A failed WebSocket attempt: the [`Phase`] it failed in, the [`FailureKind`], and how far
/// the request got ([`Delivery`], which decides whether it may be sent again).
///
/// It is cheap to clone (the optional underlying error is shared), so it can travel in
/// [`Intent`](crate::Intent), [`Served`](crate::Served) and breaker snapshots at once. Equality
/// compares phase, kind and delivery.
///
/// ```
/// use http::StatusCode;
/// use wsfirst_core::{FailureKind, Phase, WsFailure};
///
/// let failure = WsFailure::new(
///     Phase::Handshake,
///     FailureKind::UpgradeStatus { status: StatusCode::INTERNAL_SERVER_ERROR, body: "oops".into() },
/// );
/// assert!(failure.is_replay_safe());
/// assert_eq!(failure.to_string(), "websocket handshake failed: upgrade answered with status 500: oops");
/// ```
#[derive(Clone)]
pub struct WsFailure {
    phase: Phase,
    kind: FailureKind,
    delivery: Delivery,
    /// A copy of another request's failure (see [`WsFailure::shared`]).
    shared: bool,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl WsFailure {
    /// A failure of `kind` in `phase`; its [`Delivery`] is the phase's
    /// ([`Delivery::of_phase`]) until [`with_delivery`](Self::with_delivery) says otherwise.
    ///
    /// The body of an upgrade answered 401 or 403 is dropped here, so that no failure (a
    /// breaker's last failure, a log line, the admin JSON, a fallback cause) carries text that
    /// may repeat the refused credential:
    ///
    /// ```
    /// use http::StatusCode;
    /// use wsfirst_core::{FailureKind, Phase, WsFailure};
    ///
    /// let body = "Incorrect API key provided: sk-proj-abc".into();
    /// let failure = WsFailure::new(
    ///     Phase::Handshake,
    ///     FailureKind::UpgradeStatus { status: StatusCode::UNAUTHORIZED, body },
    /// );
    /// assert_eq!(failure.to_string(), "websocket handshake failed: upgrade answered with status 401");
    /// assert!(matches!(failure.kind(), FailureKind::UpgradeStatus { body, .. } if body.is_empty()));
    /// ```
    pub fn new(phase: Phase, mut kind: FailureKind) -> Self {
        if let FailureKind::UpgradeStatus { status, body } = &mut kind {
            if refuses_credential(*status) {
                *body = Bytes::new();
            }
        }
        Self {
            phase,
            kind,
            delivery: Delivery::of_phase(phase),
            shared: false,
            source: None,
        }
    }

    /// Marks the failure as a copy of one that another request already reported: requests that
    /// waited for the same coalesced handshake each get the handshake's failure, but only the
    /// request that made the handshake counts it, so that one refused handshake is one failure
    /// for a breaker, however many requests waited for it.
    ///
    /// ```
    /// use wsfirst_core::{FailureKind, Phase, WsFailure};
    ///
    /// let refused = WsFailure::new(Phase::Connect, FailureKind::Local("refused".into()));
    /// assert!(!refused.is_shared());
    /// let copy = refused.clone().shared();
    /// assert!(copy.is_shared());
    /// assert_eq!(copy, refused); // the same failure, seen by another request
    /// ```
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Whether this is a copy of a failure another request reported ([`WsFailure::shared`]):
    /// not to be counted again.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Says how far the request got, where the phase alone does not tell (a connection found
    /// closed before the write, a refusal). A [`Phase::MidStream`] failure stays
    /// [`Delivery::MaybeExecuted`].
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = match self.phase {
            Phase::MidStream => Delivery::MaybeExecuted,
            _ => delivery,
        };
        self
    }

    /// Attaches the underlying error, returned by [`Error::source`].
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// The same failure, moved to another phase (for example a handshake failure seen
    /// mid-stream). Moved to a phase after the write, it may have been executed.
    pub fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        if Delivery::of_phase(phase) == Delivery::MaybeExecuted {
            self.delivery = Delivery::MaybeExecuted;
        }
        self
    }

    /// The phase the attempt failed in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What went wrong.
    pub fn kind(&self) -> &FailureKind {
        &self.kind
    }

    /// How far the request got before the attempt failed.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Whether the request may be sent again (over HTTP, or on another WebSocket connection):
    /// the upstream provably did not execute it ([`Delivery::is_unexecuted`]). Which of those
    /// failures a route does send again is its [`Replay`](crate::Replay) setting.
    pub fn is_replay_safe(&self) -> bool {
        self.delivery.is_unexecuted()
    }
}

impl PartialEq for WsFailure {
    fn eq(&self, other: &Self) -> bool {
        self.phase == other.phase && self.kind == other.kind && self.delivery == other.delivery
    }
}

impl Eq for WsFailure {}

impl fmt::Debug for WsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("WsFailure");
        debug
            .field("phase", &self.phase)
            .field("kind", &self.kind)
            .field("delivery", &self.delivery);
        if self.shared {
            debug.field("shared", &true);
        }
        if let Some(source) = &self.source {
            debug.field("source", &format_args!("{source}"));
        }
        debug.finish()
    }
}

impl fmt::Display for WsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            Phase::Connect | Phase::Handshake | Phase::Send => {
                write!(f, "websocket {} failed: {}", self.phase, self.kind)
            }
            Phase::BeforeFirstEvent | Phase::MidStream => {
                write!(f, "websocket failed {}: {}", self.phase, self.kind)
            }
        }
    }
}

impl Error for WsFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_before_the_write_is_safe_to_send_again_by_default() {
        for phase in [Phase::Connect, Phase::Handshake, Phase::Send] {
            let failure = WsFailure::new(phase, FailureKind::Local("x".into()));
            assert!(failure.is_replay_safe(), "{phase:?}");
            assert!(phase.is_before_first_event(), "{phase:?}");
        }
        let closed = FailureKind::Closed {
            code: Some(1001),
            reason: String::new(),
        };
        for phase in [Phase::BeforeFirstEvent, Phase::MidStream] {
            let failure = WsFailure::new(phase, closed.clone());
            assert!(!failure.is_replay_safe(), "{phase:?}");
        }
        assert!(!Phase::MidStream.is_before_first_event());
        // The layer that knows better says so, and equality sees it.
        let refused =
            WsFailure::new(Phase::BeforeFirstEvent, closed).with_delivery(Delivery::Refused);
        assert!(refused.is_replay_safe());
        assert_ne!(refused.clone().in_phase(Phase::MidStream), refused);
        assert!(!refused.in_phase(Phase::MidStream).is_replay_safe());
    }

    #[test]
    fn display_texts_read_as_sentences() {
        let cases = [
            (
                WsFailure::new(Phase::Connect, FailureKind::Dns("no such host".into())),
                "websocket connect failed: dns lookup failed: no such host",
            ),
            (
                WsFailure::new(
                    Phase::Handshake,
                    FailureKind::Timeout(Duration::from_secs(5)),
                ),
                "websocket handshake failed: timed out after 5s",
            ),
            (
                WsFailure::new(
                    Phase::BeforeFirstEvent,
                    FailureKind::Closed {
                        code: Some(1011),
                        reason: "boom".into(),
                    },
                ),
                "websocket failed before the first event: connection closed by the upstream with code 1011 (boom)",
            ),
            (
                WsFailure::new(
                    Phase::MidStream,
                    FailureKind::UpstreamError {
                        code: Some("server_error".into()),
                        message: "try again".into(),
                        scope: ErrorScope::Provider,
                    },
                ),
                "websocket failed mid-stream: upstream sent an error event (server_error): try again",
            ),
            (
                WsFailure::new(
                    Phase::Send,
                    FailureKind::TooLarge {
                        size: 20,
                        limit: 10,
                    },
                ),
                "websocket send failed: message of 20 bytes exceeds the limit of 10 bytes",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
    }

    #[test]
    fn upgrade_body_snippet_is_bounded() {
        let body = Bytes::from(vec![b'x'; 1000]);
        let kind = FailureKind::UpgradeStatus {
            status: StatusCode::BAD_GATEWAY,
            body,
        };
        assert_eq!(
            kind.to_string().len(),
            "upgrade answered with status 502: ".len() + BODY_SNIPPET
        );
    }

    #[test]
    fn a_refused_credential_keeps_no_body() {
        let secret = "Incorrect API key provided: sk-proj-0123456789";
        for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
            let kind = FailureKind::UpgradeStatus {
                status,
                body: Bytes::from(secret),
            };
            // Display drops it, even on a kind made by hand...
            assert_eq!(
                kind.to_string(),
                format!("upgrade answered with status {}", status.as_u16())
            );
            // ... and a failure does not keep it at all.
            let failure = WsFailure::new(Phase::Handshake, kind).in_phase(Phase::Connect);
            let shown = format!("{failure} {failure:?}");
            assert!(!shown.contains("sk-proj"), "{shown}");
            assert!(matches!(
                failure.kind(),
                FailureKind::UpgradeStatus { body, .. } if body.is_empty()
            ));
        }
        // Other statuses keep their body: it explains the failure.
        let failure = WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: Bytes::from("overloaded"),
            },
        );
        assert!(failure.to_string().ends_with(": overloaded"), "{failure}");
    }

    #[test]
    fn source_is_kept_and_shared_by_clones() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let failure = WsFailure::new(
            Phase::Connect,
            FailureKind::Io {
                kind: io.kind(),
                message: io.to_string(),
            },
        )
        .with_source(io);
        let clone = failure.clone();
        assert_eq!(clone.source().unwrap().to_string(), "refused");
        assert_eq!(clone, failure);
    }
}
