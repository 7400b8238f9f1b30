//! One key's breaker: a lock-free summary word for the hot path and a locked state machine.
//!
//! The word holds the state, a "dirty" bit (a closed key whose successes must be recorded, because
//! it has recent failures or its window is not yet full), a "retired" bit (the key was evicted or
//! its registry dropped), the free half-open probe slots and a generation that changes with every
//! transition. A closed, clean key admits and records a success with one atomic load each;
//! everything else takes the key's mutex.
//!
//! A slot is owned by its registry's map behind an `Arc`; futures and bodies of requests in flight
//! hold a clone and the generation they were admitted under. Evicting a key retires its slot (a
//! new generation, so late outcomes are ignored, and no more transitions are reported) and drops
//! the registry's reference: the slot is freed when the last request in flight for it ends.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::{BreakerKey, WsFailure};

use crate::{
    BreakerConfig, BreakerState, Transition, Verdict,
    handle::{FailureRecord, KeySnapshot},
    registry::Shared,
};

const STATE_MASK: u64 = 0b11;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const DIRTY: u64 = 0b100;
/// The key was evicted (or its registry dropped): services must look the key up again.
const RETIRED: u64 = 0b1000;
const PROBE_SHIFT: u32 = 8;
const PROBE_ONE: u64 = 1 << PROBE_SHIFT;
const PROBE_MASK: u64 = 0xFFFF << PROBE_SHIFT;
const GEN_SHIFT: u32 = 32;
/// `until` value of a key pinned until unpinned.
const FOREVER: u64 = u64::MAX;
/// `until` value of a deadline too far from the registry's epoch to count in nanoseconds (over
/// 584 years): the machine holds the real one.
const FAR: u64 = FOREVER - 1;

fn generation_of(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32
}

fn free_probes(word: u64) -> u32 {
    ((word & PROBE_MASK) >> PROBE_SHIFT) as u32
}

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: try the WebSocket, report the outcome with this generation.
    Closed { generation: u32 },
    /// Half-open: this request holds a probe slot.
    Probe { generation: u32 },
    /// A strict request on an open or half-open key: try the WebSocket, report the outcome.
    Observe { generation: u32 },
    /// Go over HTTP.
    Pinned { until: Option<Instant> },
}

/// A sliding window of the last `size` attempts, one bit per attempt (1 = failed).
#[derive(Debug, Default)]
pub(crate) struct Window {
    bits: Vec<u64>,
    size: u32,
    cursor: u32,
    filled: u32,
    failures: u32,
}

impl Window {
    fn new(size: u32) -> Self {
        Window {
            bits: vec![0; size.div_ceil(64) as usize],
            size,
            cursor: 0,
            filled: 0,
            failures: 0,
        }
    }

    fn push(&mut self, failed: bool) {
        let (word, bit) = ((self.cursor / 64) as usize, self.cursor % 64);
        let mask = 1u64 << bit;
        if self.filled == self.size {
            if self.bits[word] & mask != 0 {
                self.failures -= 1;
            }
        } else {
            self.filled += 1;
        }
        if failed {
            self.bits[word] |= mask;
            self.failures += 1;
        } else {
            self.bits[word] &= !mask;
        }
        self.cursor = (self.cursor + 1) % self.size;
    }

    /// Whether a success changes the window: it is not full yet, or a failure is still in it.
    /// (Pushing a success into a full window of successes changes nothing.)
    fn needs_success(&self) -> bool {
        self.filled < self.size || self.failures > 0
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.cursor = 0;
        self.filled = 0;
        self.failures = 0;
    }
}

/// The locked part of a key's breaker.
#[derive(Debug)]
pub(crate) struct Machine {
    key: BreakerKey,
    shared: Arc<Shared>,
    retired: bool,
    config: BreakerConfig,
    state: BreakerState,
    generation: u32,
    since: Instant,
    until: Option<Instant>,
    manual: bool,
    trips: u32,
    consecutive: u32,
    window: Option<Window>,
    last_failure: Option<FailureRecord>,
    rng: fastrand::Rng,
}

