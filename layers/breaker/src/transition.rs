//! Transition events: what a key's change of state logs, counts and reports.

use std::{fmt, sync::Arc, time::Duration};

use tokio::time::Instant;
use wsfirst_core::{BreakerKey, WsFailure};

use crate::BreakerState;

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

/// The callback of
/// [`BreakerRegistryBuilder::on_transition`](crate::BreakerRegistryBuilder::on_transition).
pub(crate) type Callback = Arc<dyn Fn(&Transition) + Send + Sync>;

/// The target of transition logs: the one the crate docs tell readers to filter on (where they
/// were logged from before they had a file of their own).
const TARGET: &str = "wsfirst_breaker::registry";

/// Where a registry's transitions go: logs, metrics and the callback. Each slot holds the
/// registry's one.
pub(crate) struct Events {
    on_transition: Option<Callback>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field(
                "on_transition",
                &self.on_transition.as_ref().map(|_| "Fn(&Transition)"),
            )
            .finish()
    }
}

impl Events {
    pub(crate) fn new(on_transition: Option<Callback>) -> Self {
        Events { on_transition }
    }

    /// Logs, counts and reports a transition (see "Observability" in the crate docs).
    pub(crate) fn emit(&self, t: &Transition) {
        match (t.from, t.to) {
            (_, BreakerState::Open) if t.manual => {
                tracing::warn!(
                    target: TARGET,
                    key = %t.key,
                    pinned_for = %PinnedFor(t.until),
                    "websocket path pinned to http by hand"
                );
            }
            (BreakerState::Closed, BreakerState::Open) => {
                tracing::warn!(
                    target: TARGET,
                    key = %t.key,
                    cause = %Cause(t.cause.as_ref()),
                    pinned_for = %PinnedFor(t.until),
                    "websocket path pinned to http"
                );
            }
            (BreakerState::HalfOpen, BreakerState::Open) => {
                tracing::info!(
                    target: TARGET,
                    key = %t.key,
                    cause = %Cause(t.cause.as_ref()),
                    pinned_for = %PinnedFor(t.until),
                    "websocket probe failed, pinned to http for longer"
                );
            }
            (_, BreakerState::Closed) => {
                tracing::info!(
                    target: TARGET,
                    key = %t.key,
                    "websocket path healthy again, unpinned"
                );
            }
            _ => {
                tracing::debug!(
                    target: TARGET,
                    key = %t.key,
                    from = %t.from,
                    to = %t.to,
                    cause = ?t.cause,
                    "breaker transition"
                );
            }
        }
        metrics::gauge!("wsfirst_breaker_state", "key" => t.key.to_string())
            .set(t.to.gauge_value());
        metrics::counter!(
            "wsfirst_breaker_transitions_total",
            "from" => t.from.as_str(),
            "to" => t.to.as_str()
        )
        .increment(1);
        if let Some(callback) = &self.on_transition {
            callback(t);
        }
    }
}

/// How long a key stays pinned from now, for logs: `2s`, `1m 30s 250ms` (rounded to the
/// millisecond), or `until unpinned`.
struct PinnedFor(Option<Instant>);

impl fmt::Display for PinnedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                write!(f, "{}", humantime::format_duration(round_to_millis(left)))
            }
            None => f.write_str("until unpinned"),
        }
    }
}

/// The nearest whole millisecond: the deadline was set a moment before it is logged.
fn round_to_millis(duration: Duration) -> Duration {
    let millis = duration.as_nanos().saturating_add(500_000) / 1_000_000;
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The failure that caused a transition, for logs.
struct Cause<'a>(Option<&'a WsFailure>);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(failure) => fmt::Display::fmt(failure, f),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_durations_are_rounded_for_logs() {
        let almost_two = Duration::from_secs(2) - Duration::from_nanos(1);
        assert_eq!(round_to_millis(almost_two), Duration::from_secs(2));
        assert_eq!(
            round_to_millis(Duration::from_micros(1_499)),
            Duration::from_millis(1)
        );
        assert_eq!(
            humantime::format_duration(round_to_millis(almost_two)).to_string(),
            "2s"
        );
        assert_eq!(PinnedFor(None).to_string(), "until unpinned");
    }
}
