//! What a key looks like at one moment: its state, counts and last failure, for the handle and
//! admin endpoints.

use std::fmt;

use serde::{Serialize, Serializer};
use tokio::time::Instant;
use wsfirst_core::{BreakerKey, WsFailure};

use crate::Verdict;

/// The state of one key's breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests try the WebSocket.
    Closed,
    /// Pinned to HTTP until a deadline (or until unpinned).
    Open,
    /// A bounded number of probes try the WebSocket; everyone else stays on HTTP.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `wsfirst_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct FailureRecord {
    pub(crate) failure: WsFailure,
    pub(crate) verdict: Verdict,
    pub(crate) at: Instant,
}

/// The last counted failure of a key.
#[derive(Clone, Debug, Serialize)]
pub struct LastFailure {
    /// The failure.
    #[serde(skip)]
    pub failure: WsFailure,
    /// The failure's phase ([`Phase::as_str`](wsfirst_core::Phase::as_str)).
    pub phase: &'static str,
    /// The failure's kind ([`FailureKind::as_str`](wsfirst_core::FailureKind::as_str)).
    pub kind: &'static str,
    /// The failure's message (never the body of an upgrade refused with 401 or 403: see
    /// [`WsFailure::new`]).
    pub message: String,
    /// How it was classified.
    pub verdict: Verdict,
    /// When it happened.
    #[serde(skip)]
    pub at: Instant,
    /// Seconds between the failure and the snapshot.
    pub secs_ago: f64,
}

/// The state of one key at one moment. Serializes to JSON as shown on
/// [`BreakerHandle::snapshot`](crate::BreakerHandle::snapshot).
#[derive(Clone, Debug, Serialize)]
pub struct KeySnapshot {
    /// The key (serialized as its display text: provider, endpoint, credential fingerprint; see
    /// [`BreakerKey`]'s `Display`).
    #[serde(serialize_with = "display")]
    pub key: BreakerKey,
    /// The provider id.
    pub provider: String,
    /// The WebSocket endpoint as it may be shown ([`BreakerKey::endpoint`]): without userinfo or
    /// query string.
    pub endpoint: String,
    /// The credential's keyed fingerprint, 12 hex digits, if the key is scoped to one.
    pub credential: Option<String>,
    /// The state.
    pub state: BreakerState,
    /// When the key entered this state.
    #[serde(skip)]
    pub since: Instant,
    /// Seconds in this state at the time of the snapshot.
    pub since_secs: f64,
    /// Open: until when the key is pinned (`None` when pinned by hand until unpinned).
    /// Half-open: the deadline that ended the pin. Closed: `None`.
    #[serde(skip)]
    pub until: Option<Instant>,
    /// Open: seconds left until a probe may try the WebSocket (`None` when pinned until
    /// unpinned, or not open).
    pub until_secs: Option<f64>,
    /// Whether the key is pinned by hand now: open through
    /// [`BreakerHandle::pin`](crate::BreakerHandle::pin) and the pin's period (if any) not over. A half-open key is never pinned by hand, and a strict request's
    /// success closes it like a probe's.
    pub pinned_by_hand: bool,
    /// Counted failures in a row (closed).
    pub consecutive_failures: u32,
    /// Attempts in the sliding window (closed).
    pub window_calls: u32,
    /// Failed attempts in the sliding window (closed).
    pub window_failures: u32,
    /// Consecutive trips so far (drives the backoff; forgotten after a stable closed period).
    pub trips: u32,
    /// Probes in flight (half-open).
    pub probes_in_flight: u32,
    /// The last counted failure.
    pub last_failure: Option<LastFailure>,
}

fn display<S: Serializer>(key: &BreakerKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(key)
}

impl KeySnapshot {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: BreakerKey,
        state: BreakerState,
        since: Instant,
        until: Option<Instant>,
        pinned_by_hand: bool,
        consecutive_failures: u32,
        window_calls: u32,
        window_failures: u32,
        trips: u32,
        probes_in_flight: u32,
        last_failure: Option<FailureRecord>,
        now: Instant,
    ) -> Self {
        let open = state == BreakerState::Open;
        KeySnapshot {
            provider: key.provider().to_owned(),
            endpoint: key.endpoint().to_owned(),
            credential: key.credential().map(|c| c.to_string()),
            key,
            state,
            since,
            since_secs: now.saturating_duration_since(since).as_secs_f64(),
            until,
            until_secs: until
                .filter(|_| open)
                .map(|u| u.saturating_duration_since(now).as_secs_f64()),
            pinned_by_hand,
            consecutive_failures,
            window_calls,
            window_failures,
            trips,
            probes_in_flight,
            last_failure: last_failure.map(|r| LastFailure {
                phase: r.failure.phase().as_str(),
                kind: r.failure.kind().as_str(),
                message: r.failure.to_string(),
                verdict: r.verdict,
                at: r.at,
                secs_ago: now.saturating_duration_since(r.at).as_secs_f64(),
                failure: r.failure,
            }),
        }
    }
}

/// A key changed state; passed to the callback of
/// [`BreakerRegistryBuilder::on_transition`](crate::BreakerRegistryBuilder::on_transition).
#[derive(Clone, Debug)]
pub struct Transition {
    /// The key.
    pub key: BreakerKey,
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// The failure that tripped the key, if a failure did.
    pub cause: Option<WsFailure>,
    /// Until when the key is pinned (open: `None` when pinned by hand until unpinned;
    /// half-open: the deadline that ended the pin).
    pub until: Option<Instant>,
    /// Whether the key is pinned by hand (through a [`BreakerHandle`](crate::BreakerHandle))
    /// after the transition; only ever `true` when `to` is open (a pin by hand ends with its
    /// period: the key goes half-open and probes as after a trip).
    pub manual: bool,
}
