//! The composed per-route stack: Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP.
//!
//! [`Wsfirst`] holds what every route shares: the eligibility policy, one breaker registry, one
//! WebSocket pool, one TLS configuration and one HTTP client. [`Wsfirst::route`] gives a
//! [`RouteService`] to mount on an axum route; routes that reach the same upstream key (provider +
//! WebSocket endpoint + credential) share its breaker and its pooled connections.
//!
//! Breaker settings belong to the registry, per key, never to a route: configure them on the
//! [`BreakerRegistry`] you give to [`WsfirstBuilder::registry`] (a default for every key and
//! [`config_for`](wsfirst_breaker::BreakerRegistryBuilder::config_for) one endpoint), so two
//! routes that share a key cannot disagree about them. A route built with
//! [`RouteOptions::no_breaker`] has no breaker layer at all: it neither reads nor feeds the key's
//! breaker.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::{RouteOptions, Wsfirst};
//! use wsfirst::core::Route;
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build(); // the OpenAI Responses eligibility table
//! let responses = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let app = Router::new()
//!     .route("/v1/responses", post_service(wsfirst.route(responses)))
//!     .nest("/admin", wsfirst.admin_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(wsfirst::serve::nodelay(listener), app).await?; // TCP_NODELAY: see `serve`
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use tower::ServiceBuilder;
use tower_service::Service;
use wsfirst_breaker::{BreakerHandle, BreakerRegistry, CircuitBreaker, CircuitBreakerLayer};
use wsfirst_core::{BoxError, Route, headers::HeaderPolicy};
use wsfirst_eligibility::{Eligibility, EligibilityLayer, EligibilityTable, Policy};
use wsfirst_fallback::{Fallback, FallbackConfig, FallbackLayer};
use wsfirst_websocket::{
    Pool, WebSocket, WebSocketConfig, WebSocketLayer, responses, tls::ClientTls,
};

use crate::{
    client_ws::{ClientConnections, ClientWebSocket, ClientWsConfig},
    future::ResponseFuture,
    upstream::{HttpTimeouts, HttpUpstream},
};

/// An eligibility policy shared by every route.
pub type SharedPolicy = Arc<dyn Policy + Send + Sync>;

/// The layers under the breaker: Fallback -> WebSocket -> HTTP upstream.
pub type Transports = Fallback<WebSocket<HttpUpstream>>;

/// The layers of a route with a circuit breaker, outermost first.
pub type GuardedStack = Eligibility<SharedPolicy, CircuitBreaker<Transports>>;

/// The layers of a route without a circuit breaker ([`RouteOptions::no_breaker`]).
pub type UnguardedStack = Eligibility<SharedPolicy, Transports>;

/// The stack of one route: with a circuit breaker (the default) or without one (no breaker layer
/// at all, not a breaker that ignores everything).
#[derive(Clone)]
pub enum RouteStack {
    /// Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP.
    Guarded(GuardedStack),
    /// Eligibility -> Fallback -> WebSocket -> HTTP.
    Unguarded(UnguardedStack),
}

impl fmt::Debug for RouteStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteStack::Guarded(_) => "RouteStack::Guarded",
            RouteStack::Unguarded(_) => "RouteStack::Unguarded",
        })
    }
}

/// The eligibility table of the OpenAI Responses API's WebSocket mode, from the data of
/// [`wsfirst::websocket::responses`](wsfirst_websocket::responses): the default of
/// [`WsfirstBuilder::eligibility`].
///
/// ```
/// let table = wsfirst::openai_responses_table();
/// assert!(table.is_allowed("openai", "openai-responses"));
/// assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
/// ```
pub fn openai_responses_table() -> EligibilityTable {
    EligibilityTable::builder()
        .allow_pairs(responses::WEBSOCKET_PAIRS.iter().copied())
        .deny_pairs(responses::DENIED_PAIRS.iter().copied())
        .provider_hosts(responses::PROVIDER_HOSTS.iter().copied())
        .build()
        .expect("the responses module's eligibility data is valid (tested)")
}

