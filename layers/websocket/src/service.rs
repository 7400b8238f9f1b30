//! [`WebSocket`]: the service that serves a request over the WebSocket or passes it to HTTP.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;
use wsfirst_core::{BoxError, Intent, MissingExtension, Route, WebSocketOnly};

use crate::{
    Body, Pool, WebSocketConfig,
    future::{Next, ResponseFuture},
};

/// Serves requests whose [`Intent`] is `WebSocket` over a pooled WebSocket to the route's
/// WebSocket URL and passes every other request to `inner` (the HTTP upstream) unchanged.
///
/// - Responses from `inner` get `Served::http(reason)` unless they already carry a `Served`.
/// - A WebSocket request's body is read first (up to the message size limit; over it, a
///   replay-safe `Send` failure [`TooLarge`](wsfirst_core::FailureKind::TooLarge)). When the
///   codec names a field of it that the WebSocket mode does not support
///   ([`Codec::unsupported`](crate::Codec::unsupported); for the Responses API,
///   `background: true`), the request is not tried on the WebSocket: `inner` gets it with the
///   body unchanged and the intent
///   `Intent::Http(HttpReason::Ineligible(Ineligible::UnsupportedField(field)))`, its response
///   is stamped `Served::http` with that reason (`x-wsfirst-reason: unsupported_field` in the
///   facade), and `wsfirst_ws_ineligible_total{provider, api, reason, field}` counts it. This
///   holds in every mode, strict (`websocket`) included: like the per-request override, the
///   request itself asks for what only HTTP can do. A breaker in front sees no WebSocket
///   attempt: no verdict, and a probe gives its slot back.
///   A request whose body has trailers (which a body rebuilt from bytes cannot carry) goes on
///   to the attempt instead, where the codec refuses the field with a replay-safe failure.
/// - A request marked [`WebSocketOnly`] (a warm-up, `"generate": false`), or whose body the
///   codec finds WebSocket-only ([`Codec::websocket_only`](crate::Codec::websocket_only)), is
///   never passed to `inner`: with an `Http` intent (a breaker's pin) or an unsupported field it
///   fails at once with [`WebSocketRequired`](wsfirst_core::WebSocketRequired), and when its
///   attempt fails before the first event the failure comes wrapped in `WebSocketRequired`
///   (its source), which a fallback layer does not replay.
/// - A WebSocket answer is stamped `Served::websocket(attempt)`; the future resolves once the
///   first event arrived (a non-streaming answer: once it is complete).
/// - A request that carries a [`HandshakeGate`](wsfirst_core::HandshakeGate) (a circuit
///   breaker in front puts one in a probe), or else gets one from the configuration's
///   [`handshake_gates`](crate::WebSocketConfig::handshake_gates) (the breaker registry, asked
///   only when the request is about to open a connection), opens a connection only if the gate
///   allows it, asked under the pool's lock (otherwise it fails at once with a replay-safe
///   [`Local`](wsfirst_core::FailureKind::Local) failure in `Connect`, marked
///   [`shared`](wsfirst_core::WsFailure::shared): the key already counted what closed it), and a
///   handshake it opened that fails is reported to the gate before the requests that waited for
///   the same handshake are told.
/// - A request without an `Intent` fails with [`MissingExtension::INTENT`]; a WebSocket request
///   without a `Route` with [`MissingExtension::ROUTE`].
/// - Failures before the first event are `Err`s carrying a
///   [`WsFailure`](wsfirst_core::WsFailure) that says how far the request got (whether it may
///   be sent again: see the crate docs, "When a request is sent again"); after it, the body
///   ends with a `MidStream` one.
///
/// `inner` must be `Clone` (the ready one moves into a WebSocket request's future, which may
/// need it) and the request body must be buildable from bytes (`From<Bytes>`, as
/// `http_body_util::Full`, `axum::body::Body` and the fallback layer's `ReplayBody` are).
///
/// Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct WebSocket<S> {
    inner: S,
    config: WebSocketConfig,
    pool: Pool,
}

impl<S> WebSocket<S> {
    /// Wraps `inner` with `config` and a pool of its own (default settings).
    pub fn new(inner: S, config: WebSocketConfig) -> Self {
        Self::with_pool(inner, config, Pool::new())
    }

