//! Reading and steering breakers: snapshots, manual pins, resets, transition events.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_breaker::{BreakerRegistry, BreakerState};
//! use wsfirst_core::BreakerKey;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = BreakerRegistry::new();
//! let handle = registry.handle();
//! let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
//!
//! handle.pin(&key, Some(Duration::from_secs(60)));
//! let snapshot = handle.get(&key).unwrap();
//! assert_eq!(snapshot.state, BreakerState::Open);
//! assert!(snapshot.pinned_by_hand);
//!
//! assert!(handle.unpin(&key));
//! assert_eq!(handle.get(&key).unwrap().state, BreakerState::Closed);
//! # }
//! ```

use std::time::Duration;

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

use crate::{BreakerRegistry, KeySnapshot, StoreEvent};

// Here rather than in `registry.rs`, so that the registry does not depend on its handle.
impl BreakerRegistry {
    /// A handle to read and steer the breakers.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            registry: self.clone(),
        }
    }
}

/// Reads and steers the breakers of one [`BreakerRegistry`]; get one with
/// [`BreakerRegistry::handle`]. Cheap to clone, `Send + Sync`.
///
/// With a [`BreakerStore`](crate::BreakerStore), pins, unpins and resets apply to every
/// replica sharing it, and the snapshot shows the state this replica mirrors from the fleet.
#[derive(Clone, Debug)]
pub struct BreakerHandle {
    registry: BreakerRegistry,
}

impl BreakerHandle {
    /// The state of every key, sorted by key text.
    ///
    /// Nothing in it is secret: the credential is a keyed fingerprint, shown truncated; the
    /// endpoint has no userinfo or query string (see [`BreakerKey`]); the last failure of an
    /// upgrade refused with 401 or 403 has no body.
    ///
    /// As JSON (with `serde_json`), one element looks like:
    ///
    /// ```json
    /// {
    ///   "key": "openai wss://api.openai.com/v1/responses credential:1f2e3d4c5b6a",
    ///   "provider": "openai",
    ///   "endpoint": "wss://api.openai.com/v1/responses",
    ///   "credential": "1f2e3d4c5b6a",
    ///   "state": "open",
    ///   "since_secs": 12.5,
    ///   "until_secs": 17.5,
    ///   "pinned_by_hand": false,
    ///   "consecutive_failures": 0,
    ///   "window_calls": 0,
    ///   "window_failures": 0,
    ///   "trips": 1,
    ///   "probes_in_flight": 0,
    ///   "last_failure": {
    ///     "phase": "handshake",
    ///     "kind": "upgrade_status",
    ///     "message": "websocket handshake failed: upgrade answered with status 500",
    ///     "verdict": "count",
    ///     "secs_ago": 12.5
    ///   }
    /// }
    /// ```
    pub fn snapshot(&self) -> Vec<KeySnapshot> {
        let now = Instant::now();
        let mut all: Vec<KeySnapshot> = self
            .registry
            .slots()
            .into_iter()
            .map(|slot| slot.snapshot(now))
            .collect();
        all.sort_by_cached_key(|s| s.key.to_string());
        all
    }

    /// The state of one key, if the registry has it.
    pub fn get(&self, key: &BreakerKey) -> Option<KeySnapshot> {
        self.registry
            .existing(key)
            .map(|slot| slot.snapshot(Instant::now()))
    }

    /// The key whose display text (as in [`KeySnapshot::key`]) is `text`, for admin endpoints.
    pub fn key_named(&self, text: &str) -> Option<BreakerKey> {
        self.registry
            .keys()
            .into_iter()
            .find(|key| key.to_string() == text)
    }

    /// Pins `key` to HTTP for `duration`, or until [`unpin`](Self::unpin)ned when `None`. The key
    /// is created if the registry does not have it yet. When a timed pin ends it is no longer
    /// pinned by hand: the key goes half-open and probes as after a trip (a strict request's
    /// success closes it too), and an idle key can be evicted. Durations over
    /// [`wsfirst_core::MAX_DURATION`] (100 years) are cut to it.
    pub fn pin(&self, key: &BreakerKey, duration: Option<Duration>) {
        self.pin_with(key, duration, || {});
    }

    /// [`pin`](Self::pin), calling `between` after each look-up of the key (tests sweep there).
    fn pin_with(&self, key: &BreakerKey, duration: Option<Duration>, mut between: impl FnMut()) {
        // A sweep may evict the key between the look-up and the pin: the evicted copy refuses
        // the pin and the key is looked up (created) again.
        loop {
            let slot = self.registry.slot_for(key);
            between();
            let now = Instant::now();
            if slot.pin(now, duration) {
                // Every replica sharing a store pins it too.
                self.registry.report(|| StoreEvent::Pinned {
                    key: key.clone(),
                    until: duration.map(|d| now + d.min(wsfirst_core::MAX_DURATION)),
                });
                return;
            }
        }
    }

