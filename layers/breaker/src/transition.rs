//! Transition events: what a key's change of state logs, counts and reports, and the
//! `wsfirst_breaker_state` gauge.
//!
//! By default the gauge has one series per provider and WebSocket endpoint (labels `provider`,
//! `endpoint`), whatever the number of credentials: its value is the state of the worst key of
//! that provider and endpoint (1 when any key is open, else 2 when any is half-open, else 0), so
//! that distinct credentials add no series. The registry keeps, per provider and endpoint, how
//! many of its keys are open and how many half-open, updated on each transition and eviction.
//! With [`state_gauge_per_credential`](crate::BreakerRegistryBuilder::state_gauge_per_credential)
//! each key has a series of its own (an extra `credential` label holding the key's fingerprint,
//! left out for keys without one), set to the key's state and back to 0 when it is evicted.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::{BreakerKey, WsFailure};

use crate::{BreakerState, StoreEvent, Transition, store::SharedStore};

/// The callback of
/// [`BreakerRegistryBuilder::on_transition`](crate::BreakerRegistryBuilder::on_transition).
pub(crate) type Callback = Arc<dyn Fn(&Transition) + Send + Sync>;

/// The target of transition logs: the one the crate docs tell readers to filter on (where they
/// were logged from before they had a file of their own).
const TARGET: &str = "wsfirst_breaker::registry";

/// The name of the state gauge.
const STATE_GAUGE: &str = "wsfirst_breaker_state";

/// Where a registry's transitions go: logs, metrics and the callback. Each slot holds the
/// registry's one.
pub(crate) struct Events {
    on_transition: Option<Callback>,
    /// One gauge series per key (with the credential fingerprint) instead of one per provider
    /// and endpoint.
    per_credential: bool,
    /// Per provider and endpoint (a key without credential), how many keys are open and
    /// half-open. Bounded by the routes' endpoints (and keys pinned by hand), not by clients;
    /// an entry is removed when both counts are back to zero.
    states: Mutex<HashMap<BreakerKey, Counts>>,
    /// The store that shares the breakers with other replicas, if any.
    store: SharedStore,
}

/// How many keys of one provider and endpoint are in each state that is not closed. Signed:
/// transitions are reported outside the key's lock, so a key's two transitions may arrive in
/// either order, and only their sum is right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    open: i64,
    half_open: i64,
}

impl Counts {
    fn add(&mut self, state: BreakerState, delta: i64) {
        match state {
            BreakerState::Closed => {}
            BreakerState::Open => self.open += delta,
            BreakerState::HalfOpen => self.half_open += delta,
        }
    }

