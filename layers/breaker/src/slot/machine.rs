//! The pure state machine of one key: counts, trips with backoff and jitter, half-open, pins by
//! hand. It runs under the slot's lock and knows nothing of atomics; each change of state returns
//! the [`Transition`] to report.

use std::time::Duration;

use tokio::time::Instant;
use wsfirst_core::{BreakerKey, WsFailure};

use super::window::Window;
use crate::{
    BreakerConfig, BreakerState, Transition, Verdict,
    snapshot::{FailureRecord, KeySnapshot},
};

/// The locked part of a key's breaker.
#[derive(Debug)]
pub(super) struct Machine {
    key: BreakerKey,
    /// The key is no longer in its registry: nothing more is reported for it.
    pub(super) retired: bool,
    /// Fixed for the key's life.
    pub(super) config: BreakerConfig,
    pub(super) state: BreakerState,
    pub(super) generation: u32,
    since: Instant,
    pub(super) until: Option<Instant>,
    manual: bool,
    trips: u32,
    consecutive: u32,
    window: Option<Window>,
    /// Boxed: most keys never fail, and a failure's record is about as large as the rest.
    last_failure: Option<Box<FailureRecord>>,
    rng: fastrand::Rng,
}

impl Machine {
    /// What the key's classifier says of `failure`; a copy of a failure another request already
    /// reported ([`WsFailure::is_shared`], a coalesced handshake) is never counted twice.
    pub(super) fn verdict(&self, failure: &WsFailure) -> Verdict {
        if failure.is_shared() {
            Verdict::Ignore
        } else {
            self.config.inner.classifier.classify(failure)
        }
    }

    pub(super) fn new(key: BreakerKey, config: &BreakerConfig, now: Instant) -> Self {
        Machine {
            key,
            retired: false,
            config: config.clone(),
            state: BreakerState::Closed,
            generation: 0,
            since: now,
            until: None,
            manual: false,
            trips: 0,
            consecutive: 0,
            window: config.inner.rate.map(|rule| Window::new(rule.window)),
            last_failure: None,
            rng: match config.inner.seed {
                Some(seed) => fastrand::Rng::with_seed(seed),
                None => fastrand::Rng::new(),
            },
        }
    }

    /// Whether the key is pinned by hand now: open by hand, and the pin's period (if it has one)
    /// not over. An ended pin by hand is no longer one even before a request moves the key to
    /// half-open.
    pub(super) fn pinned_by_hand(&self, now: Instant) -> bool {
        self.manual
            && self.state == BreakerState::Open
            && self.until.is_none_or(|until| now < until)
    }

    /// Whether the key remembers nothing: closed (never pinned by hand), no trip, no failure
    /// counted or recorded, nothing in its window. Such a key is the same as a missing one.
    pub(super) fn is_blank(&self) -> bool {
        self.state == BreakerState::Closed
            && !self.retired
            && !self.manual
            && self.trips == 0
            && self.consecutive == 0
            && self.last_failure.is_none()
            && self.window.as_ref().is_none_or(|window| window.filled == 0)
    }

    pub(super) fn key(&self) -> &BreakerKey {
        &self.key
    }

    pub(super) fn dirty(&self) -> bool {
        self.state == BreakerState::Closed
            && (self.consecutive > 0 || self.window.as_ref().is_some_and(Window::needs_success))
    }

    fn clear_counts(&mut self) {
        self.consecutive = 0;
        if let Some(window) = &mut self.window {
            window.clear();
        }
    }

