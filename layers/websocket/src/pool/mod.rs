//! The WebSocket connection [`Pool`]: per key, exclusive checkout, idle timeout, maximum age,
//! liveness check, coalesced handshakes, conversations that keep their socket, and clean close.
//!
//! This file holds the pool's handle, settings and books; the rest is one file per job:
//! [`key`] (what a connection is pooled under), [`checkout`] (reuse, open with a shared
//! handshake, or wait), [`conversation`] (which connection produced which response, and the
//! checkout of the one a request continues), [`pooled`] (a checked-out connection and its
//! return), [`connection`] (liveness, close, gauge) and [`reaper`] (closing expired idle
//! connections).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_websocket::{Pool, WebSocketConfig, WebSocketLayer};
//!
//! let pool = Pool::builder()
//!     .idle_timeout(Duration::from_secs(30))
//!     .max_connections_per_key(8)
//!     .conversation_wait(Duration::from_secs(10))
//!     .build()?;
//! // One layer per route, all sharing the pool (cloning a `Pool` shares it).
//! let chat = WebSocketLayer::with_pool(WebSocketConfig::default(), pool.clone());
//! let other = WebSocketLayer::with_pool(WebSocketConfig::default(), pool.clone());
//! assert!(chat.pool().same_pool(other.pool()));
//! assert_eq!(pool.connections(), 0);
//! # Ok::<(), wsfirst_websocket::ConfigError>(())
//! ```

mod checkout;
mod connection;
mod conversation;
mod key;
pub(crate) mod pooled;
mod reaper;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicU64},
    time::Duration,
};

use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use wsfirst_core::WsFailure;

use self::connection::{Conn, Idle, close_gracefully, gauge};
use self::conversation::Conversations;
pub(crate) use self::key::PoolKey;
use crate::ConfigError;

/// A shared pool of WebSocket connections.
///
/// Connections are pooled per key: the WebSocket URL, a fingerprint of the credentials sent in
/// the handshake, and the value of the configured affinity header (so a session's turns reuse
/// the connection that holds its server-side state). A connection serves one response at a time.
///
/// **Cloning a `Pool` shares it**: give clones to every [`WebSocketLayer`](crate::WebSocketLayer)
/// that should share connections (the facade builds one layer per route with one pool).
///
/// Defaults: idle timeout 60 s, maximum age 55 min (before the upstream's 60-minute connection
/// limit), 32 connections per key, conversation wait 5 s. While the pool holds idle
/// connections, a background task wakes every half idle timeout to close expired ones (under
/// paused tokio time, that timer is one the clock can auto-advance to). [`Pool::close`] closes
/// everything cleanly.
///
/// **Coalesced handshakes.** When a key has no idle connection and a handshake to it is in
/// flight, other requests for the key wait for that handshake's outcome (at most the handshake
/// timeout). If it fails, all of them fail at once with a clone of its failure, so 64 concurrent
/// requests against a dead endpoint cost one handshake. If it succeeds, its connection serves
/// the request that opened it, and the waiters then open their own connections in parallel (up
/// to the per-key maximum): the endpoint is known to be alive, so there is nothing left to
/// coalesce, and queueing them behind one connection would serialise their responses.
///
/// **A full key.** When a key has its maximum number of connections and none is idle, a request
/// waits for one to come free, at most the handshake timeout, then fails with a
/// [`FailureKind::Local`](wsfirst_core::FailureKind::Local) failure whose source is
/// [`PoolExhausted`](crate::PoolExhausted): the fallback layer replays it over HTTP and the
/// breaker does not count it. (Waiting rather than failing at once lets a strict route queue
/// briefly under a burst; raise the maximum if requests often wait.)
///
/// **Conversations keep their socket.** An upstream such as the OpenAI Responses API in
/// WebSocket mode keeps each connection's recent responses in that connection's memory, and
/// with `store: false` nowhere else (see [`responses::conversation`](crate::responses::conversation)).
/// So the pool remembers, per connection, the ids of the last
/// [`Pool::REMEMBERED_RESPONSES`] (8) responses it produced (learned from the answer's first
/// event through [`Codec::response_id`](crate::Codec::response_id); ids over 256 bytes are
/// ignored), and forgets them when the connection closes, expires or is dropped after a
/// cut-short answer: the memory is bounded by the connections themselves, whatever clients
/// send. A request that continues a response ([`Codec::continues`](crate::Codec::continues):
/// for the Responses API, any request with a `previous_response_id`, whatever its `store`) goes
/// to the connection of its key that produced it:
///
/// - idle: it takes it at once (unless the connection died while idle: then as "gone" below);
/// - busy: it waits for it, at most the conversation wait (default 5 s,
///   [`PoolBuilder::conversation_wait`]); meanwhile requests that continue nothing leave that
///   connection alone when it comes back;
/// - gone (closed by the upstream, expired, dropped), never seen, or still busy after the wait:
///   the request takes an idle or a new connection like any other, and the upstream's answer,
///   whatever it is (`previous_response_not_found` for a `store: false` response, the continued
///   answer when the upstream can load it), reaches the client unchanged.
///
/// A retry on a fresh connection (after a connection-scoped error event, or when the pooled
/// connection turned out dead) does not follow the conversation.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// The pool's settings and books, shared by every handle.
struct PoolInner {
    idle_timeout: Duration,
    max_age: Duration,
    max_per_key: usize,
    conversation_wait: Duration,
    /// The number of the next connection opened.
    next_conn: AtomicU64,
    state: Mutex<State>,
}

