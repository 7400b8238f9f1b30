//! Shared helpers of the `ws_*` integration tests: a layer over a counting HTTP stand-in,
//! requests for a test upstream, and body readers.
#![allow(dead_code, unreachable_pub)]

use std::{
    convert::Infallible,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, util::BoxCloneService};
use wsfirst_core::{BoxError, Intent, Route, WsFailure, find_ws_failure};
use wsfirst_websocket::{Body, Pool, WebSocket, WebSocketConfig, testing::TestUpstream};

pub type HttpService = BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;
pub type Svc = WebSocket<HttpService>;

/// An HTTP stand-in that answers `"over http"` and counts its calls.
pub fn http_stand_in() -> (HttpService, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let service = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"over http")))) }
    });
    (BoxCloneService::new(service), calls)
}

/// The WebSocket service over the HTTP stand-in.
pub fn service(config: WebSocketConfig, pool: &Pool) -> (Svc, Arc<AtomicUsize>) {
    let (http, calls) = http_stand_in();
    (WebSocket::with_pool(http, config, pool.clone()), calls)
}

pub fn route_to(ws_url: &str) -> Route {
    Route::builder("test", "test-responses")
        .ws_url(ws_url)
        .http_url("http://127.0.0.1:9/v1/responses")
        .build()
        .unwrap()
}

pub fn route(upstream: &TestUpstream) -> Route {
    route_to(&upstream.ws_url())
}

/// The JSON body of a Responses API request.
pub fn body(stream: bool) -> String {
    format!(r#"{{"model":"gpt-kit","input":"hi","stream":{stream}}}"#)
}

/// A WebSocket-intended request to `route` with `body` and extra headers.
pub fn request_with(route: &Route, body: String, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Full::new(Bytes::from(body))).unwrap();
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(Intent::WebSocket);
    request
}

pub fn request(route: &Route, stream: bool) -> Request<Full<Bytes>> {
    request_with(route, body(stream), &[])
}

pub async fn call(
    service: &mut Svc,
    request: Request<Full<Bytes>>,
) -> Result<Response<Body<Full<Bytes>>>, BoxError> {
    service.ready().await?.call(request).await
}

/// The WsFailure of a failed call.
pub fn failure_of<T: std::fmt::Debug>(result: Result<T, BoxError>) -> WsFailure {
    let error = result.expect_err("the attempt should fail");
    find_ws_failure(&*error)
        .unwrap_or_else(|| panic!("no WsFailure in {error}"))
        .clone()
}

/// Reads a body to its end: the bytes received and the error that ended it, if any.
pub async fn read_body<B>(body: B) -> (Vec<u8>, Option<BoxError>)
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(error) => return (bytes, Some(error)),
        }
    }
    (bytes, None)
}

/// Waits until `condition` holds, yielding to the runtime between checks (no timer involved;
/// the real-time limit is only a safety net against a hung test). Call it with time running.
pub async fn until(mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("condition never held");
}

/// Runs `future` to completion in the background.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

pub const SECOND: Duration = Duration::from_secs(1);
