//! When a request may be sent again after its WebSocket attempt failed: how far the request got
//! ([`Delivery`]) and what the route allows ([`Replay`]).
//!
//! The rule of the whole stack: a request is sent again (on a fresh WebSocket connection by the
//! WebSocket layer, or over HTTP by the fallback layer) only when the upstream provably did not
//! execute it. Whoever builds a [`WsFailure`] says how far the request got; the route's
//! [`Replay`] setting (owned by the fallback layer's configuration, handed to the WebSocket layer
//! in the request's extensions) says which of those failures may be sent again.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_core::{Delivery, FailureKind, Phase, Replay, WsFailure};
//!
//! // The upstream closed the connection after our message was written: it may have executed it.
//! let closed = WsFailure::new(
//!     Phase::BeforeFirstEvent,
//!     FailureKind::Closed { code: Some(1001), reason: String::new() },
//! );
//! assert_eq!(closed.delivery(), Delivery::MaybeExecuted);
//! assert!(!Replay::BeforeFirstEvent.allows(&closed));
//!
//! // Our write failed before the message was complete: the upstream cannot act on it.
//! let reset = WsFailure::new(
//!     Phase::Send,
//!     FailureKind::Io { kind: std::io::ErrorKind::ConnectionReset, message: "reset".into() },
//! );
//! assert_eq!(reset.delivery(), Delivery::Incomplete);
//! assert!(Replay::BeforeFirstEvent.allows(&reset));
//! assert!(!Replay::ConnectOnly.allows(&reset));
//!
//! let timeout = WsFailure::new(Phase::Connect, FailureKind::Timeout(Duration::from_secs(5)));
//! assert!(Replay::ConnectOnly.allows(&timeout));
//! ```

use std::fmt;

use crate::WsFailure;

/// How far a request got before its WebSocket attempt failed: what decides whether it may be
/// sent again.
///
/// [`WsFailure::new`] derives it from the phase ([`Delivery::of_phase`]); the WebSocket layer
/// sets it where it knows better ([`WsFailure::with_delivery`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// Nothing of the request was written: the connection could not be set up, the request was
    /// refused before it was sent (it could not be encoded, it is too large, the pool is full),
    /// or the connection was found closed right before the write.
    Unsent,
    /// The write started but failed or timed out before the request's message was complete:
    /// an upstream does not act on a message it did not receive in full.
    Incomplete,
    /// The upstream received the request and answered, before any event, that it did not
    /// execute it: an error event of [`ErrorScope::Connection`](crate::ErrorScope::Connection)
    /// (for the Responses API, the connection limit: status 400, "open a new connection").
    Refused,
    /// The upstream may have received, and executed, the request: anything that went wrong
    /// after our message was written (a close, an end of stream, a timeout, an error event that
    /// does not say the request was refused, a broken event).
    MaybeExecuted,
}

impl Delivery {
    /// What a failure in `phase` says by itself: [`Unsent`](Delivery::Unsent) while connecting,
    /// [`Incomplete`](Delivery::Incomplete) while sending, and
    /// [`MaybeExecuted`](Delivery::MaybeExecuted) once the message was written.
    pub fn of_phase(phase: crate::Phase) -> Self {
        use crate::Phase;
        match phase {
            Phase::Connect | Phase::Handshake => Delivery::Unsent,
            Phase::Send => Delivery::Incomplete,
            Phase::BeforeFirstEvent | Phase::MidStream => Delivery::MaybeExecuted,
        }
    }

    /// Whether the upstream provably did not execute the request: everything but
    /// [`MaybeExecuted`](Delivery::MaybeExecuted).
    pub fn is_unexecuted(self) -> bool {
        !matches!(self, Delivery::MaybeExecuted)
    }

    /// A short stable name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Unsent => "unsent",
            Delivery::Incomplete => "incomplete",
            Delivery::Refused => "refused",
            Delivery::MaybeExecuted => "maybe_executed",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::Unsent => "the request was not sent",
            Delivery::Incomplete => "the request was not sent in full",
            Delivery::Refused => "the upstream refused the request without executing it",
            Delivery::MaybeExecuted => "the upstream may have executed the request",
        })
    }
}

