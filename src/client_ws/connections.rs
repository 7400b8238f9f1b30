//! [`ClientConnections`]: the client WebSocket connections open on a [`Wsfirst`](crate::Wsfirst),
//! counted, and closed with close frames on shutdown.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let wsfirst = wsfirst::Wsfirst::builder().build();
//! let connections = wsfirst.client_connections();
//! assert_eq!(connections.open(), 0);
//! // Closes every client WebSocket (1001, after its running response) and waits for them;
//! // `Wsfirst::shutdown` does this before it closes the pool.
//! connections.close().await;
//! assert!(connections.is_closing());
//! # }
//! ```

use std::{fmt, sync::Arc};

use tokio::sync::watch;

/// The client WebSocket connections of a [`Wsfirst`](crate::Wsfirst). Cloning shares them.
#[derive(Clone, Default)]
pub struct ClientConnections {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    open: watch::Sender<usize>,
    closing: watch::Sender<bool>,
}

impl ClientConnections {
    /// No connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many client WebSocket connections are open.
    pub fn open(&self) -> usize {
        *self.inner.open.borrow()
    }

    /// Whether [`close`](Self::close) was called: new upgrades are refused with `503`.
    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// Closes every connection and waits until all have ended. Each one lets its running
    /// response finish within its [`shutdown_grace`](super::ClientWsConfig::shutdown_grace),
    /// answers its queued messages with an error event (status 503, `server_shutting_down`),
    /// and closes with `1001` (going away), which the official SDKs treat as a reason to
    /// reconnect. New upgrades are refused from now on.
    pub async fn close(&self) {
        self.inner.closing.send_replace(true);
        let mut open = self.inner.open.subscribe();
        // The sender lives in `self`: this ends when the count reaches zero.
        let _ = open.wait_for(|open| *open == 0).await;
    }

    /// Counts a connection until the guard is dropped.
    pub(crate) fn register(&self) -> OpenGuard {
        self.inner.open.send_modify(|open| *open += 1);
        OpenGuard {
            connections: self.clone(),
        }
    }

    /// Changes to `true` when shutdown begins.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }
}

impl fmt::Debug for ClientConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConnections")
            .field("open", &self.open())
            .field("closing", &self.is_closing())
            .finish()
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    connections: ClientConnections,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.connections
            .inner
            .open
            .send_modify(|open| *open = open.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_the_open_connections() {
        let connections = ClientConnections::new();
        let guard = connections.register();
        assert_eq!(connections.open(), 1);
        let mut closing = connections.closing();
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.close().await }
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), closing.wait_for(|c| *c))
            .await
            .expect("the closing signal comes")
            .unwrap();
        assert!(!waiting.is_finished());
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("close returns once the last connection ended")
            .unwrap();
        assert_eq!(connections.open(), 0);
    }
}
