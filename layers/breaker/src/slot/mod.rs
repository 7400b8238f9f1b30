//! One key's breaker: a lock-free summary word for the hot path and a locked state machine.
//!
//! The word ([`word`]) holds the state, a "dirty" bit, a "retired" bit, the free half-open probe
//! slots and a generation that changes with every transition. A closed, clean key admits and
//! records a success with one atomic load each; everything else takes the key's mutex and runs
//! the state machine ([`machine`]), then publishes the word again and reports the transition.
//!
//! A slot is owned by its registry's map behind an `Arc`; futures and bodies of requests in flight
//! hold a clone and the generation they were admitted under. Evicting a key retires its slot (a
//! new generation, so late outcomes are ignored, and no more transitions are reported) and drops
//! the registry's reference: the slot is freed when the last request in flight for it ends.

mod home;
mod machine;
mod shared;
mod window;
mod word;

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use tokio::time::Instant;
use wsfirst_core::{BreakerKey, FailureKind, WsFailure};

pub(crate) use self::home::{Entry, Home, Map};
use self::{
    machine::Machine,
    shared::Origin,
    word::{
        CLOSED, DIRTY, FAR, FOREVER, HALF_OPEN, OPEN, PROBE_MASK, PROBE_ONE, RETIRED, STATE_MASK,
        free_probes, generation_of,
    },
};
use crate::{
    BreakerConfig, BreakerState, StoreEvent, Transition, Verdict, snapshot::KeySnapshot,
    transition::Events,
};

/// Why a key is evicted, which decides which keys may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// The key was idle for the idle timeout: any key but one whose pin (automatic or by hand)
    /// is still running or that has a probe in flight.
    Idle,
    /// The registry is full and this is one of its least recently used keys: any key but one
    /// pinned by hand whose pin is still running or that has a probe in flight.
    Room,
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

/// One key's breaker.
///
/// Laid out (`repr(C)`, 64-byte aligned, 192 bytes) so that the fields read on every request
/// ([`Hot`]) share their cache line only with fields written never ([`Slot::epoch`],
/// [`Slot::events`], [`Slot::home`]): the lock and the state machine, written while a key
/// records outcomes, take the two lines before it, and the `Arc`'s counts (written when a
/// service looks the key up, not per request) the line before those.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Slot {
    machine: Mutex<Machine>,
    hot: Hot,
    /// The registry's epoch, which [`Hot::until`] counts from.
    epoch: Instant,
    /// Where the registry's transitions go.
    events: Arc<Events>,
    /// The registry's map, to forget a key that a refused credential created (weak: the map
    /// owns the slot).
    home: Weak<Home>,
}

