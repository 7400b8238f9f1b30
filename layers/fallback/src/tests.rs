//! Tests of the layer with `tower-test` mocks.

use std::{
    collections::VecDeque,
    error::Error,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header::CONTENT_LENGTH};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower_test::mock::{self, Handle, Spawn};
use wsfirst_core::{
    BoxError, FailureKind, HttpReason, Ineligible, Intent, MissingExtension, Phase, Route, Served,
    Transport, TransportMode, WsFailure, find_ws_failure,
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

/// Calls the service and spawns the response future.
fn send(
    service: &mut Svc,
    request: Request<TestBody>,
) -> tokio::task::JoinHandle<Result<Res, BoxError>> {
    assert!(service.poll_ready().is_ready());
    tokio::spawn(service.call(request))
}

/// Drops the service and checks that the inner service received no other request.
async fn assert_no_more_requests(service: Svc, handle: &mut Handle<Req, Res>) {
    drop(service);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn replays_each_replay_safe_phase_with_the_identical_request() {
    for phase in [
        Phase::Connect,
        Phase::Handshake,
        Phase::Send,
        Phase::BeforeFirstEvent,
    ] {
        let (mut service, mut handle) = spawn(FallbackConfig::new());
        let body = TestBody::chunked(br#"{"model":"gpt","stream":true}"#, 7);
        let response = send(
            &mut service,
            request(body, Intent::WebSocket, TransportMode::Auto),
        );

        let (websocket, reply) = handle.next_request().await.unwrap();
        assert_eq!(
            websocket.extensions().get::<Intent>(),
            Some(&Intent::WebSocket)
        );
        assert!(websocket.body().is_buffered());
        reply.send_error(failure(phase));

        let (http, reply) = handle.next_request().await.unwrap();
        assert_eq!(
            http.extensions().get::<Intent>(),
            Some(&Intent::Http(HttpReason::Fallback(failure(phase)))),
            "{phase:?}"
        );
        assert_eq!(http.method(), websocket.method());
        assert_eq!(http.uri(), websocket.uri());
        assert_eq!(http.version(), websocket.version());
        assert_eq!(http.headers(), websocket.headers());
        assert_eq!(
            http.extensions().get::<Route>().map(Route::api),
            Some("openai-responses")
        );
        let (http_body, ws_body) = (http.into_body(), websocket.into_body());
        assert_eq!(bytes_of(http_body).await, bytes_of(ws_body).await);
        reply.send_response(Response::new("over http"));

        let response = response.await.unwrap().unwrap();
        assert_eq!(*response.body(), "over http");
        let served = response.extensions().get::<Served>().unwrap();
        assert_eq!(served.transport(), Transport::Http);
        assert_eq!(served.fallback_cause(), Some(&failure(phase)));
        assert!(served.ws_attempt().is_some());
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn served_fallback_replaces_the_inner_marker_and_times_the_attempt() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    reply.send_error(failure(Phase::Handshake));
    let (http, reply) = handle.next_request().await.unwrap();
    // What the WebSocket layer stamps on a response it passed to HTTP.
    let reason = http
        .extensions()
        .get::<Intent>()
        .unwrap()
        .http_reason()
        .unwrap();
    let mut answer = Response::new("http");
    answer.extensions_mut().insert(Served::http(reason.clone()));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::fallback(
            failure(Phase::Handshake),
            Duration::from_secs(5)
        ))
    );
}

#[tokio::test]
async fn mid_stream_failure_is_not_replayed() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::MidStream));

    let error = response.await.unwrap().unwrap_err();
    assert_eq!(
        find_ws_failure(&*error).map(WsFailure::phase),
        Some(Phase::MidStream)
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn connect_only_replays_setup_failures_only() {
    for (phase, replayed) in [
        (Phase::Connect, true),
        (Phase::Handshake, true),
        (Phase::Send, false),
        (Phase::BeforeFirstEvent, false),
    ] {
        let (mut service, mut handle) = spawn(FallbackConfig::new().replay(Replay::ConnectOnly));
        let response = send(
            &mut service,
            request(
                TestBody::exact(b"{}"),
                Intent::WebSocket,
                TransportMode::Auto,
            ),
        );
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(failure(phase));
        if replayed {
            let (_, reply) = handle.next_request().await.unwrap();
            reply.send_response(Response::new("http"));
            assert!(response.await.unwrap().is_ok(), "{phase:?}");
        } else {
            let error = response.await.unwrap().unwrap_err();
            assert_eq!(find_ws_failure(&*error), Some(&failure(phase)));
        }
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test]
async fn strict_mode_surfaces_the_failure_and_streams_the_body() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"abc", 1),
            Intent::WebSocket,
            TransportMode::WebSocket,
        ),
    );
    let (websocket, reply) = handle.next_request().await.unwrap();
    assert!(!websocket.body().is_buffered());
    reply.send_error(failure(Phase::Handshake));

    let error = response.await.unwrap().unwrap_err();
    assert_eq!(find_ws_failure(&*error), Some(&failure(Phase::Handshake)));
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn http_intent_passes_through_unbuffered_and_untouched() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let intent = Intent::Http(HttpReason::ModeHttp);
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"abc", 1),
            intent.clone(),
            TransportMode::Http,
        ),
    );
    let (http, reply) = handle.next_request().await.unwrap();
    assert_eq!(http.extensions().get::<Intent>(), Some(&intent));
    assert!(!http.body().is_buffered());
    assert_eq!(bytes_of(http.into_body()).await, Bytes::from_static(b"abc"));
    let mut answer = Response::new("http");
    answer
        .extensions_mut()
        .insert(Served::http(HttpReason::ModeHttp));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::http(HttpReason::ModeHttp))
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn websocket_success_is_returned_as_is() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    let mut answer = Response::new("websocket");
    answer
        .extensions_mut()
        .insert(Served::websocket(Duration::from_millis(3)));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(*response.body(), "websocket");
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::websocket(Duration::from_millis(3)))
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[derive(Debug)]
struct NotAWsFailure;

