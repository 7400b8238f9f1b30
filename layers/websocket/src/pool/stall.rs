//! The write-stall deadline: a watchdog task per streaming answer that closes the answer's
//! connection when the caller stops reading (see [`Pool`](super::Pool), "The write-stall
//! deadline").
//!
//! A body is read only when its caller polls it, and a body nobody polls runs no code: so the
//! answer lives behind a mutex that the body locks on each poll (uncontended: the watchdog
//! takes it once per wake), and a task sleeps until the deadline, looks at when the answer last
//! handed out a frame, and either sleeps again or takes the connection away.

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use tokio::{task::AbortHandle, time::Instant};

use super::pooled::Pooled;

/// What the watchdog sees of a streaming answer.
pub(crate) trait Watchable: Send + 'static {
    /// When the answer handed out its last frame, if it has not been polled since. `None`
    /// while the caller waits on the body (it is reading) or once the answer ended.
    fn handed_out(&self) -> Option<Instant>;

    /// Whether the answer still holds its connection.
    fn holds_connection(&self) -> bool;

    /// The caller stopped reading for `after`: the answer gives its connection up (the watchdog
    /// drops it, which closes it, outside the lock) and ends with an error when polled next.
    fn stall(&mut self, after: Duration) -> Option<Pooled>;
}

/// A streaming answer shared with its watchdog. Dropping it stops the watchdog.
pub(crate) struct Watched<T> {
    shared: Arc<Mutex<T>>,
    watchdog: Option<AbortHandle>,
}

impl<T: Watchable> Watched<T> {
    /// Shares `answer` with a watchdog that closes its connection when it is not polled for
    /// `stall` after handing out a frame. Without a tokio runtime nothing watches it.
    pub(crate) fn new(answer: T, stall: Duration) -> Self {
        let watch = answer.holds_connection();
        let shared = Arc::new(Mutex::new(answer));
        let watchdog = watch
            .then(|| tokio::runtime::Handle::try_current().ok())
            .flatten()
            .map(|runtime| {
                runtime
                    .spawn(watchdog(Arc::downgrade(&shared), stall))
                    .abort_handle()
            });
        Self { shared, watchdog }
    }

    /// The answer, for one poll.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer ended: nothing is left to watch.
    pub(crate) fn stop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

impl<T> fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("watched", &self.watchdog.is_some())
            .finish_non_exhaustive()
    }
}

/// Sleeps until the answer's deadline; closes its connection if it passed with no poll.
async fn watchdog<T: Watchable>(answer: Weak<Mutex<T>>, stall: Duration) {
    let mut deadline = Instant::now() + stall;
    loop {
        tokio::time::sleep_until(deadline).await;
        let Some(answer) = answer.upgrade() else {
            return;
        };
        let conn = {
            let mut answer = answer.lock().unwrap_or_else(PoisonError::into_inner);
            if !answer.holds_connection() {
                return;
            }
            let now = Instant::now();
            match answer.handed_out() {
                Some(at) if now >= at + stall => answer.stall(stall),
                Some(at) => {
                    deadline = at + stall;
                    continue;
                }
                // The caller waits on the body: the idle timeout between events governs it.
                None => {
                    deadline = now + stall;
                    continue;
                }
            }
        };
        tracing::debug!(
            after = ?stall,
            "the caller stopped reading a websocket answer: closing its connection"
        );
        // Dropped mid-answer: taken off the pool's books and closed, never pooled again.
        drop(conn);
        return;
    }
}
