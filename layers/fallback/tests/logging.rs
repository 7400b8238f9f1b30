//! The rate-limited WARN about falling back, in a test binary of its own: tracing caches each
//! log site's interest process-wide, so a log test sharing a binary with concurrent tests that
//! hit the same sites without a subscriber can miss its events.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_test::mock::{self, Handle, Spawn};
use wsfirst_core::{FailureKind, Intent, Phase, Route, WsFailure};
use wsfirst_fallback::{Fallback, FallbackConfig, FallbackLayer, ReplayBody};

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<&'static str>;
type Svc = Spawn<Fallback<mock::Mock<Req, Res>>>;

/// Counts WARN events.
struct CountWarnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn route(provider: &str) -> Route {
    Route::builder(provider, "responses")
        .ws_url(format!("wss://{provider}.example/ws"))
        .http_url(format!("https://{provider}.example/http"))
        .build()
        .unwrap()
}

/// One request whose WebSocket handshake fails and that HTTP then serves.
async fn fall_back_once(service: &mut Svc, handle: &mut Handle<Req, Res>, target: Route) {
    let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
    request.extensions_mut().insert(Intent::WebSocket);
    request.extensions_mut().insert(target);
    assert!(service.poll_ready().is_ready());
    let response = tokio::spawn(service.call(request));
    let (_, reply) = next(handle).await;
    reply.send_error(WsFailure::new(
        Phase::Handshake,
        FailureKind::UpgradeStatus {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Bytes::from_static(b"oops"),
        },
    ));
    let (_, reply) = next(handle).await;
    reply.send_response(Response::new("http"));
    tokio::time::timeout(WAIT, response)
        .await
        .expect("the fallback layer answers")
        .unwrap()
        .unwrap();
}

/// How long the test waits for the layer or the mock (paused time: a stuck layer fails the test
/// at once instead of hanging it).
const WAIT: Duration = Duration::from_secs(60);

/// The next request of the inner service (the mock), waited for at most [`WAIT`].
async fn next(handle: &mut Handle<Req, Res>) -> (Req, tower_test::mock::SendResponse<Res>) {
    tokio::time::timeout(WAIT, handle.next_request())
        .await
        .expect("a request to the inner service did not come: the layer is stuck")
        .expect("the inner service is gone")
}

#[tokio::test(start_paused = true)]
async fn warns_at_most_once_per_key_per_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let (mut service, mut handle) = mock::spawn_layer(FallbackLayer::new(
        FallbackConfig::builder()
            .warn_interval(Some(Duration::from_secs(60)))
            .build()
            .unwrap(),
    ));
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route("openai")).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
    fall_back_once(&mut service, &mut handle, route("other")).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);

    tokio::time::advance(Duration::from_secs(59)).await;
    fall_back_once(&mut service, &mut handle, route("openai")).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    fall_back_once(&mut service, &mut handle, route("openai")).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn never_warns_without_an_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let (mut service, mut handle) = mock::spawn_layer(FallbackLayer::new(
        FallbackConfig::builder()
            .warn_interval(None)
            .build()
            .unwrap(),
    ));
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route("openai")).await;
        tokio::time::advance(Duration::from_secs(120)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 0);
}