    /// Wraps `inner` with `config` and `pool` (shared with every other holder of a clone of it).
    pub fn with_pool(inner: S, config: WebSocketConfig, pool: Pool) -> Self {
        Self {
            inner,
            config,
            pool,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    wsfirst_core::define_inner_service_accessors!();
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for WebSocket<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let reason = match request.extensions().get::<Intent>() {
            None => return ResponseFuture::failed(Box::new(MissingExtension::INTENT)),
            Some(Intent::WebSocket) => None,
            Some(Intent::Http(reason)) => Some(reason.clone()),
        };
        if let Some(reason) = reason {
            if let Some(only) = request.extensions().get::<WebSocketOnly>() {
                // The one place where a WebSocket-only request (a warm-up) that a layer above
                // sent towards HTTP (a breaker's pin, an ineligible request in a stack without
                // an eligibility layer) is answered instead: the seam where the pinned case can
                // get an answer of its own.
                return ResponseFuture::failed(Box::new(only.refuse(reason)));
            }
            return ResponseFuture::http(self.inner.call(request), Some(reason));
        }
        let Some(route) = request.extensions().get::<Route>().cloned() else {
            return ResponseFuture::failed(Box::new(MissingExtension::ROUTE));
        };
        // The body decides whether the request can go over the WebSocket at all: the ready inner
        // service goes into the future (for a request that turns out to need HTTP), a clone
        // stays for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let declared = body.size_hint().lower();
        ResponseFuture::websocket(
            body,
            Next {
                inner,
                parts,
                declared,
                config: self.config.clone(),
                pool: self.pool.clone(),
                route,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use tower_test::mock;
    use wsfirst_core::{FailureKind, HttpReason, Phase, Served, WsFailure, find_ws_failure};

    use super::*;
    use crate::WebSocketLayer;

    type Req = Request<Full<Bytes>>;
    type Res = Response<Full<Bytes>>;

    type Spawned = mock::Spawn<WebSocket<mock::Mock<Req, Res>>>;

    fn setup() -> (Spawned, mock::Handle<Req, Res>) {
        mock::spawn_layer(WebSocketLayer::new(WebSocketConfig::default()))
    }

    fn request(intent: Option<Intent>) -> Req {
        let mut request = Request::post("/v1/responses")
            .header("x-mine", "1")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        if let Some(intent) = intent {
            request.extensions_mut().insert(intent);
        }
        request
    }

    #[tokio::test]
    async fn http_intent_passes_through_and_is_stamped() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let future = service.call(request(Some(Intent::Http(HttpReason::ModeHttp))));
        let (seen, send) = handle.next_request().await.unwrap();
        assert_eq!(seen.headers()["x-mine"], "1");
        assert_eq!(seen.into_body().collect().await.unwrap().to_bytes(), "{}");
        send.send_response(Response::new(Full::new(Bytes::from_static(b"ok"))));
        let response = future.await.unwrap();
        assert_eq!(
            response.extensions().get::<Served>(),
            Some(&Served::http(HttpReason::ModeHttp))
        );
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ok"
        );
    }

    #[tokio::test]
    async fn served_set_by_the_inner_service_is_kept() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let failure = WsFailure::new(Phase::Connect, FailureKind::Timeout(Duration::from_secs(5)));
        let intent = Intent::Http(HttpReason::Fallback(failure.clone()));
        let future = service.call(request(Some(intent)));
        let (_, send) = handle.next_request().await.unwrap();
        let mut response = Response::new(Full::new(Bytes::new()));
        let served = Served::fallback(failure, Duration::from_secs(5));
        response.extensions_mut().insert(served.clone());
        send.send_response(response);
        let response = future.await.unwrap();
        assert_eq!(response.extensions().get::<Served>(), Some(&served));
    }

    #[tokio::test]
    async fn inner_errors_are_passed_on() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let future = service.call(request(Some(Intent::Http(HttpReason::ModeHttp))));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error("upstream down");
        assert_eq!(future.await.unwrap_err().to_string(), "upstream down");
    }

    #[tokio::test]
    async fn missing_intent_is_an_error_and_nothing_is_called() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let error = service.call(request(None)).await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<MissingExtension>(),
            Some(&MissingExtension::INTENT)
        );
        drop(service);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn websocket_intent_without_a_websocket_url_fails_replay_safe() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let mut request = request(Some(Intent::WebSocket));
        request.extensions_mut().insert(
            Route::builder("p", "a")
                .http_url("http://127.0.0.1:9/x")
                .build()
                .unwrap(),
        );
        // Passed to the inner service instead, it would wait for an answer forever: say so.
        let error = tokio::select! {
            result = service.call(request) => result.unwrap_err(),
            seen = handle.next_request() => panic!(
                "the inner service was called: {:?}",
                seen.map(|(request, _)| request.extensions().get::<Intent>().cloned())
            ),
        };
        let failure = find_ws_failure(&*error).unwrap();
        assert_eq!(failure.phase(), Phase::Connect);
        assert!(failure.is_replay_safe());
        drop(service);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn unsupported_field_goes_to_the_inner_service_unchanged() {
        let (mut service, mut handle) = setup();
        assert!(service.poll_ready().is_ready());
        let body = r#"{"model":"m", "background":true}"#;
        let mut request = Request::post("/v1/responses")
            .header("x-mine", "1")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        request.extensions_mut().insert(Intent::WebSocket);
        request.extensions_mut().insert(
            Route::builder("p", "a")
                .ws_url("ws://127.0.0.1:9/x")
                .http_url("http://127.0.0.1:9/x")
                .build()
                .unwrap(),
        );
        let mut future = tokio::spawn(service.call(request));
        // Sent over the websocket instead, it fails at once: say so rather than wait forever.
        let (seen, send) = tokio::select! {
            next = handle.next_request() => next.unwrap(),
            done = &mut future => panic!(
                "answered without the inner service: {:?}",
                done.map(|result| result.map(drop))
            ),
        };
        let reason =
            HttpReason::Ineligible(wsfirst_core::Ineligible::UnsupportedField("background"));
        assert_eq!(
            seen.extensions().get::<Intent>(),
            Some(&Intent::Http(reason.clone()))
        );
        assert_eq!(seen.headers()["x-mine"], "1");
        assert_eq!(seen.into_body().collect().await.unwrap().to_bytes(), body);
        send.send_response(Response::new(Full::new(Bytes::from_static(b"ok"))));
        let response = future.await.unwrap().unwrap();
        assert_eq!(
            response.extensions().get::<Served>(),
            Some(&Served::http(reason))
        );
    }

    #[test]
    fn futures_and_bodies_are_send() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<<WebSocket<mock::Mock<Req, Res>> as Service<Req>>::Future>();
        send_sync::<Body<Full<Bytes>>>();
        send_sync::<WebSocket<()>>();
        send_sync::<WebSocketLayer>();
    }
}
