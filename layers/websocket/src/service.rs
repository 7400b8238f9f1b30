//! [`WebSocket`]: the service that serves a request over the WebSocket or passes it to HTTP.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;
use wsfirst_core::{BoxError, Intent, MissingExtension, Route};

use crate::{
    Body, Pool, WebSocketConfig, WebSocketLayer, attempt::attempt, future::ResponseFuture,
};

/// Serves requests whose [`Intent`] is `WebSocket` over a pooled WebSocket to the route's
/// WebSocket URL and passes every other request to `inner` (the HTTP upstream) unchanged.
///
/// - Responses from `inner` get `Served::http(reason)` unless they already carry a `Served`.
/// - A WebSocket answer is stamped `Served::websocket(attempt)`; the future resolves once the
///   first event arrived (a non-streaming answer: once it is complete).
/// - A request without an `Intent` fails with [`MissingExtension::INTENT`]; a WebSocket request
///   without a `Route` with [`MissingExtension::ROUTE`].
/// - Failures before the first event are `Err`s carrying a replay-safe
///   [`WsFailure`](wsfirst_core::WsFailure); after it, the body ends with a `MidStream` one.
///
/// Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct WebSocket<S> {
    inner: S,
    config: WebSocketConfig,
    pool: Pool,
}

impl<S> WebSocket<S> {
    /// Wraps `inner` with `config` and a pool of its own.
    pub fn new(inner: S, config: WebSocketConfig) -> Self {
        Self {
            inner,
            config,
            pool: Pool::new(),
        }
    }

    /// Uses `pool` (shared with every other holder of a clone of it).
    pub fn with_pool(mut self, pool: Pool) -> Self {
        self.pool = pool;
        self
    }

    /// A layer building this service; see [`WebSocketLayer`].
    pub fn layer(config: WebSocketConfig) -> WebSocketLayer {
        WebSocketLayer::new(config)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for WebSocket<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let reason = match request.extensions().get::<Intent>() {
            None => return ResponseFuture::failed(Box::new(MissingExtension::INTENT)),
            Some(Intent::WebSocket) => None,
            Some(Intent::Http(reason)) => Some(reason.clone()),
        };
        if reason.is_some() {
            return ResponseFuture::http(self.inner.call(request), reason);
        }
        let Some(route) = request.extensions().get::<Route>().cloned() else {
            return ResponseFuture::failed(Box::new(MissingExtension::ROUTE));
        };
        ResponseFuture::websocket(Box::pin(attempt(
            self.config.clone(),
            self.pool.clone(),
            route,
            request,
        )))
    }
}