impl std::fmt::Display for NotAWsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("something else")
    }
}

impl Error for NotAWsFailure {}

#[tokio::test]
async fn other_errors_reach_the_caller_unchanged() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    assert!(error.downcast_ref::<NotAWsFailure>().is_some(), "{error}");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn http_failure_after_websocket_failure_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Handshake));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    let both = error.downcast_ref::<HttpAfterWebSocket>().unwrap();
    assert_eq!(both.websocket(), &failure(Phase::Handshake));
    assert!(both.http_error().downcast_ref::<NotAWsFailure>().is_some());
    assert_eq!(
        error.to_string(),
        "websocket handshake failed: upgrade answered with status 500: oops, \
         then the http fallback failed: something else"
    );
    // The breaker outside finds the WebSocket failure to count.
    assert_eq!(find_ws_failure(&*error), Some(&failure(Phase::Handshake)));
    let chain: Vec<String> =
        std::iter::successors(Some(&*error as &(dyn Error + 'static)), |&e| e.source())
            .map(ToString::to_string)
            .collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[1], "http fallback failed: something else");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn replay_waits_for_the_inner_service_to_be_ready() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    handle.allow(1);
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Connect));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // The mock is out of capacity: no replay yet (calling it now would panic the task).
    assert!(handle.poll_request().is_pending());
    handle.allow(1);
    let (http, reply) = handle.next_request().await.unwrap();
    assert!(!http.extensions().get::<Intent>().unwrap().is_websocket());
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test]
async fn readiness_error_before_the_replay_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    handle.allow(1);
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Connect));
    handle.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    let both = error.downcast_ref::<HttpAfterWebSocket>().unwrap();
    assert_eq!(both.websocket(), &failure(Phase::Connect));
    assert!(both.http_error().downcast_ref::<NotAWsFailure>().is_some());
}

