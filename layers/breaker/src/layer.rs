//! The layer that wraps services in a [`CircuitBreaker`].

use tower_layer::Layer;

use crate::{BreakerConfig, BreakerHandle, BreakerRegistry, CircuitBreaker};

/// Wraps services in a [`CircuitBreaker`] that keeps one breaker per breaker key.
///
/// The breakers live in a [`BreakerRegistry`]: **cloning this layer shares the breakers**, and so
/// does giving several layers (with different configurations, one per route) the same registry
/// with [`with_registry`](Self::with_registry).
///
/// ```
/// use wsfirst_breaker::{BreakerConfig, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::new(BreakerConfig::default());
/// let handle = layer.handle();
/// let same_breakers = layer.clone();
/// assert!(handle.snapshot().is_empty());
/// # drop(same_breakers);
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    config: BreakerConfig,
    registry: BreakerRegistry,
}

impl CircuitBreakerLayer {
    /// A layer with its own new registry.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreakerLayer {
            config,
            registry: BreakerRegistry::new(),
        }
    }

    /// Uses `registry` instead, to share breakers (and one handle) with other layers.
    pub fn with_registry(mut self, registry: BreakerRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// The registry of breakers.
    pub fn registry(&self) -> &BreakerRegistry {
        &self.registry
    }

    /// A handle to read and steer the breakers.
    pub fn handle(&self) -> BreakerHandle {
        self.registry.handle()
    }

    /// The configuration for keys this layer creates.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.config.clone(), self.registry.clone())
    }
}
