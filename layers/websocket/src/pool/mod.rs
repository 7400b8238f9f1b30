//! The WebSocket connection [`Pool`]: per key, exclusive checkout, idle timeout, maximum age,
//! the check for a close right before a write, coalesced handshakes, conversations that keep their socket, caps on
//! connections in total and idle in total, the write-stall deadline, and clean close.
//!
//! This file holds the pool's handle, settings and books; the rest is one file per job:
//! [`key`] (what a connection is pooled under), [`checkout`] (reuse, open with a shared
//! handshake, or wait), [`conversation`] (which connection produced which response, and the
//! checkout of the one a request continues), [`pooled`] (a checked-out connection and its
//! return, and the check before the write), [`connection`] (what waits on a connection, close,
//! gauge), [`reaper`] (closing expired idle
//! connections), [`stall`] (closing the connection of an answer nobody reads) and [`warm`]
//! (keeping [`min_idle`](PoolBuilder::min_idle) connections per key open ahead of requests).
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
//!     .max_connections(256)
//!     .max_idle_connections(64)
//!     .conversation_wait(Duration::from_secs(10))
//!     .conversation_hold(Duration::from_secs(300))
//!     .write_stall_timeout(Duration::from_secs(30))
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
mod shutdown;
pub(crate) mod stall;
#[cfg(test)]
mod tests;
mod warm;

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