#[tokio::test]
async fn declared_oversize_body_goes_straight_to_http() {
    let (mut service, mut handle) = spawn(FallbackConfig::new().body_limit(4));
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"12345"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (http, reply) = handle.next_request().await.unwrap();
    assert_eq!(
        http.extensions().get::<Intent>(),
        Some(&Intent::Http(HttpReason::Ineligible(
            Ineligible::BodyNotReplayable {
                declared: 5,
                limit: 4
            }
        )))
    );
    assert!(!http.body().is_buffered());
    assert_eq!(
        bytes_of(http.into_body()).await,
        Bytes::from_static(b"12345")
    );
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn content_length_over_the_limit_goes_straight_to_http() {
    let (mut service, mut handle) = spawn(FallbackConfig::new().body_limit(4));
    let mut request = request(
        TestBody::chunked(b"123456", 2),
        Intent::WebSocket,
        TransportMode::Auto,
    );
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
    let response = send(&mut service, request);
    let (http, reply) = handle.next_request().await.unwrap();
    assert_eq!(
        http.extensions().get::<Intent>().map(Intent::reason_label),
        Some("body_not_replayable")
    );
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test]
async fn undeclared_oversize_body_fails_before_anything_is_sent() {
    let (mut service, mut handle) = spawn(FallbackConfig::new().body_limit(4));
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"12345", 2),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let error = response.await.unwrap().unwrap_err();
    assert_eq!(
        error
            .downcast_ref::<BodyTooLarge>()
            .map(BodyTooLarge::limit),
        Some(4)
    );
    assert!(error.to_string().contains("limit of 4 bytes"), "{error}");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn body_at_the_limit_is_buffered() {
    let (mut service, mut handle) = spawn(FallbackConfig::new().body_limit(4));
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"1234", 3),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (websocket, reply) = handle.next_request().await.unwrap();
    assert_eq!(
        websocket.body().as_bytes(),
        Some(&Bytes::from_static(b"1234"))
    );
    reply.send_response(Response::new("websocket"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test]
async fn body_error_while_buffering_fails_before_anything_is_sent() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let body = TestBody {
        chunks: VecDeque::from([Ok(Bytes::from_static(b"1")), Err("reset by peer".into())]),
        ..TestBody::default()
    };
    let response = send(
        &mut service,
        request(body, Intent::WebSocket, TransportMode::Auto),
    );
    let error = response.await.unwrap().unwrap_err();
    assert!(error.downcast_ref::<ReadBodyError>().is_some(), "{error}");
    assert_eq!(
        error.to_string(),
        "failed to read the request body: reset by peer"
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn one_mib_body_is_replayed_byte_identical_with_trailers() {
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("123"));
    let mut body = TestBody::chunked(&data, 16 * 1024 + 3);
    body.trailers = Some(trailers.clone());

    let (mut service, mut handle) = spawn(FallbackConfig::new());
    let response = send(
        &mut service,
        request(body, Intent::WebSocket, TransportMode::Auto),
    );
    let (websocket, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::BeforeFirstEvent));
    let (http, reply) = handle.next_request().await.unwrap();
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());

    for request in [websocket, http] {
        let collected = request.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert!(collected.to_bytes() == data[..], "body differs");
    }
}

#[tokio::test]
async fn missing_extensions_are_errors() {
    let (mut service, mut handle) = spawn(FallbackConfig::new());

    let no_intent = Request::new(TestBody::exact(b"{}"));
    let error = send(&mut service, no_intent).await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::INTENT)
    );

    let mut no_route = Request::new(TestBody::exact(b"{}"));
    no_route.extensions_mut().insert(Intent::WebSocket);
    let error = send(&mut service, no_route).await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::ROUTE)
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test]
async fn fallbacks_are_counted_by_provider_cause_and_phase() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (mut service, mut handle) = spawn(FallbackConfig::new());
    for _ in 0..2 {
        let response = send(
            &mut service,
            request(
                TestBody::exact(b"{}"),
                Intent::WebSocket,
                TransportMode::Auto,
            ),
        );
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(failure(Phase::Handshake));
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_response(Response::new("http"));
        response.await.unwrap().unwrap();
    }
    // Not a fallback: not counted.
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"{}"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::MidStream));
    response.await.unwrap().unwrap_err();

    let counters: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "wsfirst_fallbacks_total")
        .collect();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let (key, _, _, value) = &counters[0];
    let mut labels: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|label| (label.key().to_owned(), label.value().to_owned()))
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("cause".to_owned(), "upgrade_status".to_owned()),
            ("phase".to_owned(), "handshake".to_owned()),
            ("provider".to_owned(), "openai".to_owned()),
        ]
    );
    assert_eq!(value, &DebugValue::Counter(2));
}

/// Counts WARN events.
struct CountWarnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn fall_back_once(service: &mut Svc, handle: &mut Handle<Req, Res>, target: Route) {
    let mut request = request(
        TestBody::exact(b"{}"),
        Intent::WebSocket,
        TransportMode::Auto,
    );
    request.extensions_mut().insert(target);
    let response = send(service, request);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Handshake));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(Response::new("http"));
    response.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn warns_at_most_once_per_key_per_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let other = Route::builder("other", "other-api")
        .ws_url("wss://other.example/ws")
        .http_url("https://other.example/http")
        .build()
        .unwrap();

    let (mut service, mut handle) =
        spawn(FallbackConfig::new().warn_interval(Some(Duration::from_secs(60))));
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
    fall_back_once(&mut service, &mut handle, other).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);

    tokio::time::advance(Duration::from_secs(59)).await;
    fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn never_warns_without_an_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let (mut service, mut handle) = spawn(FallbackConfig::new().warn_interval(None));
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
        tokio::time::advance(Duration::from_secs(120)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 0);
}
