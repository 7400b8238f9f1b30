//! The circuit breaker service.

use std::{
    sync::{Arc, PoisonError, RwLock},
    task::{Context, Poll},
};

use std::fmt;

use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::time::Instant;
use tower_service::Service;
use wsfirst_core::{
    BoxError, BreakerKey, HttpReason, Intent, MissingExtension, Route, TransportMode,
};

use crate::{
    BreakerConfig, BreakerRegistry, CircuitBreakerLayer, ResponseBody,
    future::{ResponseFuture, Ticket},
    slot::{Admission, Slot},
};

/// A per-key circuit breaker in front of the WebSocket path; see the [crate docs](crate).
///
/// Requests whose [`Intent`] is already HTTP pass through untouched and uncounted. For a
/// WebSocket request it looks up the breaker of `route.breaker_key_for(request.headers())`:
/// closed lets it through; open rewrites its intent to `Intent::Http(HttpReason::Pinned { until })`
/// (it never rejects); half-open lets a bounded number of probes through and pins the others with
/// the deadline that ended the pin (see the [crate docs](crate)). Strict routes
/// ([`TransportMode::WebSocket`]) are never rerouted, but their outcomes are recorded: on a
/// closed key like any other request; on an open or half-open key a success closes the key
/// (unless it was pinned by hand) and a failure is kept as the last failure without extending the
/// pin.
///
/// The service remembers the last key it looked up together with the credential header's value
/// it came from, so that a request with the same route and credential neither hashes the
/// credential nor looks up the registry: it compares the route's key by pointer and the header's
/// bytes with the remembered ones.
/// Each clone remembers its own last key (no shared writes when it hits), and all clones made
/// from one service also share the last key any of them looked up, so that clones made for a
/// single request (as axum's `Router` does) skip the registry too. The remembered value is never
/// shown by `Debug`.
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    registry: BreakerRegistry,
    cache: Option<Arc<Cached>>,
    shared: Arc<RwLock<Option<Arc<Cached>>>>,
}

