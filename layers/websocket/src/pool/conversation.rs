//! Conversations that keep their socket: which connection produced which response, and the
//! checkout of the connection that a request continuing a response must use.
//!
//! An upstream such as the OpenAI Responses API in WebSocket mode keeps a connection's recent
//! responses in that connection's memory; with `store: false` nowhere else knows them. The
//! books here map each response id a live connection produced to that connection, so that
//! [`Pool::follow`] can hand a continuing request the one connection where its previous
//! response can be found.

use std::{collections::HashMap, sync::Arc};

use tokio::{
    sync::watch,
    time::{Instant, timeout_at},
};

use super::{
    Pool, PoolKey,
    connection::{Conn, close_later, gauge},
    pooled::Pooled,
};

/// Response ids longer than this (bytes) are neither remembered nor followed: real ids are a
/// few dozen bytes, and the books stay small whatever an upstream or a client sends.
pub(super) const MAX_RESPONSE_ID: usize = 256;

/// The conversation books of one key.
pub(super) struct Conversations {
    /// Each response id a live connection of the key produced, and that connection's number.
    owners: HashMap<Arc<str>, u64>,
    /// Connections that continuing requests wait for, and how many wait: a request that does
    /// not continue a response leaves them alone while they are idle.
    wanted: HashMap<u64, usize>,
    /// Bumped when a connection of the key comes back to the pool or goes away, so that
    /// waiting requests look again.
    returned: watch::Sender<u64>,
}

impl Default for Conversations {
    fn default() -> Self {
        Self {
            owners: HashMap::new(),
            wanted: HashMap::new(),
            returned: watch::Sender::new(0),
        }
    }
}

impl Conversations {
    /// Remembers that `conn` produced `response_id`, its latest response, held for the
    /// conversation when `hold`; its oldest response is forgotten past
    /// [`Pool::REMEMBERED_RESPONSES`].
    pub(super) fn remember(&mut self, conn: &mut Conn, response_id: &str, hold: bool) {
        if response_id.is_empty() || response_id.len() > MAX_RESPONSE_ID {
            return;
        }
        conn.hold = hold;
        if let Some(known) = conn.responses.iter().find(|known| &***known == response_id) {
            self.owners.insert(known.clone(), conn.id);
            return;
        }
        if conn.responses.len() >= Pool::REMEMBERED_RESPONSES {
            if let Some(oldest) = conn.responses.pop_front() {
                self.disown(&oldest, conn.id);
            }
        }
        let response_id: Arc<str> = response_id.into();
        conn.responses.push_back(response_id.clone());
        self.owners.insert(response_id, conn.id);
    }

    /// Forgets the responses of `conn`, which leaves the pool, and wakes the waiting requests.
    pub(super) fn forget(&mut self, conn: &Conn) {
        for response_id in &conn.responses {
            self.disown(response_id, conn.id);
        }
        self.bump();
    }

    /// Wakes the waiting requests: a connection came back to the pool.
    pub(super) fn bump(&self) {
        self.returned.send_modify(|generation| *generation += 1);
    }

    /// Whether a continuing request waits for connection `id`.
    pub(super) fn is_wanted(&self, id: u64) -> bool {
        self.wanted.contains_key(&id)
    }

    /// How many response ids the key remembers.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no request waits for a connection.
    #[cfg(test)]
    pub(super) fn wanted_is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    fn disown(&mut self, response_id: &Arc<str>, conn: u64) {
        // Another connection may have produced the same id since; it keeps it.
        if self.owners.get(response_id) == Some(&conn) {
            self.owners.remove(response_id);
        }
    }

    fn unwant(&mut self, id: u64) {
        if let Some(count) = self.wanted.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                self.wanted.remove(&id);
            }
        }
    }
}

/// A continuing request's claim on a busy connection, released when dropped (taken, given up,
/// or the request cancelled). Never dropped with the pool's lock held.
struct Want<'a> {
    pool: &'a Pool,
    key: &'a PoolKey,
    conn: u64,
}

impl Drop for Want<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.pool.lock().keys.get_mut(self.key) {
            slot.conversations.unwant(self.conn);
        }
    }
}

impl Pool {
    /// The connection of `key` that produced `response_id`, checked out: at once when it is
    /// idle, after a wait of at most the conversation wait while it is busy. `None` when no
    /// live connection of the key produced it (never, forgotten, or the connection is gone),
    /// or when the wait ran out: the caller then checks out as usual.
    pub(super) async fn follow(&self, key: &PoolKey, response_id: &str) -> Option<Pooled> {
        enum Step {
            Take(Box<Conn>),
            Wait(watch::Receiver<u64>, Option<u64>),
        }
        if response_id.len() > MAX_RESPONSE_ID {
            return None;
        }
        let deadline = Instant::now() + self.inner.conversation_wait;
        let mut want: Option<Want<'_>> = None;
        loop {
            let step = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let slot = state.keys.get_mut(key)?;
                let owner = *slot.conversations.owners.get(response_id)?;
                match slot.idle.iter().position(|idle| idle.conn.id == owner) {
                    Some(index) => {
                        let idle = slot.idle.remove(index);
                        gauge("idle", -1.0);
                        state.idle -= 1;
                        if self.inner.expired(&idle, Instant::now(), false) {
                            drop(state);
                            self.retire(key, idle.conn);
                            return None;
                        }
                        Step::Take(Box::new(idle.conn))
                    }
                    None => {
                        let claim =
                            (want.as_ref().map(|want| want.conn) != Some(owner)).then(|| {
                                *slot.conversations.wanted.entry(owner).or_default() += 1;
                                owner
                            });
                        Step::Wait(slot.conversations.returned.subscribe(), claim)
                    }
                }
            };
            match step {
                Step::Take(conn) => {
                    // Checked right before the request is written on it, like any reused one.
                    gauge("in_use", 1.0);
                    self.wake_warmer();
                    let mut pooled = Pooled::new(self.clone(), key.clone(), *conn, true);
                    pooled.continuing = true;
                    return Some(pooled);
                }
                Step::Wait(mut returned, claim) => {
                    if let Some(conn) = claim {
                        // Replaces (and releases, outside the lock) a claim on a former owner.
                        want = Some(Want {
                            pool: self,
                            key,
                            conn,
                        });
                    }
                    // Changed, or the key's books were dropped: look again.
                    if timeout_at(deadline, returned.changed()).await.is_err() {
                        tracing::debug!(
                            wait = ?self.inner.conversation_wait,
                            "the websocket connection of a conversation stayed busy, \
                             the request takes another one"
                        );
                        return None;
                    }
                }
            }
        }
    }

    /// Takes `conn` off the books of `key` for good (its responses forgotten, its place under
    /// the maximum freed) and closes it in the background.
    pub(super) fn retire(&self, key: &PoolKey, conn: Conn) {
        {
            let mut state = self.lock();
            if let Some(slot) = state.keys.get_mut(key) {
                let counted = usize::from(slot.open > 0);
                slot.open -= counted;
                slot.freed.notify_one();
                slot.conversations.forget(&conn);
                if slot.is_empty() && slot.idle.is_empty() {
                    state.keys.remove(key);
                }
                state.open -= counted;
                self.inner.room.notify_waiters();
            }
        }
        self.wake_warmer();
        close_later(conn);
    }
}

/// The response ids the books remember, for tests.
#[cfg(test)]
pub(super) fn remembered(pool: &Pool) -> usize {
    pool.lock()
        .keys
        .values()
        .map(|slot| slot.conversations.len())
        .sum()
}
