//! A slot's side of a shared store ([`crate::store`]): what it tells the store about its own
//! transitions, the fleet's state applied to it, and the probe slots the store grants.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{
    Slot,
    machine::Machine,
    word::{HALF_OPEN, PROBE_ONE, STATE_MASK, free_probes, generation_of},
};
use crate::{BreakerState, Shared, StoreEvent, Transition};

/// Where a change of a slot comes from, which decides what is told to the store.
#[derive(Clone, Copy, Debug)]
pub(super) enum Origin<'a> {
    /// This replica's requests: the store hears of it.
    Here,
    /// A change by hand: the handle tells the store itself.
    ByHand,
    /// The fleet's state, from the store (never told back), with the cause of a trip elsewhere.
    Shared(Option<&'a str>),
}

impl Slot {
    /// Tells the store (if any) about a transition of this replica's own. A key that went
    /// half-open asks for probe slots, and grants itself all of them if the store cannot take
    /// the request (the breaker must not wait on a store that is away).
    pub(super) fn tell_store(&self, transition: Transition, generation: u32, probes: u32) {
        if !self.events.has_store() {
            return;
        }
        if transition.to == BreakerState::HalfOpen {
            let key = transition.key;
            let taken = self.events.report(|| StoreEvent::ProbesWanted {
                key,
                generation,
                probes,
            });
            if !taken {
                self.grant_probes(generation, probes);
            }
        } else {
            self.events.report(|| StoreEvent::Transition(transition));
        }
    }

    /// Applies the fleet's state (see [`StoreLink::apply`](crate::StoreLink::apply)).
    pub(crate) fn adopt(&self, shared: &Shared, now: Instant) {
        let cause = match shared {
            Shared::Open { cause, .. } => cause.as_deref(),
            Shared::Closed { .. } => None,
        };
        self.run(Origin::Shared(cause), |m| {
            if m.retired {
                return ((), None);
            }
            ((), adopt(m, shared, now))
        });
    }

    /// Adds `probes` free probe slots to the half-open state of `generation`, up to the key's
    /// number. Returns whether the key is still in that state.
    pub(crate) fn grant_probes(&self, generation: u32, probes: u32) -> bool {
        let most = self.lock().config.inner.probes;
        let mut word = self.hot.word.load(Ordering::Acquire);
        loop {
            if word & STATE_MASK != HALF_OPEN || generation_of(word) != generation {
                return false;
            }
            let free = free_probes(word);
            let add = probes.min(most.saturating_sub(free));
            if add == 0 {
                return true;
            }
            match self.hot.word.compare_exchange_weak(
                word,
                word + u64::from(add) * PROBE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(current) => word = current,
            }
        }
    }
}

/// The machine's side of [`Slot::adopt`]: the transition to report, if the state changes.
fn adopt(m: &mut Machine, shared: &Shared, now: Instant) -> Option<Transition> {
    match *shared {
        Shared::Open {
            until,
            manual,
            trips,
            ..
        } => m.adopt_open(until, manual, trips, now),
        Shared::Closed { reset: true, .. } => m.reset(now),
        Shared::Closed { trips, .. } => {
            m.adopt_trips(trips);
            m.unpin(now)
        }
    }
}