/// The fields read on every request (see [`Slot`] for the cache line they are on).
#[derive(Debug)]
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
        events: Arc<Events>,
        home: Weak<Home>,
        epoch: Instant,
        now: Instant,
    ) -> Arc<Slot> {
        let machine = Machine::new(key, config, now);
        let slot = Slot {
            hot: Hot {
                word: AtomicU64::new(0),
                until: AtomicU64::new(FOREVER),
                used: AtomicBool::new(true),
            },
            epoch,
            events,
            home,
            machine: Mutex::new(machine),
        };
        {
            let m = slot.lock();
            slot.publish(&m, true);
        }
        Arc::new(slot)
    }

    /// Marks the slot as no longer in its registry: services look the key up again, outcomes
    /// still in flight are ignored and nothing more is reported for it. Returns the state it
    /// was retired in.
    pub(crate) fn retire(&self) -> BreakerState {
        let mut m = self.lock();
        m.retire();
        self.publish(&m, true);
        m.state
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

    /// Whether the key was used since the last call (clears the mark; writes nothing when it
    /// was not, so that a sweep does not dirty the line of every idle key).
    pub(crate) fn take_used(&self) -> bool {
        self.hot.used.load(Ordering::Relaxed) && self.hot.used.swap(false, Ordering::Relaxed)
    }

    /// Stores the summary word (and deadline) for the machine's state. In half-open the probe
    /// counter is owned by compare-and-swap outside the lock, so the word is only stored when the
    /// state was just entered.
    fn publish(&self, m: &Machine, transitioned: bool) {
        if m.state == BreakerState::HalfOpen && !transitioned {
            return;
        }
        let until = word::encode_until(m.until, self.epoch);
        self.hot.until.store(until, Ordering::Release);
        // With a store, the fleet's probe slots are granted by it (`grant_probes`).
        let probes = if m.state == BreakerState::HalfOpen && !self.events.has_store() {
            m.config.inner.probes
        } else {
            0
        };
        let word = word::encode(m.state, m.dirty(), m.retired, probes, m.generation);
        self.hot.word.store(word, Ordering::Release);
    }

    /// Runs `f` under the lock, publishes, then emits the transition (outside the lock), unless
    /// the slot is retired, and tells the store (if any) about it.
    fn with<R>(&self, f: impl FnOnce(&mut Machine) -> (R, Option<Transition>)) -> R {
        self.run(Origin::Here, f)
    }

    /// [`Slot::with`] for a change by hand: the handle tells the store itself.
    fn with_by_hand<R>(&self, f: impl FnOnce(&mut Machine) -> (R, Option<Transition>)) -> R {
        self.run(Origin::ByHand, f)
    }

    fn run<R>(
        &self,
        origin: Origin<'_>,
        f: impl FnOnce(&mut Machine) -> (R, Option<Transition>),
    ) -> R {
        let (result, report, generation, probes) = {
            let mut m = self.lock();
            let (result, transition) = f(&mut m);
            self.publish(&m, transition.is_some());
            let transition = transition.filter(|_| !m.retired);
            (result, transition, m.generation, m.config.inner.probes)
        };
        if let Some(transition) = report {
            match origin {
                Origin::Here => {
                    self.events.emit(&transition);
                    self.tell_store(transition, generation, probes);
                }
                Origin::ByHand => self.events.emit(&transition),
                Origin::Shared(cause) => self.events.emit_shared(&transition, cause),
            }
        }
        result
    }

    /// The generation of a closed, live key: a single load, the whole closed-state admission.
    #[inline]
    pub(crate) fn closed_generation(&self) -> Option<u32> {
        let word = self.hot.word.load(Ordering::Acquire);
        (word & (STATE_MASK | RETIRED) == CLOSED).then(|| generation_of(word))
    }

    /// Whether the key is closed (retired or not): a request admitted while it was closed may
    /// still open a connection.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.hot.word.load(Ordering::Acquire) & STATE_MASK == CLOSED
    }

    /// Whether the key's classifier counts `failure` (a [`Verdict::Ignore`] does not).
    pub(crate) fn counts(&self, failure: &WsFailure) -> bool {
        self.lock().verdict(failure) != Verdict::Ignore
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
            nanos => Some(word::decode_until(nanos, self.epoch)),
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

    /// A closed-state attempt failed. A refused credential that is not counted
    /// ([`Verdict::Ignore`]) on a key that remembers nothing else forgets the key: a wrong
    /// credential must not create (or keep) a key.
    pub(crate) fn closed_failure(&self, generation: u32, failure: &WsFailure, now: Instant) {
        let (forget, counted) = self.with(|m| {
            let verdict = m.verdict(failure);
            let current = generation == m.generation && m.state == BreakerState::Closed;
            let forget = verdict == Verdict::Ignore
                && refuses_credential(failure)
                && current
                && m.is_blank();
            let transition = m.closed_failure(generation, failure, verdict, now);
            // A failure that tripped the key reaches the store as the transition.
            let counted = verdict == Verdict::Count && current && transition.is_none();
            let counted = (counted && self.events.has_store()).then(|| m.key().clone());
            ((forget, counted), transition)
        });
        if let Some(key) = counted {
            self.events.report(|| StoreEvent::Failure {
                key,
                cause: failure.to_string(),
            });
        }
        if forget {
            self.forget(generation);
        }
    }

    /// Removes the key from its registry if it still remembers nothing (under the map's lock,
    /// then the key's, the order of a sweep).
    #[cold]
    #[inline(never)]
    fn forget(&self, generation: u32) {
        if let Some(home) = self.home.upgrade() {
            home.forget(self, |slot| slot.retire_if_blank(generation));
        }
    }

    /// Retires the slot if it is still blank and of `generation`; returns its key if it did.
    pub(crate) fn retire_if_blank(&self, generation: u32) -> Option<BreakerKey> {
        let mut m = self.lock();
        if m.generation != generation || !m.is_blank() {
            return None;
        }
        m.retire();
        self.publish(&m, true);
        Some(m.key().clone())
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

    /// A probe failed; on a [`Verdict::Ignore`] the probe's slot is given back.
    pub(crate) fn probe_failure(&self, generation: u32, failure: &WsFailure, now: Instant) {
        let ignored = self.with(|m| {
            let verdict = m.verdict(failure);
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
            let verdict = m.verdict(failure);
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
        self.with_by_hand(|m| {
            if m.retired {
                return (false, None);
            }
            (true, m.pin(now, duration))
        })
    }

    /// Closes the key; returns whether it was open or half-open, or `None`, changing nothing, if
    /// the slot was retired.
    pub(crate) fn unpin(&self, now: Instant) -> Option<bool> {
        self.with_by_hand(|m| {
            if m.retired {
                return (None, None);
            }
            let transition = m.unpin(now);
            (Some(transition.is_some()), transition)
        })
    }

    /// Resets the key. Returns `false`, changing nothing, if the slot was retired.
    pub(crate) fn reset(&self, now: Instant) -> bool {
        self.with_by_hand(|m| {
            if m.retired {
                return (false, None);
            }
            (true, m.reset(now))
        })
    }

    /// Retires the slot if nothing needs it kept for `why`: closed; open with a pin that has
    /// ended ([`Eviction::Idle`]) or with any pin but a running one by hand ([`Eviction::Room`]);
    /// or half-open with no probe in flight. Returns the state it was retired in, if it was.
    ///
    /// The check and the retirement happen under the key's lock, so no transition lands between
    /// them; a half-open key first takes every free probe slot by compare-and-swap, so no probe
    /// is admitted on a key as it is evicted.
    pub(crate) fn retire_if(&self, why: Eviction, now: Instant) -> Option<BreakerState> {
        let mut m = self.lock();
        let evictable = match m.state {
            BreakerState::Closed => true,
            // A pin by hand until unpinned has no deadline; one for a period ends like any pin.
            BreakerState::Open => match why {
                Eviction::Idle => m.until.is_some_and(|until| now >= until),
                Eviction::Room => !m.pinned_by_hand(now),
            },
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
            m.retire();
            self.publish(&m, true);
        }
        evictable.then_some(m.state)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> KeySnapshot {
        let m = self.lock();
        let word = self.hot.word.load(Ordering::Acquire);
        let free = (generation_of(word) == m.generation).then(|| free_probes(word));
        m.snapshot(free, now)
    }
}

/// Whether `failure` says the request's credential was refused: the upgrade was answered 401
/// or 403. The credential is wrong, not the provider's WebSocket down.
fn refuses_credential(failure: &WsFailure) -> bool {
    matches!(
        failure.kind(),
        FailureKind::UpgradeStatus { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN
    )
}

#[cfg(test)]
mod tests;