/// The books: per key, the idle connections, the count, and the handshake in flight.
#[derive(Default)]
struct State {
    keys: HashMap<PoolKey, Slot>,
    closed: bool,
    reaper: bool,
    next_handshake: u64,
}

/// The books of one key.
#[derive(Default)]
struct Slot {
    idle: Vec<Idle>,
    /// Connections counted against the maximum: idle, checked out, or being opened.
    open: usize,
    /// The coalesced handshake in flight: its id and the channel announcing its outcome.
    handshake: Option<(u64, Outcome)>,
    /// Woken when a connection is returned or a place under the maximum comes free.
    freed: Arc<Notify>,
    /// Which live connection produced which response, and who waits for which connection.
    conversations: Conversations,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.open == 0 && self.handshake.is_none()
    }
}
/// Where waiters learn the outcome of a coalesced handshake.
type Outcome = watch::Receiver<Option<Result<(), WsFailure>>>;

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (keys, idle) = {
            let state = self.lock();
            (
                state.keys.len(),
                state
                    .keys
                    .values()
                    .map(|slot| slot.idle.len())
                    .sum::<usize>(),
            )
        };
        f.debug_struct("Pool")
            .field("idle_timeout", &self.inner.idle_timeout)
            .field("max_age", &self.inner.max_age)
            .field("max_connections_per_key", &self.inner.max_per_key)
            .field("conversation_wait", &self.inner.conversation_wait)
            .field("keys", &keys)
            .field("idle", &idle)
            .finish()
    }
}

/// Builds a [`Pool`]; see [`Pool::builder`].
#[derive(Clone, Debug)]
pub struct PoolBuilder {
    idle_timeout: Duration,
    max_age: Duration,
    max_per_key: usize,
    conversation_wait: Duration,
}

impl PoolBuilder {
    /// How long an unused connection is kept (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The age at which a connection is retired, before the upstream's own limit (default
    /// 55 min). A connection serving a response is retired when the response ends.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// The most connections per key, idle, busy and opening together (default 32).
    pub fn max_connections_per_key(mut self, max: usize) -> Self {
        self.max_per_key = max;
        self
    }

    /// How long a request that continues a response waits for the busy connection that
    /// produced it before it takes another one (default 5 s; zero: it never waits, and
    /// follows its conversation only to an idle connection). See [`Pool`], "Conversations keep
    /// their socket".
    pub fn conversation_wait(mut self, wait: Duration) -> Self {
        self.conversation_wait = wait;
        self
    }

    /// Checks the values and builds the pool.
    pub fn build(self) -> Result<Pool, ConfigError> {
        ConfigError::check_duration("idle_timeout", self.idle_timeout)?;
        ConfigError::check_duration("max_age", self.max_age)?;
        if self.max_per_key == 0 {
            return Err(ConfigError::Zero {
                field: "max_connections_per_key",
            });
        }
        if self.conversation_wait > wsfirst_core::MAX_DURATION {
            return Err(ConfigError::TooLong {
                field: "conversation_wait",
                value: self.conversation_wait,
            });
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                idle_timeout: self.idle_timeout,
                max_age: self.max_age,
                max_per_key: self.max_per_key,
                conversation_wait: self.conversation_wait,
                next_conn: AtomicU64::new(1),
                state: Mutex::new(State::default()),
            }),
        })
    }
}

impl Pool {
    /// How many response ids the pool remembers per connection, the most recent ones (see
    /// "Conversations keep their socket" above): a request that continues an older response of
    /// the connection takes any connection.
    pub const REMEMBERED_RESPONSES: usize = 8;

    /// A pool with the defaults.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|error| unreachable!("default pool configuration is valid: {error}"))
    }

    /// Starts a pool configuration.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            idle_timeout: Duration::from_secs(60),
            max_age: Duration::from_secs(55 * 60),
            max_per_key: 32,
            conversation_wait: Duration::from_secs(5),
        }
    }

    /// Whether two handles share the same pool.
    pub fn same_pool(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// How many idle connections the pool holds, across keys.
    pub fn idle_connections(&self) -> usize {
        self.lock().keys.values().map(|slot| slot.idle.len()).sum()
    }

    /// How many connections the pool counts (idle, busy and opening), across keys.
    pub fn connections(&self) -> usize {
        self.lock().keys.values().map(|slot| slot.open).sum()
    }

    /// Closes the pool: idle connections are closed with a close frame (each within one second),
    /// busy ones when their response ends, and no new connection is opened.
    pub async fn close(&self) {
        let conns: Vec<Conn> = {
            let mut state = self.lock();
            state.closed = true;
            let mut conns = Vec::new();
            for slot in state.keys.values_mut() {
                for idle in slot.idle.drain(..) {
                    slot.open -= 1;
                    gauge("idle", -1.0);
                    slot.conversations.forget(&idle.conn);
                    conns.push(idle.conn);
                }
            }
            state.keys.retain(|_, slot| !slot.is_empty());
            conns
        };
        futures_util::future::join_all(conns.into_iter().map(close_gracefully)).await;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Stops counting `n` connections of `key` and wakes a waiter.
    fn forget(&self, key: &PoolKey, n: usize) {
        let mut state = self.lock();
        if let Some(slot) = state.keys.get_mut(key) {
            slot.open = slot.open.saturating_sub(n);
            slot.freed.notify_one();
            if slot.is_empty() && slot.idle.is_empty() {
                state.keys.remove(key);
            }
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the counters stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expired(&self, idle: &Idle, now: Instant) -> bool {
        now >= idle.since + self.idle_timeout || now >= idle.conn.created + self.max_age
    }
}