/// Which failed WebSocket attempts a route sends again: over HTTP (the fallback layer) and on a
/// fresh WebSocket connection (the WebSocket layer).
///
/// The fallback layer's configuration owns the setting; it puts it in the extensions of the
/// request it hands to the WebSocket layer, which reads it there (a request without one follows
/// the default). Neither setting ever sends again a request that the upstream may have
/// executed ([`Delivery::MaybeExecuted`]).
///
/// ```
/// use wsfirst_core::{Delivery, Replay};
///
/// assert!(Replay::BeforeFirstEvent.allows_after(Delivery::Refused));
/// assert!(!Replay::ConnectOnly.allows_after(Delivery::Refused));
/// assert!(Replay::ConnectOnly.allows_after(Delivery::Unsent));
/// for replay in [Replay::BeforeFirstEvent, Replay::ConnectOnly] {
///     assert!(!replay.allows_after(Delivery::MaybeExecuted));
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Replay {
    /// Send again whenever the upstream provably did not execute the request
    /// ([`Delivery::is_unexecuted`]): it was not sent, not sent in full, or refused. The
    /// default.
    #[default]
    BeforeFirstEvent,
    /// Send again only when nothing of the request was written ([`Delivery::Unsent`]): the
    /// upstream never sees any of it twice.
    ConnectOnly,
}

impl Replay {
    /// Whether a request whose WebSocket attempt failed with `failure` may be sent again.
    ///
    /// A [`Phase::MidStream`](crate::Phase::MidStream) failure never is.
    pub fn allows(self, failure: &WsFailure) -> bool {
        self.allows_after(failure.delivery())
    }

    /// Whether a request that got as far as `delivery` may be sent again.
    pub fn allows_after(self, delivery: Delivery) -> bool {
        match self {
            Replay::BeforeFirstEvent => delivery.is_unexecuted(),
            Replay::ConnectOnly => delivery == Delivery::Unsent,
        }
    }

    /// `"before_first_event"` or `"connect_only"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Replay::BeforeFirstEvent => "before_first_event",
            Replay::ConnectOnly => "connect_only",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureKind, Phase};

    #[test]
    fn only_a_failure_after_the_write_may_have_been_executed() {
        assert_eq!(Delivery::of_phase(Phase::Connect), Delivery::Unsent);
        assert_eq!(Delivery::of_phase(Phase::Handshake), Delivery::Unsent);
        assert_eq!(Delivery::of_phase(Phase::Send), Delivery::Incomplete);
        assert_eq!(
            Delivery::of_phase(Phase::BeforeFirstEvent),
            Delivery::MaybeExecuted
        );
        assert_eq!(
            Delivery::of_phase(Phase::MidStream),
            Delivery::MaybeExecuted
        );
    }

    #[test]
    fn each_setting_sends_again_only_what_it_names() {
        let table = [
            (Delivery::Unsent, true, true),
            (Delivery::Incomplete, true, false),
            (Delivery::Refused, true, false),
            (Delivery::MaybeExecuted, false, false),
        ];
        for (delivery, before_first_event, connect_only) in table {
            assert_eq!(
                Replay::BeforeFirstEvent.allows_after(delivery),
                before_first_event,
                "{delivery:?}"
            );
            assert_eq!(
                Replay::ConnectOnly.allows_after(delivery),
                connect_only,
                "{delivery:?}"
            );
        }
    }

    #[test]
    fn a_mid_stream_failure_is_never_sent_again_whatever_it_claims() {
        let failure = WsFailure::new(
            Phase::MidStream,
            FailureKind::Closed {
                code: Some(1001),
                reason: String::new(),
            },
        )
        .with_delivery(Delivery::Unsent);
        assert_eq!(failure.delivery(), Delivery::MaybeExecuted);
        assert!(!Replay::BeforeFirstEvent.allows(&failure));
    }
}
