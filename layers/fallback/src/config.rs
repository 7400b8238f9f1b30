//! What the fallback layer may replay, how much it buffers, and how often it warns.

use std::time::Duration;

use wsfirst_core::WsFailure;

/// Which WebSocket failures the fallback layer replays over HTTP.
///
/// ```
/// use std::time::Duration;
/// use wsfirst_core::{FailureKind, Phase, WsFailure};
/// use wsfirst_fallback::Replay;
///
/// let closed = WsFailure::new(
///     Phase::BeforeFirstEvent,
///     FailureKind::Closed { code: Some(1011), reason: String::new() },
/// );
/// assert!(Replay::BeforeFirstEvent.allows(&closed));
/// assert!(!Replay::ConnectOnly.allows(&closed));
///
/// let timeout = WsFailure::new(Phase::Connect, FailureKind::Timeout(Duration::from_secs(5)));
/// assert!(Replay::ConnectOnly.allows(&timeout));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Replay {
    /// Replay after any replay-safe failure ([`WsFailure::is_replay_safe`]): connect,
    /// handshake, send, or waiting for the first event. The default.
    #[default]
    BeforeFirstEvent,
    /// Replay only when the connection could not be set up (connect or handshake): the request's
    /// messages were never sent.
    ConnectOnly,
}

impl Replay {
    /// Whether a request whose WebSocket attempt failed with `failure` is replayed over HTTP.
    ///
    /// A [`Phase::MidStream`](wsfirst_core::Phase::MidStream) failure is never replayed.
    pub fn allows(self, failure: &WsFailure) -> bool {
        match self {
            Replay::BeforeFirstEvent => failure.is_replay_safe(),
            Replay::ConnectOnly => failure.phase().is_connection_setup(),
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

/// The fallback layer's settings.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`body_limit`](Self::body_limit) | 8 MiB | the largest request body buffered for a replay |
/// | [`replay`](Self::replay) | [`Replay::BeforeFirstEvent`] | which failures are replayed |
/// | [`warn_interval`](Self::warn_interval) | 60 s | at most one WARN per breaker key per interval; `None` never warns |
///
/// ```
/// use std::time::Duration;
/// use wsfirst_fallback::{FallbackConfig, Replay};
///
/// let config = FallbackConfig::new()
///     .body_limit(1024 * 1024)
///     .replay(Replay::ConnectOnly)
///     // The circuit breaker is in the stack and warns once per trip.
///     .warn_interval(None);
/// assert_eq!(config.get_body_limit(), 1024 * 1024);
/// assert_eq!(FallbackConfig::default().get_warn_interval(), Some(Duration::from_secs(60)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackConfig {
    body_limit: usize,
    replay: Replay,
    warn_interval: Option<Duration>,
}

impl FallbackConfig {
    /// The default body limit: 8 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

    /// The default interval between two WARN logs for one key: 60 s.
    pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(60);

    /// The default settings.
    pub const fn new() -> Self {
        Self {
            body_limit: Self::DEFAULT_BODY_LIMIT,
            replay: Replay::BeforeFirstEvent,
            warn_interval: Some(Self::DEFAULT_WARN_INTERVAL),
        }
    }

    /// The largest request body, in bytes, that is buffered so that it can be replayed.
    ///
    /// A body whose declared size (size hint or `Content-Length`) is larger goes over HTTP
    /// directly, with [`Ineligible::BodyNotReplayable`](wsfirst_core::Ineligible::BodyNotReplayable) as the
    /// reason. A body of unknown size that turns out larger fails with
    /// [`BodyTooLarge`](crate::BodyTooLarge) before anything is sent upstream. A body is never
    /// truncated.
    pub const fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Which failures are replayed (default [`Replay::BeforeFirstEvent`]).
    pub const fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    /// At most one WARN log per breaker key per `interval` about falling back (default 60 s);
    /// `None` never warns.
    ///
    /// Set `None` when a circuit breaker is in the stack: it warns once when it pins a key, and
    /// each fallback is logged at DEBUG and counted in `wsfirst_fallbacks_total` either way.
    pub const fn warn_interval(mut self, interval: Option<Duration>) -> Self {
        self.warn_interval = interval;
        self
    }

    /// The body limit in bytes.
    pub const fn get_body_limit(&self) -> usize {
        self.body_limit
    }

    /// The replay setting.
    pub const fn get_replay(&self) -> Replay {
        self.replay
    }

    /// The WARN interval, `None` when the layer never warns.
    pub const fn get_warn_interval(&self) -> Option<Duration> {
        self.warn_interval
    }
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self::new()
    }
}