    /// The state of the worst key: open before half-open before closed.
    fn worst(self) -> BreakerState {
        if self.open > 0 {
            BreakerState::Open
        } else if self.half_open > 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field(
                "on_transition",
                &self.on_transition.as_ref().map(|_| "Fn(&Transition)"),
            )
            .field("per_credential", &self.per_credential)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Events {
    pub(crate) fn new(
        on_transition: Option<Callback>,
        per_credential: bool,
        store: SharedStore,
    ) -> Self {
        Events {
            on_transition,
            per_credential,
            states: Mutex::new(HashMap::new()),
            store,
        }
    }

    /// Whether the breakers are shared through a store.
    #[inline]
    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// Hands `event` to the store, if there is one (built only then); whether it took it.
    pub(crate) fn report(&self, event: impl FnOnce() -> StoreEvent) -> bool {
        match &self.store {
            Some(store) => store.report(event()),
            None => false,
        }
    }

    /// Logs, counts and reports a transition that the fleet decided (applied from the store);
    /// `cause` is the message of the failure that tripped the key elsewhere.
    pub(crate) fn emit_shared(&self, t: &Transition, cause: Option<&str>) {
        match t.to {
            BreakerState::Open => {
                tracing::warn!(
                    target: TARGET,
                    key = %t.key,
                    cause = cause.unwrap_or(if t.manual { "pinned by hand" } else { "unknown" }),
                    pinned_for = %PinnedFor(t.until),
                    "websocket path pinned to http across the fleet"
                );
            }
            BreakerState::Closed => {
                tracing::info!(
                    target: TARGET,
                    key = %t.key,
                    "websocket path unpinned across the fleet"
                );
            }
            BreakerState::HalfOpen => {}
        }
        self.count(t);
    }

    /// Moves the state gauge for a key that went from `from` to `to` (`None`: the key left the
    /// registry).
    fn move_gauge(&self, key: &BreakerKey, from: BreakerState, to: Option<BreakerState>) {
        if self.per_credential {
            let mut labels = vec![
                ("provider", key.provider().to_owned()),
                ("endpoint", key.endpoint().to_owned()),
            ];
            if let Some(credential) = key.credential() {
                labels.push(("credential", credential.to_string()));
            }
            // An evicted key starts closed if it comes back: it must not be shown open forever.
            let state = to.unwrap_or(BreakerState::Closed);
            metrics::gauge!(STATE_GAUGE, &labels).set(state.gauge_value());
            return;
        }
        let scope = key.with_credential(None);
        // The gauge is set under the lock, so that the last value set is the last count's.
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = states.entry(scope.clone()).or_default();
        counts.add(from, -1);
        if let Some(to) = to {
            counts.add(to, 1);
        }
        let worst = counts.worst();
        if *counts == Counts::default() {
            states.remove(&scope);
        }
        metrics::gauge!(
            STATE_GAUGE,
            "provider" => scope.provider().to_owned(),
            "endpoint" => scope.endpoint().to_owned()
        )
        .set(worst.gauge_value());
    }

    /// A key in `state` left the registry (evicted, or the registry dropped): it no longer
    /// counts in its provider and endpoint's gauge.
    pub(crate) fn removed(&self, key: &BreakerKey, state: BreakerState) {
        if state != BreakerState::Closed {
            self.move_gauge(key, state, None);
        }
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
        self.count(t);
    }

    /// The metrics and the callback of a transition.
    fn count(&self, t: &Transition) {
        self.move_gauge(&t.key, t.from, Some(t.to));
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

    fn transition(key: &BreakerKey, from: BreakerState, to: BreakerState) -> Transition {
        Transition {
            key: key.clone(),
            from,
            to,
            cause: None,
            until: None,
            manual: false,
        }
    }

    /// The value of the one state gauge series (a snapshot reads gauges once).
    fn gauge(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<String> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == STATE_GAUGE)
            .map(|(.., value)| format!("{value:?}"))
            .collect()
    }

    #[test]
    fn the_endpoint_gauge_is_right_whatever_order_transitions_arrive_in() {
        use BreakerState::*;
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let events = Events::new(None, false, None);
        let scope = BreakerKey::new("openai", "wss://api.example/v1", None);
        let alice = scope.with_credential(Some(wsfirst_core::Fingerprint::of("alice")));
        let bob = scope.with_credential(Some(wsfirst_core::Fingerprint::of("bob")));
        events.emit(&transition(&alice, Closed, Open));
        // Bob's two transitions arrive in the wrong order: the counts only add up after both.
        events.emit(&transition(&bob, Open, HalfOpen));
        events.emit(&transition(&bob, Closed, Open));
        assert_eq!(gauge(&snapshotter), ["Gauge(1.0)"]);
        events.emit(&transition(&alice, Open, Closed));
        assert_eq!(gauge(&snapshotter), ["Gauge(2.0)"], "bob is half-open");
        events.removed(&bob, HalfOpen);
        assert_eq!(gauge(&snapshotter), ["Gauge(0.0)"]);
        assert!(events.states.lock().unwrap().is_empty(), "no counts left");
        // Closed keys leaving the registry move nothing.
        events.removed(&alice, Closed);
        assert!(events.states.lock().unwrap().is_empty());
    }

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
