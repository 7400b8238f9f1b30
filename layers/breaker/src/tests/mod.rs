//! Tests of the breaker through its service, grouped by topic, and the harness they share: a
//! `tower-test` mock upstream answering with scripted outcomes, and a handle to the breakers.

mod body;
mod closed;
mod credential;
mod eviction;
mod future;
mod gate;
mod half_open;
mod observability;
mod open;
mod pins;
mod scaling;
mod settings;
mod store;

use std::{
    fmt,
    sync::{Arc, Mutex},
    task::Poll,
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, advance};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;
use tower_test::mock;
use wsfirst_core::{
    BoxError, BreakerKey, FailureKind, HttpReason, Intent, MissingExtension, Phase, Route, Served,
    TransportMode, WsFailure,
};

use crate::{
    BreakerConfig, BreakerHandle, BreakerRegistry, BreakerState, CircuitBreaker,
    CircuitBreakerLayer, Transition, future::ResponseFuture,
};

type Body = Full<Bytes>;
/// The response future of a harness whose upstream answers with bodies of type `B`.
type Future<B = Body> = ResponseFuture<mock::future::ResponseFuture<Response<B>>>;
/// The upstream's side of one exchange.
type Send<B = Body> = mock::SendResponse<Response<B>>;

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

/// A breaker over a mock upstream whose responses have bodies of type `B`.
struct Harness<B = Body> {
    service: CircuitBreaker<mock::Mock<Request<()>, Response<B>>>,
    upstream: mock::Handle<Request<()>, Response<B>>,
    handle: BreakerHandle,
}

impl<B: http_body::Body> Harness<B> {
    fn with_layer(layer: CircuitBreakerLayer) -> Self {
        let (mock, upstream) = mock::pair();
        Harness {
            handle: layer.handle(),
            service: layer.layer(mock),
            upstream,
        }
    }

    /// Calls the service with `request`; returns its response future, the intent the upstream
    /// saw and the upstream's side of the exchange.
    async fn start(&mut self, request: Request<()>) -> (Future<B>, Intent, Send<B>) {
        let future = self.service.ready().await.unwrap().call(request);
        let (seen, send) = self.upstream.next_request().await.unwrap();
        let intent = seen.extensions().get::<Intent>().unwrap().clone();
        (future, intent, send)
    }

    /// [`Harness::start`] with a WebSocket request on `route`.
    async fn start_ws(&mut self, route: &Route) -> (Future<B>, Send<B>) {
        let (future, _, send) = self.start(request(route, Intent::WebSocket)).await;
        (future, send)
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

    /// Sends `request`, answers it with `outcome`, and returns the intent the inner service
    /// saw and the response (body fully read) or error.
    async fn exchange(
        &mut self,
        request: Request<()>,
        outcome: Outcome,
    ) -> (Intent, Result<Bytes, BoxError>) {
        let (future, intent, send) = self.start(request).await;
        match outcome {
            Outcome::Ws => {
                send.send_response(response(Some(Served::websocket(Duration::from_millis(5)))))
            }
            Outcome::Fallback(failure) => send.send_response(response(Some(Served::fallback(
                failure,
                Duration::from_millis(5),
            )))),
            Outcome::Http => send.send_response(response(Some(Served::http(HttpReason::ModeHttp)))),
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
    async fn start_probe(&mut self, route: &Route) -> (Future, Send) {
        self.ws(route, Outcome::Fail(refused())).await;
        advance(Duration::from_secs(30)).await;
        let (probe, send) = self.start_ws(route).await;
        assert_eq!(self.only().probes_in_flight, 1);
        (probe, send)
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

fn with_credential(route: &Route, secret: &'static str) -> Request<()> {
    let mut request = request(route, Intent::WebSocket);
    request
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static(secret));
    request
}
