//! The [`HandshakeGate`] a WebSocket request carries to the WebSocket layer: a failed handshake
//! is counted the moment it happens, not when the HTTP answer that replaced it is done, and a
//! request admitted while its key was closed opens no connection once the key is no longer
//! closed. So a dead endpoint costs at most the threshold's number of handshakes, however many
//! requests are in flight.
//!
//! The gate is the request's hold on its key (the remembered entry, [`Cached`]) and a token with
//! how it was admitted, so making one allocates nothing but the extension's box. A failure the
//! gate counted travels back marked [`shared`](WsFailure::shared): the response future does not
//! count it again (a shared failure's verdict is always [`Verdict::Ignore`](crate::Verdict::Ignore)). A failure the key's classifier ignores is
//! left to the response future, as before (a probe's slot goes back there, a refused credential
//! forgets the key there).

use std::sync::Arc;

use tokio::time::Instant;
use wsfirst_core::{HandshakeGate, HandshakeObserver, WsFailure};

use crate::{cache::Cached, future::Ticket};

/// How a request was admitted, in the token's bits 32 and up.
const CLOSED: u64 = 0;
const PROBE: u64 = 1 << 32;
const OBSERVE: u64 = 2 << 32;
const KIND_MASK: u64 = 3 << 32;
/// A request of a strict route: never kept off the WebSocket.
const STRICT: u64 = 1 << 34;

/// The gate of a request admitted with `ticket` (`None` for a ticket that reports nothing).
#[inline]
pub(crate) fn gate(cached: &Arc<Cached>, ticket: &Ticket, strict: bool) -> Option<HandshakeGate> {
    let token = match ticket {
        Ticket::Closed { generation, .. } => CLOSED | u64::from(*generation),
        Ticket::Probe { generation, .. } => PROBE | u64::from(*generation),
        Ticket::Observe { generation, .. } => OBSERVE | u64::from(*generation),
        Ticket::Spent | Ticket::Missing(_) => return None,
    };
    let token = if strict { token | STRICT } else { token };
    let observer: Arc<dyn HandshakeObserver> = cached.clone();
    Some(HandshakeGate::new(observer, token))
}

impl HandshakeObserver for Cached {
    /// A request admitted while the key was closed may open a connection while it still is;
    /// probes and strict requests always may.
    #[inline]
    fn may_open(&self, token: u64) -> bool {
        token & (KIND_MASK | STRICT) != CLOSED || self.slot.is_closed()
    }

    fn failed(&self, token: u64, failure: &WsFailure) -> bool {
        if !self.slot.counts(failure) {
            return false;
        }
        let generation = token as u32;
        let now = Instant::now();
        match token & KIND_MASK {
            CLOSED => self.slot.closed_failure(generation, failure, now),
            PROBE => self.slot.probe_failure(generation, failure, now),
            _ => self.slot.observe_failure(generation, failure, now),
        }
        true
    }
}
