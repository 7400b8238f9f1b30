//! The WebSocket connection [`Pool`]: per key, exclusive checkout, idle timeout, maximum age,
//! liveness check, coalesced handshakes and clean close.
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
//!     .build()?;
//! // One layer per route, all sharing the pool (cloning a `Pool` shares it).
//! let chat = WebSocketLayer::new(WebSocketConfig::default()).with_pool(pool.clone());
//! let other = WebSocketLayer::new(WebSocketConfig::default()).with_pool(pool.clone());
//! assert!(chat.pool().same_pool(other.pool()));
//! # Ok::<(), wsfirst_websocket::ConfigError>(())
//! ```

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderName, Uri};
use tokio::{
    sync::{Notify, watch},
    time::{Instant, timeout_at},
};
use tokio_tungstenite::tungstenite::Message;
use wsfirst_core::{FailureKind, Fingerprint, Phase, Route, WsFailure};

use crate::{ConfigError, PoolExhausted, connector::WsStream};

/// How long a graceful close may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a pool key is made of: the WebSocket URL, a fingerprint of the credentials sent in the
/// handshake, and the optional affinity value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    url: Arc<str>,
    credential: Option<Fingerprint>,
    affinity: Option<Fingerprint>,
}

impl PoolKey {
    /// The key of a request to `url` whose handshake carries `handshake` headers.
    ///
    /// The credential fingerprint covers the route's fixed credential (if any) and every header
    /// forwarded to the handshake (`Authorization`, organization, project...), so a connection
    /// opened for one credential is never used for another.
    pub(crate) fn new(
        url: &Uri,
        route: &Route,
        handshake: &HeaderMap,
        affinity_header: Option<&HeaderName>,
        request: &HeaderMap,
    ) -> Self {
        let fixed = route.breaker_key().credential();
        let credential = if fixed.is_none() && handshake.is_empty() {
            None
        } else {
            let mut hasher = std::hash::DefaultHasher::new();
            fixed.hash(&mut hasher);
            for (name, value) in handshake {
                name.as_str().hash(&mut hasher);
                value.as_bytes().hash(&mut hasher);
            }
            Some(Fingerprint::of(hasher.finish().to_le_bytes()))
        };
        let affinity = affinity_header
            .and_then(|name| request.get(name))
            .map(|value| Fingerprint::of(value.as_bytes()));
        Self {
            url: url.to_string().into(),
            credential,
            affinity,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(url: &str, affinity: Option<&str>) -> Self {
        Self {
            url: url.into(),
            credential: None,
            affinity: affinity.map(Fingerprint::of),
        }
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKey")
            .field("url", &self.url)
            .field("credential", &self.credential)
            .field("affinity", &self.affinity)
            .finish()
    }
}

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
/// limit), 32 connections per key. While the pool holds idle connections, a background task
/// wakes every half idle timeout to close expired ones (under paused tokio time, that timer is
/// one the clock can auto-advance to). [`Pool::close`] closes everything cleanly.
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
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    idle_timeout: Duration,
    max_age: Duration,
    max_per_key: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<PoolKey, Slot>,
    closed: bool,
    reaper: bool,
    next_handshake: u64,
}

#[derive(Default)]
struct Slot {
    idle: Vec<Idle>,
    /// Connections counted against the maximum: idle, checked out, or being opened.
    open: usize,
    /// The coalesced handshake in flight: its id and the channel announcing its outcome.
    handshake: Option<(u64, Outcome)>,
    /// Woken when a connection is returned or a place under the maximum comes free.
    freed: Arc<Notify>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.open == 0 && self.handshake.is_none()
    }
}

type Outcome = watch::Receiver<Option<Result<(), WsFailure>>>;
/// The announcer of a coalesced handshake: its id and the sender of its outcome.
type Announce = (u64, watch::Sender<Option<Result<(), WsFailure>>>);

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A connection and its birth time.
pub(crate) struct Conn {
    pub(crate) stream: WsStream,
    created: Instant,
}

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

    /// Checks the values and builds the pool.
    pub fn build(self) -> Result<Pool, ConfigError> {
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "idle_timeout",
                "must be greater than zero",
            ));
        }
        if self.max_age.is_zero() {
            return Err(ConfigError::new("max_age", "must be greater than zero"));
        }
        for (field, value) in [
            ("idle_timeout", self.idle_timeout),
            ("max_age", self.max_age),
        ] {
            if value > wsfirst_core::MAX_DURATION {
                return Err(ConfigError::new(field, "must be at most 100 years"));
            }
        }
        if self.max_per_key == 0 {
            return Err(ConfigError::new(
                "max_connections_per_key",
                "must be at least 1",
            ));
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                idle_timeout: self.idle_timeout,
                max_age: self.max_age,
                max_per_key: self.max_per_key,
                state: Mutex::new(State::default()),
            }),
        })
    }
}

