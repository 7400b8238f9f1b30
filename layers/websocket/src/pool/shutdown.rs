//! Shutting the pool down: every pooled WebSocket closed with a close frame, the idle ones at
//! once, the busy ones as their answers end, within a grace period.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_websocket::Pool;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let pool = Pool::new();
//! // On SIGTERM, once the server stopped taking requests:
//! let left = pool.shutdown(Duration::from_secs(10)).await;
//! assert_eq!((left, pool.connections()), (0, 0));
//! # }
//! ```

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::Pool;

impl Pool {
    /// Shuts the pool down and waits, at most `grace`, until it holds no connection: no new
    /// connection is opened from now on, each idle connection is closed with a close frame
    /// (awaited, each within one second), and each busy one is closed with a close frame as its
    /// answer ends (a complete answer) or is cut short (its body dropped). Returns how many
    /// connections were still busy when the grace period ended (`0`: every connection is closed
    /// or closing).
    ///
    /// A busy connection's close frame is sent by a short task of its own (at most one second);
    /// the reaper task ends at its next tick. Call it after the server stopped taking requests
    /// (requests still arriving fail with a [`Local`](wsfirst_core::FailureKind::Local) failure,
    /// "the websocket pool is closed", and are replayed over HTTP).
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        self.close().await;
        loop {
            // Registered before the count is read, so a connection that goes between the two
            // still wakes this wait.
            let gone = self.inner.room.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            let left = self.connections();
            if left == 0 {
                return 0;
            }
            if timeout_at(deadline, gone).await.is_err() {
                let left = self.connections();
                if left > 0 {
                    tracing::warn!(
                        connections = left,
                        after = ?grace,
                        "websocket connections still busy when the pool's grace period ended"
                    );
                }
                return left;
            }
        }
    }
}
