//! A route built by hand with `tower::ServiceBuilder` from the public pieces, with a layer of
//! our own, a tower-http layer and a service of our own as the HTTP upstream, behaves as the
//! preset (`Wsfirst::route_with`) on a subset of the fault matrix: same status, transport and
//! reason headers, body, and executions on the upstream, against real servers on 127.0.0.1.

mod support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::{NO_STREAM, STREAM, local_table, transport_headers};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn, util::BoxCloneSyncService};
use tower_http::trace::TraceLayer;
use wsfirst::{
    RespondLayer, RouteOptions, Wsfirst,
    core::{BoxError, Route, TransportMode},
    fallback::FallbackConfig,
    guard::RequireJsonLayer,
    upstream::HttpUpstream,
    websocket::{
        WebSocketConfig,
        testing::{Answer, TestUpstream, WsScript},
    },
};

const CREDENTIAL: &str = "Bearer sk-custom";
const WAIT: Duration = Duration::from_secs(20);
/// The fallback layer's body limit in these tests: a larger request cannot be replayed, so it
/// goes to HTTP at once.
const BODY_LIMIT: usize = 1024;

/// Counts the requests that pass through it: a layer of our own between eligibility and the
/// breaker.
#[derive(Clone)]
struct CountLayer(Arc<AtomicUsize>);

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;

    fn layer(&self, inner: S) -> Count<S> {
        Count(inner, self.0.clone())
    }
}

#[derive(Clone)]
struct Count<S>(S, Arc<AtomicUsize>);

impl<S: Service<R>, R> Service<R> for Count<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.call(request)
    }
}

type Boxed = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

fn fallback() -> FallbackConfig {
    FallbackConfig::builder()
        .body_limit(BODY_LIMIT)
        .build()
        .unwrap()
}

fn websocket() -> WebSocketConfig {
    WebSocketConfig::builder()
        .handshake_timeout(Duration::from_secs(5))
        .first_event_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The preset.
fn preset(wsfirst: &Wsfirst, route: Route) -> Boxed {
    let options = RouteOptions::new()
        .fallback(fallback())
        .websocket(websocket());
    BoxCloneSyncService::new(wsfirst.route_with(route, options))
}

/// The same stack by hand, with our own counting layer, tower-http's `TraceLayer`, and a
/// service of our own (a closure over the shared `HttpUpstream`) as the HTTP upstream.
fn hand_built(wsfirst: &Wsfirst, route: Route, count: Arc<AtomicUsize>) -> Boxed {
    let http = wsfirst.http_upstream();
    let own_http = service_fn(move |request: Request<_>| {
        let http: HttpUpstream = http.clone();
        async move { http.oneshot(request).await.map(|r| r.map(Body::new)) }
    });
    let quiet = fallback().to_builder().warn_interval(None).build().unwrap();
    let service = ServiceBuilder::new()
        .layer(RequireJsonLayer::new())
        .layer(RespondLayer::new())
        .layer(wsfirst.route_layer(route))
        .layer(TraceLayer::new_for_http())
        .layer(wsfirst.eligibility_layer())
        .layer(CountLayer(count))
        .layer(wsfirst.breaker_layer())
        .layer(wsfirst.fallback_layer(quiet))
        .layer(wsfirst.websocket_layer(websocket()))
        .service(own_http);
    BoxCloneSyncService::new(service)
}

/// How a row's fault is made.
#[derive(Clone)]
enum Setup {
    /// The test upstream with this WebSocket script and, if any, this answer.
    Kit(WsScript, Option<Answer>),
    /// The WebSocket URL is a loopback port nobody listens on.
    Refused,
}

struct Row {
    name: &'static str,
    setup: Setup,
    mode: TransportMode,
    /// The key is pinned to HTTP by hand first.
    pinned: bool,
    body: String,
}

fn rows() -> Vec<Row> {
    let row = |name, setup, mode| Row {
        name,
        setup,
        mode,
        pinned: false,
        body: STREAM.to_owned(),
    };
    let kit = |script| Setup::Kit(script, None);
    let refuse_500 = || kit(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "no"));
    vec![
        row(
            "healthy websocket",
            kit(WsScript::Accept),
            TransportMode::Auto,
        ),
        Row {
            body: NO_STREAM.to_owned(),
            ..row(
                "healthy websocket, non-streaming",
                kit(WsScript::Accept),
                TransportMode::Auto,
            )
        },
        row("upgrade refused 500", refuse_500(), TransportMode::Auto),
        row(
            "upgrade refused 500, strict",
            refuse_500(),
            TransportMode::WebSocket,
        ),
        row("connect refused", Setup::Refused, TransportMode::Auto),
        row(
            "close before the first event",
            kit(WsScript::CloseBeforeFirstEvent { code: 1011 }),
            TransportMode::Auto,
        ),
        row(
            "close mid-stream",
            kit(WsScript::CloseAfterEvents {
                events: 3,
                code: 1011,
            }),
            TransportMode::Auto,
        ),
        row(
            "error event 429 before output",
            Setup::Kit(WsScript::Accept, Some(Answer::rate_limited(7))),
            TransportMode::Auto,
        ),
        Row {
            pinned: true,
            ..row("pinned key", kit(WsScript::Accept), TransportMode::Auto)
        },
        row("mode http", kit(WsScript::Accept), TransportMode::Http),
        Row {
            body: format!(
                r#"{{"model":"gpt-test","input":"{}","stream":true}}"#,
                "x".repeat(2 * BODY_LIMIT)
            ),
            ..row(
                "body over the limit",
                kit(WsScript::Accept),
                TransportMode::Auto,
            )
        },
    ]
}

