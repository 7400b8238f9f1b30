//! The layer that wraps a service in [`Fallback`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::{Fallback, FallbackConfig, warn::Warnings};

/// Wraps a service in [`Fallback`]: WebSocket candidates are made replayable and replayed over
/// HTTP after a WebSocket failure that the upstream provably did not execute.
///
/// Cloning this layer, and every service it makes, shares one record of when each key last
/// warned, so that [`FallbackConfig::warn_interval`] holds across clones.
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
}

impl FallbackLayer {
    /// A layer with these settings.
    pub fn new(config: FallbackConfig) -> Self {
        Self {
            config,
            warnings: Arc::default(),
        }
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
        Fallback::from_parts(inner, self.config, self.warnings.clone())
    }
}
