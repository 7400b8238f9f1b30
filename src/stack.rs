//! The per-route stack, from public pieces: RequireClientToken -> RequireJson -> Respond ->
//! SetRoute -> Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP upstream.
//!
//! [`Wsfirst`] holds what every route shares: the eligibility policy, one breaker registry, one
//! WebSocket pool, one TLS configuration, one HTTP client and one budget of buffered body bytes.
//! It hands out each piece of a route's stack ([`route_layer`](Wsfirst::route_layer),
//! [`eligibility_layer`](Wsfirst::eligibility_layer), [`breaker_layer`](Wsfirst::breaker_layer),
//! [`fallback_layer`](Wsfirst::fallback_layer), [`websocket_layer`](Wsfirst::websocket_layer),
//! [`http_upstream`](Wsfirst::http_upstream)),
//! so that a [`tower::ServiceBuilder`] builds a route with layers of your own anywhere in it and
//! any `Service<Request<_>>` as the HTTP upstream. [`Wsfirst::route`] is a preset over the same
//! pieces: a [`RouteService`] to mount on an axum route. Routes that reach the same upstream key
//! (provider + WebSocket endpoint + credential) share its breaker and its pooled connections.
//!
//! | piece | what it does |
//! |---|---|
//! | [`RequireClientTokenLayer`](crate::guard::RequireClientTokenLayer) | on a route whose upstream credential the gateway holds: answers `401` without one of the route's client tokens, takes the token off ([`RouteOptions::client_tokens`]) |
//! | [`RequireJsonLayer`] | answers `415` to a `POST` that is not `application/json` (a web page cannot send one without a CORS preflight: see [`guard`](crate::guard)) |
//! | [`RespondLayer`] | turns failures into responses (`502` JSON, `413`, ...) and adds `x-wsfirst-transport` / `x-wsfirst-reason`: `Error = Infallible` for axum |
//! | [`RouteLayer`] | stamps the [`Route`] (URLs, mode, breaker key, header policy, HTTP timeouts) on each request |
//! | [`EligibilityLayer`] | decides who may try the WebSocket |
//! | [`CircuitBreakerLayer`] | pins a failing key to HTTP, brings it back with probes |
//! | [`FallbackLayer`] | replays over HTTP after a replay-safe WebSocket failure; buffers bodies within the shared [`BodyBudget`] |
//! | [`WebSocketLayer`] | serves WebSocket-intended requests over the pool, passes the others on |
//! | [`HttpUpstream`] (or any HTTP service) | sends the request to the route's HTTP URL |
//!
//! Breaker settings belong to the registry, per key, never to a route: configure them on the
//! [`BreakerRegistry`] you give to [`WsfirstBuilder::registry`] (a default for every key and
//! [`config_for`](wsfirst_breaker::BreakerRegistryBuilder::config_for) one endpoint), so two
//! routes that share a key cannot disagree about them. A route built with
//! [`RouteOptions::no_breaker`] has no breaker layer at all: it neither reads nor feeds the key's
//! breaker. Which headers reach the upstream, and the HTTP timeouts, are the [`Route`]'s
//! ([`RouteBuilder::headers`](wsfirst_core::RouteBuilder::headers),
//! [`RouteBuilder::http_timeouts`](wsfirst_core::RouteBuilder::http_timeouts)).
//!
//! # Example: the preset
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::Wsfirst;
//! use wsfirst::core::Route;
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build(); // the OpenAI Responses eligibility table
//! let responses = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let app = Router::new().route("/v1/responses", post_service(wsfirst.route(responses)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(wsfirst::serve::nodelay(listener), app).await?; // TCP_NODELAY: see `serve`
//! // The admin router (`wsfirst.admin_router()`) goes on a listener of its own, never on the
//! // public one: see `wsfirst::admin`.
//! # Ok(())
//! # }
//! ```
//!
//! # Example: build the stack yourself
//!
//! The same stack as [`Wsfirst::route`]'s, with a tower-http layer between the route and the
//! eligibility layer, and a service of your own as the HTTP upstream. [`RequireJsonLayer`] goes
//! first, so that a request a web page could send without a CORS preflight never reaches the
//! upstream; [`Wsfirst::fallback_layer`] buffers within the shared [`BodyBudget`]:
//!
//! ```
//! use std::convert::Infallible;
//! use axum::{Router, routing::post_service};
//! use http::{HeaderValue, Request, Response};
//! use tower::{ServiceBuilder, service_fn};
//! use tower_http::set_header::SetRequestHeaderLayer;
//! use wsfirst::Wsfirst;
//! use wsfirst::core::Route;
//! use wsfirst::fallback::{FallbackConfig, ReplayBody};
//! use wsfirst::guard::RequireJsonLayer;
//! use wsfirst::respond::RespondLayer;
//! use wsfirst::websocket::WebSocketConfig;
//!
//! # fn main() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build();
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! // Any HTTP service will do (it gets the fallback layer's replayable body); this one
//! // answers itself.
//! let http = service_fn(|_: Request<ReplayBody<axum::body::Body>>| async {
//!     Ok::<_, Infallible>(Response::new(axum::body::Body::from("{}")))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RequireJsonLayer::new())
//!     .layer(RespondLayer::new())
//!     .layer(wsfirst.route_layer(route))
//!     .layer(SetRequestHeaderLayer::if_not_present(
//!         http::header::HeaderName::from_static("x-request-id"),
//!         HeaderValue::from_static("unset"),
//!     ))
//!     .layer(wsfirst.eligibility_layer())
//!     .layer(wsfirst.breaker_layer())
//!     // Under a breaker, whose WARN on pin replaces the fallback layer's own.
//!     .layer(wsfirst.fallback_layer(FallbackConfig::builder().warn_interval(None).build()?))
//!     .layer(wsfirst.websocket_layer(WebSocketConfig::default()))
//!     .service(http);
//! let app: Router = Router::new().route("/v1/responses", post_service(service));
//! # let _ = app;
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
use tower::{ServiceBuilder, util::Either};
use tower_http::validate_request::ValidateRequestHeader;
use tower_layer::Layer;
use tower_service::Service;
use wsfirst_breaker::{BreakerHandle, BreakerRegistry, CircuitBreaker, CircuitBreakerLayer};
use wsfirst_core::{BoxError, Route};
use wsfirst_eligibility::{Eligibility, EligibilityLayer, EligibilityTable, Policy};
use wsfirst_fallback::{BodyBudget, Fallback, FallbackConfig, FallbackLayer};
use wsfirst_websocket::{
    Pool, WebSocket, WebSocketConfig, WebSocketLayer, responses, tls::ClientTls,
};