pub(crate) use self::connection::Opened;
use self::connection::{Conn, Idle, Release, close_gracefully, gauge, released};
use self::conversation::Conversations;
pub(crate) use self::key::PoolKey;
use crate::{ConfigError, ConfigErrorKind, error::CONFIG};

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
/// limit), 32 connections per key, 1024 connections in total, 256 idle connections in total,
/// conversation wait 5 s, conversation hold 5 min, write-stall timeout 60 s, no warm connections. While the pool holds idle connections, a
/// background task wakes every half idle timeout to close expired ones (under paused tokio
/// time, that timer is one the clock can auto-advance to). [`Pool::close`] closes everything
/// cleanly.
///
/// **Bounded whatever clients send.** Keys vary with client headers (credentials) and affinity
/// values, so the per-key maximum alone bounds nothing: the pool also counts its connections
/// across keys. Past [`max_idle_connections`](PoolBuilder::max_idle_connections) idle ones, a
/// connection coming back closes the idle connection returned longest ago (whatever its key;
/// one that a continuing request waits for only when no other is idle). At
/// [`max_connections`](PoolBuilder::max_connections) (idle, busy and opening together), a
/// request that needs a new connection first closes the idle connection returned longest ago,
/// if there is one, and otherwise waits for a connection to close or come back, at most the
/// handshake timeout, then fails like a full key (below). Finding the idle connection returned
/// longest ago looks at the oldest idle connection of each key: at most
/// `max_idle_connections` of them, under the pool's lock, and only at a cap.
///
/// Memory: a connection costs about 1.5 KB in the pool's books (the WebSocket's state included)
/// plus its buffers: tungstenite's read buffer (128 KiB, allocated when it opens), its write
/// buffer (as large as the largest request written on it) and, on `wss://`, the TLS session's
/// (tens of KiB); plus the ids of its last [`Pool::REMEMBERED_RESPONSES`] responses (at most
/// 256 bytes each). A key's books cost about 400 bytes and go with its last connection. With
/// the defaults, idle connections hold at most about 256 × 130 KiB ≈ 33 MiB, and all
/// connections about 1024 × 130 KiB ≈ 130 MiB plus what their answers are reading.
///
/// **The write-stall deadline.** A streaming answer holds its connection while the caller reads
/// the body, and the socket is read only when the caller polls the body (so a slow reader slows
/// the upstream down rather than the answer piling up in memory). A caller that stops reading
/// (a client that no longer reads its socket, so the server no longer polls the body) would
/// hold the connection forever: when the body handed out a frame and is not polled again
/// within the [`write_stall_timeout`](PoolBuilder::write_stall_timeout) (default 60 s), the
/// connection is closed (never pooled again) and the body's next poll ends it with a
/// [`FailureKind::Local`](wsfirst_core::FailureKind::Local) failure in
/// [`Phase::MidStream`](wsfirst_core::Phase::MidStream) (the breaker does not count it). A
/// body that waits for the upstream's next event is being read: the idle timeout between
/// events governs it, not this deadline. A body nobody polls runs no code, so each streaming
/// answer has a small watchdog task that sleeps until the deadline and closes the connection;
/// it ends with the answer.
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
/// [`Pool::REMEMBERED_RESPONSES`] (64) responses it produced (learned from the answer's first
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
/// A request sent again on a fresh connection (see the crate docs, "When a request is sent
/// again") does not follow the conversation.
///
/// **Conversations own their socket.** The API keeps only the *latest* response of each lane
/// in a connection's memory (OpenAI's WebSocket-mode guide,
/// <https://developers.openai.com/api/docs/guides/websocket-mode>; the pool uses the default
/// lane only): any request served on a connection replaces what a conversation left there. So
/// an idle connection whose latest response lives only in its memory (the request said
/// `store: false`, [`Codec::holds`](crate::Codec::holds)) is **held** for its conversation for
/// the [`conversation_hold`](PoolBuilder::conversation_hold) (default 5 minutes, longer than an
/// agent's tool runs or a user's think time usually last; the connection stays open that long
/// even past the idle timeout): the conversation's next turn takes it, and every other request
/// takes another idle connection or opens one. Under pressure the hold used least recently is
/// given up first (holds of a conversation's first turn before those of longer
/// conversations), counted in `wsfirst_ws_pool_holds_released_total{reason}`: `key_full` (the
/// key has its maximum of connections and no other is idle: the request takes the held one),
/// `pool_full` (room for a new connection under the pool's maximum: held connections are
/// closed last) or `idle_full` (past the idle maximum). A conversation whose hold was given up
/// gets the upstream's `previous_response_not_found` on its next turn, as after a reconnect.
/// Responses produced with `store` not `false` are not held: any connection (and the HTTP
/// endpoint) can continue them. A client that sends one-shot `store: false` requests makes the
/// pool hold each of their connections: up to the per-key maximum, then the oldest holds go.
///
/// **Warm connections.** With [`min_idle`](PoolBuilder::min_idle) (default 0: off), the pool
/// keeps that many idle connections open per known key, so that the first request of a
/// conversation pays no handshake. A key is known once registered with [`Pool::warm`] (the
/// facade does it for each route whose credential is fixed, when the route is built) or once a
/// request of it ran (keys with an affinity value excepted); at most
/// `max_idle_connections / min_idle` keys are warm, the least recently used one is forgotten
/// past that. A background task opens them at once and again whenever a key has fewer idle
/// than `min_idle` (one was taken, retired at its maximum age, or closed by the upstream, seen
/// by the reaper), within the key's, the pool's and the idle maximum (closing nothing to make
/// room). The newest `min_idle` idle connections of a warm key do not expire at the idle
/// timeout, only at the maximum age. Each warm-up asks the key's
/// [`HandshakeGate`](wsfirst_core::HandshakeGate) (the one its latest request carried) first,
/// so nothing is opened while the breaker keeps the key off the WebSocket; it asks again every
/// second. A failed warm-up is not reported to the gate (no request failed) but backs the key
/// off, 1 s doubling to 1 min, one handshake at a time until one succeeds. A request that finds
/// a warm-up handshake in flight waits for it, as for a coalesced handshake. Counted in
/// `wsfirst_ws_pool_warm_total{outcome="opened"|"failed"}`. Closing the pool stops warming.
///
/// **Closed while idle.** A checked-out connection is not tested by the pool: right before the
/// request is written, the attempt checks without waiting whether the upstream's close (or the
/// end of the stream, or anything but pings and pongs) already arrived, and if so drops the
/// connection and sends the request on a fresh one, counted in `wsfirst_ws_resends_total`.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// The pool's settings and books, shared by every handle.
struct PoolInner {
    idle_timeout: Duration,
    max_age: Duration,
    max_per_key: usize,
    max_total: usize,
    max_idle: usize,
    conversation_wait: Duration,
    conversation_hold: Duration,
    write_stall: Duration,
    min_idle: usize,
    /// Woken when a warm key's idle count may have dropped (see [`warm`]).
    warm_wake: Arc<Notify>,
    /// The number of the next connection opened.
    next_conn: AtomicU64,
    /// Woken (all waiters) when a connection stops counting or comes back idle: requests
    /// waiting for room under the total maximum look again.
    room: Notify,
    /// Woken (all waiters) when the pool closes: the reaper ends at once rather than at its
    /// next tick.
    closing: Arc<Notify>,
    state: Mutex<State>,
}

/// The books: per key, the idle connections, the count, and the handshake in flight; and the
/// totals across keys.
#[derive(Default)]
struct State {
    keys: HashMap<PoolKey, Slot>,
    closed: bool,
    reaper: bool,
    next_handshake: u64,
    /// Connections counted against the total maximum: the sum of the keys' `open`.
    open: usize,
    /// Idle connections: the sum of the keys' `idle` lengths.
    idle: usize,
    /// The keys kept warm (see [`warm`]).
    warm: warm::Warm,
}