/// The last key looked up, and what it was looked up for.
struct Cached {
    /// The route's own key (compared by pointer first).
    base: BreakerKey,
    /// The value of the route's credential header the key was derived from (`None`: the route
    /// reads no header, or the request had none). A clone of the request's value (a reference
    /// count), kept to compare bytes with the next request's; never logged.
    credential: Option<HeaderValue>,
    key: BreakerKey,
    slot: Arc<Slot>,
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key shows the credential's fingerprint only; the header value stays out.
        f.debug_struct("Cached")
            .field("key", &self.key)
            .field("from_credential_header", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

impl Cached {
    /// Whether this is the key of a request on the route whose key is `base` (the same key
    /// object: a pointer comparison) with this credential header value.
    #[inline]
    fn matches(&self, base: &BreakerKey, credential: Option<&HeaderValue>) -> bool {
        self.base.ptr_eq(base) && self.same_credential(credential)
    }

    /// [`Cached::matches`] for a route whose key is equal but another object (another route
    /// with the same provider and endpoint, or the same route built again).
    fn matches_equal(&self, base: &BreakerKey, credential: Option<&HeaderValue>) -> bool {
        self.base == *base && self.same_credential(credential)
    }

    #[inline]
    fn same_credential(&self, credential: Option<&HeaderValue>) -> bool {
        self.credential.as_ref().map(HeaderValue::as_bytes) == credential.map(HeaderValue::as_bytes)
    }

    /// The same key and breaker, remembered for `base` (so that the next request on that route
    /// matches by pointer).
    fn rebased(&self, base: &BreakerKey) -> Cached {
        Cached {
            base: base.clone(),
            credential: self.credential.clone(),
            key: self.key.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner`, with the breakers (and their settings) of `registry`.
    pub fn new(inner: S, registry: BreakerRegistry) -> Self {
        CircuitBreaker {
            inner,
            registry,
            cache: None,
            shared: Arc::default(),
        }
    }

    /// A layer with its own new registry, whose keys all use `config`; see
    /// [`CircuitBreakerLayer`].
    pub fn layer(config: BreakerConfig) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(config)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The registry of breakers.
    pub fn registry(&self) -> &BreakerRegistry {
        &self.registry
    }
}

/// The key of a request on `route` with these headers, and its breaker: the remembered one when
/// it matches, else looked up (and remembered).
#[inline]
fn cached<'a>(
    cache: &'a mut Option<Arc<Cached>>,
    shared: &RwLock<Option<Arc<Cached>>>,
    registry: &BreakerRegistry,
    route: &Route,
    headers: &HeaderMap,
) -> &'a Cached {
    let base = route.breaker_key();
    let credential = route.credential_header().and_then(|name| headers.get(name));
    let remembered = cache.take().filter(|cached| !cached.slot.is_retired());
    let fresh = match remembered {
        Some(cached) if cached.matches(base, credential) => cached,
        // Re-based once, so that the next request on this route object matches by pointer.
        Some(cached) if cached.matches_equal(base, credential) => Arc::new(cached.rebased(base)),
        _ => shared_or_lookup(shared, registry, route, credential),
    };
    cache.insert(fresh)
}

/// The key the clones of this service share if it matches, else a new lookup (then shared).
#[cold]
#[inline(never)]
fn shared_or_lookup(
    shared: &RwLock<Option<Arc<Cached>>>,
    registry: &BreakerRegistry,
    route: &Route,
    credential: Option<&HeaderValue>,
) -> Arc<Cached> {
    let base = route.breaker_key();
    let rebased = {
        let last = shared.read().unwrap_or_else(PoisonError::into_inner);
        match last.as_ref().filter(|c| !c.slot.is_retired()) {
            Some(cached) if cached.matches(base, credential) => return cached.clone(),
            // Shared again below, so that the next clones match it by pointer.
            Some(cached) if cached.matches_equal(base, credential) => Some(cached.rebased(base)),
            _ => None,
        }
    };
    let fresh = Arc::new(rebased.unwrap_or_else(|| lookup(registry, route, credential)));
    *shared.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
    fresh
}

/// Builds the key of a request on `route` whose credential header holds `credential` (what
/// [`Route::breaker_key_for`] does) and finds its breaker in the registry.
#[cold]
#[inline(never)]
fn lookup(registry: &BreakerRegistry, route: &Route, credential: Option<&HeaderValue>) -> Cached {
    let base = route.breaker_key();
    let key = match credential {
        Some(value) => base.with_credential(Some(wsfirst_core::Fingerprint::of(value.as_bytes()))),
        None => base.clone(),
    };
    let slot = registry.slot_for(&key);
    Cached {
        base: base.clone(),
        credential: credential.cloned(),
        key,
        slot,
    }
}

/// The ticket of a request on a key that is not closed, or the deadline of its pin.
#[cold]
#[inline(never)]
fn not_closed(cached: &Cached, admission: Admission) -> Result<Ticket, Option<Instant>> {
    let key = &cached.key;
    match admission {
        Admission::Closed { generation } => Ok(Ticket::Closed {
            slot: cached.slot.clone(),
            generation,
        }),
        Admission::Probe { generation } => {
            tracing::debug!(key = %key, "probing the websocket path of a half-open breaker");
            Ok(Ticket::Probe {
                slot: cached.slot.clone(),
                generation,
            })
        }
        Admission::Observe { generation } => Ok(Ticket::Observe {
            slot: cached.slot.clone(),
            generation,
        }),
        Admission::Pinned { until } => {
            tracing::debug!(key = %key, "request routed around an open breaker to http");
            metrics::counter!(
                "wsfirst_breaker_pinned_requests_total",
                "provider" => key.provider().to_owned()
            )
            .increment(1);
            Err(until)
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CircuitBreaker<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // `always`: with the closed-state path inlined into the caller, the `closed_overhead`
    // benchmark measured about 10 ns less per call than with `#[inline]` (which LLVM declined).
    #[inline(always)]
    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The closed-state path: a WebSocket request whose key is the remembered one and closed
        // (one load). Everything else is out of line, so that this stays small.
        let extensions = request.extensions();
        match extensions.get::<Intent>() {
            Some(Intent::WebSocket) => {}
            Some(Intent::Http(_)) => return ResponseFuture::passthrough(self.inner.call(request)),
            None => return ResponseFuture::failed(&MissingExtension::INTENT),
        }
        if let (Some(route), Some(cached)) = (extensions.get::<Route>(), &self.cache) {
            let credential = route
                .credential_header()
                .and_then(|name| request.headers().get(name));
            if cached.matches(route.breaker_key(), credential) {
                if let Some(generation) = cached.slot.closed_generation() {
                    cached.slot.touch();
                    let ticket = Ticket::Closed {
                        slot: cached.slot.clone(),
                        generation,
                    };
                    return ResponseFuture::tracked(self.inner.call(request), ticket);
                }
            }
        }
        self.call_websocket(request)
    }
}

impl<S> CircuitBreaker<S> {
    /// The rest of [`Service::call`] for a WebSocket request: a missing route, a key that is not
    /// the remembered one, or one that is not closed.
    #[inline(never)]
    fn call_websocket<ReqB, ResB>(
        &mut self,
        mut request: Request<ReqB>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        let Some(route) = request.extensions().get::<Route>() else {
            return ResponseFuture::failed(&MissingExtension::ROUTE);
        };
        let strict = route.mode() == TransportMode::WebSocket;
        let cached = cached(
            &mut self.cache,
            &self.shared,
            &self.registry,
            route,
            request.headers(),
        );
        cached.slot.touch();
        let ticket = match cached.slot.admit(strict) {
            Admission::Closed { generation } => Ticket::Closed {
                slot: cached.slot.clone(),
                generation,
            },
            admission => match not_closed(cached, admission) {
                Ok(ticket) => ticket,
                Err(until) => {
                    request
                        .extensions_mut()
                        .insert(Intent::Http(HttpReason::Pinned { until }));
                    return ResponseFuture::passthrough(self.inner.call(request));
                }
            },
        };
        ResponseFuture::tracked(self.inner.call(request), ticket)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use bytes::Bytes;
    use http::{HeaderValue, StatusCode, header::AUTHORIZATION};
    use http_body_util::{BodyExt, Full};
    use tokio::time::{Instant, advance};
    use tower::ServiceExt;
    use tower_layer::Layer;
    use tower_test::mock;
    use wsfirst_core::{FailureKind, Phase, Served, WsFailure};

    use super::*;
    use crate::{BreakerHandle, BreakerRegistry, BreakerState, Transition};

    type Body = Full<Bytes>;
    type Mock = mock::Mock<Request<()>, Response<Body>>;
    type MockHandle = mock::Handle<Request<()>, Response<Body>>;

    fn route(mode: TransportMode) -> Route {
        Route::builder("openai", "openai-responses")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/responses")
            .mode(mode)
            .build()
            .unwrap()
    }

    fn request(route: &Route, intent: Intent) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(route.clone());
        request.extensions_mut().insert(intent);
        request
    }

    fn config() -> crate::BreakerConfigBuilder {
        BreakerConfig::builder().jitter(0.0).seed(7)
    }

    fn upgrade(status: u16) -> WsFailure {
        WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: StatusCode::from_u16(status).unwrap(),
                body: Bytes::new(),
            },
        )
    }

    /// What the mock upstream does with a request.
    #[derive(Clone)]
    enum Outcome {
        /// The WebSocket served it (first event delivered); the body is complete.
        Ws,
        /// The WebSocket failed before the first event and HTTP served it.
        Fallback(WsFailure),
        /// HTTP served it (no WebSocket attempt).
        Http,
        /// The attempt failed with this error and nothing was replayed.
        Fail(WsFailure),
        /// An error that is not a WebSocket failure.
        Other,
    }

    fn response(served: Option<Served>) -> Response<Body> {
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        if let Some(served) = served {
            response.extensions_mut().insert(served);
        }
        response
    }

    struct Harness {
        service: CircuitBreaker<Mock>,
        upstream: MockHandle,
        handle: BreakerHandle,
    }

    impl Harness {
        fn new(config: BreakerConfig) -> Self {
            Self::with_layer(CircuitBreakerLayer::new(config))
        }

        /// A harness whose registry evicts keys idle for 60 s.
        fn evicting_after_60s(config: BreakerConfig) -> Self {
            let registry = BreakerRegistry::builder()
                .config(config)
                .idle_timeout(Duration::from_secs(60))
                .build();
            Self::with_layer(CircuitBreakerLayer::from_registry(registry))
        }

        fn with_layer(layer: CircuitBreakerLayer) -> Self {
            let (mock, upstream) = mock::pair();
            Harness {
                handle: layer.handle(),
                service: layer.layer(mock),
                upstream,
            }
        }

        /// Sends `request`, answers it with `outcome`, and returns the intent the inner service
        /// saw and the response (body fully read) or error.
        async fn exchange(
            &mut self,
            request: Request<()>,
            outcome: Outcome,
        ) -> (Intent, Result<Bytes, BoxError>) {
            std::future::poll_fn(|cx| self.service.poll_ready(cx))
                .await
                .unwrap();
            let future = self.service.call(request);
            let (seen, send) = self.upstream.next_request().await.unwrap();
            let intent = seen.extensions().get::<Intent>().unwrap().clone();
            match outcome {
                Outcome::Ws => {
                    send.send_response(response(Some(Served::websocket(Duration::from_millis(5)))))
                }
                Outcome::Fallback(failure) => send.send_response(response(Some(Served::fallback(
                    failure,
                    Duration::from_millis(5),
                )))),
                Outcome::Http => {
                    send.send_response(response(Some(Served::http(HttpReason::ModeHttp))))
                }
                Outcome::Fail(failure) => send.send_error(failure),
                Outcome::Other => send.send_error(std::io::Error::other("inner trouble")),
            }
            let result = match future.await {
                Ok(response) => response
                    .into_body()
                    .collect()
                    .await
                    .map(|collected| collected.to_bytes()),
                Err(error) => Err(error),
            };
            (intent, result)
        }

        async fn ws(&mut self, route: &Route, outcome: Outcome) -> Intent {
            self.exchange(request(route, Intent::WebSocket), outcome)
                .await
                .0
        }

        /// Trips the key of `route` with one refused handshake (the harness's breaker must trip
        /// on one failure and be open for 30 s), waits for half-open and sends a probe; returns
        /// its response future and the upstream's side of the probe.
        async fn start_probe(
            &mut self,
            route: &Route,
        ) -> (
            ResponseFuture<<Mock as Service<Request<()>>>::Future>,
            mock::SendResponse<Response<Body>>,
        ) {
            self.ws(route, Outcome::Fail(refused())).await;
            advance(Duration::from_secs(30)).await;
            let probe = self
                .service
                .ready()
                .await
                .unwrap()
                .call(request(route, Intent::WebSocket));
            let (_, send) = self.upstream.next_request().await.unwrap();
            assert_eq!(self.only().probes_in_flight, 1);
            (probe, send)
        }

        fn state(&self) -> BreakerState {
            self.only().state
        }

        fn only(&self) -> crate::KeySnapshot {
            let all = self.handle.snapshot();
            assert_eq!(all.len(), 1, "{all:?}");
            all.into_iter().next().unwrap()
        }
    }

    fn pinned(intent: &Intent) -> bool {
        matches!(intent, Intent::Http(HttpReason::Pinned { .. }))
    }

    fn refused() -> WsFailure {
        WsFailure::new(
            Phase::Connect,
            FailureKind::Io {
                kind: std::io::ErrorKind::ConnectionRefused,
                message: "refused".into(),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn http_requests_pass_through_uncounted() {
        let mut h = Harness::new(config().build().unwrap());
        let route = route(TransportMode::Auto);
        let intent = Intent::Http(HttpReason::ModeHttp);
        for _ in 0..5 {
            let (seen, result) = h
                .exchange(
                    request(&route, intent.clone()),
                    Outcome::Fallback(refused()),
                )
                .await;
            assert_eq!(seen, intent);
            assert_eq!(&result.unwrap()[..], b"ok");
        }
        assert!(h.handle.snapshot().is_empty(), "no key was created");
    }

    #[tokio::test(start_paused = true)]
    async fn missing_extensions_are_errors() {
        let mut h = Harness::new(config().build().unwrap());
        let mut no_intent = Request::new(());
        no_intent
            .extensions_mut()
            .insert(route(TransportMode::Auto));
        let error = h
            .service
            .ready()
            .await
            .unwrap()
            .call(no_intent)
            .await
            .unwrap_err();
        assert_eq!(
            error.downcast_ref::<MissingExtension>(),
            Some(&MissingExtension::INTENT)
        );
        let mut no_route = Request::new(());
        no_route.extensions_mut().insert(Intent::WebSocket);
        let error = h
            .service
            .ready()
            .await
            .unwrap()
            .call(no_route)
            .await
            .unwrap_err();
        assert_eq!(
            error.downcast_ref::<MissingExtension>(),
            Some(&MissingExtension::ROUTE)
        );
        // A request already on HTTP does not need a route.
        let mut http_only = Request::new(());
        http_only
            .extensions_mut()
            .insert(Intent::Http(HttpReason::ModeHttp));
        let future = h.service.ready().await.unwrap().call(http_only);
        let (_, send) = h.upstream.next_request().await.unwrap();
        send.send_response(response(None));
        assert!(future.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_pin_the_key_for_the_base_duration() {
        let mut h = Harness::new(config().no_failure_rate().build().unwrap());
        let route = route(TransportMode::Auto);
        for _ in 0..2 {
            assert_eq!(
                h.ws(&route, Outcome::Fail(refused())).await,
                Intent::WebSocket
            );
        }
        assert_eq!(h.state(), BreakerState::Closed);
        assert_eq!(h.only().consecutive_failures, 2);
        let tripped_at = Instant::now();
        h.ws(&route, Outcome::Fallback(refused())).await;
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Open);
        assert_eq!(snapshot.until, Some(tripped_at + Duration::from_secs(30)));
        assert_eq!(snapshot.last_failure.as_ref().unwrap().failure, refused());

        let seen = h.ws(&route, Outcome::Http).await;
        assert_eq!(
            seen,
            Intent::Http(HttpReason::Pinned {
                until: Some(tripped_at + Duration::from_secs(30))
            })
        );
        advance(Duration::from_secs(29)).await;
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_streak() {
        let mut h = Harness::new(config().no_failure_rate().build().unwrap());
        let route = route(TransportMode::Auto);
        for _ in 0..10 {
            h.ws(&route, Outcome::Fail(refused())).await;
            h.ws(&route, Outcome::Fail(refused())).await;
            h.ws(&route, Outcome::Ws).await;
        }
        assert_eq!(h.state(), BreakerState::Closed);
        assert_eq!(h.only().consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_over_a_sliding_window_trips() {
        let config = config()
            .no_consecutive_failures()
            .failure_rate(0.5, 4, 4)
            .build()
            .unwrap();
        let mut h = Harness::new(config);
        let route = route(TransportMode::Auto);
        // F S F S: 2 of 4 (= 0.5) would trip, but the window is not full until the 4th call,
        // which is a success; failures are only judged on a failure.
        h.ws(&route, Outcome::Fail(refused())).await;
        h.ws(&route, Outcome::Ws).await;
        h.ws(&route, Outcome::Ws).await;
        h.ws(&route, Outcome::Ws).await;
        // window: F S S S -> next failure makes S S S F = 1/4
        h.ws(&route, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Closed);
        assert_eq!((h.only().window_calls, h.only().window_failures), (4, 1));
        // S S F S -> the oldest successes slide out one at a time
        h.ws(&route, Outcome::Ws).await;
        // S F S F = 2/4 trips
        h.ws(&route, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_slide_out_of_the_window() {
        let config = config()
            .no_consecutive_failures()
            .failure_rate(0.5, 4, 2)
            .build()
            .unwrap();
        let mut h = Harness::new(config);
        let route = route(TransportMode::Auto);
        for _ in 0..4 {
            h.ws(&route, Outcome::Ws).await;
        }
        h.ws(&route, Outcome::Fail(refused())).await; // S S S F
        for _ in 0..4 {
            h.ws(&route, Outcome::Ws).await; // the failure slides out
        }
        assert_eq!(h.only().window_failures, 0);
        h.ws(&route, Outcome::Fail(refused())).await; // S S S F = 1/4
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn not_a_websocket_endpoint_trips_at_once() {
        for status in [404, 405, 426, 501] {
            let mut h = Harness::new(config().build().unwrap());
            let route = route(TransportMode::Auto);
            h.ws(&route, Outcome::Fallback(upgrade(status))).await;
            assert_eq!(h.state(), BreakerState::Open, "{status}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_failures_and_other_errors_do_not_count() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let limit = WsFailure::new(
            Phase::BeforeFirstEvent,
            FailureKind::UpstreamError {
                code: Some("websocket_connection_limit_reached".into()),
                message: "reconnect".into(),
                scope: wsfirst_core::ErrorScope::Connection,
            },
        );
        let local = WsFailure::new(
            Phase::Connect,
            FailureKind::Local("connection pool exhausted".into()),
        );
        for _ in 0..5 {
            h.ws(&route, Outcome::Fallback(upgrade(429))).await;
            h.ws(&route, Outcome::Fail(limit.clone())).await;
            h.ws(&route, Outcome::Fail(local.clone())).await;
            h.ws(&route, Outcome::Fallback(local.clone())).await;
            h.ws(&route, Outcome::Other).await;
            h.ws(&route, Outcome::Http).await;
        }
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.consecutive_failures, 0);
        assert!(snapshot.last_failure.is_none());
        // ...while a counted one does.
        h.ws(&route, Outcome::Fail(upgrade(502))).await;
        assert_eq!(h.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probe_success_closes() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        advance(Duration::from_secs(30)).await;
        // The first request after the deadline is the probe; it succeeds.
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.trips, 1, "the trip count is kept until it decays");
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_failure_reopens_with_the_next_backoff_up_to_the_cap() {
        let config = config()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(30))
            .max_open_duration(Duration::from_secs(100))
            .build()
            .unwrap();
        let mut h = Harness::new(config);
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        let mut expected = Vec::new();
        for _ in 0..4 {
            let snapshot = h.only();
            assert_eq!(snapshot.state, BreakerState::Open);
            let open_for = snapshot.until.unwrap() - snapshot.since;
            expected.push(open_for.as_secs());
            advance(open_for).await;
            assert_eq!(
                h.ws(&route, Outcome::Fail(refused())).await,
                Intent::WebSocket
            );
        }
        assert_eq!(expected, [30, 60, 100, 100]);
    }

    #[tokio::test(start_paused = true)]
    async fn trips_decay_after_a_stable_closed_period() {
        let config = config()
            .consecutive_failures(1)
            .decay_after(Duration::from_secs(300))
            .build()
            .unwrap();
        let mut h = Harness::new(config);
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await; // trip 1: 30 s
        advance(Duration::from_secs(30)).await;
        h.ws(&route, Outcome::Ws).await; // closed
        advance(Duration::from_secs(299)).await;
        h.ws(&route, Outcome::Fail(refused())).await; // trip 2: 60 s
        let snapshot = h.only();
        assert_eq!(snapshot.trips, 2);
        assert_eq!(
            snapshot.until.unwrap() - snapshot.since,
            Duration::from_secs(60)
        );
        advance(Duration::from_secs(60)).await;
        h.ws(&route, Outcome::Ws).await; // closed
        advance(Duration::from_secs(300)).await;
        assert_eq!(h.only().trips, 0, "decayed");
        h.ws(&route, Outcome::Fail(refused())).await; // back to 30 s
        let snapshot = h.only();
        assert_eq!(snapshot.trips, 1);
        assert_eq!(
            snapshot.until.unwrap() - snapshot.since,
            Duration::from_secs(30)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_shortens_the_open_duration_reproducibly() {
        let durations = |seed| async move {
            let config = BreakerConfig::builder()
                .consecutive_failures(1)
                .jitter(0.5)
                .seed(seed)
                .build()
                .unwrap();
            let mut h = Harness::new(config);
            let route = route(TransportMode::Auto);
            let mut out = Vec::new();
            h.ws(&route, Outcome::Fail(refused())).await;
            for _ in 0..5 {
                let s = h.only();
                let d = s.until.unwrap() - s.since;
                out.push(d);
                advance(d).await;
                h.ws(&route, Outcome::Fail(refused())).await;
            }
            out
        };
        let a = durations(1).await;
        assert_eq!(a, durations(1).await);
        assert_ne!(a, durations(2).await);
        let base = BreakerConfig::default();
        for (trip, d) in a.iter().enumerate() {
            let full = base.backoff(trip as u32 + 1);
            assert!(*d <= full && *d >= full / 2, "{d:?} vs {full:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_probe_and_pins_the_rest() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        let pin_ended = Instant::now() + Duration::from_secs(30);
        advance(Duration::from_secs(35)).await;

        let probe = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (seen, send) = h.upstream.next_request().await.unwrap();
        assert_eq!(seen.extensions().get::<Intent>(), Some(&Intent::WebSocket));
        assert_eq!(h.state(), BreakerState::HalfOpen);
        assert_eq!(h.only().probes_in_flight, 1);
        // While the probe is out, everyone else is pinned. The re-open deadline is unknown: the
        // reason carries the deadline that ended the pin, in the past, and says a probe decides.
        for _ in 0..3 {
            let seen = h.ws(&route, Outcome::Http).await;
            let reason = Intent::Http(HttpReason::Pinned {
                until: Some(pin_ended),
            });
            assert_eq!(seen, reason);
            assert_eq!(
                seen.to_string(),
                "http because the websocket path is pinned to http while a probe tries it"
            );
        }
        send.send_response(response(Some(Served::websocket(Duration::ZERO))));
        probe.await.unwrap();
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_error_panics_gives_its_slot_back() {
        /// An error whose `source()` panics: the breaker runs it while looking for a `WsFailure`.
        #[derive(Debug)]
        struct Panicky;
        impl fmt::Display for Panicky {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("panicky")
            }
        }
        impl std::error::Error for Panicky {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                panic!("source() of a broken error type")
            }
        }

        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let (probe, send) = h.start_probe(&route).await;
        let polled = tokio::spawn(probe);
        send.send_error(Panicky);
        assert!(polled.await.unwrap_err().is_panic());
        assert_eq!(h.only().probes_in_flight, 0);
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_in_use_on_the_closed_path_are_not_evicted() {
        let mut h = Harness::evicting_after_60s(
            config()
                .consecutive_failures(2)
                .no_failure_rate()
                .build()
                .unwrap(),
        );
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        // Used every 30 s (served over HTTP: no verdict) through the remembered key, so swept
        // every 30 s and never idle for 60 s.
        for _ in 0..4 {
            advance(Duration::from_secs(30)).await;
            h.ws(&route, Outcome::Http).await;
            assert_eq!(h.handle.evict_idle(), 0);
        }
        assert_eq!(h.only().consecutive_failures, 1, "the key kept its count");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_gives_its_slot_back() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let (probe, _send) = h.start_probe(&route).await;
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        drop(probe);
        assert_eq!(h.only().probes_in_flight, 0);
        // The next request probes, and its other error (no verdict) gives the slot back too.
        assert_eq!(h.ws(&route, Outcome::Other).await, Intent::WebSocket);
        assert_eq!(h.ws(&route, Outcome::Http).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::HalfOpen);
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ignored_probe_failure_gives_its_slot_back() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        advance(Duration::from_secs(30)).await;
        assert_eq!(
            h.ws(&route, Outcome::Fallback(upgrade(429))).await,
            Intent::WebSocket
        );
        assert_eq!(h.state(), BreakerState::HalfOpen);
        assert_eq!(
            h.ws(&route, Outcome::Fail(refused())).await,
            Intent::WebSocket
        );
        assert_eq!(h.state(), BreakerState::Open);
    }

    /// A body that yields scripted frames and errors.
    #[derive(Debug)]
    struct Scripted(std::collections::VecDeque<Result<http_body::Frame<Bytes>, BoxError>>);

    impl http_body::Body for Scripted {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn mid_stream(frames: Vec<Result<http_body::Frame<Bytes>, BoxError>>) -> Response<Scripted> {
        let mut response = Response::new(Scripted(frames.into()));
        response
            .extensions_mut()
            .insert(Served::websocket(Duration::ZERO));
        response
    }

    fn data() -> Result<http_body::Frame<Bytes>, BoxError> {
        Ok(http_body::Frame::data(Bytes::from_static(b"event: a\n\n")))
    }

    #[tokio::test(start_paused = true)]
    async fn a_mid_stream_body_error_counts() {
        let route = route(TransportMode::Auto);
        let (mock, mut upstream) = mock::pair::<Request<()>, Response<Scripted>>();
        let layer = CircuitBreakerLayer::new(config().consecutive_failures(3).build().unwrap());
        let handle = layer.handle();
        let mut service = layer.layer(mock);
        let mut call = async |frames| {
            let future = service
                .ready()
                .await
                .unwrap()
                .call(request(&route, Intent::WebSocket));
            let (_, send) = upstream.next_request().await.unwrap();
            send.send_response(mid_stream(frames));
            future.await.unwrap().into_body().collect().await
        };
        let closed = WsFailure::new(
            Phase::MidStream,
            FailureKind::Closed {
                code: None,
                reason: String::new(),
            },
        );
        // A WsFailure in the body error's chain.
        let error = call(vec![data(), Err(Box::new(closed.clone()))])
            .await
            .unwrap_err();
        assert_eq!(wsfirst_core::find_ws_failure(&*error), Some(&closed));
        let snapshot = handle.snapshot().remove(0);
        assert_eq!(snapshot.consecutive_failures, 1);
        assert_eq!(snapshot.last_failure.unwrap().phase, "mid_stream");
        // Any other body error is a generic mid-stream failure.
        call(vec![data(), Err("reset".into())]).await.unwrap_err();
        let snapshot = handle.snapshot().remove(0);
        assert_eq!(snapshot.consecutive_failures, 2);
        assert_eq!(snapshot.last_failure.unwrap().kind, "io");
        // A body that ends is the success that resets the streak.
        call(vec![data(), data()]).await.unwrap();
        assert_eq!(handle.snapshot()[0].consecutive_failures, 0);
        for _ in 0..3 {
            call(vec![Err("reset".into())]).await.unwrap_err();
        }
        assert_eq!(handle.snapshot()[0].state, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_unfinished_has_no_verdict() {
        let route = route(TransportMode::Auto);
        let (mock, mut upstream) = mock::pair::<Request<()>, Response<Scripted>>();
        let layer = CircuitBreakerLayer::new(config().consecutive_failures(1).build().unwrap());
        let handle = layer.handle();
        let mut service = layer.layer(mock);
        // One failure, then a success whose body is dropped before its end.
        let future = service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, send) = upstream.next_request().await.unwrap();
        send.send_error(upgrade(500));
        future.await.unwrap_err();
        assert_eq!(handle.snapshot()[0].state, BreakerState::Open);
        advance(Duration::from_secs(30)).await;
        // The probe succeeds at its first event, and its body is then dropped unfinished.
        let future = service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, send) = upstream.next_request().await.unwrap();
        send.send_response(mid_stream(vec![data(), data()]));
        let response = future.await.unwrap();
        assert_eq!(handle.snapshot()[0].state, BreakerState::Closed);
        drop(response);
        let snapshot = handle.snapshot().remove(0);
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.window_calls, 0, "no verdict recorded");
    }

    fn with_credential(route: &Route, secret: &'static str) -> Request<()> {
        let mut request = request(route, Intent::WebSocket);
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static(secret));
        request
    }

    #[tokio::test(start_paused = true)]
    async fn each_credential_has_its_own_breaker() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let _ = h
            .exchange(
                with_credential(&route, "Bearer sk-alice"),
                Outcome::Fail(refused()),
            )
            .await;
        let (alice, _) = h
            .exchange(with_credential(&route, "Bearer sk-alice"), Outcome::Http)
            .await;
        assert!(pinned(&alice));
        let (bob, _) = h
            .exchange(with_credential(&route, "Bearer sk-bob"), Outcome::Ws)
            .await;
        assert_eq!(bob, Intent::WebSocket);
        let (alice, _) = h
            .exchange(with_credential(&route, "Bearer sk-alice"), Outcome::Http)
            .await;
        assert!(pinned(&alice), "the cache switched back to alice's key");
        let snapshots = h.handle.snapshot();
        assert_eq!(snapshots.len(), 2);
        let json = serde_json::to_string(&snapshots).unwrap();
        assert!(!json.contains("sk-alice"), "{json}");
    }

    #[tokio::test(start_paused = true)]
    async fn routes_built_apart_with_equal_keys_share_one_breaker() {
        let mut h = Harness::new(config().no_failure_rate().build().unwrap());
        // Two route objects with the same provider and endpoint (the same route built twice, or
        // two routes to one endpoint), alternating on one service: whichever one the service
        // remembers, both reach the same breaker.
        let (first, second) = (route(TransportMode::Auto), route(TransportMode::Auto));
        assert!(first.breaker_key() == second.breaker_key());
        assert!(!first.breaker_key().ptr_eq(second.breaker_key()));
        h.ws(&first, Outcome::Fail(refused())).await;
        h.ws(&second, Outcome::Fail(refused())).await;
        assert_eq!(h.only().consecutive_failures, 2);
        h.ws(&first, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Open);
        assert!(pinned(&h.ws(&second, Outcome::Http).await));
        assert!(pinned(&h.ws(&first, Outcome::Http).await));
        assert_eq!(h.handle.snapshot().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_key_cache_follows_the_credential_header_bytes() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        // Each request carries its own copy of the value, as a server would parse it.
        let alice = || {
            let mut request = request(&route, Intent::WebSocket);
            let value = HeaderValue::from_str(&format!("Bearer sk-{}", "alice")).unwrap();
            request.headers_mut().insert(AUTHORIZATION, value);
            request
        };
        let alice_key = route.breaker_key_for(alice().headers());
        let _ = h.exchange(alice(), Outcome::Fail(refused())).await;
        assert_eq!(h.handle.get(&alice_key).unwrap().state, BreakerState::Open);
        assert!(pinned(&h.exchange(alice(), Outcome::Http).await.0));
        // No credential header: the route's own key, not the remembered one.
        assert_eq!(
            h.ws(&route, Outcome::Ws).await,
            Intent::WebSocket,
            "a request without a credential is not alice's"
        );
        assert!(pinned(&h.exchange(alice(), Outcome::Http).await.0));
        // A route reading another header keys on that header's value.
        let api_key = Route::builder("openai", "openai-responses")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/responses")
            .credential_header(http::HeaderName::from_static("x-api-key"))
            .build()
            .unwrap();
        let mut by_api_key = alice();
        by_api_key.extensions_mut().insert(api_key.clone());
        by_api_key
            .headers_mut()
            .insert("x-api-key", HeaderValue::from_static("k2"));
        let expected = api_key.breaker_key_for(by_api_key.headers());
        assert_ne!(expected, alice_key);
        assert_eq!(
            h.exchange(by_api_key, Outcome::Ws).await.0,
            Intent::WebSocket
        );
        let mut keys: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
        keys.sort_by_key(ToString::to_string);
        let mut wanted = vec![alice_key, route.breaker_key().clone(), expected];
        wanted.sort_by_key(ToString::to_string);
        assert_eq!(keys, wanted);
        // The remembered header value never shows in debug output.
        let debug = format!("{:?}", h.service);
        assert!(!debug.contains("alice") && !debug.contains("k2"), "{debug}");
        assert!(debug.contains("from_credential_header"), "{debug}");
    }

    #[tokio::test(start_paused = true)]
    async fn clones_made_for_one_request_share_the_last_key() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        // Like axum's router: a never-called prototype, cloned for every request.
        let prototype = h.service.clone();
        let send = async |h: &mut Harness, request, outcome| {
            h.service = prototype.clone();
            h.exchange(request, outcome).await.0
        };
        send(
            &mut h,
            with_credential(&route, "Bearer sk-alice"),
            Outcome::Fail(refused()),
        )
        .await;
        let alice = send(
            &mut h,
            with_credential(&route, "Bearer sk-alice"),
            Outcome::Http,
        )
        .await;
        assert!(pinned(&alice));
        let bob = send(
            &mut h,
            with_credential(&route, "Bearer sk-bob"),
            Outcome::Ws,
        )
        .await;
        assert_eq!(bob, Intent::WebSocket);
        let nobody = send(&mut h, request(&route, Intent::WebSocket), Outcome::Ws).await;
        assert_eq!(nobody, Intent::WebSocket);
        let alice = send(
            &mut h,
            with_credential(&route, "Bearer sk-alice"),
            Outcome::Http,
        )
        .await;
        assert!(pinned(&alice), "back to alice's key");
        assert_eq!(h.handle.snapshot().len(), 3);
        // The prototype was never called, yet it holds the last key its clones used.
        assert!(prototype.cache.is_none());
        let shared = prototype.shared.read().unwrap();
        let last = shared.as_ref().unwrap();
        assert_eq!(
            last.key,
            route.breaker_key_for(with_credential(&route, "Bearer sk-alice").headers())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn strict_routes_are_never_rerouted_but_are_recorded() {
        let mut h = Harness::new(config().consecutive_failures(2).build().unwrap());
        let strict = route(TransportMode::WebSocket);
        h.ws(&strict, Outcome::Fail(refused())).await;
        h.ws(&strict, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Open, "strict failures count");
        // An auto route to the same upstream shares the key and is pinned...
        let auto = route(TransportMode::Auto);
        assert!(pinned(&h.ws(&auto, Outcome::Http).await));
        // ...but the strict route still goes to the WebSocket, and its failures do not extend
        // the pin.
        let until = h.only().until;
        assert_eq!(
            h.ws(&strict, Outcome::Fail(upgrade(500))).await,
            Intent::WebSocket
        );
        assert_eq!(h.only().until, until);
        assert_eq!(h.only().last_failure.unwrap().failure, upgrade(500));
        // A strict success shows the path is healthy: the key closes.
        assert_eq!(h.ws(&strict, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
        assert_eq!(h.ws(&auto, Outcome::Ws).await, Intent::WebSocket);
    }

    #[tokio::test(start_paused = true)]
    async fn the_handle_pins_unpins_and_resets() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let key = route.breaker_key().clone();
        // Pinned by hand before any traffic, until unpinned.
        h.handle.pin(&key, None);
        let seen = h.ws(&route, Outcome::Http).await;
        assert_eq!(seen, Intent::Http(HttpReason::Pinned { until: None }));
        advance(Duration::from_secs(24 * 3600)).await;
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        // A strict success does not undo a pin by hand.
        h.ws(&self::route(TransportMode::WebSocket), Outcome::Ws)
            .await;
        assert_eq!(h.state(), BreakerState::Open);
        assert!(h.only().pinned_by_hand);
        assert!(h.handle.unpin(&key));
        assert!(!h.handle.unpin(&key), "already closed");
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);

        // An absurd duration does not overflow the clock: it is cut to 100 years.
        h.handle.pin(&key, Some(Duration::MAX));
        let snapshot = h.only();
        assert_eq!(
            snapshot.until,
            Some(Instant::now() + wsfirst_core::MAX_DURATION)
        );
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        assert!(h.handle.unpin(&key));

        // Pinned for a while: then half-open as after a trip.
        h.handle.pin(&key, Some(Duration::from_secs(10)));
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        advance(Duration::from_secs(10)).await;
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);

        // Reset forgets trips and the last failure.
        h.ws(&route, Outcome::Fail(refused())).await;
        assert_eq!(h.only().trips, 1);
        assert!(h.handle.reset(&key));
        let snapshot = h.only();
        assert_eq!((snapshot.state, snapshot.trips), (BreakerState::Closed, 0));
        assert!(snapshot.last_failure.is_none());
        assert_eq!(h.handle.key_named(&key.to_string()), Some(key.clone()));
        let unknown = BreakerKey::new("other", "wss://x", None);
        assert!(!h.handle.reset(&unknown));
        assert!(h.handle.get(&unknown).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_pin_by_hand_ends_with_its_period() {
        let mut h = Harness::new(config().build().unwrap());
        let auto = route(TransportMode::Auto);
        let strict = route(TransportMode::WebSocket);
        h.handle
            .pin(auto.breaker_key(), Some(Duration::from_secs(10)));
        assert!(h.only().pinned_by_hand);
        advance(Duration::from_secs(10)).await;
        // Over, even before a request moves the key to half-open.
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Open);
        assert!(!snapshot.pinned_by_hand);
        // Half-open probes as after a trip (an ignored probe failure keeps it half-open).
        assert_eq!(
            h.ws(&auto, Outcome::Fallback(upgrade(429))).await,
            Intent::WebSocket
        );
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::HalfOpen);
        assert!(!snapshot.pinned_by_hand);
        // A strict success closes it, as it would close any half-open key.
        assert_eq!(h.ws(&strict, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_key_whose_timed_pin_by_hand_ended_is_evicted() {
        let registry = BreakerRegistry::builder()
            .idle_timeout(Duration::from_secs(60))
            .build();
        let handle = registry.handle();
        let timed = BreakerKey::new("timed", "wss://timed", None);
        let forever = BreakerKey::new("forever", "wss://forever", None);
        handle.pin(&timed, Some(Duration::from_secs(10)));
        handle.pin(&forever, None);
        handle.evict_idle(); // clears the "used" marks
        advance(Duration::from_secs(60)).await;
        assert_eq!(handle.evict_idle(), 1);
        assert!(handle.get(&timed).is_none());
        assert!(handle.get(&forever).unwrap().pinned_by_hand);
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_of_an_earlier_state_are_ignored() {
        let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        // A request admitted while closed...
        let slow = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, slow_send) = h.upstream.next_request().await.unwrap();
        // ...meanwhile the key trips and is pinned.
        h.ws(&route, Outcome::Fail(refused())).await;
        let until = h.only().until;
        // The slow request's failure does not extend the pin, its success does not close it.
        slow_send.send_error(refused());
        slow.await.unwrap_err();
        assert_eq!(h.only().until, until);
        assert_eq!(h.only().trips, 1);
        assert_eq!(h.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_evicted_but_pins_by_hand_are_kept() {
        let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        for i in 0..50 {
            let secret = format!("Bearer sk-{i}");
            let mut request = request(&route, Intent::WebSocket);
            request
                .headers_mut()
                .insert(AUTHORIZATION, HeaderValue::from_str(&secret).unwrap());
            let _ = h.exchange(request, Outcome::Ws).await;
        }
        let pinned_key = BreakerKey::new("ops", "wss://ops", None);
        h.handle.pin(&pinned_key, None);
        assert_eq!(h.handle.snapshot().len(), 51);
        // Keep one key busy.
        for _ in 0..4 {
            advance(Duration::from_secs(30)).await;
            let _ = h
                .exchange(with_credential(&route, "Bearer sk-busy"), Outcome::Ws)
                .await;
            h.handle.evict_idle();
        }
        let left: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&pinned_key));
        // Adding keys sweeps on its own.
        advance(Duration::from_secs(120)).await;
        let _ = h
            .exchange(with_credential(&route, "Bearer sk-new"), Outcome::Ws)
            .await;
        let left: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&pinned_key));
    }

    #[tokio::test(start_paused = true)]
    async fn evicted_keys_are_freed_and_their_late_outcomes_ignored() {
        let reported = Arc::new(Mutex::new(0usize));
        let sink = reported.clone();
        let registry = BreakerRegistry::builder()
            .config(config().consecutive_failures(1).build().unwrap())
            .idle_timeout(Duration::from_secs(60))
            .on_transition(move |_: &Transition| *sink.lock().unwrap() += 1)
            .build();
        let layer = CircuitBreakerLayer::from_registry(registry.clone());
        let mut h = Harness::with_layer(layer);
        let route = route(TransportMode::Auto);
        // A request admitted on a closed key stays in flight while the key is evicted.
        let slow = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, slow_send) = h.upstream.next_request().await.unwrap();
        let state = Arc::downgrade(&registry.existing(route.breaker_key()).unwrap());
        assert_eq!(h.handle.evict_idle(), 0, "used since the last sweep");
        advance(Duration::from_secs(60)).await;
        assert_eq!(h.handle.evict_idle(), 1);
        assert!(registry.is_empty());
        assert!(
            state.upgrade().is_some(),
            "the request in flight still holds it"
        );
        // Its failure (enough to trip a live key) reaches no key and reports nothing.
        slow_send.send_error(refused());
        slow.await.unwrap_err();
        assert!(h.handle.snapshot().is_empty());
        assert_eq!(*reported.lock().unwrap(), 0);
        // The next request gets a fresh key; the evicted state is freed.
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert!(state.upgrade().is_none(), "evicted state freed");
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.window_calls, 1);
        assert_eq!(*reported.lock().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn transitions_are_reported_once_each() {
        let seen: Arc<Mutex<Vec<(BreakerState, BreakerState)>>> = Arc::default();
        let sink = seen.clone();
        let registry = BreakerRegistry::builder()
            .config(config().consecutive_failures(1).build().unwrap())
            .on_transition(move |t: &Transition| sink.lock().unwrap().push((t.from, t.to)))
            .build();
        let layer = CircuitBreakerLayer::from_registry(registry);
        let mut h = Harness::with_layer(layer);
        let route = route(TransportMode::Auto);
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        h.ws(&route, Outcome::Fail(refused())).await;
        for _ in 0..3 {
            assert!(pinned(&h.ws(&route, Outcome::Http).await));
        }
        advance(Duration::from_secs(30)).await;
        h.ws(&route, Outcome::Ws).await;
        use BreakerState::*;
        assert_eq!(
            *seen.lock().unwrap(),
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        let metrics = snapshotter.snapshot().into_vec();
        let find = |name: &str| {
            metrics
                .iter()
                .filter(|(key, ..)| key.key().name() == name)
                .map(|(key, _, _, value)| {
                    (
                        key.key()
                            .labels()
                            .map(|l| format!("{}={}", l.key(), l.value()))
                            .collect::<Vec<_>>(),
                        format!("{value:?}"),
                    )
                })
                .collect::<Vec<_>>()
        };
        let pinned_requests = find("wsfirst_breaker_pinned_requests_total");
        assert_eq!(pinned_requests.len(), 1, "{pinned_requests:?}");
        assert_eq!(pinned_requests[0].0, ["provider=openai"]);
        assert!(pinned_requests[0].1.contains('3'), "{pinned_requests:?}");
        assert_eq!(find("wsfirst_breaker_transitions_total").len(), 3);
        let gauge = find("wsfirst_breaker_state");
        assert_eq!(gauge.len(), 1);
        assert!(gauge[0].1.contains("0.0"), "closed again: {gauge:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_half_open_key_without_probes_is_evicted() {
        let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        advance(Duration::from_secs(30)).await;
        // A probe still in flight keeps the key...
        let probe = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, send) = h.upstream.next_request().await.unwrap();
        assert_eq!(h.handle.evict_idle(), 0, "used since the last sweep");
        advance(Duration::from_secs(60)).await;
        assert_eq!(h.handle.evict_idle(), 0, "a probe is in flight");
        // ...but once its caller gave up, nothing holds the half-open key: a stream of distinct
        // credentials doing this must not grow the registry without bound.
        drop((probe, send));
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::HalfOpen);
        assert_eq!(snapshot.probes_in_flight, 0);
        assert_eq!(h.handle.evict_idle(), 1);
        assert!(h.handle.snapshot().is_empty());
        // The service recovers with a fresh key.
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_probe_does_not_report_its_body_to_the_next_closed_state() {
        let route = route(TransportMode::Auto);
        let (mock, mut upstream) = mock::pair::<Request<()>, Response<Scripted>>();
        let config = config()
            .consecutive_failures(1)
            .no_failure_rate()
            .half_open_probes(2)
            .build()
            .unwrap();
        let layer = CircuitBreakerLayer::new(config);
        let handle = layer.handle();
        let mut service = layer.layer(mock);
        let future = service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, send) = upstream.next_request().await.unwrap();
        send.send_error(refused());
        future.await.unwrap_err();
        advance(Duration::from_secs(30)).await;
        // Two probes go out; the first to get its first event closes the key.
        let first = service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, send_first) = upstream.next_request().await.unwrap();
        let second = service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (seen, send_second) = upstream.next_request().await.unwrap();
        assert_eq!(seen.extensions().get::<Intent>(), Some(&Intent::WebSocket));
        send_first.send_response(mid_stream(vec![data()]));
        first.await.unwrap().into_body().collect().await.unwrap();
        assert_eq!(handle.snapshot()[0].state, BreakerState::Closed);
        // The other probe was admitted in the half-open state: its stream failing later is not
        // an outcome of the new closed state.
        send_second.send_response(mid_stream(vec![data(), Err("reset".into())]));
        let body = second.await.unwrap().into_body();
        body.collect().await.unwrap_err();
        let snapshot = handle.snapshot().remove(0);
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_admitted_before_a_reset_are_ignored() {
        let mut h = Harness::new(config().consecutive_failures(2).build().unwrap());
        let route = route(TransportMode::Auto);
        h.ws(&route, Outcome::Fail(refused())).await;
        let slow = h
            .service
            .ready()
            .await
            .unwrap()
            .call(request(&route, Intent::WebSocket));
        let (_, slow_send) = h.upstream.next_request().await.unwrap();
        assert!(h.handle.reset(route.breaker_key()));
        slow_send.send_error(refused());
        slow.await.unwrap_err();
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.consecutive_failures, 0);
        assert_eq!(snapshot.window_calls, 0);
        assert!(snapshot.last_failure.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn pins_set_centuries_after_the_registry_started_keep_their_deadline() {
        const YEAR: u64 = 365 * 24 * 3600;
        let mut h = Harness::new(config().build().unwrap());
        let route = route(TransportMode::Auto);
        let key = route.breaker_key().clone();
        h.ws(&route, Outcome::Ws).await;
        advance(Duration::from_secs(490 * YEAR)).await;
        h.handle.pin(&key, Some(wsfirst_core::MAX_DURATION));
        let until = h.only().until;
        assert!(until.is_some());
        let seen = h.ws(&route, Outcome::Http).await;
        assert_eq!(seen, Intent::Http(HttpReason::Pinned { until }));
        advance(Duration::from_secs(99 * YEAR)).await;
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        advance(wsfirst_core::MAX_DURATION).await;
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn evicting_an_open_key_sets_its_state_gauge_back_to_closed() {
        let mut h = Harness::evicting_after_60s(config().consecutive_failures(1).build().unwrap());
        let route = route(TransportMode::Auto);
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let gauge = || {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .find(|(key, ..)| key.key().name() == "wsfirst_breaker_state")
                .map(|(.., value)| format!("{value:?}"))
        };
        // The trip sets the gauge to 1 (read only once, at the end: a snapshot zeroes gauges).
        h.ws(&route, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Open);
        // Nobody comes back: the expired pin is evicted with its key.
        h.handle.evict_idle();
        advance(Duration::from_secs(60)).await;
        assert_eq!(h.handle.evict_idle(), 1);
        assert_eq!(
            gauge().as_deref(),
            Some("Gauge(0.0)"),
            "an evicted key is not shown open forever"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn half_open_admits_exactly_k_of_64_concurrent_requests() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::sync::{Barrier, Semaphore};

        const TASKS: usize = 64;
        for round in 0..100u32 {
            let probes = 1 + round % 4;
            let admitted = Arc::new(AtomicUsize::new(0));
            let gate = Arc::new(Semaphore::new(0));
            let inner = {
                let admitted = admitted.clone();
                let gate = gate.clone();
                tower::service_fn(move |request: Request<()>| {
                    let websocket =
                        request.extensions().get::<Intent>() == Some(&Intent::WebSocket);
                    if websocket {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    let gate = gate.clone();
                    async move {
                        let served = if websocket {
                            // Hold the probe until every request was admitted or pinned.
                            let _permit = gate.acquire().await;
                            Served::websocket(Duration::ZERO)
                        } else {
                            Served::http(HttpReason::ModeHttp)
                        };
                        Ok::<_, BoxError>(response(Some(served)))
                    }
                })
            };
            let layer =
                CircuitBreakerLayer::new(config().half_open_probes(probes).build().unwrap());
            let handle = layer.handle();
            let service = layer.layer(inner);
            let route = route(TransportMode::Auto);
            // Pinned for no time at all: the next request finds the key due for half-open.
            handle.pin(route.breaker_key(), Some(Duration::ZERO));
            let start = Arc::new(Barrier::new(TASKS));
            let called = Arc::new(Barrier::new(TASKS + 1));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let mut service = service.clone();
                    let (start, called, route) = (start.clone(), called.clone(), route.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        let future = service
                            .ready()
                            .await
                            .unwrap()
                            .call(request(&route, Intent::WebSocket));
                        called.wait().await;
                        future.await.unwrap();
                    })
                })
                .collect();
            called.wait().await;
            assert_eq!(
                admitted.load(Ordering::SeqCst),
                probes as usize,
                "round {round}"
            );
            assert_eq!(
                handle.get(route.breaker_key()).unwrap().probes_in_flight,
                probes
            );
            gate.add_permits(TASKS);
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(
                handle.get(route.breaker_key()).unwrap().state,
                BreakerState::Closed
            );
        }
    }

    /// A route to another endpoint of the same provider.
    fn batch_route() -> Route {
        Route::builder("openai", "openai-responses")
            .ws_url("wss://batch.example/v1/responses")
            .http_url("https://batch.example/v1/responses")
            .build()
            .unwrap()
    }

    /// How long the key of `route` is pinned for, as the snapshot says.
    fn open_for(h: &Harness, route: &Route) -> Duration {
        let snapshot = h.handle.get(route.breaker_key()).unwrap();
        assert_eq!(snapshot.state, BreakerState::Open);
        snapshot.until.unwrap() - snapshot.since
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_trips_at_its_own_settings() {
        let chat = route(TransportMode::Auto);
        let batch = batch_route();
        let registry = BreakerRegistry::builder()
            .config(
                config()
                    .consecutive_failures(3)
                    .no_failure_rate()
                    .build()
                    .unwrap(),
            )
            .config_for(
                batch.breaker_key(),
                config()
                    .consecutive_failures(1)
                    .open_duration(Duration::from_secs(5))
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(registry.config().consecutive_failures(), Some(3));
        assert_eq!(
            registry
                .config_for(batch.breaker_key())
                .consecutive_failures(),
            Some(1)
        );
        let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry));
        // One service, two keys: the override trips at one failure and pins for 5 s...
        h.ws(&batch, Outcome::Fail(refused())).await;
        assert_eq!(open_for(&h, &batch), Duration::from_secs(5));
        // ...the default at three, for 30 s.
        for _ in 0..2 {
            h.ws(&chat, Outcome::Fail(refused())).await;
        }
        let snapshot = h.handle.get(chat.breaker_key()).unwrap();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.consecutive_failures, 2);
        h.ws(&chat, Outcome::Fail(refused())).await;
        assert_eq!(open_for(&h, &chat), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn settings_do_not_depend_on_which_service_reaches_a_key_first() {
        // Before, each layer carried a configuration and the first layer to reach a shared key
        // installed its own: a lenient route reaching the key first left a strict route sharing
        // it with the lenient threshold. Now the key's settings are the registry's, whichever
        // service (or handle) creates it.
        let strict = config().consecutive_failures(1).build().unwrap();
        let route = route(TransportMode::Auto);
        let registry = BreakerRegistry::builder()
            .config(config().consecutive_failures(10).build().unwrap())
            .config_for(route.breaker_key(), strict.clone())
            .build();
        let mut first = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
        let mut second = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
        assert_eq!(first.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(
            second.ws(&route, Outcome::Fail(refused())).await,
            Intent::WebSocket
        );
        assert_eq!(second.state(), BreakerState::Open, "tripped at one failure");
        assert!(pinned(&first.ws(&route, Outcome::Http).await));
        assert_eq!(
            registry
                .config_for(route.breaker_key())
                .differing_field(&strict),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_pinned_by_hand_before_traffic_has_its_settings_from_the_start() {
        let route = route(TransportMode::Auto);
        let registry = BreakerRegistry::builder()
            .config_for(
                route.breaker_key(),
                config()
                    .consecutive_failures(1)
                    .open_duration(Duration::from_secs(7))
                    .half_open_probes(2)
                    .build()
                    .unwrap(),
            )
            .build();
        let handle = registry.handle();
        handle.pin(route.breaker_key(), Some(Duration::from_secs(10)));
        let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry));
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        advance(Duration::from_secs(10)).await;
        // Two probes, as configured for the key: the third request stays on HTTP.
        let (mut probes, mut sends) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let service = h.service.ready().await.unwrap();
            probes.push(service.call(request(&route, Intent::WebSocket)));
            let (seen, send) = h.upstream.next_request().await.unwrap();
            assert_eq!(seen.extensions().get::<Intent>(), Some(&Intent::WebSocket));
            sends.push(send);
        }
        assert_eq!(h.only().probes_in_flight, 2);
        assert!(pinned(&h.ws(&route, Outcome::Http).await));
        // A failed probe pins the key for the configured 7 s.
        sends.remove(0).send_error(refused());
        drop(sends);
        for probe in probes {
            probe.await.unwrap_err();
        }
        assert_eq!(open_for(&h, &route), Duration::from_secs(7));
        advance(Duration::from_secs(7)).await;
        assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
        assert_eq!(h.state(), BreakerState::Closed);
        // One failure trips it, as configured.
        h.ws(&route, Outcome::Fail(refused())).await;
        assert_eq!(h.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_override_applies_whatever_the_credential() {
        let route = route(TransportMode::Auto);
        // The override is given with a key scoped to some credential: only its provider and
        // endpoint matter.
        let scoped = route
            .breaker_key()
            .with_credential(Some(wsfirst_core::Fingerprint::of("Bearer sk-ops")));
        let registry = BreakerRegistry::builder()
            .config_for(&scoped, config().consecutive_failures(1).build().unwrap())
            .build();
        let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
        for secret in ["Bearer sk-alice", "Bearer sk-bob"] {
            let key = route.breaker_key_for(with_credential(&route, secret).headers());
            assert_eq!(registry.config_for(&key).consecutive_failures(), Some(1));
            let _ = h
                .exchange(with_credential(&route, secret), Outcome::Fail(refused()))
                .await;
            assert_eq!(h.handle.get(&key).unwrap().state, BreakerState::Open);
        }
        h.ws(&route, Outcome::Fail(refused())).await;
        let key = route.breaker_key();
        assert_eq!(h.handle.get(key).unwrap().state, BreakerState::Open);
        // Another endpoint keeps the default.
        let other = batch_route();
        assert_eq!(
            registry
                .config_for(other.breaker_key())
                .consecutive_failures(),
            Some(3)
        );
    }

    #[test]
    fn a_later_override_for_an_endpoint_replaces_the_earlier_one() {
        let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
        let alice = key.with_credential(Some(wsfirst_core::Fingerprint::of("Bearer sk-alice")));
        let registry = BreakerRegistry::builder()
            .config_for(&alice, config().consecutive_failures(1).build().unwrap())
            .config_for(&key, config().consecutive_failures(2).build().unwrap())
            .build();
        assert_eq!(registry.config_for(&alice).consecutive_failures(), Some(2));
        assert_eq!(registry.config_for(&key).consecutive_failures(), Some(2));
    }
}