/// What the caller got and what the upstream executed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: StatusCode,
    transport: String,
    reason: String,
    /// The body, with the upstream's address replaced; `None` when it was cut.
    body: Option<String>,
    ws_executions: usize,
    http_executions: usize,
}

/// Runs `row` on a fresh upstream and a fresh `Wsfirst`, through the stack `build` makes.
async fn run(row: &Row, build: impl FnOnce(&Wsfirst, Route) -> Boxed) -> Outcome {
    let kit = TestUpstream::start().await;
    let ws_url = match &row.setup {
        Setup::Refused => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("ws://{addr}/v1/responses")
        }
        Setup::Kit(script, answer) => {
            kit.set_default_ws_script(script.clone());
            if let Some(answer) = answer {
                kit.set_answer(answer.clone());
            }
            kit.ws_url()
        }
    };
    let wsfirst = Wsfirst::builder().eligibility(local_table()).build();
    let route = Route::builder("local", "responses")
        .ws_url(&ws_url)
        .http_url(kit.http_url())
        .mode(row.mode)
        .build()
        .unwrap();
    if row.pinned {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static(CREDENTIAL));
        wsfirst
            .breakers()
            .pin(&route.breaker_key_for(&headers), None);
    }
    let service = build(&wsfirst, route);
    let request = Request::post("/v1/responses")
        .header("authorization", CREDENTIAL)
        .header("content-type", "application/json")
        .body(Body::from(row.body.clone()))
        .unwrap();
    let response = tokio::time::timeout(WAIT, service.oneshot(request))
        .await
        .expect("the stack answers")
        .unwrap();
    let status = response.status();
    let (transport, reason) = transport_headers(&response);
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("the body ends")
        .ok()
        .map(|collected| {
            let bytes: Bytes = collected.to_bytes();
            String::from_utf8_lossy(&bytes).replace(&kit.addr().to_string(), "ADDR")
        });
    // A cut connection may take a moment to be counted by the upstream.
    tokio::task::yield_now().await;
    Outcome {
        status,
        transport,
        reason,
        body,
        ws_executions: kit.ws_requests(),
        http_executions: kit.http_requests(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_hand_built_stack_behaves_as_the_preset() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut differences = Vec::new();
    let rows = rows();
    for row in &rows {
        let expected = run(row, preset).await;
        let count = count.clone();
        let got = run(row, move |wsfirst, route| hand_built(wsfirst, route, count)).await;
        if got != expected {
            differences.push(format!(
                "{}:\n  preset:     {expected:?}\n  hand-built: {got:?}",
                row.name
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // Our own layer saw every request (all of them pass eligibility).
    assert_eq!(count.load(Ordering::SeqCst), rows.len());
}

/// The rows are not all alike: the subset covers each way a request ends.
#[tokio::test(start_paused = true)]
async fn the_subset_covers_every_ending() {
    let mut seen = Vec::new();
    for row in &rows() {
        let outcome = run(row, preset).await;
        seen.push((outcome.status, outcome.reason, outcome.body.is_some()));
    }
    for wanted in [
        (StatusCode::OK, "websocket", true),
        (StatusCode::OK, "fallback", true),
        (StatusCode::OK, "pinned", true),
        (StatusCode::OK, "mode_http", true),
        (StatusCode::OK, "websocket", false),
        (StatusCode::BAD_GATEWAY, "upgrade_status", true),
        (StatusCode::BAD_GATEWAY, "closed", true),
        // Too large to buffer for a replay: straight to HTTP.
        (StatusCode::OK, "body_not_replayable", true),
    ] {
        let wanted = (wanted.0, wanted.1.to_owned(), wanted.2);
        assert!(seen.contains(&wanted), "{wanted:?} not in {seen:?}");
    }
}

/// A hand-built stack's failures are responses too: an upstream error becomes the same `502`
/// JSON the preset answers with.
#[tokio::test]
async fn respond_turns_any_inner_error_into_a_response() {
    let failing = service_fn(|_: Request<Body>| async {
        Err::<Response<Body>, BoxError>("connection refused".into())
    });
    let service = ServiceBuilder::new()
        .layer(RespondLayer::new())
        .service(failing);
    let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "upstream_failed");
    assert_eq!(json["error"]["message"], "connection refused");
}