fn gauge(state: &'static str, delta: f64) {
    metrics::gauge!("wsfirst_ws_pool_connections", "state" => state).increment(delta);
}

/// Closes a connection with a close frame, in the background when a runtime is available.
fn close_later(conn: Conn) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(close_gracefully(conn));
    }
}

async fn close_gracefully(mut conn: Conn) {
    let _ = tokio::time::timeout(CLOSE_GRACE, conn.stream.close(None)).await;
}

/// Whether a pooled connection still looks alive: nothing but pings and pongs is waiting on it,
/// and it has not been closed. Never waits.
fn is_alive(stream: &mut WsStream) -> bool {
    loop {
        match stream.next().now_or_never() {
            None => return true,
            Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            // A close, an error, the end of the stream, or a message nobody asked for.
            Some(_) => return false,
        }
    }
}

impl Pool {
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

    /// Checks a connection out for `key`: an idle live one unless `fresh`, else a new one opened
    /// with `connect` (coalesced with a handshake already in flight for the key).
    pub(crate) async fn checkout<C, F>(
        &self,
        key: &PoolKey,
        fresh: bool,
        handshake_timeout: Duration,
        connect: C,
    ) -> Result<Pooled, WsFailure>
    where
        C: Fn() -> F,
        F: Future<Output = Result<WsStream, WsFailure>>,
    {
        enum Step {
            Reuse(Box<Conn>),
            Open(Option<Announce>),
            Wait(Outcome),
            Full(Arc<Notify>),
        }
        let deadline = Instant::now() + handshake_timeout;
        let mut coalesce = true;
        loop {
            let step = {
                let mut state = self.lock();
                if state.closed {
                    return Err(WsFailure::new(
                        Phase::Connect,
                        FailureKind::Local("the websocket pool is closed".into()),
                    ));
                }
                let now = Instant::now();
                let next_id = state.next_handshake;
                let slot = state.keys.entry(key.clone()).or_default();
                let mut reuse = None;
                if !fresh {
                    while let Some(idle) = slot.idle.pop() {
                        gauge("idle", -1.0);
                        if self.inner.expired(&idle, now) {
                            slot.open -= 1;
                            close_later(idle.conn);
                            continue;
                        }
                        reuse = Some(idle.conn);
                        break;
                    }
                }
                match (reuse, &slot.handshake) {
                    (Some(conn), _) => Step::Reuse(Box::new(conn)),
                    (None, Some((_, outcome))) if coalesce => Step::Wait(outcome.clone()),
                    (None, _) if slot.open >= self.inner.max_per_key => {
                        Step::Full(slot.freed.clone())
                    }
                    (None, handshake) => {
                        slot.open += 1;
                        if handshake.is_none() {
                            let (tx, rx) = watch::channel(None);
                            slot.handshake = Some((next_id, rx));
                            state.next_handshake += 1;
                            Step::Open(Some((next_id, tx)))
                        } else {
                            Step::Open(None)
                        }
                    }
                }
            };
            match step {
                Step::Reuse(mut conn) => {
                    if is_alive(&mut conn.stream) {
                        gauge("in_use", 1.0);
                        return Ok(self.pooled(key, *conn, true));
                    }
                    // Replaced without counting as a failure: the upstream closed it while idle.
                    tracing::debug!("pooled websocket connection found dead, replacing it");
                    self.forget(key, 1);
                    close_later(*conn);
                }
                Step::Open(announce) => {
                    let mut guard = Opening {
                        pool: self,
                        key,
                        announce,
                        counted: true,
                    };
                    let result = connect().await;
                    guard.announce(result.as_ref().map(|_| ()).map_err(Clone::clone));
                    let stream = result?;
                    guard.counted = false;
                    gauge("in_use", 1.0);
                    let conn = Conn {
                        stream,
                        created: Instant::now(),
                    };
                    return Ok(self.pooled(key, conn, false));
                }
                Step::Wait(mut outcome) => {
                    let waited = timeout_at(deadline, outcome.wait_for(Option::is_some)).await;
                    match waited {
                        Err(_) => {
                            return Err(WsFailure::new(
                                Phase::Handshake,
                                FailureKind::Timeout(handshake_timeout),
                            ));
                        }
                        // The opener was cancelled: try again (someone else will lead).
                        Ok(Err(_)) => {}
                        Ok(Ok(result)) => {
                            if let Some(Err(failure)) = &*result {
                                return Err(failure.clone());
                            }
                            coalesce = false;
                        }
                    }
                }
                Step::Full(freed) => {
                    if timeout_at(deadline, freed.notified()).await.is_err() {
                        return Err(WsFailure::new(
                            Phase::Connect,
                            FailureKind::Local(format!(
                                "every websocket connection of this key stayed busy for {handshake_timeout:?}"
                            )),
                        )
                        .with_source(PoolExhausted {
                            max: self.inner.max_per_key,
                        }));
                    }
                }
            }
        }
    }

