//! The composed per-route stack: Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP.
//!
//! [`Wsfirst`] holds what every route shares: the eligibility policy, one breaker registry, one
//! WebSocket pool and one HTTP client. [`Wsfirst::route`] gives a [`RouteService`] to mount on an
//! axum route; routes that reach the same upstream key (provider + WebSocket endpoint +
//! credential) share its breaker and its pooled connections.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::{RouteOptions, Wsfirst};
//! use wsfirst::core::Route;
//! use wsfirst::eligibility::EligibilityTable;
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().eligibility(EligibilityTable::openai_default()).build();
//! let responses = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let app = Router::new()
//!     .route("/v1/responses", post_service(wsfirst.route(responses)))
//!     .nest("/admin", wsfirst.admin_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use tower::ServiceBuilder;
use tower_service::Service;
use wsfirst_breaker::{
    BreakerConfig, BreakerHandle, BreakerRegistry, CircuitBreaker, CircuitBreakerLayer, Classify,
    Verdict,
};
use wsfirst_core::{BoxError, Route, WsFailure};
use wsfirst_eligibility::{Eligibility, EligibilityLayer, EligibilityTable, Policy};
use wsfirst_fallback::{Fallback, FallbackConfig, FallbackLayer};
use wsfirst_websocket::{Pool, WebSocket, WebSocketConfig, WebSocketLayer};

use crate::{respond::ResponseFuture, upstream::HttpUpstream};

/// An eligibility policy shared by every route.
pub type SharedPolicy = Arc<dyn Policy + Send + Sync>;

/// The layers of one route, outermost first, over the HTTP upstream.
pub type Stack = Eligibility<SharedPolicy, CircuitBreaker<Fallback<WebSocket<HttpUpstream>>>>;

/// What every route shares: the eligibility policy, the breaker registry, the WebSocket pool and
/// the HTTP client.
///
/// Cloning is cheap and shares all of it. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Wsfirst {
    policy: SharedPolicy,
    registry: BreakerRegistry,
    pool: Pool,
    http: HttpUpstream,
}

impl Wsfirst {
    /// Starts building the shared parts.
    pub fn builder() -> WsfirstBuilder {
        WsfirstBuilder::default()
    }

    /// The service for `route` with the default options.
    pub fn route(&self, route: Route) -> RouteService {
        self.route_with(route, RouteOptions::default())
    }

    /// The service for `route` with per-route options.
    pub fn route_with(&self, route: Route, options: RouteOptions) -> RouteService {
        let RouteOptions {
            breaker,
            mut fallback,
            websocket,
            pool,
        } = options;
        let breaker = match breaker {
            Some(config) => {
                // The breaker's WARN on pin replaces the fallback layer's own rate-limited WARN.
                fallback = fallback.warn_interval(None);
                config
            }
            None => disabled_breaker(),
        };
        let stack = ServiceBuilder::new()
            .layer(EligibilityLayer::new(self.policy.clone()))
            .layer(CircuitBreakerLayer::new(breaker).with_registry(self.registry.clone()))
            .layer(FallbackLayer::new(fallback))
            .layer(
                WebSocketLayer::new(websocket).with_pool(pool.unwrap_or_else(|| self.pool.clone())),
            )
            .service(self.http.clone());
        RouteService::new(route, stack)
    }

    /// A handle to read and steer every breaker (snapshot, pin, unpin, reset).
    pub fn breakers(&self) -> BreakerHandle {
        self.registry.handle()
    }

    /// The shared WebSocket pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Closes every pooled WebSocket cleanly (close frames); call on shutdown.
    pub async fn shutdown(&self) {
        self.pool.close().await;
    }
}