    fn transition(
        &mut self,
        to: BreakerState,
        now: Instant,
        cause: Option<WsFailure>,
    ) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        self.since = now;
        // Half-open keeps the deadline that ended the pin, for snapshots and pinned requests.
        if to == BreakerState::Closed {
            self.until = None;
        }
        // A pin by hand lasts while the key is open: half-open probes as after a trip.
        if to != BreakerState::Open {
            self.manual = false;
        }
        self.clear_counts();
        Some(Transition {
            key: self.key.clone(),
            from,
            to,
            cause,
            until: self.until,
            manual: self.manual,
        })
    }

    /// Opens the key with the next backoff.
    fn trip(&mut self, now: Instant, cause: Option<WsFailure>) -> Option<Transition> {
        let config = &self.config.inner;
        if self.state == BreakerState::Closed
            && now.saturating_duration_since(self.since) >= config.decay_after
        {
            self.trips = 0;
        }
        self.trips = self.trips.saturating_add(1);
        let backoff = self.config.backoff(self.trips);
        let cut = backoff.mul_f64(config.jitter * self.rng.f64());
        self.until = Some(now + backoff.saturating_sub(cut));
        self.manual = false;
        self.transition(BreakerState::Open, now, cause)
    }

    fn record(&mut self, failure: &WsFailure, verdict: Verdict, now: Instant) {
        self.last_failure = Some(Box::new(FailureRecord {
            failure: failure.clone(),
            verdict,
            at: now,
        }));
    }

    pub(super) fn closed_success(&mut self, generation: u32) {
        if generation != self.generation || self.state != BreakerState::Closed {
            return;
        }
        self.consecutive = 0;
        if let Some(window) = &mut self.window {
            window.push(false);
        }
    }

    pub(super) fn closed_failure(
        &mut self,
        generation: u32,
        failure: &WsFailure,
        verdict: Verdict,
        now: Instant,
    ) -> Option<Transition> {
        if generation != self.generation
            || self.state != BreakerState::Closed
            || verdict == Verdict::Ignore
        {
            return None;
        }
        self.record(failure, verdict, now);
        if verdict == Verdict::Trip {
            return self.trip(now, Some(failure.clone()));
        }
        self.consecutive = self.consecutive.saturating_add(1);
        let config = self.config.inner.clone();
        let by_streak = config.consecutive.is_some_and(|n| self.consecutive >= n);
        let by_rate = match (&mut self.window, config.rate) {
            (Some(window), Some(rule)) => {
                window.push(true);
                window.filled >= rule.min_calls
                    && f64::from(window.failures) >= rule.rate * f64::from(window.filled)
            }
            _ => false,
        };
        if by_streak || by_rate {
            self.trip(now, Some(failure.clone()))
        } else {
            None
        }
    }

    pub(super) fn begin_half_open(&mut self, generation: u32, now: Instant) -> Option<Transition> {
        let due = self.until.is_some_and(|until| now >= until);
        if generation != self.generation || self.state != BreakerState::Open || !due {
            return None;
        }
        self.transition(BreakerState::HalfOpen, now, None)
    }

    /// A probe or a strict request saw the WebSocket deliver its first event.
    pub(super) fn healthy(
        &mut self,
        generation: u32,
        now: Instant,
        strict: bool,
    ) -> Option<Transition> {
        if generation != self.generation
            || self.state == BreakerState::Closed
            || (strict && self.pinned_by_hand(now))
        {
            return None;
        }
        self.transition(BreakerState::Closed, now, None)
    }

    pub(super) fn probe_failure(
        &mut self,
        generation: u32,
        failure: &WsFailure,
        verdict: Verdict,
        now: Instant,
    ) -> Option<Transition> {
        if generation != self.generation || self.state != BreakerState::HalfOpen {
            return None;
        }
        self.record(failure, verdict, now);
        self.trip(now, Some(failure.clone()))
    }

    pub(super) fn observe_failure(
        &mut self,
        generation: u32,
        failure: &WsFailure,
        verdict: Verdict,
        now: Instant,
    ) {
        if generation == self.generation && verdict != Verdict::Ignore {
            self.record(failure, verdict, now);
        }
    }

    pub(super) fn pin(&mut self, now: Instant, duration: Option<Duration>) -> Option<Transition> {
        // Clamped so that no duration can overflow the clock.
        self.until = duration.map(|d| now + d.min(wsfirst_core::MAX_DURATION));
        self.manual = true;
        self.transition(BreakerState::Open, now, None)
    }

    pub(super) fn unpin(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::Closed {
            return None;
        }
        self.transition(BreakerState::Closed, now, None)
    }

    pub(super) fn reset(&mut self, now: Instant) -> Option<Transition> {
        self.trips = 0;
        self.last_failure = None;
        if self.state == BreakerState::Closed {
            self.clear_counts();
            self.since = now;
            // Outcomes of requests admitted before the reset are not counted after it.
            self.generation = self.generation.wrapping_add(1);
            return None;
        }
        self.transition(BreakerState::Closed, now, None)
    }

    /// The fleet pinned the key (through a store): until `until` (`None`: until unpinned), by
    /// hand or not, after `trips` trips. A key probing after a pin that ended stays half-open.
    pub(super) fn adopt_open(
        &mut self,
        until: Option<Instant>,
        manual: bool,
        trips: u32,
        now: Instant,
    ) -> Option<Transition> {
        self.trips = trips;
        let ended = until.is_some_and(|until| now >= until);
        if self.state == BreakerState::HalfOpen && ended && !manual {
            return None;
        }
        self.until = until.map(|until| until.min(now + wsfirst_core::MAX_DURATION));
        self.manual = manual;
        if self.state == BreakerState::Open {
            return None;
        }
        self.transition(BreakerState::Open, now, None)
    }

    /// The fleet's count of consecutive trips (through a store).
    pub(super) fn adopt_trips(&mut self, trips: u32) {
        self.trips = trips;
    }

    /// Marks the key as no longer in its registry, with a new generation so that outcomes still
    /// in flight are ignored.
    pub(super) fn retire(&mut self) {
        self.retired = true;
        self.generation = self.generation.wrapping_add(1);
    }

    /// The key's snapshot, given the free probe slots of the word if it is of the current
    /// generation.
    pub(super) fn snapshot(&self, free_probes: Option<u32>, now: Instant) -> KeySnapshot {
        let probes = match free_probes {
            Some(free) if self.state == BreakerState::HalfOpen => {
                self.config.inner.probes.saturating_sub(free)
            }
            _ => 0,
        };
        let trips = if self.state == BreakerState::Closed
            && now.saturating_duration_since(self.since) >= self.config.inner.decay_after
        {
            0
        } else {
            self.trips
        };
        let (window_calls, window_failures) = self
            .window
            .as_ref()
            .map_or((0, 0), |w| (w.filled, w.failures));
        KeySnapshot::new(
            self.key.clone(),
            self.state,
            self.since,
            self.until,
            self.pinned_by_hand(now),
            self.consecutive,
            window_calls,
            window_failures,
            trips,
            probes,
            self.last_failure.as_deref().cloned(),
            now,
        )
    }
}
