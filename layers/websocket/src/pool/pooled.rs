//! A checked-out connection ([`Pooled`]) and its way back: returned to the pool after a
//! complete response, closed when dropped mid-response.

use std::fmt;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wsfirst_core::{Delivery, FailureKind, Phase, WsFailure};

use super::{
    Pool, PoolKey,
    connection::{Conn, Idle, Release, close_later, gauge, waiting},
};
use crate::connector::{WsStream, map_error};

/// A checked-out connection. [`release`](Self::release) returns it after a complete response;
/// dropping it closes it (a response was cut short, so the connection's state is unknown).
pub(crate) struct Pooled {
    pool: Pool,
    key: PoolKey,
    conn: Option<Conn>,
    reused: bool,
    /// Whether the request continues a response: what it produces is part of a chain.
    pub(super) continuing: bool,
}

impl Pooled {
    /// `conn`, checked out of `pool` for `key` (counted `in_use` by the caller).
    pub(super) fn new(pool: Pool, key: PoolKey, conn: Conn, reused: bool) -> Self {
        Self {
            pool,
            key,
            conn: Some(conn),
            reused,
            continuing: false,
        }
    }

    /// The WebSocket.
    pub(crate) fn stream(&mut self) -> &mut WsStream {
        &mut self
            .conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a pooled connection is present until released"))
            .stream
    }

    /// How long the answer read from this connection may go unpolled after handing out a
    /// frame ([`PoolBuilder::write_stall_timeout`](super::PoolBuilder::write_stall_timeout)).
    pub(crate) fn write_stall_timeout(&self) -> std::time::Duration {
        self.pool.inner.write_stall
    }

    /// Checks, without waiting, right before a request is written, that nothing but pings and
    /// pongs arrived on the connection since it was last used: else the upstream's close, the
    /// end of the stream, an error or a message nobody asked for came first, and the failure
    /// says so, as a `Send` failure of a request that was not sent ([`Delivery::Unsent`]).
    pub(crate) fn closed_before_write(&mut self) -> Option<WsFailure> {
        let kind = match waiting(self.stream())? {
            None | Some(Ok(Message::Close(None))) => FailureKind::Closed {
                code: None,
                reason: String::new(),
            },
            Some(Ok(Message::Close(Some(frame)))) => FailureKind::Closed {
                code: Some(u16::from(frame.code)),
                reason: frame.reason.to_string(),
            },
            Some(Err(error)) => {
                return Some(map_error(Phase::Send, error).with_delivery(Delivery::Unsent));
            }
            Some(Ok(_)) => FailureKind::Protocol(
                "a message arrived on the idle connection before the request was written".into(),
            ),
        };
        Some(WsFailure::new(Phase::Send, kind).with_delivery(Delivery::Unsent))
    }

    /// The headers of the connection's handshake answer that reach the client with each
    /// response it serves (see [`Opened`](super::Opened)).
    pub(crate) fn answer(&self) -> &http::HeaderMap {
        &self
            .conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("a pooled connection is present until released"))
            .answer
    }

    /// Whether the connection had served a response before.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// The connection's number in the pool.
    #[cfg(test)]
    pub(crate) fn id(&self) -> u64 {
        self.conn.as_ref().map_or(0, |conn| conn.id)
    }

    /// Remembers that this connection produced the response `response_id`, so that a request
    /// continuing it comes back here (see [`Pool`], "Conversations keep their socket"); not
    /// held for its conversation.
    #[cfg(test)]
    pub(crate) fn remember(&mut self, response_id: &str) {
        self.produced(response_id, false);
    }

    /// Remembers that this connection produced the response `response_id`, so that a request
    /// continuing it comes back here, and, when `hold` (the response lives only in the
    /// connection's memory), that the connection is held for it while idle (see [`Pool`],
    /// "Conversations own their socket").
    pub(crate) fn produced(&mut self, response_id: &str, hold: bool) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut state = self.pool.lock();
        if let Some(slot) = state.keys.get_mut(&self.key) {
            conn.chain = self.continuing;
            slot.conversations.remember(conn, response_id, hold);
        }
    }

    /// Returns the connection to the pool.
    pub(crate) fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            gauge("in_use", -1.0);
            self.pool.put_back(&self.key, conn);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            gauge("in_use", -1.0);
            self.pool.retire(&self.key, conn);
        }
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("key", &self.key)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Puts a connection back after a complete response; past the idle maximum, the idle
    /// connection returned longest ago is closed.
    pub(super) fn put_back(&self, key: &PoolKey, conn: Conn) {
        let now = Instant::now();
        let mut state = self.lock();
        let closed = state.closed;
        let Some(slot) = state.keys.get_mut(key) else {
            drop(state);
            close_later(conn);
            return;
        };
        if closed || now >= conn.created + self.inner.max_age {
            // Still counted open in its slot, so the slot outlives the unlocked moment.
            drop(state);
            self.retire(key, conn);
            return;
        }
        slot.idle.push(Idle { conn, since: now });
        slot.freed.notify_one();
        slot.conversations.bump();
        gauge("idle", 1.0);
        state.idle += 1;
        let evicted = if state.idle > self.inner.max_idle {
            state.take_oldest_idle(&self.inner, Release::Idle)
        } else {
            None
        };
        // Room for a request waiting under the total maximum: it can close this one.
        self.inner.room.notify_waiters();
        let start_reaper = !state.reaper;
        state.reaper = true;
        drop(state);
        if let Some(conn) = evicted {
            tracing::debug!(
                "too many idle websocket connections: closing the one returned longest ago"
            );
            close_later(conn);
        }
        if start_reaper {
            self.start_reaper();
        }
    }
}