impl State {
    /// Takes the idle connection returned longest ago off the books (its places under the
    /// maxima freed, its responses forgotten), preferring one that no continuing request waits
    /// for, then one not held for its conversation (a hold given up is counted with
    /// `reason`); the caller closes it. Each key's idle list is in the order of return, so
    /// this looks at the first idle connections of each key only.
    fn take_oldest_idle(&mut self, inner: &PoolInner, reason: Release) -> Option<Conn> {
        let now = Instant::now();
        // (wanted, held, chain, since): the oldest of those no one waits for nor holds, else
        // the oldest held for a first turn, else for a longer conversation, else the oldest.
        type Rank = (bool, bool, bool, Instant);
        let mut oldest: Option<(Rank, &PoolKey, usize)> = None;
        for (key, slot) in &self.keys {
            for (index, idle) in slot.idle.iter().enumerate() {
                let wanted = slot.conversations.is_wanted(idle.conn.id);
                let held = inner.held(idle, now);
                let rank = (wanted, held, held && idle.conn.chain, idle.since);
                if oldest.as_ref().is_none_or(|(best, ..)| rank < *best) {
                    oldest = Some((rank, key, index));
                }
                if !wanted && !held {
                    break;
                }
            }
        }
        let ((_, held, ..), key, index) = oldest?;
        let key = key.clone();
        let slot = self.keys.get_mut(&key)?;
        let idle = slot.idle.remove(index);
        if held {
            released(reason);
        }
        gauge("idle", -1.0);
        slot.open -= 1;
        slot.freed.notify_one();
        slot.conversations.forget(&idle.conn);
        if slot.is_empty() && slot.idle.is_empty() {
            self.keys.remove(&key);
        }
        self.open -= 1;
        self.idle -= 1;
        inner.wake_warmer();
        Some(idle.conn)
    }

    /// Whether the totals are the sums of the keys' books (tests).
    #[cfg(test)]
    fn books_balance(&self) -> bool {
        let open: usize = self.keys.values().map(|slot| slot.open).sum();
        let idle: usize = self.keys.values().map(|slot| slot.idle.len()).sum();
        (open, idle) == (self.open, self.idle)
    }
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
            .field("max_connections", &self.inner.max_total)
            .field("max_idle_connections", &self.inner.max_idle)
            .field("conversation_wait", &self.inner.conversation_wait)
            .field("conversation_hold", &self.inner.conversation_hold)
            .field("write_stall_timeout", &self.inner.write_stall)
            .field("min_idle", &self.inner.min_idle)
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
    max_total: usize,
    max_idle: usize,
    conversation_wait: Duration,
    conversation_hold: Duration,
    write_stall: Duration,
    min_idle: usize,
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

    /// The most connections in total, across keys, idle, busy and opening together (default
    /// 1024; must not be zero). See [`Pool`], "Bounded whatever clients send".
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_total = max;
        self
    }

    /// The most idle connections in total, across keys (default 256; must not be zero): past
    /// it, the idle connection returned longest ago is closed. See [`Pool`], "Bounded whatever
    /// clients send".
    pub fn max_idle_connections(mut self, max: usize) -> Self {
        self.max_idle = max;
        self
    }

    /// How long a streaming answer's body may go unpolled after handing out a frame before its
    /// connection is closed and the body ends with an error (default 60 s; must not be zero).
    /// See [`Pool`], "The write-stall deadline".
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.write_stall = timeout;
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

    /// How long an idle connection whose latest response lives only in its memory (a
    /// `store: false` response of the Responses API, see [`Codec::holds`](crate::Codec::holds))
    /// is held for its conversation's next turn (default 5 min; zero: no holds): requests of
    /// other conversations take another connection meanwhile, and the connection stays open
    /// that long even past the idle timeout. See [`Pool`], "Conversations own their socket".
    pub fn conversation_hold(mut self, hold: Duration) -> Self {
        self.conversation_hold = hold;
        self
    }

    /// How many idle connections to keep open per known key, ahead of requests (default 0:
    /// connections are opened by requests only; at most
    /// [`max_connections_per_key`](Self::max_connections_per_key)). A key is known once the
    /// facade registers it ([`Pool::warm`]: a route whose credential is fixed, at start) or once
    /// a request of it (without an affinity value) ran. The pool opens them in the background
    /// at once, again when one is taken, closed by the upstream or retired at its maximum age,
    /// and once the breaker lets the key open connections again after a pin; they are exempt
    /// from the idle timeout. A failed warm-up backs off (1 s doubling to 1 min) and is not
    /// counted by the breaker. See [`Pool`], "Warm connections".
    ///
    /// ```
    /// use wsfirst_websocket::Pool;
    ///
    /// let pool = Pool::builder().min_idle(2).build()?;
    /// assert_eq!(pool.min_idle(), 2);
    /// let error = Pool::builder()
    ///     .max_connections_per_key(1)
    ///     .min_idle(2)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(error.field(), "min_idle");
    /// # Ok::<(), wsfirst_websocket::ConfigError>(())
    /// ```
    pub fn min_idle(mut self, min: usize) -> Self {
        self.min_idle = min;
        self
    }

    /// Checks the values and builds the pool.
    pub fn build(self) -> Result<Pool, ConfigError> {
        ConfigError::check_duration(CONFIG, "idle_timeout", self.idle_timeout)?;
        ConfigError::check_duration(CONFIG, "max_age", self.max_age)?;
        ConfigError::check_duration(CONFIG, "write_stall_timeout", self.write_stall)?;
        for (field, max) in [
            ("max_connections_per_key", self.max_per_key),
            ("max_connections", self.max_total),
            ("max_idle_connections", self.max_idle),
        ] {
            ConfigError::check_not_zero(CONFIG, field, max as u64)?;
        }
        ConfigError::check_max_duration(CONFIG, "conversation_wait", self.conversation_wait)?;
        ConfigError::check_max_duration(CONFIG, "conversation_hold", self.conversation_hold)?;
        // Never more warm connections than a key or the pool's idle ones may hold.
        let most = self.max_per_key.min(self.max_idle);
        if self.min_idle > most {
            return Err(ConfigError::new(
                CONFIG,
                "min_idle",
                ConfigErrorKind::TooLarge {
                    value: self.min_idle as u64,
                    max: most as u64,
                },
            ));
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                idle_timeout: self.idle_timeout,
                max_age: self.max_age,
                max_per_key: self.max_per_key,
                max_total: self.max_total,
                max_idle: self.max_idle,
                conversation_wait: self.conversation_wait,
                conversation_hold: self.conversation_hold,
                write_stall: self.write_stall,
                min_idle: self.min_idle,
                warm_wake: Arc::new(Notify::new()),
                next_conn: AtomicU64::new(1),
                room: Notify::new(),
                closing: Arc::new(Notify::new()),
                state: Mutex::new(State::default()),
            }),
        })
    }
}

