//! Warm connections: at least [`min_idle`](super::PoolBuilder::min_idle) idle connections per
//! known key, opened in the background so that the first request of a conversation pays no
//! handshake.
//!
//! A key is known once it is registered: by [`Pool::warm`] (the facade registers each route
//! whose credential is fixed, at start) or by the first request of the key (keys without an
//! affinity value only: a session's key gets its connection from its own first request). One
//! background task per pool, the warmer, tops the keys up whenever their idle count may have
//! dropped (a connection checked out, retired, reaped or found closed by the upstream) and
//! after a back-off.
//!
//! A warm-up handshake is not a request: its failure is not reported to the breaker (no
//! request failed), but it backs the key off (1 s, doubling up to a minute, one handshake at a
//! time until one succeeds), and the key's [`HandshakeGate`] (the latest request's) is asked
//! first, so nothing is opened while the breaker keeps the key off the WebSocket; the warmer
//! looks again every second and warms the key up once the breaker lets it open connections
//! again. Warm-ups never exceed the key's, the pool's or the idle maximum (they close nothing
//! to make room), and stop when the pool closes (handshakes in flight are dropped).

use std::{
    collections::HashMap,
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use http::{HeaderMap, Uri};
use tokio::{
    sync::watch,
    time::{Instant, sleep_until},
};
use wsfirst_core::{HandshakeGate, Route, headers::HeaderPolicy};

use super::{
    Pool, PoolInner, PoolKey,
    checkout::Announce,
    connection::{Conn, Opened},
};
use crate::{WebSocketConfig, connector};

/// The first back-off after a failed warm-up handshake, doubled with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off after failed warm-up handshakes.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the gate of a key the breaker keeps off the WebSocket is asked again.
const GATE_RECHECK: Duration = Duration::from_secs(1);

/// What opens a connection for a warm key: the request's URL, handshake headers and
/// configuration (the same `connect` a request of the key would run).
struct Target {
    url: Uri,
    headers: HeaderMap,
    config: WebSocketConfig,
    /// The route's header policy: what of a handshake's answer stays with the connection.
    policy: HeaderPolicy,
}

/// The books of one warm key.
pub(super) struct WarmKey {
    target: Arc<Target>,
    /// The latest gate a request of the key carried (kept while it allows opening).
    gate: Option<HandshakeGate>,
    /// Warm-up handshakes in flight.
    opening: usize,
    /// Failed warm-up handshakes in a row.
    failures: u32,
    /// No warm-up before this (a back-off, or the gate said no).
    not_before: Option<Instant>,
    /// When a request last used the key: the least recently used key is forgotten first when
    /// there are too many.
    used: Instant,
}

/// The warm keys and the warmer's state, in the pool's books.
#[derive(Default)]
pub(super) struct Warm {
    pub(super) keys: HashMap<PoolKey, WarmKey>,
    /// Whether the warmer task runs.
    running: bool,
}

impl Warm {
    /// Whether `key` is warm: its idle connections (up to `min_idle`) outlive the idle timeout.
    pub(super) fn is_warm(&self, key: &PoolKey) -> bool {
        self.keys.contains_key(key)
    }
}

impl Pool {
    /// Keeps at least [`min_idle`](super::PoolBuilder::min_idle) idle connections open for the
    /// requests `config`'s WebSocket layer sends on `route` with no headers of their own (the
    /// route's static headers, such as the `Authorization` of a gateway that holds the API
    /// key), starting now. Does nothing when `min_idle` is 0 or the route has no WebSocket URL.
    /// Call it within a tokio runtime; without one, warming starts with the first request.
    ///
    /// ```
    /// use wsfirst_core::Route;
    /// use wsfirst_websocket::{Pool, WebSocketConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder().min_idle(2).build()?;
    /// let route = Route::builder("openai", "openai-responses")
    ///     .ws_url("ws://127.0.0.1:9/v1/responses")
    ///     .http_url("http://127.0.0.1:9/v1/responses")
    ///     .credential("sk-gateway")
    ///     .build()?;
    /// pool.warm(&route, &WebSocketConfig::default());
    /// assert_eq!(pool.warm_keys(), 1);
    /// pool.close().await;
    /// assert_eq!(pool.warm_keys(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn warm(&self, route: &Route, config: &WebSocketConfig) {
        let Some(url) = route.ws_url() else {
            return;
        };
        let none = HeaderMap::new();
        let headers = connector::handshake_headers(route, &none);
        let key = PoolKey::new(url, route, &headers, config.affinity_header(), &none);
        // The breaker's gate of the key, when it already watches it (a hand pin at start).
        let gate = || config.handshake_gates()?.gate(route, &none);
        self.warm_key(&key, url, &headers, config, route.headers(), gate);
    }

    /// How many keys the pool keeps warm.
    pub fn warm_keys(&self) -> usize {
        self.lock().warm.keys.len()
    }

    /// Registers `key` as warm (a request of it is running, or the facade knows it), or
    /// refreshes it: its gate is replaced by `gate` when the kept one no longer allows opening
    /// (the breaker's entry may have been replaced). Keys with an affinity value are not
    /// warmed. Past `max_idle_connections / min_idle` warm keys, the least recently used one
    /// is forgotten.
    pub(crate) fn warm_key(
        &self,
        key: &PoolKey,
        url: &Uri,
        headers: &HeaderMap,
        config: &WebSocketConfig,
        policy: &HeaderPolicy,
        gate: impl FnOnce() -> Option<HandshakeGate>,
    ) {
        let min_idle = self.inner.min_idle;
        if min_idle == 0 || key.has_affinity() {
            return;
        }
        let now = Instant::now();
        let start = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            match state.warm.keys.get_mut(key) {
                Some(warm) => {
                    warm.used = now;
                    if warm.gate.as_ref().is_none_or(|kept| !kept.may_open())
                        && let Some(gate) = gate()
                    {
                        warm.gate = Some(gate);
                    }
                }
                None => {
                    let most = (self.inner.max_idle / min_idle).max(1);
                    if state.warm.keys.len() >= most {
                        let oldest = state
                            .warm
                            .keys
                            .iter()
                            .min_by_key(|(_, warm)| warm.used)
                            .map(|(key, _)| key.clone());
                        if let Some(oldest) = oldest {
                            state.warm.keys.remove(&oldest);
                        }
                    }
                    let target = Arc::new(Target {
                        url: url.clone(),
                        headers: headers.clone(),
                        config: config.clone(),
                        policy: policy.clone(),
                    });
                    state.warm.keys.insert(
                        key.clone(),
                        WarmKey {
                            target,
                            gate: gate(),
                            opening: 0,
                            failures: 0,
                            not_before: None,
                            used: now,
                        },
                    );
                    self.inner.warm_wake.notify_one();
                }
            }
            !std::mem::replace(&mut state.warm.running, true)
        };
        if start {
            self.start_warmer();
        }
    }

    /// Starts the warmer task (within a runtime; otherwise the next registration tries again).
    fn start_warmer(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.lock().warm.running = false;
            return;
        };
        let weak: Weak<PoolInner> = Arc::downgrade(&self.inner);
        let closing = Arc::clone(&self.inner.closing);
        let wake = Arc::clone(&self.inner.warm_wake);
        handle.spawn(async move {
            loop {
                // Enabled before the books are read, so a close or a wake in between is seen.
                let closed = closing.notified();
                let woken = wake.notified();
                tokio::pin!(closed, woken);
                closed.as_mut().enable();
                woken.as_mut().enable();
                let next = {
                    let Some(inner) = weak.upgrade() else { return };
                    let pool = Pool { inner };
                    match pool.top_up() {
                        Some(next) => next,
                        None => return,
                    }
                };
                let later = async {
                    match next {
                        Some(at) => sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = &mut closed => return,
                    () = &mut woken => {}
                    () = later => {}
                }
            }
        });
    }

    /// Starts the warm-up handshakes the warm keys need now; returns when to look again
    /// (`None` inside: at the next wake), or `None` when the pool is closed.
    fn top_up(&self) -> Option<Option<Instant>> {
        let now = Instant::now();
        let min_idle = self.inner.min_idle;
        let mut opens = Vec::new();
        let mut next: Option<Instant> = None;
        {
            let mut state = self.lock();
            if state.closed {
                state.warm.running = false;
                return None;
            }
            let state = &mut *state;
            let opening: usize = state.warm.keys.values().map(|warm| warm.opening).sum();
            let mut room_total = self.inner.max_total.saturating_sub(state.open);
            let mut room_idle = self.inner.max_idle.saturating_sub(state.idle + opening);
            for (key, warm) in &mut state.warm.keys {
                if let Some(at) = warm.not_before {
                    if at > now {
                        next = Some(next.map_or(at, |next| next.min(at)));
                        continue;
                    }
                    warm.not_before = None;
                }
                let slot = state.keys.get(key);
                let idle = slot.map_or(0, |slot| slot.idle.len());
                let open = slot.map_or(0, |slot| slot.open);
                let mut wanted = min_idle
                    .saturating_sub(idle + warm.opening)
                    .min(self.inner.max_per_key.saturating_sub(open))
                    .min(room_total)
                    .min(room_idle);
                if warm.failures > 0 {
                    // Backing off: one handshake at a time until one succeeds.
                    wanted = wanted.min(usize::from(warm.opening == 0));
                }
                if wanted == 0 {
                    continue;
                }
                if warm.gate.as_ref().is_some_and(|gate| !gate.may_open()) {
                    let at = now + GATE_RECHECK;
                    warm.not_before = Some(at);
                    next = Some(next.map_or(at, |next| next.min(at)));
                    continue;
                }
                room_total -= wanted;
                room_idle -= wanted;
                warm.opening += wanted;
                let slot = state.keys.entry(key.clone()).or_default();
                slot.open += wanted;
                state.open += wanted;
                for _ in 0..wanted {
                    // The first one leads the key's handshake when none is in flight, so a
                    // request arriving meanwhile waits for it rather than opening its own.
                    let announce = if slot.handshake.is_none() {
                        let id = state.next_handshake;
                        state.next_handshake += 1;
                        let (tx, rx) = watch::channel(None);
                        slot.handshake = Some((id, rx));
                        Some((id, tx))
                    } else {
                        None
                    };
                    opens.push((key.clone(), Arc::clone(&warm.target), announce));
                }
            }
        }
        for (key, target, announce) in opens {
            tokio::spawn(self.clone().open_warm(key, target, announce));
        }
        Some(next)
    }

    /// Opens one warm connection for `key` (already counted in its books) and puts it idle, or
    /// backs the key off; dropped (not counted any more) when the pool closes meanwhile.
    async fn open_warm(self, key: PoolKey, target: Arc<Target>, announce: Option<Announce>) {
        let closing = Arc::clone(&self.inner.closing);
        let closed = closing.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        let connect = connector::connect(&target.url, &target.headers, &target.config);
        let result = if self.lock().closed {
            None
        } else {
            tokio::select! {
                result = connect => Some(result),
                () = &mut closed => None,
            }
        };
        let announce = announce.map(|(id, tx)| {
            self.clear_handshake(&key, id);
            tx
        });
        match result {
            Some(Ok((stream, answer))) => {
                metrics::counter!("wsfirst_ws_pool_warm_total", "outcome" => "opened").increment(1);
                if let Some(warm) = self.lock().warm.keys.get_mut(&key) {
                    warm.opening -= 1;
                    warm.failures = 0;
                }
                let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
                // Idle before the waiters are told, so they find it.
                let opened = Opened {
                    stream,
                    answer: target.policy.answer_for(&answer),
                };
                self.put_back(&key, Conn::new(opened, id));
                if let Some(tx) = announce {
                    let _ = tx.send(Some(Ok(())));
                }
            }
            failed => {
                if let Some(Err(failure)) = &failed {
                    metrics::counter!("wsfirst_ws_pool_warm_total", "outcome" => "failed")
                        .increment(1);
                    tracing::debug!(error = %failure, "a warm-up websocket handshake failed");
                }
                if let Some(warm) = self.lock().warm.keys.get_mut(&key) {
                    warm.opening -= 1;
                    if failed.is_some() {
                        warm.failures = warm.failures.saturating_add(1);
                        let backoff = FIRST_BACKOFF
                            .saturating_mul(1 << (warm.failures - 1).min(6))
                            .min(MAX_BACKOFF);
                        warm.not_before = Some(Instant::now() + backoff);
                    }
                }
                self.forget(&key, 1);
                // Dropping the sender untold: the waiters look again, and one of them leads a
                // handshake of its own (counted by its breaker), as after a cancelled opener.
                drop(announce);
                self.inner.warm_wake.notify_one();
            }
        }
    }

    /// Clears the key's coalesced handshake if it is still `id`.
    fn clear_handshake(&self, key: &PoolKey, id: u64) {
        let mut state = self.lock();
        if let Some(slot) = state.keys.get_mut(key) {
            if matches!(slot.handshake, Some((current, _)) if current == id) {
                slot.handshake = None;
            }
        }
    }

    /// Tells the warmer that a key's idle count may have dropped.
    pub(super) fn wake_warmer(&self) {
        self.inner.wake_warmer();
    }
}

impl PoolInner {
    /// Tells the warmer that a key's idle count may have dropped (nothing when `min_idle` is 0).
    pub(super) fn wake_warmer(&self) {
        if self.min_idle > 0 {
            self.warm_wake.notify_one();
        }
    }
}