    /// Closes `key` if it is open or half-open (its trip count is kept). Returns whether it was.
    pub fn unpin(&self, key: &BreakerKey) -> bool {
        let was_open = self.unpin_with(key, || {});
        // Even a key closed here may be open on other replicas sharing a store.
        self.registry.report(|| StoreEvent::Unpinned(key.clone()));
        was_open
    }

    /// [`unpin`](Self::unpin), calling `between` after each look-up of the key.
    fn unpin_with(&self, key: &BreakerKey, mut between: impl FnMut()) -> bool {
        loop {
            let Some(slot) = self.registry.existing(key) else {
                return false;
            };
            between();
            // `None`: evicted after the look-up, look again.
            if let Some(was_open) = slot.unpin(Instant::now()) {
                return was_open;
            }
        }
    }

    /// Closes `key` and forgets its counts, trips and last failure; outcomes of requests admitted
    /// before the reset are ignored. Returns whether the registry has the key.
    pub fn reset(&self, key: &BreakerKey) -> bool {
        let had = self.reset_with(key, || {});
        self.registry.report(|| StoreEvent::Reset(key.clone()));
        had
    }

    /// [`reset`](Self::reset), calling `between` after each look-up of the key.
    fn reset_with(&self, key: &BreakerKey, mut between: impl FnMut()) -> bool {
        loop {
            let Some(slot) = self.registry.existing(key) else {
                return false;
            };
            between();
            // `false`: evicted after the look-up, look again.
            if slot.reset(Instant::now()) {
                return true;
            }
        }
    }

    /// Evicts keys idle for the registry's idle timeout now (this also happens on its own when
    /// new keys are added). Returns how many were evicted.
    pub fn evict_idle(&self) -> usize {
        self.registry.sweep(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;
    use wsfirst_core::{FailureKind, Phase, WsFailure};

    use super::*;
    use crate::{BreakerState, slot::Admission};

    const IDLE: Duration = Duration::from_secs(60);

    /// A registry with one idle key that the next sweep evicts, put in `state` first.
    async fn idle_key(state: BreakerState) -> (BreakerRegistry, BreakerKey) {
        let registry = BreakerRegistry::builder().idle_timeout(IDLE).build();
        let key = BreakerKey::new("p", "wss://p", None);
        let slot = registry.slot_for(&key);
        if state == BreakerState::HalfOpen {
            // Tripped at once (not a WebSocket endpoint), the pin ended, then a probe gave its
            // slot back.
            let Admission::Closed { generation } = slot.admit(false) else {
                panic!("expected a closed key");
            };
            let not_ws = WsFailure::new(
                Phase::Handshake,
                FailureKind::UpgradeStatus {
                    status: http::StatusCode::NOT_FOUND,
                    body: Default::default(),
                },
            );
            slot.closed_failure(generation, &not_ws, Instant::now());
            advance(Duration::from_secs(3600)).await;
            let Admission::Probe { generation } = slot.admit(false) else {
                panic!("expected a probe");
            };
            slot.release_probe(generation);
        }
        assert_eq!(registry.handle().get(&key).unwrap().state, state);
        // The first sweep clears the key's "used" mark, the next one after the idle timeout
        // evicts it.
        registry.sweep(Instant::now());
        advance(IDLE).await;
        (registry, key)
    }

    #[tokio::test(start_paused = true)]
    async fn a_pin_is_not_lost_to_a_sweep_between_look_up_and_pin() {
        let (registry, key) = idle_key(BreakerState::Closed).await;
        let handle = registry.handle();
        let mut evicted = 0;
        handle.pin_with(&key, Some(Duration::from_secs(600)), || {
            if evicted == 0 {
                evicted = registry.sweep(Instant::now());
            }
        });
        assert_eq!(evicted, 1, "the sweep evicted the key after the look-up");
        let snapshot = handle.get(&key).expect("the pinned key is in the registry");
        assert_eq!(snapshot.state, BreakerState::Open);
        assert!(snapshot.pinned_by_hand);
        assert_eq!(registry.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unpin_and_reset_act_on_the_key_the_registry_has_now() {
        // The sweep evicts the half-open key after the look-up: there is nothing left to unpin.
        let (registry, key) = idle_key(BreakerState::HalfOpen).await;
        let handle = registry.handle();
        let mut evicted = 0;
        let unpinned = handle.unpin_with(&key, || evicted += registry.sweep(Instant::now()));
        assert_eq!(evicted, 1);
        assert!(!unpinned, "an evicted key was not unpinned");

        // Same for a reset: it says whether the registry has the key, and it no longer has it.
        let (registry, key) = idle_key(BreakerState::Closed).await;
        let handle = registry.handle();
        let mut evicted = 0;
        let reset = handle.reset_with(&key, || evicted += registry.sweep(Instant::now()));
        assert_eq!(evicted, 1);
        assert!(!reset, "an evicted key was not reset");
        assert!(registry.is_empty());
    }
}
