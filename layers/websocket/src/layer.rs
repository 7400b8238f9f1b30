//! [`WebSocketLayer`]: wraps an HTTP service with the WebSocket attempt.

use tower_layer::Layer;

use crate::{Pool, WebSocket, WebSocketConfig};

/// Wraps an HTTP service in [`WebSocket`]: requests whose `Intent` is `WebSocket` are served over
/// a pooled WebSocket, all others go to the HTTP service.
///
/// Each layer has its own [`WebSocketConfig`] (one per route in the facade) and a [`Pool`].
/// **Cloning the layer shares its pool**, and so do layers given clones of one pool with
/// [`with_pool`](Self::with_pool).
///
/// ```
/// use wsfirst_websocket::{Pool, WebSocketConfig, WebSocketLayer};
///
/// let pool = Pool::new();
/// let layer = WebSocketLayer::new(WebSocketConfig::default()).with_pool(pool.clone());
/// assert!(layer.pool().same_pool(&pool));
/// ```
#[derive(Clone, Debug)]
pub struct WebSocketLayer {
    config: WebSocketConfig,
    pool: Pool,
}

impl WebSocketLayer {
    /// A layer with `config` and a pool of its own (default settings).
    pub fn new(config: WebSocketConfig) -> Self {
        Self {
            config,
            pool: Pool::new(),
        }
    }

    /// Uses `pool` (shared with every other holder of a clone of it).
    pub fn with_pool(mut self, pool: Pool) -> Self {
        self.pool = pool;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl<S> Layer<S> for WebSocketLayer {
    type Service = WebSocket<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebSocket::new(inner, self.config.clone()).with_pool(self.pool.clone())
    }
}
