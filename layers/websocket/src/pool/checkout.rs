//! Checking a connection out of the [`Pool`]: the connection of the conversation a request
//! continues, else reuse an idle live one, or open one, sharing (coalescing) a handshake already
//! in flight for the key, or wait for a full key (or a full pool) to free up.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    sync::{Notify, futures::Notified, watch},
    time::{Instant, timeout_at},
};
use wsfirst_core::{FailureKind, Phase, WsFailure};

use super::{
    Outcome, Pool, PoolKey,
    connection::{Conn, Opened, Release, close_later, gauge, released},
    pooled::Pooled,
};
use crate::{PoolExhausted, gate::RequestGate};

/// The announcer of a coalesced handshake: its id and the sender of its outcome.
pub(super) type Announce = (u64, watch::Sender<Option<Result<(), WsFailure>>>);

impl Pool {
    /// [`Pool::checkout_gated`] without a gate (tests).
    #[cfg(test)]
    pub(crate) async fn checkout<C, F, S>(
        &self,
        key: &PoolKey,
        continues: Option<&str>,
        fresh: bool,
        handshake_timeout: Duration,
        connect: C,
    ) -> Result<Pooled, WsFailure>
    where
        C: Fn() -> F,
        F: Future<Output = Result<S, WsFailure>>,
        S: Into<Opened>,
    {
        self.checkout_gated(key, continues, fresh, handshake_timeout, None, connect)
            .await
    }

