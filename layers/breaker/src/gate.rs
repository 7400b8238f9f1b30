//! How the WebSocket layer tells a breaker of a failed handshake the moment it happens, not when
//! the HTTP answer that replaced it is done, and asks it before opening a connection, so that a
//! request admitted while its key was closed opens none once the key is no longer closed. So a
//! dead endpoint costs at most the threshold's number of handshakes, however many requests are in
//! flight.
//!
//! Two ways in, one observer (the key's [`Slot`]):
//!
//! - the [`HandshakeGates`] of the registry, handed to the WebSocket layer when the stack is
//!   built: asked only for a request that is about to open a connection and carries no gate of
//!   its own, so the closed-state path puts nothing in the request (a request served on a pooled
//!   connection never asks). It finds the key in the registry (never creates one: a key no
//!   breaker looked up is watched by none) and gates the request as admitted on the key as it is
//!   now: closed, it may open and its failure counts in the key's current generation; not closed,
//!   it may not (a strict request gets no gate: its failure goes back with its answer);
//! - a [`HandshakeGate`] in the request's extensions, from [`gate`]: for what the registry cannot
//!   tell afterwards (a probe of a half-open key, a strict request on an open key). It holds the
//!   request's hold on its key ([`Cached`]) and a token with how it was admitted, so making one
//!   allocates nothing but the extension's box.
//!
//! A failure the gate counted travels back marked [`shared`](WsFailure::shared): the response
//! future does not count it again (a shared failure's verdict is always
//! [`Verdict::Ignore`](crate::Verdict::Ignore)). A failure the key's classifier ignores is left to
//! the response future, as before (a probe's slot goes back there, a refused credential forgets the
//! key there).

use std::sync::Arc;

use http::HeaderMap;
use tokio::time::Instant;
use wsfirst_core::{
    HandshakeGate, HandshakeGates, HandshakeObserver, Route, TransportMode, WsFailure,
};

use crate::{BreakerRegistry, cache::Cached, future::Ticket, slot::Slot};

/// How a request was admitted, in the token's bits 32 and up.
const CLOSED: u64 = 0;
const PROBE: u64 = 1 << 32;
const OBSERVE: u64 = 2 << 32;
/// Asked by a request admitted while its key was closed that is about to open a connection
/// after the key left the closed state: it may not.
const REFUSE: u64 = 3 << 32;
const KIND_MASK: u64 = 3 << 32;
/// A request of a strict route: never kept off the WebSocket.
const STRICT: u64 = 1 << 34;

/// The gate a request admitted with `ticket` carries: only a probe's and an observed (strict)
/// request's; `None` for a request admitted on a closed key (the registry gates it) and for a
/// ticket that reports nothing.
#[inline]
pub(crate) fn gate(cached: &Arc<Cached>, ticket: &Ticket, strict: bool) -> Option<HandshakeGate> {
    let token = match ticket {
        // The registry gates it, when it is about to open a connection.
        Ticket::Closed { .. } => return None,
        Ticket::Probe { generation, .. } => PROBE | u64::from(*generation),
        Ticket::Observe { generation, .. } => OBSERVE | u64::from(*generation),
        Ticket::Spent | Ticket::Missing(_) => return None,
    };
    let token = if strict { token | STRICT } else { token };
    let observer: Arc<dyn HandshakeObserver> = cached.clone();
    Some(HandshakeGate::new(observer, token))
}

impl HandshakeObserver for Cached {
    #[inline]
    fn may_open(&self, token: u64) -> bool {
        self.slot.may_open(token)
    }

    fn failed(&self, token: u64, failure: &WsFailure) -> bool {
        self.slot.failed(token, failure)
    }
}

impl HandshakeObserver for Slot {
    /// A request admitted while the key was closed may open a connection while it still is;
    /// probes and strict requests always may.
    #[inline]
    fn may_open(&self, token: u64) -> bool {
        match token & KIND_MASK {
            REFUSE => false,
            _ => token & (KIND_MASK | STRICT) != CLOSED || self.is_closed(),
        }
    }

    fn failed(&self, token: u64, failure: &WsFailure) -> bool {
        if token & KIND_MASK == REFUSE || !self.counts(failure) {
            return false;
        }
        let generation = token as u32;
        let now = Instant::now();
        match token & KIND_MASK {
            CLOSED => self.closed_failure(generation, failure, now),
            PROBE => self.probe_failure(generation, failure, now),
            _ => self.observe_failure(generation, failure, now),
        }
        true
    }
}

impl HandshakeGates for BreakerRegistry {
    /// The gate of a request on `route` whose key a breaker watches, as the key is now: closed,
    /// it may open and its failure counts in the key's current generation; not closed, it may
    /// not (a strict request gets no gate). Never creates a key. Asked only when a connection is
    /// about to be opened: it computes the key (the credential's fingerprint) and reads the
    /// registry.
    fn gate(&self, route: &Route, headers: &HeaderMap) -> Option<HandshakeGate> {
        let slot = self.existing(&route.breaker_key_for(headers))?;
        let strict = route.mode() == TransportMode::WebSocket;
        let token = match slot.closed_generation() {
            Some(generation) if strict => CLOSED | STRICT | u64::from(generation),
            Some(generation) => CLOSED | u64::from(generation),
            None if strict => return None,
            None => REFUSE,
        };
        let observer: Arc<dyn HandshakeObserver> = slot;
        Some(HandshakeGate::new(observer, token))
    }
}
