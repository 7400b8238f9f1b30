//! [`RouteOptions`]: the per-route settings of the layers that
//! [`Wsfirst::route_with`](crate::Wsfirst::route_with) builds.

use wsfirst_fallback::FallbackConfig;
use wsfirst_websocket::{Pool, WebSocketConfig};

use crate::guard::ClientTokens;

/// Per-route settings of the layers. Every field has the layer's default; breaker settings
/// belong to the registry (see the [module docs](crate::stack)).
#[derive(Clone, Debug)]
pub struct RouteOptions {
    pub(crate) breaker: bool,
    pub(crate) fallback: FallbackConfig,
    pub(crate) websocket: WebSocketConfig,
    pub(crate) pool: Option<Pool>,
    pub(crate) client_tokens: Option<ClientTokens>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            breaker: true,
            fallback: FallbackConfig::default(),
            websocket: WebSocketConfig::default(),
            pool: None,
            client_tokens: None,
        }
    }
}

impl RouteOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// No circuit breaker layer for this route: it never pins, never reads nor feeds the
    /// breaker of its key (the fallback layer then warns, rate-limited).
    pub fn no_breaker(mut self) -> Self {
        self.breaker = false;
        self
    }

    /// The fallback layer's settings (body limit, replay rule).
    pub fn fallback(mut self, config: FallbackConfig) -> Self {
        self.fallback = config;
        self
    }

    /// The WebSocket layer's settings (timeouts, codec, message limit). Which headers reach the
    /// upstream is the [`Route`](wsfirst_core::Route)'s [header policy](wsfirst_core::Route::headers), for both transports.
    pub fn websocket(mut self, config: WebSocketConfig) -> Self {
        self.websocket = config;
        self
    }

    /// A pool of this route's own instead of the shared one (for different pool limits).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Clients must present one of `tokens` (`Authorization: Bearer <token>`) on every `POST`
    /// and on every client WebSocket upgrade ([`Wsfirst::client_websocket`](crate::Wsfirst::client_websocket)), `401` otherwise;
    /// the token is taken off before the upstream ([`RequireClientTokenLayer`](crate::guard::RequireClientTokenLayer)).
    /// Give it to every route whose upstream credential the gateway holds (set by the route's
    /// [static headers](wsfirst_core::RouteBuilder::headers)): without it, whoever reaches the
    /// route spends that credential. Default: none (the route is open).
    ///
    /// ```
    /// use wsfirst::{RouteOptions, Wsfirst, guard::ClientTokens};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let route = wsfirst::core::Route::builder("openai", "openai-responses")
    ///     .http_url("https://api.openai.com/v1/responses")
    ///     .build()?;
    /// let tokens = ClientTokens::new(["client-token-0123456789"])?; // or ClientTokens::from_env
    /// let service = Wsfirst::builder()
    ///     .build()
    ///     .route_with(route, RouteOptions::new().client_tokens(tokens));
    /// assert_eq!(service.client_tokens().map(ClientTokens::len), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_tokens(mut self, tokens: ClientTokens) -> Self {
        self.client_tokens = Some(tokens);
        self
    }
}