impl fmt::Debug for Wsfirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wsfirst")
            .field("registry", &self.registry)
            .field("pool", &self.pool)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Wsfirst`]; see [`Wsfirst::builder`].
#[derive(Default)]
pub struct WsfirstBuilder {
    policy: Option<SharedPolicy>,
    registry: Option<BreakerRegistry>,
    pool: Option<Pool>,
    http: Option<HttpUpstream>,
}

impl WsfirstBuilder {
    /// The eligibility table (default: [`EligibilityTable::openai_default`]).
    pub fn eligibility(self, table: EligibilityTable) -> Self {
        self.policy(table)
    }

    /// Any eligibility policy, such as a table combined with rules of your own.
    pub fn policy(mut self, policy: impl Policy + Send + Sync + 'static) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// The breaker registry (default: a new one with default idle eviction).
    pub fn registry(mut self, registry: BreakerRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The WebSocket pool (default: [`Pool::new`]).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The HTTP upstream service (default: [`HttpUpstream::new`]).
    pub fn http_upstream(mut self, http: HttpUpstream) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the shared parts.
    pub fn build(self) -> Wsfirst {
        Wsfirst {
            policy: self
                .policy
                .unwrap_or_else(|| Arc::new(EligibilityTable::openai_default())),
            registry: self.registry.unwrap_or_default(),
            pool: self.pool.unwrap_or_default(),
            http: self.http.unwrap_or_default(),
        }
    }
}

impl fmt::Debug for WsfirstBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsfirstBuilder")
            .field("registry", &self.registry)
            .field("pool", &self.pool)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Per-route settings of the layers. Every field has the layer's default.
#[derive(Clone, Debug)]
pub struct RouteOptions {
    breaker: Option<BreakerConfig>,
    fallback: FallbackConfig,
    websocket: WebSocketConfig,
    pool: Option<Pool>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            breaker: Some(BreakerConfig::default()),
            fallback: FallbackConfig::default(),
            websocket: WebSocketConfig::default(),
            pool: None,
        }
    }
}

impl RouteOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The circuit breaker's settings for this route's keys.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }

    /// No circuit breaker: the route never pins (the fallback layer then warns, rate-limited).
    pub fn no_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// The fallback layer's settings (body limit, replay rule).
    pub fn fallback(mut self, config: FallbackConfig) -> Self {
        self.fallback = config;
        self
    }

    /// The WebSocket layer's settings (timeouts, headers, codec, message limit).
    pub fn websocket(mut self, config: WebSocketConfig) -> Self {
        self.websocket = config;
        self
    }

    /// A pool of this route's own instead of the shared one (for different pool limits).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }
}

/// The service of one route: sets the [`Route`], runs the [`Stack`], and answers with a response
/// in every case (failures become `502` with a small JSON body), so an axum router accepts it.
///
/// Responses carry `x-wsfirst-transport` (`websocket` / `http`) and `x-wsfirst-reason` headers
/// and the [`Served`](wsfirst_core::Served) extension. `Clone + Send + Sync + 'static`.
pub struct RouteService {
    route: Route,
    inner: Stack,
    /// A readiness error of the stack, answered by the next `call` (the router needs an
    /// infallible service).
    not_ready: Option<BoxError>,
}

impl Clone for RouteService {
    fn clone(&self) -> Self {
        // A clone must be polled ready on its own, so it starts without the pending error.
        Self {
            route: self.route.clone(),
            inner: self.inner.clone(),
            not_ready: None,
        }
    }
}

impl RouteService {
    /// Wraps a stack for `route`.
    pub fn new(route: Route, inner: Stack) -> Self {
        Self {
            route,
            inner,
            not_ready: None,
        }
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The wrapped stack.
    pub fn get_ref(&self) -> &Stack {
        &self.inner
    }
}

impl fmt::Debug for RouteService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteService")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for RouteService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture<<Stack as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router needs an infallible service: a readiness error is answered in `call`.
        match Service::<Request<B>>::poll_ready(&mut self.inner, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(error);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(error) = self.not_ready.take() {
            return ResponseFuture::failed(error);
        }
        request.extensions_mut().insert(self.route.clone());
        ResponseFuture::new(self.inner.call(request))
    }
}

/// A breaker that never pins: no thresholds, and every failure ignored.
fn disabled_breaker() -> BreakerConfig {
    BreakerConfig::builder()
        .no_consecutive_failures()
        .no_failure_rate()
        .classifier(IgnoreAll)
        .build()
        .unwrap_or_default()
}

/// Classifies every failure as [`Verdict::Ignore`].
#[derive(Debug)]
struct IgnoreAll;

impl Classify for IgnoreAll {
    fn classify(&self, _failure: &WsFailure) -> Verdict {
        Verdict::Ignore
    }
}
