//! Tests of the layer with `tower-test` mocks, by topic; the shared request bodies and helpers
//! are here.

mod body_limit;
mod budget;
mod completion;
mod no_replay;
mod observability;
mod replay;

use std::{
    collections::VecDeque,
    error::Error,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header::CONTENT_LENGTH};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower_test::mock::{self, Handle, Spawn};
use wsfirst_core::{
    BoxError, Delivery, FailureKind, HttpReason, Ineligible, Intent, MissingExtension, Phase,
    Route, Served, Transport, TransportMode, WsFailure, find_ws_failure,
};

use crate::{
    BodyTooLarge, Fallback, FallbackConfig, FallbackLayer, HttpAfterWebSocket, ReadBodyError,
    Replay, ReplayBody,
};

/// A request body: chunks, optional trailers, a declared size or none.
#[derive(Debug, Default)]
struct TestBody {
    chunks: VecDeque<Result<Bytes, BoxError>>,
    trailers: Option<HeaderMap>,
    exact: Option<u64>,
}

impl TestBody {
    /// A body of unknown size sent in chunks of `chunk` bytes.
    fn chunked(data: &[u8], chunk: usize) -> Self {
        Self {
            chunks: data
                .chunks(chunk)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect(),
            ..Self::default()
        }
    }

    /// A body whose size is known in advance.
    fn exact(data: &'static [u8]) -> Self {
        Self {
            chunks: VecDeque::from([Ok(Bytes::from_static(data))]),
            exact: Some(data.len() as u64),
            ..Self::default()
        }
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(chunk.map(Frame::data)));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn size_hint(&self) -> SizeHint {
        self.exact.map(SizeHint::with_exact).unwrap_or_default()
    }
}

type Req = Request<ReplayBody<TestBody>>;
type Res = Response<&'static str>;
type Svc = Spawn<Fallback<mock::Mock<Req, Res>>>;

fn spawn(config: FallbackConfig) -> (Svc, Handle<Req, Res>) {
    mock::spawn_layer(FallbackLayer::new(config))
}

fn route(mode: TransportMode) -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .mode(mode)
        .build()
        .unwrap()
}

fn request(body: TestBody, intent: Intent, mode: TransportMode) -> Request<TestBody> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("x-request-id", "42")
        .body(body)
        .unwrap();
    request.extensions_mut().insert(route(mode));
    request.extensions_mut().insert(intent);
    request
}

fn failure(phase: Phase) -> WsFailure {
    WsFailure::new(
        phase,
        FailureKind::UpgradeStatus {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Bytes::from_static(b"oops"),
        },
    )
}

async fn bytes_of(body: ReplayBody<TestBody>) -> Bytes {
    body.collect().await.unwrap().to_bytes()
}

/// How long a test waits for the layer or the mock (paused time: the clock jumps there as soon
/// as nothing else can happen, so a stuck layer fails the test with a message at once).
const WAIT: Duration = Duration::from_secs(60);

/// Waits for `future`, at most [`WAIT`]; a layer that never gets there fails the test, saying
/// what did not come, instead of hanging it.
async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not come within {WAIT:?}: the layer is stuck"),
    }
}

/// The next request the inner service (the mock) receives, waited for at most [`WAIT`].
async fn next(handle: &mut Handle<Req, Res>) -> (Req, mock::SendResponse<Res>) {
    bounded("a request to the inner service", handle.next_request())
        .await
        .expect("the inner service is gone")
}

/// Calls the service and spawns the response future; the returned future waits for its answer
/// at most [`WAIT`].
fn send(
    service: &mut Svc,
    request: Request<TestBody>,
) -> impl Future<Output = Result<Result<Res, BoxError>, tokio::task::JoinError>> {
    assert!(service.poll_ready().is_ready());
    let task = tokio::spawn(service.call(request));
    bounded("the fallback layer's answer", task)
}

/// Drops the service and checks that the inner service received no other request.
async fn assert_no_more_requests(service: Svc, handle: &mut Handle<Req, Res>) {
    drop(service);
    let next = bounded("the end of the inner service", handle.next_request()).await;
    assert!(next.is_none(), "the inner service received another request");
}

#[derive(Debug)]
struct NotAWsFailure;

impl std::fmt::Display for NotAWsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("something else")
    }
}

impl Error for NotAWsFailure {}

/// A WebSocket candidate with a small body of declared size.
fn candidate() -> Request<TestBody> {
    request(
        TestBody::exact(b"{}"),
        Intent::WebSocket,
        TransportMode::Auto,
    )
}

/// The default settings with this body limit.
fn limited(bytes: usize) -> FallbackConfig {
    FallbackConfig::builder().body_limit(bytes).build().unwrap()
}