/// What every route shares: the eligibility policy, the breaker registry, the WebSocket pool,
/// the TLS configuration and the HTTP client.
///
/// Cloning is cheap and shares all of it. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Wsfirst {
    policy: SharedPolicy,
    /// The eligibility table's override header, which no route forwards.
    override_header: Option<HeaderName>,
    registry: BreakerRegistry,
    pool: Pool,
    tls: ClientTls,
    http: HttpUpstream,
    clients: ClientConnections,
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
    ///
    /// A WebSocket configuration without TLS settings of its own gets the shared
    /// [`ClientTls`], so the WebSocket and the HTTP client trust the same roots. Its
    /// [header policy](WebSocketConfig::headers) decides the headers of both transports: the
    /// [`RouteService`] hands it to the HTTP upstream with every request, so the handshake and
    /// the HTTP request forward the same headers. The eligibility table's override header is
    /// taken out of it: a layer reads it, the upstream never sees it.
    pub fn route_with(&self, route: Route, options: RouteOptions) -> RouteService {
        let RouteOptions {
            breaker,
            fallback,
            websocket,
            pool,
            http_timeouts,
        } = options;
        let mut websocket = match websocket.tls() {
            Some(_) => websocket,
            None => websocket.with_tls(self.tls.clone()),
        };
        if let Some(name) = &self.override_header {
            if websocket.headers().forwards_or_sets(name) {
                let headers = websocket.headers().without(name);
                websocket = websocket.with_headers(headers);
            }
        }
        let transports = ServiceBuilder::new()
            .layer(FallbackLayer::new(if breaker {
                // The breaker's WARN on pin replaces the fallback layer's own rate-limited WARN.
                fallback
                    .to_builder()
                    .warn_interval(None)
                    .build()
                    .unwrap_or(fallback)
            } else {
                fallback
            }))
            .layer(WebSocketLayer::with_pool(
                websocket,
                pool.unwrap_or_else(|| self.pool.clone()),
            ))
            .service(self.http.clone());
        let eligibility = EligibilityLayer::new(self.policy.clone());
        let stack = if breaker {
            RouteStack::Guarded(
                ServiceBuilder::new()
                    .layer(eligibility)
                    .layer(CircuitBreakerLayer::from_registry(self.registry.clone()))
                    .service(transports),
            )
        } else {
            RouteStack::Unguarded(ServiceBuilder::new().layer(eligibility).service(transports))
        };
        let mut service = RouteService::new(route, stack);
        service.http_timeouts = http_timeouts;
        service
    }

    /// A handle to read and steer every breaker (snapshot, pin, unpin, reset).
    pub fn breakers(&self) -> BreakerHandle {
        self.registry.handle()
    }

    /// The breaker registry (its settings: [`BreakerRegistry::config_for`]).
    pub fn registry(&self) -> &BreakerRegistry {
        &self.registry
    }

    /// The shared WebSocket pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The shared TLS configuration.
    pub fn tls(&self) -> &ClientTls {
        &self.tls
    }

    /// The `GET` service that accepts client WebSocket connections (the Responses API's
    /// WebSocket mode) for `service`'s route, with the limits of `config`: mount it next to the
    /// route's `POST` (see [`client_ws`](crate::client_ws)). Its connections are counted and
    /// closed by [`client_connections`](Self::client_connections).
    pub fn client_websocket(
        &self,
        service: &RouteService,
        config: ClientWsConfig,
    ) -> ClientWebSocket {
        ClientWebSocket::new(service.clone(), config, self.clients.clone())
    }

    /// The client WebSocket connections open on every route.
    pub fn client_connections(&self) -> &ClientConnections {
        &self.clients
    }

    /// Closes every client WebSocket (close frames `1001`, after each running response within
    /// its shutdown grace), then every pooled WebSocket cleanly (close frames); call on
    /// shutdown, once the server stopped taking requests. Busy pooled WebSockets get
    /// [`Wsfirst::POOL_SHUTDOWN_GRACE`]; see [`shutdown_within`](Self::shutdown_within).
    pub async fn shutdown(&self) {
        self.shutdown_within(Self::POOL_SHUTDOWN_GRACE).await;
    }

    /// How long [`shutdown`](Self::shutdown) lets busy pooled WebSockets finish their answers.
    pub const POOL_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// [`shutdown`](Self::shutdown), letting busy pooled WebSockets finish their answers for at
    /// most `grace` ([`Pool::shutdown`]); returns how many were still busy then.
    pub async fn shutdown_within(&self, grace: Duration) -> usize {
        self.clients.close().await;
        self.pool.shutdown(grace).await
    }
}