    fn pooled(&self, key: &PoolKey, conn: Conn, reused: bool) -> Pooled {
        Pooled {
            pool: self.clone(),
            key: key.clone(),
            conn: Some(conn),
            reused,
        }
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

    /// Puts a connection back after a complete response.
    fn release(&self, key: &PoolKey, conn: Conn) {
        let now = Instant::now();
        let mut state = self.lock();
        let closed = state.closed;
        let Some(slot) = state.keys.get_mut(key) else {
            drop(state);
            close_later(conn);
            return;
        };
        if closed || now >= conn.created + self.inner.max_age {
            slot.open = slot.open.saturating_sub(1);
            slot.freed.notify_one();
            if slot.is_empty() && slot.idle.is_empty() {
                state.keys.remove(key);
            }
            drop(state);
            close_later(conn);
            return;
        }
        slot.idle.push(Idle { conn, since: now });
        slot.freed.notify_one();
        gauge("idle", 1.0);
        let start_reaper = !state.reaper;
        state.reaper = true;
        drop(state);
        if start_reaper {
            self.start_reaper();
        }
    }

    /// Closes expired idle connections in the background, so sockets do not linger for keys
    /// that see no more requests (such as finished sessions' affinity keys). The task runs only
    /// while the pool holds idle connections, and ends with the pool.
    fn start_reaper(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.lock().reaper = false;
            return;
        };
        let weak: Weak<PoolInner> = Arc::downgrade(&self.inner);
        let period = (self.inner.idle_timeout / 2).max(Duration::from_millis(100));
        handle.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let (expired, more) = inner.reap(Instant::now());
                drop(inner);
                for conn in expired {
                    close_gracefully(conn).await;
                }
                if !more {
                    return;
                }
            }
        });
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

    /// Takes the expired idle connections out; also says whether idle ones remain (if not, the
    /// reaper stops, and the next returned connection starts it again).
    fn reap(&self, now: Instant) -> (Vec<Conn>, bool) {
        let mut state = self.lock();
        let mut expired = Vec::new();
        for slot in state.keys.values_mut() {
            let mut kept = Vec::with_capacity(slot.idle.len());
            for idle in slot.idle.drain(..) {
                if self.expired(&idle, now) {
                    slot.open = slot.open.saturating_sub(1);
                    gauge("idle", -1.0);
                    expired.push(idle.conn);
                } else {
                    kept.push(idle);
                }
            }
            slot.idle = kept;
        }
        state
            .keys
            .retain(|_, slot| !(slot.is_empty() && slot.idle.is_empty()));
        let more = state.keys.values().any(|slot| !slot.idle.is_empty());
        if !more {
            state.reaper = false;
        }
        (expired, more)
    }
}

/// A connection being opened: announces the outcome to coalesced waiters and gives its place
/// back if the opening fails or is cancelled.
struct Opening<'a> {
    pool: &'a Pool,
    key: &'a PoolKey,
    announce: Option<Announce>,
    counted: bool,
}

impl Opening<'_> {
    fn announce(&mut self, outcome: Result<(), WsFailure>) {
        if let Some((id, tx)) = self.announce.take() {
            self.clear(id);
            let _ = tx.send(Some(outcome));
        }
    }

    fn clear(&self, id: u64) {
        let mut state = self.pool.lock();
        if let Some(slot) = state.keys.get_mut(self.key) {
            if matches!(slot.handshake, Some((current, _)) if current == id) {
                slot.handshake = None;
            }
        }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let Some((id, _tx)) = self.announce.take() {
            // Cancelled before the outcome: dropping the sender wakes the waiters to retry.
            self.clear(id);
        }
        if self.counted {
            self.pool.forget(self.key, 1);
        }
    }
}

/// A checked-out connection. [`release`](Self::release) returns it after a complete response;
/// dropping it closes it (a response was cut short, so the connection's state is unknown).
pub(crate) struct Pooled {
    pool: Pool,
    key: PoolKey,
    conn: Option<Conn>,
    reused: bool,
}