impl Machine {
    fn new(key: BreakerKey, config: &BreakerConfig, shared: Arc<Shared>, now: Instant) -> Self {
        Machine {
            key,
            shared,
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
    fn pinned_by_hand(&self, now: Instant) -> bool {
        self.manual
            && self.state == BreakerState::Open
            && self.until.is_none_or(|until| now < until)
    }

    fn dirty(&self) -> bool {
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
        self.last_failure = Some(FailureRecord {
            failure: failure.clone(),
            verdict,
            at: now,
        });
    }

    fn closed_success(&mut self, generation: u32) {
        if generation != self.generation || self.state != BreakerState::Closed {
            return;
        }
        self.consecutive = 0;
        if let Some(window) = &mut self.window {
            window.push(false);
        }
    }

    fn closed_failure(
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

    fn begin_half_open(&mut self, generation: u32, now: Instant) -> Option<Transition> {
        let due = self.until.is_some_and(|until| now >= until);
        if generation != self.generation || self.state != BreakerState::Open || !due {
            return None;
        }
        self.transition(BreakerState::HalfOpen, now, None)
    }

    /// A probe or a strict request saw the WebSocket deliver its first event.
    fn healthy(&mut self, generation: u32, now: Instant, strict: bool) -> Option<Transition> {
        if generation != self.generation
            || self.state == BreakerState::Closed
            || (strict && self.pinned_by_hand(now))
        {
            return None;
        }
        self.transition(BreakerState::Closed, now, None)
    }

    fn probe_failure(
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

    fn observe_failure(
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

    fn pin(&mut self, now: Instant, duration: Option<Duration>) -> Option<Transition> {
        // Clamped so that no duration can overflow the clock.
        self.until = duration.map(|d| now + d.min(wsfirst_core::MAX_DURATION));
        self.manual = true;
        self.transition(BreakerState::Open, now, None)
    }

    fn unpin(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::Closed {
            return None;
        }
        self.transition(BreakerState::Closed, now, None)
    }

    fn reset(&mut self, now: Instant) -> Option<Transition> {
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
}

/// One key's breaker.
#[derive(Debug)]
pub(crate) struct Slot {
    hot: Hot,
    /// The registry's epoch, which [`Hot::until`] counts from.
    epoch: Instant,
    machine: Mutex<Machine>,
}

/// The fields read on every request, on a cache line of their own (128 bytes covers adjacent-line
/// prefetching), so that taking the key's lock or writing a neighbouring allocation does not
/// invalidate them.
#[derive(Debug)]
#[repr(align(128))]
struct Hot {
    word: AtomicU64,
    /// The open deadline in nanoseconds after the registry's epoch, or [`FOREVER`].
    until: AtomicU64,
    used: AtomicBool,
}

impl Slot {
    /// A new slot for `key` with the settings it keeps for life, owned by the caller (the
    /// registry's map).
    pub(crate) fn new(
        key: BreakerKey,
        config: &BreakerConfig,
        shared: Arc<Shared>,
        now: Instant,
    ) -> Arc<Slot> {
        let epoch = shared.epoch;
        let machine = Machine::new(key, config, shared, now);
        let slot = Slot {
            hot: Hot {
                word: AtomicU64::new(0),
                until: AtomicU64::new(FOREVER),
                used: AtomicBool::new(true),
            },
            epoch,
            machine: Mutex::new(machine),
        };
        {
            let m = slot.lock();
            slot.publish(&m, true);
        }
        Arc::new(slot)
    }

    /// Marks the slot as no longer in its registry: services look the key up again, outcomes
    /// still in flight are ignored and nothing more is reported for it.
    pub(crate) fn retire(&self) {
        let mut m = self.lock();
        m.retired = true;
        m.generation = m.generation.wrapping_add(1);
        self.publish(&m, true);
    }

    /// Whether the slot was retired (its key evicted or its registry dropped).
    #[inline]
    pub(crate) fn is_retired(&self) -> bool {
        self.hot.word.load(Ordering::Relaxed) & RETIRED != 0
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the key as used since the last sweep (a load, and a store only the first time).
    #[inline]
    pub(crate) fn touch(&self) {
        if !self.hot.used.load(Ordering::Relaxed) {
            self.hot.used.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the key was used since the last call (clears the mark).
    pub(crate) fn take_used(&self) -> bool {
        self.hot.used.swap(false, Ordering::Relaxed)
    }

    /// Stores the summary word (and deadline) for the machine's state. In half-open the probe
    /// counter is owned by compare-and-swap outside the lock, so the word is only stored when the
    /// state was just entered.
    fn publish(&self, m: &Machine, transitioned: bool) {
        if m.state == BreakerState::HalfOpen && !transitioned {
            return;
        }
        let until = match m.until {
            Some(until) => {
                u64::try_from(until.saturating_duration_since(m.shared.epoch).as_nanos())
                    .map_or(FAR, |nanos| nanos.min(FAR))
            }
            None => FOREVER,
        };
        self.hot.until.store(until, Ordering::Release);
        let state = match m.state {
            BreakerState::Closed => CLOSED,
            BreakerState::Open => OPEN,
            BreakerState::HalfOpen => HALF_OPEN,
        };
        let dirty = if m.dirty() { DIRTY } else { 0 };
        let retired = if m.retired { RETIRED } else { 0 };
        let probes = if m.state == BreakerState::HalfOpen {
            u64::from(m.config.inner.probes) << PROBE_SHIFT
        } else {
            0
        };
        let word = state | dirty | retired | probes | (u64::from(m.generation) << GEN_SHIFT);
        self.hot.word.store(word, Ordering::Release);
    }

    /// Runs `f` under the lock, publishes, then emits the transition (outside the lock), unless
    /// the slot is retired.
    fn with<R>(&self, f: impl FnOnce(&mut Machine) -> (R, Option<Transition>)) -> R {
        let (result, report) = {
            let mut m = self.lock();
            let (result, transition) = f(&mut m);
            self.publish(&m, transition.is_some());
            let report = transition.filter(|_| !m.retired);
            (result, report.map(|t| (t, m.shared.clone())))
        };
        if let Some((transition, shared)) = report {
            shared.emit(&transition);
        }
        result
    }

    /// The generation of a closed, live key: a single load, the whole closed-state admission.
    #[inline]
    pub(crate) fn closed_generation(&self) -> Option<u32> {
        let word = self.hot.word.load(Ordering::Acquire);
        (word & (STATE_MASK | RETIRED) == CLOSED).then(|| generation_of(word))
    }

    /// Decides what a request may do.
    #[inline]
    pub(crate) fn admit(&self, strict: bool) -> Admission {
        let word = self.hot.word.load(Ordering::Acquire);
        if word & STATE_MASK == CLOSED {
            return Admission::Closed {
                generation: generation_of(word),
            };
        }
        self.admit_slow(word, strict, Instant::now())
    }

    #[cold]
    pub(crate) fn admit_slow(&self, mut word: u64, strict: bool, now: Instant) -> Admission {
        loop {
            let generation = generation_of(word);
            match word & STATE_MASK {
                OPEN => {
                    let until = self.deadline();
                    if until.is_none_or(|until| now < until) {
                        return if strict {
                            Admission::Observe { generation }
                        } else {
                            Admission::Pinned { until }
                        };
                    }
                    // Due: go half-open, unless the key's own deadline says it is not (then it
                    // stays pinned rather than looking again forever).
                    let not_due = self.with(|m| {
                        let transition = m.begin_half_open(generation, now);
                        let not_due = transition.is_none()
                            && m.generation == generation
                            && m.state == BreakerState::Open;
                        (not_due.then_some(m.until), transition)
                    });
                    if let Some(until) = not_due {
                        return if strict {
                            Admission::Observe { generation }
                        } else {
                            Admission::Pinned { until }
                        };
                    }
                    word = self.hot.word.load(Ordering::Acquire);
                }
                HALF_OPEN => {
                    if strict {
                        return Admission::Observe { generation };
                    }
                    if free_probes(word) == 0 {
                        return Admission::Pinned {
                            until: self.deadline(),
                        };
                    }
                    match self.hot.word.compare_exchange_weak(
                        word,
                        word - PROBE_ONE,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Admission::Probe { generation },
                        Err(current) => word = current,
                    }
                }
                _ => return Admission::Closed { generation },
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.hot.until.load(Ordering::Acquire) {
            FOREVER => None,
            FAR => self.lock().until,
            nanos => Some(self.epoch + Duration::from_nanos(nanos)),
        }
    }

    /// A closed-state attempt succeeded. One load when the key is closed and clean.
    #[inline]
    pub(crate) fn closed_success(&self, generation: u32) {
        let word = self.hot.word.load(Ordering::Acquire);
        if word & (STATE_MASK | DIRTY) == CLOSED || generation_of(word) != generation {
            return;
        }
        self.with(|m| {
            m.closed_success(generation);
            ((), None)
        });
    }

    /// A closed-state attempt failed.
    pub(crate) fn closed_failure(&self, generation: u32, failure: &WsFailure, now: Instant) {
        self.with(|m| {
            let verdict = m.config.inner.classifier.classify(failure);
            ((), m.closed_failure(generation, failure, verdict, now))
        });
    }

    /// A probe or strict request saw the first event. Returns the generation to report later
    /// outcomes (of the same response's body) against, if this closed the key. A request
    /// admitted before another one closed it gets none: its body's end is not an outcome of the
    /// new closed state.
    pub(crate) fn healthy(&self, generation: u32, now: Instant, strict: bool) -> Option<u32> {
        self.with(|m| {
            let transition = m.healthy(generation, now, strict);
            let generation = transition.as_ref().map(|_| m.generation);
            (generation, transition)
        })
    }

    /// A probe failed. Returns whether the verdict was [`Verdict::Ignore`] (the slot is given back).
    pub(crate) fn probe_failure(&self, generation: u32, failure: &WsFailure, now: Instant) {
        let ignored = self.with(|m| {
            let verdict = m.config.inner.classifier.classify(failure);
            if verdict == Verdict::Ignore {
                (true, None)
            } else {
                (false, m.probe_failure(generation, failure, verdict, now))
            }
        });
        if ignored {
            self.release_probe(generation);
        }
    }

    /// A strict request on an open key failed: remembered, not counted.
    pub(crate) fn observe_failure(&self, generation: u32, failure: &WsFailure, now: Instant) {
        self.with(|m| {
            let verdict = m.config.inner.classifier.classify(failure);
            m.observe_failure(generation, failure, verdict, now);
            ((), None)
        });
    }

    /// Gives a probe slot back (the probe had no verdict or was dropped).
    pub(crate) fn release_probe(&self, generation: u32) {
        let mut word = self.hot.word.load(Ordering::Acquire);
        while word & STATE_MASK == HALF_OPEN && generation_of(word) == generation {
            match self.hot.word.compare_exchange_weak(
                word,
                word + PROBE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// Pins the key by hand. Returns `false`, changing nothing, if the slot was retired (the
    /// caller looks the key up again: a pin on an evicted copy would be lost).
    pub(crate) fn pin(&self, now: Instant, duration: Option<Duration>) -> bool {
        self.with(|m| {
            if m.retired {
                return (false, None);
            }
            (true, m.pin(now, duration))
        })
    }

    /// Closes the key; returns whether it was open or half-open, or `None`, changing nothing, if
    /// the slot was retired.
    pub(crate) fn unpin(&self, now: Instant) -> Option<bool> {
        self.with(|m| {
            if m.retired {
                return (None, None);
            }
            let transition = m.unpin(now);
            (Some(transition.is_some()), transition)
        })
    }

    /// Resets the key. Returns `false`, changing nothing, if the slot was retired.
    pub(crate) fn reset(&self, now: Instant) -> bool {
        self.with(|m| {
            if m.retired {
                return (false, None);
            }
            (true, m.reset(now))
        })
    }

    /// Retires the slot if nothing needs it kept: closed, open with a pin (automatic or by hand)
    /// that has ended, or half-open with no probe in flight (a pin still running, including one by
    /// hand until unpinned, and probes in flight keep it). Returns the state it was retired in, if it was.
    ///
    /// The check and the retirement happen under the key's lock, so no transition lands between
    /// them; a half-open key first takes every free probe slot by compare-and-swap, so no probe
    /// is admitted on a key as it is evicted.
    pub(crate) fn retire_if_evictable(&self, now: Instant) -> Option<BreakerState> {
        let mut m = self.lock();
        let evictable = match m.state {
            BreakerState::Closed => true,
            // A pin by hand until unpinned has no deadline; one for a period ends like any pin.
            BreakerState::Open => m.until.is_some_and(|until| now >= until),
            BreakerState::HalfOpen => {
                let word = self.hot.word.load(Ordering::Acquire);
                generation_of(word) == m.generation
                    && free_probes(word) == m.config.inner.probes
                    && self
                        .hot
                        .word
                        .compare_exchange(
                            word,
                            word & !PROBE_MASK,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
            }
        };
        if evictable {
            m.retired = true;
            m.generation = m.generation.wrapping_add(1);
            self.publish(&m, true);
        }
        evictable.then_some(m.state)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> KeySnapshot {
        let m = self.lock();
        let word = self.hot.word.load(Ordering::Acquire);
        let key = m.key.clone();
        let probes = if m.state == BreakerState::HalfOpen && generation_of(word) == m.generation {
            m.config.inner.probes.saturating_sub(free_probes(word))
        } else {
            0
        };
        let trips = if m.state == BreakerState::Closed
            && now.saturating_duration_since(m.since) >= m.config.inner.decay_after
        {
            0
        } else {
            m.trips
        };
        let (window_calls, window_failures) =
            m.window.as_ref().map_or((0, 0), |w| (w.filled, w.failures));
        KeySnapshot::new(
            key,
            m.state,
            m.since,
            m.until,
            m.pinned_by_hand(now),
            m.consecutive,
            window_calls,
            window_failures,
            trips,
            probes,
            m.last_failure.clone(),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_one_attempt_at_a_time() {
        let mut w = Window::new(3);
        assert!(w.needs_success());
        w.push(true);
        w.push(false);
        w.push(false);
        assert_eq!((w.filled, w.failures), (3, 1));
        assert!(w.needs_success());
        w.push(false); // the failure slides out
        assert_eq!((w.filled, w.failures), (3, 0));
        assert!(!w.needs_success());
        w.push(true);
        w.push(true);
        w.push(true);
        w.push(true);
        assert_eq!((w.filled, w.failures), (3, 3));
        w.clear();
        assert_eq!((w.filled, w.failures, w.cursor), (0, 0, 0));
    }

    #[test]
    fn wide_window_uses_several_words() {
        let mut w = Window::new(130);
        for i in 0..300 {
            w.push(i % 10 == 0);
        }
        // the last 130 attempts are 170..300: failures at 170, 180, ..., 290
        assert_eq!((w.filled, w.failures), (130, 13));
    }

    mod model {
        //! The slot against a small reference model of the state machine.

        use std::collections::VecDeque;

        use http::StatusCode;
        use proptest::prelude::*;
        use wsfirst_core::{FailureKind, Phase};

        use super::super::*;
        use crate::BreakerRegistry;

        const BASE: u64 = 10;
        const CAP: u64 = 40;
        const DECAY: u64 = 100;

        #[derive(Clone, Copy, Debug)]
        enum Outcome {
            Success,
            Count,
            Trip,
            Ignore,
            NoVerdict,
        }

        #[derive(Clone, Debug)]
        enum Op {
            Admit { strict: bool },
            Resolve { index: usize, outcome: Outcome },
            Advance { secs: u64 },
        }

        fn op() -> impl Strategy<Value = Op> {
            let outcome = prop_oneof![
                4 => Just(Outcome::Success),
                4 => Just(Outcome::Count),
                1 => Just(Outcome::Trip),
                1 => Just(Outcome::Ignore),
                1 => Just(Outcome::NoVerdict),
            ];
            prop_oneof![
                4 => Just(Op::Admit { strict: false }),
                1 => Just(Op::Admit { strict: true }),
                5 => (any::<prop::sample::Index>(), outcome)
                    .prop_map(|(i, outcome)| Op::Resolve { index: i.index(usize::MAX), outcome }),
                2 => (1u64..60).prop_map(|secs| Op::Advance { secs }),
            ]
        }

        #[derive(Clone, Copy, Debug, PartialEq)]
        enum Kind {
            Closed,
            Probe,
            Observe,
            Pinned,
        }

        #[derive(Clone, Copy, Debug, PartialEq)]
        enum ModelState {
            Closed,
            Open { until: u64 },
            HalfOpen { free: u32 },
        }

        struct Model {
            state: ModelState,
            epoch: u64,
            since: u64,
            trips: u32,
            consecutive: u32,
            window: VecDeque<bool>,
            streak: u32,
            size: usize,
            min_calls: usize,
            probes: u32,
        }

        impl Model {
            fn clear(&mut self, now: u64) {
                self.epoch += 1;
                self.since = now;
                self.consecutive = 0;
                self.window.clear();
            }

            fn trip(&mut self, now: u64) {
                if self.state == ModelState::Closed && now - self.since >= DECAY {
                    self.trips = 0;
                }
                self.trips += 1;
                let backoff = (BASE << (self.trips - 1).min(20)).min(CAP);
                self.state = ModelState::Open {
                    until: now + backoff,
                };
                self.clear(now);
            }

            fn close(&mut self, now: u64) {
                self.state = ModelState::Closed;
                self.clear(now);
            }

            fn admit(&mut self, strict: bool, now: u64) -> Kind {
                if let ModelState::Open { until } = self.state {
                    if now >= until {
                        self.state = ModelState::HalfOpen { free: self.probes };
                        self.epoch += 1;
                        self.since = now;
                    }
                }
                match &mut self.state {
                    ModelState::Closed => Kind::Closed,
                    _ if strict => Kind::Observe,
                    ModelState::Open { .. } => Kind::Pinned,
                    ModelState::HalfOpen { free: 0 } => Kind::Pinned,
                    ModelState::HalfOpen { free } => {
                        *free -= 1;
                        Kind::Probe
                    }
                }
            }

            fn resolve(&mut self, kind: Kind, epoch: u64, outcome: Outcome, now: u64) {
                let current = epoch == self.epoch;
                match (kind, outcome) {
                    (Kind::Closed, _) if !current || self.state != ModelState::Closed => {}
                    (Kind::Closed, Outcome::Success) => {
                        self.consecutive = 0;
                        self.push(false);
                    }
                    (Kind::Closed, Outcome::Trip) => self.trip(now),
                    (Kind::Closed, Outcome::Count) => {
                        self.consecutive += 1;
                        self.push(true);
                        let failures = self.window.iter().filter(|f| **f).count();
                        let by_rate = self.window.len() >= self.min_calls
                            && failures as f64 >= 0.5 * self.window.len() as f64;
                        if self.consecutive >= self.streak || by_rate {
                            self.trip(now);
                        }
                    }
                    (Kind::Closed, _) => {}
                    (Kind::Probe, _) if !current => {}
                    (Kind::Probe, Outcome::Success) => self.close(now),
                    (Kind::Probe, Outcome::Count | Outcome::Trip) => self.trip(now),
                    (Kind::Probe, Outcome::Ignore | Outcome::NoVerdict) => {
                        if let ModelState::HalfOpen { free } = &mut self.state {
                            *free += 1;
                        }
                    }
                    (Kind::Observe, Outcome::Success) => {
                        if current && self.state != ModelState::Closed {
                            self.close(now);
                        }
                    }
                    (Kind::Observe | Kind::Pinned, _) => {}
                }
            }

            fn push(&mut self, failed: bool) {
                if self.window.len() == self.size {
                    self.window.pop_front();
                }
                self.window.push_back(failed);
            }
        }

        fn failure(outcome: Outcome) -> WsFailure {
            let status = match outcome {
                Outcome::Trip => StatusCode::NOT_FOUND,
                Outcome::Ignore => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_GATEWAY,
            };
            WsFailure::new(
                Phase::Handshake,
                FailureKind::UpgradeStatus {
                    status,
                    body: Default::default(),
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn slot_matches_the_model(
                streak in 1u32..5,
                (size, min_calls) in (1u32..8).prop_flat_map(|size| (Just(size), 1..=size)),
                probes in 1u32..4,
                ops in prop::collection::vec(op(), 1..120),
            ) {
                let config = BreakerConfig::builder()
                    .consecutive_failures(streak)
                    .failure_rate(0.5, size, min_calls)
                    .open_duration(Duration::from_secs(BASE))
                    .max_open_duration(Duration::from_secs(CAP))
                    .decay_after(Duration::from_secs(DECAY))
                    .half_open_probes(probes)
                    .jitter(0.0)
                    .build()
                    .unwrap();
                let registry = BreakerRegistry::builder().config(config).build();
                let key = BreakerKey::new("p", "wss://p", None);
                let slot = registry.slot_for(&key);
                let start = Instant::now();
                let mut model = Model {
                    state: ModelState::Closed,
                    epoch: 0,
                    since: 0,
                    trips: 0,
                    consecutive: 0,
                    window: VecDeque::new(),
                    streak,
                    size: size as usize,
                    min_calls: min_calls as usize,
                    probes,
                };
                let mut now = 0u64;
                // (real admission, model kind, model epoch)
                let mut pending: Vec<(Admission, Kind, u64)> = Vec::new();
                for op in ops {
                    let at = start + Duration::from_secs(now);
                    match op {
                        Op::Advance { secs } => now += secs,
                        Op::Admit { strict } => {
                            let word = slot.hot.word.load(Ordering::Acquire);
                            let real = slot.admit_slow(word, strict, at);
                            let kind = model.admit(strict, now);
                            let real_kind = match real {
                                Admission::Closed { .. } => Kind::Closed,
                                Admission::Probe { .. } => Kind::Probe,
                                Admission::Observe { .. } => Kind::Observe,
                                Admission::Pinned { until } => {
                                    if let ModelState::Open { until: u } = model.state {
                                        prop_assert_eq!(until, Some(start + Duration::from_secs(u)));
                                    }
                                    Kind::Pinned
                                }
                            };
                            prop_assert_eq!(real_kind, kind);
                            if kind != Kind::Pinned {
                                pending.push((real, kind, model.epoch));
                            }
                        }
                        Op::Resolve { index, outcome } => {
                            if pending.is_empty() {
                                continue;
                            }
                            let (real, kind, model_epoch) = pending.swap_remove(index % pending.len());
                            model.resolve(kind, model_epoch, outcome, now);
                            let fail = failure(outcome);
                            match (real, outcome) {
                                (Admission::Closed { generation }, Outcome::Success) => {
                                    slot.closed_success(generation)
                                }
                                (Admission::Closed { .. }, Outcome::NoVerdict) => {}
                                (Admission::Closed { generation }, _) => {
                                    slot.closed_failure(generation, &fail, at)
                                }
                                (Admission::Probe { generation }, Outcome::Success) => {
                                    slot.healthy(generation, at, false);
                                }
                                (Admission::Probe { generation }, Outcome::NoVerdict) => {
                                    slot.release_probe(generation)
                                }
                                (Admission::Probe { generation }, _) => {
                                    slot.probe_failure(generation, &fail, at)
                                }
                                (Admission::Observe { generation }, Outcome::Success) => {
                                    slot.healthy(generation, at, true);
                                }
                                (Admission::Observe { .. }, Outcome::NoVerdict) => {}
                                (Admission::Observe { generation }, _) => {
                                    slot.observe_failure(generation, &fail, at)
                                }
                                (Admission::Pinned { .. }, _) => {}
                            }
                        }
                    }
                    let at = start + Duration::from_secs(now);
                    let snapshot = slot.snapshot(at);
                    let (state, until, in_flight) = match model.state {
                        ModelState::Closed => (BreakerState::Closed, None, 0),
                        ModelState::Open { until } => (BreakerState::Open, Some(until), 0),
                        ModelState::HalfOpen { free } => (BreakerState::HalfOpen, None, probes - free),
                    };
                    prop_assert_eq!(snapshot.state, state);
                    if let Some(until) = until {
                        prop_assert_eq!(snapshot.until, Some(start + Duration::from_secs(until)));
                    }
                    prop_assert_eq!(snapshot.probes_in_flight, in_flight);
                    prop_assert_eq!(snapshot.consecutive_failures, model.consecutive);
                    prop_assert_eq!(snapshot.window_calls as usize, model.window.len());
                    prop_assert_eq!(
                        snapshot.window_failures as usize,
                        model.window.iter().filter(|f| **f).count()
                    );
                    let model_trips = if model.state == ModelState::Closed && now - model.since >= DECAY {
                        0
                    } else {
                        model.trips
                    };
                    prop_assert_eq!(snapshot.trips, model_trips);
                }
            }
        }
    }
}