impl fmt::Debug for Wsfirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wsfirst")
            .field("registry", &self.registry)
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Wsfirst`]; see [`Wsfirst::builder`].
#[derive(Default)]
pub struct WsfirstBuilder {
    policy: Option<SharedPolicy>,
    override_header: Option<HeaderName>,
    registry: Option<BreakerRegistry>,
    pool: Option<Pool>,
    tls: Option<ClientTls>,
    http: Option<HttpUpstream>,
}

impl WsfirstBuilder {
    /// The eligibility table (default: [`openai_responses_table`]). Its override header, if
    /// any, is never forwarded upstream (see [`Wsfirst::route_with`]).
    pub fn eligibility(self, table: EligibilityTable) -> Self {
        let override_header = table.override_header().cloned();
        let mut builder = self.policy(table);
        builder.override_header = override_header;
        builder
    }

    /// Any eligibility policy, such as a table combined with rules of your own. A header that
    /// it reads (such as an override header) is forwarded upstream only if a route's
    /// [header policy](WebSocketConfig::headers) names it: keep it out of those.
    pub fn policy(mut self, policy: impl Policy + Send + Sync + 'static) -> Self {
        self.policy = Some(Arc::new(policy));
        self.override_header = None;
        self
    }

    /// The breaker registry, which owns every key's breaker settings (default: a new one with
    /// [`BreakerConfig::default`](wsfirst_breaker::BreakerConfig::default) for every key).
    pub fn registry(mut self, registry: BreakerRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The WebSocket pool (default: [`Pool::new`]).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The TLS configuration of the HTTP client and of every route's WebSocket (default:
    /// [`ClientTls::default`], the webpki roots). Build one with the platform's roots or a
    /// private CA with [`ClientTls::builder`].
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The HTTP upstream service (default: [`HttpUpstream::builder`] with the shared
    /// [`tls`](Self::tls)). One given here keeps its own TLS settings.
    pub fn http_upstream(mut self, http: HttpUpstream) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the shared parts.
    pub fn build(self) -> Wsfirst {
        let tls = self.tls.unwrap_or_default();
        let http = self
            .http
            .unwrap_or_else(|| HttpUpstream::with_tls(tls.clone()));
        Wsfirst {
            policy: self
                .policy
                .unwrap_or_else(|| Arc::new(openai_responses_table())),
            override_header: self.override_header,
            registry: self.registry.unwrap_or_default(),
            pool: self.pool.unwrap_or_default(),
            tls,
            http,
            clients: ClientConnections::new(),
        }
    }
}

impl fmt::Debug for WsfirstBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsfirstBuilder")
            .field("registry", &self.registry)
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Per-route settings of the layers. Every field has the layer's default; breaker settings
/// belong to the registry (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct RouteOptions {
    breaker: bool,
    fallback: FallbackConfig,
    websocket: WebSocketConfig,
    pool: Option<Pool>,
    http_timeouts: Option<HttpTimeouts>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            breaker: true,
            fallback: FallbackConfig::default(),
            websocket: WebSocketConfig::default(),
            pool: None,
            http_timeouts: None,
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

    /// The WebSocket layer's settings (timeouts, codec, message limit) and the route's
    /// [header policy](WebSocketConfig::headers), which decides the forwarded headers of both
    /// transports (its static headers, such as a gateway's own `Authorization`, are set on the
    /// handshake and on the HTTP request alike).
    pub fn websocket(mut self, config: WebSocketConfig) -> Self {
        self.websocket = config;
        self
    }

    /// A pool of this route's own instead of the shared one (for different pool limits).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// This route's HTTP upstream timeouts (response headers, body idle), overriding the
    /// shared [`HttpUpstream`]'s.
    pub fn http_timeouts(mut self, timeouts: HttpTimeouts) -> Self {
        self.http_timeouts = Some(timeouts);
        self
    }
}

/// The service of one route: sets the [`Route`], runs the [`RouteStack`], and answers with a
/// response in every case (failures become `502` with a small JSON body), so an axum router
/// accepts it.
///
/// Responses carry `x-wsfirst-transport` (`websocket` / `http`) and `x-wsfirst-reason` headers
/// and the [`Served`](wsfirst_core::Served) extension. `Clone + Send + Sync + 'static`.
pub struct RouteService {
    route: Route,
    inner: RouteStack,
    /// Set on every request when the route overrides the HTTP upstream's timeouts.
    http_timeouts: Option<HttpTimeouts>,
    /// The header policy of the stack's WebSocket layer, set on every request for the HTTP
    /// upstream, so both transports forward the same headers.
    headers: HeaderPolicy,
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
            http_timeouts: self.http_timeouts,
            headers: self.headers.clone(),
            not_ready: None,
        }
    }
}

