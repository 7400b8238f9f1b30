//! The layer that wraps services in a [`CircuitBreaker`].

use tower_layer::Layer;

use crate::{BreakerConfig, BreakerHandle, BreakerRegistry, CircuitBreaker};

/// Wraps services in a [`CircuitBreaker`] that keeps one breaker per breaker key.
///
/// The breakers live in a [`BreakerRegistry`]: **cloning this layer shares the breakers**, and so
/// does making several layers (one per route) [`from_registry`](Self::from_registry) with one
/// registry. The layer carries no settings: **settings belong to the registry, per key** (a
/// default and overrides by provider and endpoint, see
/// [`BreakerRegistryBuilder::config_for`](crate::BreakerRegistryBuilder::config_for)).
///
/// ```
/// use wsfirst_breaker::{BreakerConfig, BreakerRegistry, CircuitBreakerLayer};
///
/// // A layer with its own registry, whose keys all use one configuration...
/// let layer = CircuitBreakerLayer::new(BreakerConfig::default());
/// let handle = layer.handle();
/// let same_breakers = layer.clone();
/// assert!(handle.snapshot().is_empty());
///
/// // ...or a layer over a registry shared with other routes.
/// let registry = BreakerRegistry::new();
/// let shared = CircuitBreakerLayer::from_registry(registry.clone());
/// # drop((same_breakers, shared));
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    registry: BreakerRegistry,
}

impl CircuitBreakerLayer {
    /// A layer with its own new registry, whose keys all use `config` (a shorthand for
    /// [`from_registry`](Self::from_registry) with
    /// `BreakerRegistry::builder().config(config).build()`).
    pub fn new(config: BreakerConfig) -> Self {
        Self::from_registry(BreakerRegistry::builder().config(config).build())
    }

    /// A layer over `registry`, sharing its breakers, settings and handle with every other layer
    /// made from it.
    pub fn from_registry(registry: BreakerRegistry) -> Self {
        CircuitBreakerLayer { registry }
    }

    /// The registry of breakers.
    pub fn registry(&self) -> &BreakerRegistry {
        &self.registry
    }

    /// A handle to read and steer the breakers.
    pub fn handle(&self) -> BreakerHandle {
        self.registry.handle()
    }
}

// Here rather than in `service.rs`, so that the service does not depend on its layer.
impl<S> CircuitBreaker<S> {
    /// A layer with its own new registry, whose keys all use `config`; see
    /// [`CircuitBreakerLayer::new`].
    pub fn layer(config: BreakerConfig) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(config)
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.registry.clone())
    }
}