impl Pooled {
    /// The WebSocket.
    pub(crate) fn stream(&mut self) -> &mut WsStream {
        &mut self
            .conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a pooled connection is present until released"))
            .stream
    }

    /// Whether the connection had served a response before.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// Returns the connection to the pool.
    pub(crate) fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            gauge("in_use", -1.0);
            self.pool.release(&self.key, conn);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            gauge("in_use", -1.0);
            self.pool.forget(&self.key, 1);
            close_later(conn);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::protocol::Role};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A connected client WebSocket and its server end, without an HTTP upgrade (no timers).
    async fn pair() -> (WsStream, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client = WebSocketStream::from_raw_socket(
            MaybeTlsStream::Plain(client.unwrap()),
            Role::Client,
            None,
        )
        .await;
        let server = WebSocketStream::from_raw_socket(server.unwrap().0, Role::Server, None).await;
        (client, server)
    }

    /// `n` prepared connections handed out by a counting connect function.
    struct Connector {
        clients: Mutex<Vec<WsStream>>,
        servers: Mutex<Vec<WebSocketStream<TcpStream>>>,
        connects: AtomicUsize,
    }

    impl Connector {
        async fn new(n: usize) -> Arc<Self> {
            let mut clients = Vec::new();
            let mut servers = Vec::new();
            for _ in 0..n {
                let (client, server) = pair().await;
                clients.push(client);
                servers.push(server);
            }
            clients.reverse();
            Arc::new(Self {
                clients: Mutex::new(clients),
                servers: Mutex::new(servers),
                connects: AtomicUsize::new(0),
            })
        }

        fn connect(&self) -> impl Future<Output = Result<WsStream, WsFailure>> + use<> {
            self.connects.fetch_add(1, Ordering::SeqCst);
            let client = self.clients.lock().unwrap().pop();
            async move { Ok(client.expect("the test prepared enough connections")) }
        }

        fn connects(&self) -> usize {
            self.connects.load(Ordering::SeqCst)
        }
    }

    async fn checkout(pool: &Pool, key: &PoolKey, connector: &Arc<Connector>) -> Pooled {
        pool.checkout(key, false, TIMEOUT, || connector.connect())
            .await
            .unwrap()
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let cases = [
            (Pool::builder().idle_timeout(Duration::ZERO), "idle_timeout"),
            (Pool::builder().max_age(Duration::ZERO), "max_age"),
            (Pool::builder().max_age(Duration::MAX), "max_age"),
            (Pool::builder().idle_timeout(Duration::MAX), "idle_timeout"),
            (
                Pool::builder().max_connections_per_key(0),
                "max_connections_per_key",
            ),
        ];
        for (builder, field) in cases {
            let error = builder.build().unwrap_err();
            assert_eq!(error.field(), field, "{error}");
        }
    }

    #[tokio::test]
    async fn released_connection_is_reused_for_the_same_key_only() {
        let pool = Pool::new();
        let connector = Connector::new(3).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        let first = checkout(&pool, &key, &connector).await;
        assert!(!first.reused());
        first.release();
        assert_eq!(pool.idle_connections(), 1);
        let second = checkout(&pool, &key, &connector).await;
        assert!(second.reused());
        assert_eq!(connector.connects(), 1);
        second.release();

        // Another affinity value is another key, with a connection of its own.
        let session = PoolKey::for_test("ws://a/v1", Some("session-1"));
        let third = checkout(&pool, &session, &connector).await;
        assert!(!third.reused());
        assert_eq!(connector.connects(), 2);
        assert_eq!(pool.connections(), 2);
    }

    #[tokio::test]
    async fn dropped_checkout_is_closed_not_pooled() {
        let pool = Pool::new();
        let connector = Connector::new(2).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        drop(checkout(&pool, &key, &connector).await);
        assert_eq!(pool.connections(), 0);
        assert!(!checkout(&pool, &key, &connector).await.reused());
        assert_eq!(connector.connects(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_expire() {
        let pool = Pool::builder()
            .idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let connector = Connector::new(3).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        checkout(&pool, &key, &connector).await.release();
        tokio::time::advance(Duration::from_secs(59)).await;
        let again = checkout(&pool, &key, &connector).await;
        assert!(again.reused(), "still fresh after 59 s");
        again.release();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!checkout(&pool, &key, &connector).await.reused());
        assert_eq!(connector.connects(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_retire_at_max_age() {
        let pool = Pool::builder()
            .idle_timeout(Duration::from_secs(3600))
            .max_age(Duration::from_secs(600))
            .build()
            .unwrap();
        let connector = Connector::new(2).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        let conn = checkout(&pool, &key, &connector).await;
        tokio::time::advance(Duration::from_secs(300)).await;
        conn.release();
        let conn = checkout(&pool, &key, &connector).await;
        assert!(conn.reused());
        // Busy past its maximum age: retired when released, not pooled.
        tokio::time::advance(Duration::from_secs(301)).await;
        conn.release();
        assert_eq!(pool.idle_connections(), 0);
        assert!(!checkout(&pool, &key, &connector).await.reused());
        assert_eq!(connector.connects(), 2);
    }

    #[tokio::test]
    async fn dead_idle_connection_is_replaced_silently() {
        let pool = Pool::new();
        let connector = Connector::new(2).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        checkout(&pool, &key, &connector).await.release();
        // The upstream closes the idle connection.
        let mut server = connector.servers.lock().unwrap().remove(0);
        server.close(None).await.unwrap();
        drop(server);
        tokio::task::yield_now().await;
        let conn = checkout(&pool, &key, &connector).await;
        assert!(!conn.reused());
        assert_eq!(connector.connects(), 2);
        assert_eq!(pool.connections(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_failing_handshake() {
        let pool = Pool::new();
        let connects = Arc::new(AtomicUsize::new(0));
        let failure = WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                body: "down".into(),
            },
        );
        let key = PoolKey::for_test("ws://dead/v1", None);
        let attempts = (0..64).map(|_| {
            let connects = connects.clone();
            let failure = failure.clone();
            pool.checkout(&key, false, TIMEOUT, move || {
                connects.fetch_add(1, Ordering::SeqCst);
                let failure = failure.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Err::<WsStream, _>(failure)
                }
            })
        });
        let results = futures_util::future::join_all(attempts).await;
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        for result in results {
            assert_eq!(result.unwrap_err(), failure);
        }
        assert_eq!(pool.connections(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_successful_handshake_waiters_open_their_own() {
        let pool = Pool::new();
        let connector = Connector::new(4).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        let attempts = (0..4).map(|_| {
            let connector = connector.clone();
            pool.checkout(&key, false, TIMEOUT, move || {
                let connect = connector.connect();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    connect.await
                }
            })
        });
        let conns: Vec<_> = futures_util::future::join_all(attempts).await;
        assert!(conns.iter().all(Result::is_ok));
        assert_eq!(connector.connects(), 4);
        assert_eq!(pool.connections(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn full_key_waits_for_a_release_then_gives_up() {
        let pool = Pool::builder().max_connections_per_key(1).build().unwrap();
        let connector = Connector::new(2).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        let held = checkout(&pool, &key, &connector).await;
        let failure = pool
            .checkout(&key, false, TIMEOUT, || connector.connect())
            .await
            .unwrap_err();
        assert_eq!(failure.phase(), Phase::Connect);
        assert!(matches!(failure.kind(), FailureKind::Local(_)), "{failure}");
        assert!(
            std::error::Error::source(&failure).is_some_and(|source| source.is::<PoolExhausted>())
        );
        let (waiter, ()) = tokio::join!(checkout(&pool, &key, &connector), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            held.release();
        });
        assert!(waiter.reused());
        assert_eq!(connector.connects(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reaper_closes_expired_idle_connections_then_stops() {
        let pool = Pool::builder()
            .idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let connector = Connector::new(1).await;
        let key = PoolKey::for_test("ws://a/v1", Some("finished-session"));
        checkout(&pool, &key, &connector).await.release();
        assert!(pool.lock().reaper);
        tokio::time::sleep(Duration::from_secs(91)).await;
        assert_eq!(pool.connections(), 0);
        assert!(pool.lock().keys.is_empty());
        assert!(!pool.lock().reaper);
        let mut server = connector.servers.lock().unwrap().remove(0);
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
    }

    #[tokio::test]
    async fn close_sends_close_frames_and_refuses_new_checkouts() {
        let pool = Pool::new();
        let connector = Connector::new(1).await;
        let key = PoolKey::for_test("ws://a/v1", None);
        checkout(&pool, &key, &connector).await.release();
        pool.close().await;
        let mut server = connector.servers.lock().unwrap().remove(0);
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
        let failure = pool
            .checkout(&key, false, TIMEOUT, || connector.connect())
            .await
            .unwrap_err();
        assert!(failure.to_string().contains("pool is closed"), "{failure}");
        assert_eq!(pool.connections(), 0);
    }
}
