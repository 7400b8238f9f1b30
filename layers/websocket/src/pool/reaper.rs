//! The reaper: a background task that closes expired idle connections while the pool holds
//! any, so sockets do not linger for keys that see no more requests.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    Pool, PoolInner,
    connection::{Conn, close_gracefully, gauge, waiting},
};

impl Pool {
    /// Closes expired idle connections in the background, so sockets do not linger for keys
    /// that see no more requests (such as finished sessions' affinity keys). The task runs only
    /// while the pool holds idle connections, and ends with the pool or as soon as it closes.
    pub(super) fn start_reaper(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.lock().reaper = false;
            return;
        };
        let weak: Weak<PoolInner> = Arc::downgrade(&self.inner);
        let closing = Arc::clone(&self.inner.closing);
        let period = (self.inner.idle_timeout / 2).max(Duration::from_millis(100));
        handle.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.tick().await;
            loop {
                // Enabled before the pool's state is read, so a close between the two still
                // wakes this wait.
                let closed = closing.notified();
                tokio::pin!(closed);
                closed.as_mut().enable();
                match weak.upgrade() {
                    Some(inner) if !inner.lock().closed => {}
                    _ => return,
                }
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = &mut closed => return,
                }
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
    /// Takes the expired idle connections out; also says whether idle ones remain (if not, the
    /// reaper stops, and the next returned connection starts it again).
    fn reap(&self, now: Instant) -> (Vec<Conn>, bool) {
        let mut state = self.lock();
        let state = &mut *state;
        let mut expired = Vec::new();
        for (key, slot) in &mut state.keys {
            let warm = state.warm.is_warm(key);
            let count = slot.idle.len();
            let mut kept = Vec::with_capacity(count);
            for (index, mut idle) in slot.idle.drain(..).enumerate() {
                // The newest `min_idle` of a warm key outlive the idle timeout, and one the
                // upstream closed meanwhile is replaced now rather than at the next request.
                let kept_warm = warm && index + self.min_idle >= count;
                let gone = warm && waiting(&mut idle.conn.stream).is_some();
                if gone || self.expired(&idle, now, kept_warm) {
                    slot.open = slot.open.saturating_sub(1);
                    gauge("idle", -1.0);
                    slot.conversations.forget(&idle.conn);
                    expired.push(idle.conn);
                } else {
                    kept.push(idle);
                }
            }
            slot.idle = kept;
        }
        state.open -= expired.len();
        state.idle -= expired.len();
        if !expired.is_empty() {
            self.room.notify_waiters();
            self.wake_warmer();
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
