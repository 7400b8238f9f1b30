//! The layer that wraps a service in [`Fallback`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::{BodyBudget, Fallback, FallbackConfig, warn::Warnings};

/// Wraps a service in [`Fallback`]: WebSocket candidates are made replayable and replayed over
/// HTTP after a WebSocket failure that the upstream provably did not execute.
///
/// Cloning this layer, and every service it makes, shares one record of when each key last
/// warned, so that [`FallbackConfig::warn_interval`] holds across clones, and one
/// [`BodyBudget`] (by default the process's, shared with every other layer).
///
/// ```
/// use tower::ServiceBuilder;
/// use wsfirst_fallback::{FallbackConfig, FallbackLayer, Replay};
/// # let http_and_websocket = tower::service_fn(|_: http::Request<wsfirst_fallback::ReplayBody<http_body_util::Empty<bytes::Bytes>>>| async {
/// #     Ok::<_, wsfirst_core::BoxError>(http::Response::new(()))
/// # });
///
/// let config = FallbackConfig::builder().replay(Replay::ConnectOnly).build()?;
/// let service = ServiceBuilder::new()
///     .layer(FallbackLayer::new(config))
///     .service(http_and_websocket);
/// # let _ = service;
/// # Ok::<(), wsfirst_fallback::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FallbackLayer {
    config: FallbackConfig,
    warnings: Arc<Warnings>,
    budget: BodyBudget,
}

impl FallbackLayer {
    /// A layer with these settings, buffering within the
    /// [process's budget](BodyBudget::process).
    pub fn new(config: FallbackConfig) -> Self {
        Self {
            config,
            warnings: Arc::default(),
            budget: BodyBudget::process(),
        }
    }

    /// Buffers within `budget` instead of the process's: share one budget with everything else
    /// that buffers request bodies (a budget per layer multiplies the memory bound).
    pub fn with_budget(mut self, budget: BodyBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The budget its buffered bodies are held from.
    pub fn budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// The layer's settings.
    pub fn config(&self) -> &FallbackConfig {
        &self.config
    }
}

impl Default for FallbackLayer {
    /// A layer with the default settings.
    fn default() -> Self {
        Self::new(FallbackConfig::default())
    }
}

impl<S> Layer<S> for FallbackLayer {
    type Service = Fallback<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::from_parts(
            inner,
            self.config,
            self.warnings.clone(),
            self.budget.clone(),
        )
    }
}
