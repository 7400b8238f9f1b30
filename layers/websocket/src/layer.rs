//! [`WebSocketLayer`]: wraps an HTTP service with the WebSocket attempt.
//!
//! # Example
//!
//! ```
//! use wsfirst_websocket::{Pool, WebSocketConfig, WebSocketLayer};
//!
//! // One pool for every route, created once.
//! let pool = Pool::new();
//! let chat = WebSocketLayer::with_pool(WebSocketConfig::default(), pool.clone());
//! let other = WebSocketLayer::with_pool(WebSocketConfig::default(), pool.clone());
//! assert!(chat.pool().same_pool(other.pool()));
//! ```

use tower_layer::Layer;

use crate::{Pool, WebSocket, WebSocketConfig};

/// Wraps an HTTP service in [`WebSocket`]: requests whose `Intent` is `WebSocket` are served over
/// a pooled WebSocket, all others go to the HTTP service.
///
/// Each layer has its own [`WebSocketConfig`] (one per route in the facade) and a [`Pool`].
/// **Cloning the layer shares its pool**, and so do layers built by
/// [`with_pool`](Self::with_pool) with clones of one pool. [`Layer::layer`] only clones the
/// configuration and the pool handle: every service it builds shares the layer's pool.
///
/// ```
/// use wsfirst_websocket::{Pool, WebSocketConfig, WebSocketLayer};
///
/// let pool = Pool::new();
/// let layer = WebSocketLayer::with_pool(WebSocketConfig::default(), pool.clone());
/// assert!(layer.pool().same_pool(&pool));
/// ```
#[derive(Clone, Debug)]
pub struct WebSocketLayer {
    config: WebSocketConfig,
    pool: Pool,
}

impl WebSocketLayer {
    /// A layer with `config` and a pool of its own (default settings), shared by its clones.
    pub fn new(config: WebSocketConfig) -> Self {
        Self::with_pool(config, Pool::new())
    }

    /// A layer with `config` and `pool` (shared with every other holder of a clone of it).
    pub fn with_pool(config: WebSocketConfig, pool: Pool) -> Self {
        Self { config, pool }
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

// Here rather than in `service.rs`, so that the service's file does not depend on the layer's.
impl<S> WebSocket<S> {
    /// A layer building this service with a pool of its own; see [`WebSocketLayer`].
    pub fn layer(config: WebSocketConfig) -> WebSocketLayer {
        WebSocketLayer::new(config)
    }
}

impl<S> Layer<S> for WebSocketLayer {
    type Service = WebSocket<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebSocket::with_pool(inner, self.config.clone(), self.pool.clone())
    }
}