impl RouteService {
    /// Wraps a stack for `route`. Every request gets the [header policy](WebSocketConfig::headers)
    /// of the stack's WebSocket layer, for the HTTP upstream.
    pub fn new(route: Route, inner: RouteStack) -> Self {
        let headers = match &inner {
            RouteStack::Guarded(stack) => stack.get_ref().get_ref().get_ref().config(),
            RouteStack::Unguarded(stack) => stack.get_ref().get_ref().config(),
        }
        .headers()
        .clone();
        Self {
            route,
            inner,
            http_timeouts: None,
            headers,
            not_ready: None,
        }
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The wrapped stack.
    pub fn get_ref(&self) -> &RouteStack {
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
    type Future = ResponseFuture<
        <GuardedStack as Service<Request<B>>>::Future,
        <UnguardedStack as Service<Request<B>>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let ready = match &mut self.inner {
            RouteStack::Guarded(stack) => Service::<Request<B>>::poll_ready(stack, cx),
            RouteStack::Unguarded(stack) => Service::<Request<B>>::poll_ready(stack, cx),
        };
        // The router needs an infallible service: a readiness error is answered in `call`.
        match ready {
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
        if let Some(timeouts) = self.http_timeouts {
            request.extensions_mut().insert(timeouts);
        }
        request.extensions_mut().insert(self.headers.clone());
        match &mut self.inner {
            RouteStack::Guarded(stack) => ResponseFuture::guarded(stack.call(request)),
            RouteStack::Unguarded(stack) => ResponseFuture::unguarded(stack.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route::builder("local", "responses")
            .ws_url("wss://example.test/v1/responses")
            .http_url("https://example.test/v1/responses")
            .build()
            .unwrap()
    }

    #[test]
    fn the_default_table_builds() {
        let table = openai_responses_table();
        assert!(table.is_allowed("openai", "openai-responses"));
    }

    #[test]
    fn routes_get_the_shared_tls_unless_they_bring_their_own() {
        let shared = ClientTls::default();
        let own = ClientTls::builder().build().unwrap();
        let wsfirst = Wsfirst::builder().tls(shared.clone()).build();
        let tls_of = |service: &RouteService| match service.get_ref() {
            RouteStack::Guarded(stack) => {
                stack.get_ref().get_ref().get_ref().config().tls().cloned()
            }
            RouteStack::Unguarded(stack) => stack.get_ref().get_ref().config().tls().cloned(),
        };
        let default = wsfirst.route(route());
        let config = tls_of(&default).unwrap().client_config();
        assert!(Arc::ptr_eq(&config, &shared.client_config()));
        let options = RouteOptions::new()
            .no_breaker()
            .websocket(WebSocketConfig::builder().tls(own.clone()).build().unwrap());
        let with_own = wsfirst.route_with(route(), options);
        let config = tls_of(&with_own).unwrap().client_config();
        assert!(Arc::ptr_eq(&config, &own.client_config()));
    }

    #[test]
    fn a_route_without_breaker_has_no_breaker_layer() {
        let wsfirst = Wsfirst::builder().build();
        assert!(matches!(
            wsfirst.route(route()).get_ref(),
            RouteStack::Guarded(_)
        ));
        let options = RouteOptions::new().no_breaker();
        let service = wsfirst.route_with(route(), options);
        assert!(matches!(service.get_ref(), RouteStack::Unguarded(_)));
    }
}