/// The default [`PoolBuilder::conversation_hold`]: 5 minutes, longer than an agent's tool runs
/// and a user's think time between turns usually last, and well within the API's 60-minute
/// connection lifetime.
const DEFAULT_CONVERSATION_HOLD: Duration = Duration::from_secs(5 * 60);

impl Pool {
    /// How many response ids the pool remembers per connection, the most recent ones (see
    /// "Conversations keep their socket" above): a request that continues an older response of
    /// the connection takes any connection.
    pub const REMEMBERED_RESPONSES: usize = 64;

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
            max_total: 1024,
            max_idle: 256,
            conversation_wait: Duration::from_secs(5),
            conversation_hold: DEFAULT_CONVERSATION_HOLD,
            write_stall: Duration::from_secs(60),
            min_idle: 0,
        }
    }

    /// Whether two handles share the same pool.
    pub fn same_pool(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The [`min_idle`](PoolBuilder::min_idle) setting: idle connections kept open per known
    /// key.
    pub fn min_idle(&self) -> usize {
        self.inner.min_idle
    }

    /// How many idle connections the pool holds, across keys.
    pub fn idle_connections(&self) -> usize {
        self.lock().idle
    }

    /// How many connections the pool counts (idle, busy and opening), across keys.
    pub fn connections(&self) -> usize {
        self.lock().open
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
            state.open -= conns.len();
            state.idle -= conns.len();
            state.keys.retain(|_, slot| !slot.is_empty());
            // Nothing more is warmed; the handshakes the keys' requests carried go.
            state.warm.keys.clear();
            // Requests waiting for room find the pool closed; the reaper ends.
            self.inner.room.notify_waiters();
            self.inner.closing.notify_waiters();
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
            let n = n.min(slot.open);
            slot.open -= n;
            slot.freed.notify_one();
            if slot.is_empty() && slot.idle.is_empty() {
                state.keys.remove(key);
            }
            state.open -= n;
            self.inner.room.notify_waiters();
        }
        self.inner.wake_warmer();
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // The warmer waits for this (or a wake) and ends.
        self.closing.notify_waiters();
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the counters stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an idle connection is done: past the idle timeout (past its hold, when that is
    /// longer, for a connection held for its conversation; never for one of the `min_idle`
    /// kept warm, `warm`) or past the maximum age.
    fn expired(&self, idle: &Idle, now: Instant, warm: bool) -> bool {
        if warm {
            return now >= idle.conn.created + self.max_age;
        }
        let keep = if idle.conn.hold {
            self.idle_timeout.max(self.conversation_hold)
        } else {
            self.idle_timeout
        };
        now >= idle.since + keep || now >= idle.conn.created + self.max_age
    }

    /// Whether an idle connection is held for its conversation: its latest response lives only
    /// in its memory, and it came back less than the hold time ago.
    fn held(&self, idle: &Idle, now: Instant) -> bool {
        idle.conn.hold && now < idle.since + self.conversation_hold
    }
}