pub use crate::route_options::RouteOptions;
use crate::{
    client_ws::{ClientConnections, ClientWebSocket, ClientWsConfig},
    future::ResponseFuture,
    guard::{ClientTokens, RequireClientToken, RequireJson, RequireJsonLayer},
    respond::{Respond, RespondLayer},
    set_route::{RouteLayer, SetRoute},
    upstream::HttpUpstream,
};

/// An eligibility policy shared by every route.
pub type SharedPolicy = Arc<dyn Policy + Send + Sync>;

/// The layers under the breaker in the preset: Fallback -> WebSocket -> HTTP upstream.
pub type Transports = Fallback<WebSocket<HttpUpstream>>;

/// The preset's stack of a route with a circuit breaker, outermost first.
pub type GuardedStack = Respond<SetRoute<Eligibility<SharedPolicy, CircuitBreaker<Transports>>>>;

/// The preset's stack of a route without a circuit breaker ([`RouteOptions::no_breaker`]).
pub type UnguardedStack = Respond<SetRoute<Eligibility<SharedPolicy, Transports>>>;

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
    budget: BodyBudget,
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

    /// The service for `route` with per-route options: the preset over the pieces of the
    /// [module docs](self),
    ///
    /// ```text
    /// RequireClientToken -> RequireJson -> Respond -> SetRoute -> Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HttpUpstream
    /// ```
    ///
    /// with the shared eligibility policy, breaker registry, pool (unless
    /// [`RouteOptions::pool`]), body budget and HTTP upstream. A `POST` whose `Content-Type` is
    /// not `application/json` is answered `415` before anything else
    /// ([`RequireJsonLayer`]: a web page cannot send one without a CORS preflight, so it cannot
    /// spend a credential the gateway holds). Under a breaker, the fallback layer's own
    /// warning is off (the breaker's WARN on pin replaces it); a WebSocket configuration without
    /// TLS settings of its own gets the shared [`ClientTls`] ([`websocket_layer`](Self::websocket_layer));
    /// the route's header policy loses the eligibility table's override header
    /// ([`route_layer`](Self::route_layer)). With [`RouteOptions::client_tokens`], a request
    /// without one of the tokens is answered `401` before everything else.
    pub fn route_with(&self, route: Route, options: RouteOptions) -> RouteService {
        let RouteOptions {
            breaker,
            fallback,
            websocket,
            pool,
            client_tokens,
        } = options;
        // The breaker's registry gates the handshakes of requests it admitted on a closed key.
        let websocket = if breaker {
            self.gated(websocket)
        } else {
            websocket
        };
        let pool = pool.unwrap_or_else(|| self.pool.clone());
        let websocket = WebSocketLayer::with_pool(self.shared_tls(websocket), pool);
        let fallback = if breaker {
            // The breaker's WARN on pin replaces the fallback layer's own rate-limited WARN.
            fallback
                .to_builder()
                .warn_interval(None)
                .build()
                .unwrap_or(fallback)
        } else {
            fallback
        };
        let transports = ServiceBuilder::new()
            .layer(self.fallback_layer(fallback))
            .layer(websocket.clone())
            .service(self.http.clone());
        let route_layer = self.route_layer(route);
        let route = route_layer.route().clone();
        // The route's own credential is a key known now: with `min_idle`, warmed at once.
        if route.breaker_key().credential().is_some() {
            websocket.pool().warm(&route, websocket.config());
        }
        let outer = ServiceBuilder::new()
            .layer(RespondLayer::new())
            .layer(route_layer)
            .layer(self.eligibility_layer());
        let stack = if breaker {
            Either::Left(outer.layer(self.breaker_layer()).service(transports))
        } else {
            Either::Right(outer.service(transports))
        };
        let client_tokens = RequireClientToken::from_tokens(client_tokens);
        RouteService {
            route,
            inner: ValidateRequestHeader::custom(
                RequireJsonLayer::new().layer(stack),
                client_tokens.clone(),
            ),
            client_tokens,
        }
    }

    /// The layer that stamps `route` on each request, its header policy without the
    /// eligibility table's override header (a layer reads that header, the upstream never sees
    /// it).
    pub fn route_layer(&self, route: Route) -> RouteLayer {
        let route = match &self.override_header {
            Some(name) if route.headers().forwards_or_sets(name) => {
                route.with_headers(route.headers().without(name))
            }
            _ => route,
        };
        RouteLayer::new(route)
    }

    /// The eligibility layer, with the shared policy.
    pub fn eligibility_layer(&self) -> EligibilityLayer<SharedPolicy> {
        EligibilityLayer::new(self.policy.clone())
    }

    /// The circuit breaker layer, with the shared registry (cloning it shares the breakers).
    pub fn breaker_layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::from_registry(self.registry.clone())
    }

    /// The WebSocket layer for `config`, with the shared pool, and the shared TLS
    /// configuration unless `config` has its own; a [`breaker_layer`](Self::breaker_layer) in
    /// front hears of its failed handshakes at once (the registry's
    /// [`HandshakeGates`](wsfirst_core::HandshakeGates)).
    pub fn websocket_layer(&self, config: WebSocketConfig) -> WebSocketLayer {
        WebSocketLayer::with_pool(self.shared_tls(self.gated(config)), self.pool.clone())
    }

    /// The fallback layer for `config`, buffering within the [`body_budget`](Self::body_budget).
    pub fn fallback_layer(&self, config: FallbackConfig) -> FallbackLayer {
        FallbackLayer::new(config).with_budget(self.budget.clone())
    }

    /// The shared HTTP upstream (cloning it shares its connection pool).
    pub fn http_upstream(&self) -> HttpUpstream {
        self.http.clone()
    }

    fn gated(&self, config: WebSocketConfig) -> WebSocketConfig {
        config.with_handshake_gates(Arc::new(self.registry.clone()))
    }

    fn shared_tls(&self, config: WebSocketConfig) -> WebSocketConfig {
        match config.tls() {
            Some(_) => config,
            None => config.with_tls(self.tls.clone()),
        }
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

    /// The fallback layers' and client WebSockets' budget ([`WsfirstBuilder::body_budget`]).
    pub fn body_budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// The `GET` service that accepts client WebSocket connections (the Responses API's
    /// WebSocket mode) for `service`'s route, with the limits of `config`: mount it next to the
    /// route's `POST` (see [`client_ws`](crate::client_ws)). Its connections are counted and
    /// closed by [`client_connections`](Self::client_connections); the messages they queue are
    /// held from the shared [`body_budget`](Self::body_budget).
    pub fn client_websocket(
        &self,
        service: &RouteService,
        config: ClientWsConfig,
    ) -> ClientWebSocket {
        ClientWebSocket::new(service.clone(), config, self.clients.clone())
            .with_budget(self.budget.clone())
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
            .field("budget", &self.budget)
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
    budget: Option<BodyBudget>,
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
    /// [header policy](Route::headers) names it: keep it out of those.
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

    /// The budget of buffered request-body bytes of every route's fallback layer and every client
    /// WebSocket (default: [`BodyBudget::process`], 256 MiB); past it a request is answered `503`
    /// (`body_budget_exhausted`) instead of growing the process.
    pub fn body_budget(mut self, budget: BodyBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Builds the shared parts.
    pub fn build(self) -> Wsfirst {
        let tls = self.tls.unwrap_or_default();
        let http = self
            .http
            .unwrap_or_else(|| HttpUpstream::with_tls(tls.client_config()));
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
            budget: self.budget.unwrap_or_else(BodyBudget::process),
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

/// The service of one route, as [`Wsfirst::route`] builds it: a [`GuardedStack`] (with a
/// circuit breaker) or an [`UnguardedStack`] (without one), behind a [`RequireJsonLayer`] (a
/// `POST` that is not JSON is `415`) and the route's client token check (`401`, see
/// [`RouteOptions::client_tokens`]; none on an open route). It answers with a response in every case (failures
/// become `502` with a small JSON body, see [`Respond`]), so an axum router accepts it.
///
/// Responses carry `x-wsfirst-transport` (`websocket` / `http`) and `x-wsfirst-reason` headers
/// and the [`Served`](wsfirst_core::Served) extension. `Clone + Send + Sync + 'static`.
#[derive(Clone)]
pub struct RouteService {
    route: Route,
    inner: ValidateRequestHeader<
        ValidateRequestHeader<Either<GuardedStack, UnguardedStack>, RequireJson>,
        RequireClientToken,
    >,
    /// A copy of the outermost check, for the client WebSocket's upgrades.
    client_tokens: RequireClientToken,
}

impl RouteService {
    /// The route, as stamped on each request.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The tokens clients must present ([`RouteOptions::client_tokens`]); `None`: an open route.
    pub fn client_tokens(&self) -> Option<&ClientTokens> {
        self.client_token_check().tokens()
    }

    /// The largest request body the route reads into memory: its fallback layer's
    /// [`body_limit`](FallbackConfig::body_limit) (see [`RouteOptions::fallback`]). A client
    /// WebSocket message of the route is at most this large too
    /// ([`ClientWebSocket::max_message_size`]).
    pub fn body_limit(&self) -> usize {
        let fallback = match self.get_ref() {
            Either::Left(guarded) => guarded.get_ref().get_ref().get_ref().get_ref(),
            Either::Right(unguarded) => unguarded.get_ref().get_ref().get_ref(),
        };
        fallback.config().body_limit()
    }

    /// The client token check of the route (it lets everything through on an open route).
    pub(crate) fn client_token_check(&self) -> &RequireClientToken {
        &self.client_tokens
    }

    /// The stack, under the client token check and the [`RequireJsonLayer`].
    pub fn get_ref(&self) -> &Either<GuardedStack, UnguardedStack> {
        self.inner.get_ref().get_ref()
    }

    /// The stack, without the client token check and the [`RequireJsonLayer`].
    pub fn into_inner(self) -> Either<GuardedStack, UnguardedStack> {
        self.inner.into_inner().into_inner()
    }
}

impl fmt::Debug for RouteService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteService")
            .field("route", &self.route)
            .field("breaker", &matches!(self.get_ref(), Either::Left(_)))
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
    type Future = tower_http::validate_request::ResponseFuture<
        tower_http::validate_request::ResponseFuture<
        tower::util::future::EitherResponseFuture<
            ResponseFuture<
                <SetRoute<Eligibility<SharedPolicy, CircuitBreaker<Transports>>> as Service<
                    Request<B>,
                >>::Future,
            >,
            ResponseFuture<
                <SetRoute<Eligibility<SharedPolicy, Transports>> as Service<Request<B>>>::Future,
            >,
        >,
        axum::body::Body,
        >,
        axum::body::Body,
    >;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<B>>::poll_ready(&mut self.inner, cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request)
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
        let tls_of = |layer: WebSocketLayer| layer.config().tls().unwrap().client_config();
        let default = wsfirst.websocket_layer(WebSocketConfig::default());
        assert!(Arc::ptr_eq(&tls_of(default), &shared.client_config()));
        let config = WebSocketConfig::builder().tls(own.clone()).build().unwrap();
        let with_own = wsfirst.websocket_layer(config);
        assert!(Arc::ptr_eq(&tls_of(with_own), &own.client_config()));
    }

    #[test]
    fn a_route_without_breaker_has_no_breaker_layer() {
        let wsfirst = Wsfirst::builder().build();
        assert!(matches!(wsfirst.route(route()).get_ref(), Either::Left(_)));
        let options = RouteOptions::new().no_breaker();
        let service = wsfirst.route_with(route(), options);
        assert!(matches!(service.get_ref(), Either::Right(_)));
    }

    /// The fallback layer under a preset route's breaker.
    fn fallback_of(service: &RouteService) -> &Transports {
        let Either::Left(guarded) = service.get_ref() else {
            panic!("a route with a breaker expected");
        };
        guarded.get_ref().get_ref().get_ref().get_ref()
    }

    #[test]
    fn one_body_budget_reaches_every_fallback_layer_and_client_websocket() {
        let budget = BodyBudget::new(1234);
        let wsfirst = Wsfirst::builder().body_budget(budget).build();
        assert_eq!(wsfirst.body_budget().capacity(), 1234);
        let service = wsfirst.route(route());
        assert_eq!(fallback_of(&service).budget().capacity(), 1234);
        let layer = wsfirst.fallback_layer(FallbackConfig::default());
        assert_eq!(layer.budget().capacity(), 1234);
        let clients = wsfirst.client_websocket(&service, ClientWsConfig::default());
        assert_eq!(clients.budget().capacity(), 1234);
        // Without a budget of its own, the process's.
        let wsfirst = Wsfirst::builder().build();
        let service = wsfirst.route(route());
        let process = BodyBudget::process().capacity();
        assert_eq!(fallback_of(&service).budget().capacity(), process);
    }

    #[tokio::test]
    async fn the_preset_refuses_a_post_that_is_not_json() {
        use tower::ServiceExt;
        let service = Wsfirst::builder().build().route(route());
        for content_type in [Some("text/plain"), None] {
            let mut request = Request::post("/v1/responses");
            if let Some(value) = content_type {
                request = request.header(http::header::CONTENT_TYPE, value);
            }
            let request = request.body(axum::body::Body::from("{}")).unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_past_the_shared_budget_is_503_before_anything_is_sent() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        use wsfirst_core::TransportMode;
        let table = EligibilityTable::builder()
            .allow("local", "responses")
            .build()
            .unwrap();
        let wsfirst = Wsfirst::builder()
            .eligibility(table)
            .body_budget(BodyBudget::new(16))
            .build();
        // Strict `websocket` mode too: its message is the whole body in memory.
        for mode in [TransportMode::Auto, TransportMode::WebSocket] {
            // Nothing listens on these: only the budget can answer.
            let route = Route::builder("local", "responses")
                .ws_url("ws://127.0.0.1:9/v1/responses")
                .http_url("http://127.0.0.1:9/v1/responses")
                .mode(mode)
                .build()
                .unwrap();
            let request = Request::post("/v1/responses")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(
                    r#"{"model":"m","input":"more than sixteen bytes","stream":true}"#,
                ))
                .unwrap();
            let response = wsfirst.route(route).oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                http::StatusCode::SERVICE_UNAVAILABLE,
                "{mode:?}"
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "body_budget_exhausted");
        }
    }

    #[test]
    fn the_route_layer_leaves_out_the_override_header() {
        let name = HeaderName::from_static("x-wsfirst-transport");
        let table = EligibilityTable::builder()
            .allow("local", "responses")
            .override_header(name.clone())
            .build()
            .unwrap();
        let wsfirst = Wsfirst::builder().eligibility(table).build();
        let policy = wsfirst_core::headers::HeaderPolicy::responses()
            .to_builder()
            .forward_header(name.clone())
            .build()
            .unwrap();
        let layer = wsfirst.route_layer(route().with_headers(policy));
        assert!(!layer.route().headers().forwards_or_sets(&name));
        assert!(
            layer
                .route()
                .headers()
                .forwards_or_sets(&http::header::AUTHORIZATION)
        );
    }
}