    /// Checks a connection out for `key`: unless `fresh`, the connection that produced the
    /// response the request `continues` (waited for while busy, see [`Pool::follow`]) or an
    /// idle live one; else a new one opened with `connect` (coalesced with a handshake already
    /// in flight for the key), if the request's `gate` (its breaker's) allows it: asked under
    /// the pool's lock, so that a request that finds no handshake in flight sees every failure
    /// reported by the handshakes before (the opener reports inside `connect`, before the
    /// waiters are told and the handshake is cleared).
    pub(crate) async fn checkout_gated<C, F, S>(
        &self,
        key: &PoolKey,
        continues: Option<&str>,
        fresh: bool,
        handshake_timeout: Duration,
        gate: Option<&RequestGate<'_>>,
        connect: C,
    ) -> Result<Pooled, WsFailure>
    where
        C: Fn() -> F,
        F: Future<Output = Result<S, WsFailure>>,
        S: Into<Opened>,
    {
        enum Step<'a> {
            Reuse(Box<Conn>),
            Open(Option<Announce>),
            Wait(Outcome),
            Full(Arc<Notify>),
            /// The pool has its total maximum of connections, none idle: wait for room (the
            /// notification is enabled under the lock, so none is missed).
            PoolFull(Pin<Box<Notified<'a>>>),
        }
        if let (Some(response_id), false) = (continues, fresh) {
            if let Some(conn) = self.follow(key, response_id).await {
                return Ok(conn);
            }
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
                let mut expired = 0;
                let warm = state.warm.is_warm(key);
                let slot = state.keys.entry(key.clone()).or_default();
                let mut reuse = None;
                // The held connections returned longest ago (of a first turn, of a longer
                // conversation), one given up if the key is full.
                let (mut first_turn, mut chain) = (None, None);
                if !fresh {
                    // The most recently returned first, leaving alone the connections that
                    // continuing requests wait for, and those held for their conversations.
                    let mut index = slot.idle.len();
                    while index > 0 {
                        index -= 1;
                        // The newest `min_idle` of a warm key outlive the idle timeout.
                        let kept_warm = warm && index + self.inner.min_idle >= slot.idle.len();
                        if self.inner.expired(&slot.idle[index], now, kept_warm) {
                            let idle = slot.idle.remove(index);
                            gauge("idle", -1.0);
                            slot.open -= 1;
                            slot.conversations.forget(&idle.conn);
                            close_later(idle.conn);
                            // Found at higher indices: they move down one.
                            first_turn = first_turn.map(|held: usize| held - 1);
                            chain = chain.map(|held: usize| held - 1);
                            expired += 1;
                            continue;
                        }
                        if slot.conversations.is_wanted(slot.idle[index].conn.id) {
                            continue;
                        }
                        if self.inner.held(&slot.idle[index], now) {
                            if slot.idle[index].conn.chain {
                                chain = Some(index);
                            } else {
                                first_turn = Some(index);
                            }
                            continue;
                        }
                        gauge("idle", -1.0);
                        reuse = Some(slot.idle.remove(index).conn);
                        break;
                    }
                }
                if let (None, Some(index)) = (&reuse, first_turn.or(chain)) {
                    if slot.open >= self.inner.max_per_key {
                        // Under pressure: the hold used least recently is given up first, that
                        // of a first turn before that of a longer conversation.
                        released(Release::Key);
                        gauge("idle", -1.0);
                        let mut conn = slot.idle.remove(index).conn;
                        conn.hold = false;
                        reuse = Some(conn);
                    }
                }
                let step = match (reuse, &slot.handshake) {
                    (Some(conn), _) => Some(Step::Reuse(Box::new(conn))),
                    (None, Some((_, outcome))) if coalesce => Some(Step::Wait(outcome.clone())),
                    (None, _) if slot.open >= self.inner.max_per_key => {
                        Some(Step::Full(slot.freed.clone()))
                    }
                    // A new connection: first, room under the total maximum.
                    (None, _) => None,
                };
                state.open -= expired;
                state.idle -= expired;
                if expired > 0 {
                    self.inner.room.notify_waiters();
                }
                if let Some(step) = step {
                    if matches!(step, Step::Reuse(_)) {
                        state.idle -= 1;
                    }
                    step
                } else if gate.is_some_and(|gate| !gate.may_open()) {
                    return Err(gate_closed());
                } else if state.open >= self.inner.max_total && !make_room(&mut state, &self.inner)
                {
                    let mut room = Box::pin(self.inner.room.notified());
                    room.as_mut().enable();
                    Step::PoolFull(room)
                } else {
                    state.open += 1;
                    let slot = state.keys.entry(key.clone()).or_default();
                    slot.open += 1;
                    if slot.handshake.is_none() {
                        let (tx, rx) = watch::channel(None);
                        slot.handshake = Some((next_id, rx));
                        state.next_handshake += 1;
                        Step::Open(Some((next_id, tx)))
                    } else {
                        Step::Open(None)
                    }
                }
            };
            match step {
                Step::Reuse(conn) => {
                    // Whether the upstream closed it while idle is checked right before the
                    // request is written on it (`Pooled::closed_before_write`).
                    gauge("in_use", 1.0);
                    // One idle fewer: the warmer tops the key up.
                    self.wake_warmer();
                    return Ok(self.pooled(key, *conn, true, continues.is_some()));
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
                    let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
                    let conn = Conn::new(stream.into(), id);
                    return Ok(self.pooled(key, conn, false, continues.is_some()));
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
                            // The opener reports the handshake's failure; a waiter's copy is
                            // not counted again (one refused handshake is one failure).
                            if let Some(Err(failure)) = &*result {
                                return Err(failure.clone().shared());
                            }
                            coalesce = false;
                        }
                    }
                }
                Step::PoolFull(room) => {
                    if timeout_at(deadline, room).await.is_err() {
                        let max = self.inner.max_total;
                        return Err(WsFailure::new(
                            Phase::Connect,
                            FailureKind::Local(format!(
                                "all {max} websocket connections of the pool stayed busy for {handshake_timeout:?}"
                            )),
                        )
                        .with_source(PoolExhausted { max }));
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

    fn pooled(&self, key: &PoolKey, conn: Conn, reused: bool, continuing: bool) -> Pooled {
        let mut pooled = Pooled::new(self.clone(), key.clone(), conn, reused);
        pooled.continuing = continuing;
        pooled
    }
}

/// The failure of a request whose breaker no longer lets it open a connection (the key
/// tripped after the request was admitted): replay-safe, and already counted (shared).
#[cold]
fn gate_closed() -> WsFailure {
    WsFailure::new(
        Phase::Connect,
        FailureKind::Local(
            "the circuit breaker opened before a websocket connection was opened for the request"
                .into(),
        ),
    )
    .shared()
}

/// Closes the idle connection returned longest ago (of any key) to make room under the total
/// maximum; returns whether there was one.
fn make_room(state: &mut super::State, inner: &super::PoolInner) -> bool {
    match state.take_oldest_idle(inner, Release::Pool) {
        Some(conn) => {
            tracing::debug!(
                "the pool is full: closing the idle websocket connection returned longest ago"
            );
            close_later(conn);
            true
        }
        None => false,
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
