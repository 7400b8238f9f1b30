//! What a user of wsfirst pays and saves per request, measured on loopback.
//!
//! `end_to_end`: one streaming request through the composed [`RouteService`] (body read to the
//! end) against the scriptable [`TestUpstream`] on `127.0.0.1`, always for the same answer
//! (`Answer::text("hello world")`, 11 SSE events, about 4 KiB), in four situations:
//!
//! - `websocket`: served over the pooled WebSocket (one handshake before the clock starts, every
//!   timed request reuses the connection);
//! - `http`: the route's mode is `http`: served by the HTTP upstream (hyper-util client, pooled
//!   keep-alive connection);
//! - `pinned`: the route is `auto` but its breaker key is pinned open, so the request goes to
//!   HTTP without trying the WebSocket;
//! - `fallback`: the upstream refuses every upgrade with `500` (the incident) and the breaker is
//!   disabled (`RouteOptions::no_breaker()`), so every request pays a TCP connect and a failed
//!   handshake, then is replayed over HTTP.
//!
//! Before a case is timed, one request checks that it is served the way the case says
//! (transport and reason headers) with the expected bytes, so a misrouted case fails loudly
//! instead of measuring the wrong path. Nothing here asserts on time.
//!
//! `in_process`: the same library code without the network:
//!
//! - `eligibility_decide`: `wsfirst::openai_responses_table()` deciding for a typical OpenAI
//!   Responses route (allowed pair, registered host, `content-length` under the limit);
//! - `bare` vs `eligibility_layer`: a `tower::service_fn` alone and behind the eligibility layer;
//! - `bare_inline` vs `all_layers_http`: an inline upstream stand-in alone and behind all four
//!   layers (Eligibility -> CircuitBreaker -> Fallback -> WebSocket) for a route in mode `http`,
//!   response body read to the end.
//!
//! Futures of the in-process cases complete at once; they are polled with a no-op waker.
//! Requests are built outside the timed part (`iter_batched`).
//!
//! `flock /tmp/bench.lock cargo bench --bench stack`

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use wsfirst::{
    RouteOptions, RouteService, Wsfirst,
    breaker::{BreakerConfig, CircuitBreakerLayer},
    core::{BoxError, Route, TransportMode},
    eligibility::{EligibilityLayer, EligibilityTable, Policy, RequestHead},
    fallback::{FallbackConfig, FallbackLayer},
    openai_responses_table,
    websocket::{
        WebSocketConfig, WebSocketLayer,
        testing::{Answer, TestUpstream, WsScript},
    },
};

/// The streaming request body every end-to-end case sends.
const STREAM: &str = r#"{"model":"gpt-kit","input":"hi","stream":true}"#;

/// Short runs: the whole bench stays around a minute on a 2-vCPU machine.
fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

// ---------------------------------------------------------------------------------------------
// End to end, on loopback.
// ---------------------------------------------------------------------------------------------

/// The four situations of the end-to-end group.
#[derive(Clone, Copy, Debug)]
enum Case {
    WebSocket,
    Http,
    Pinned,
    Fallback,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::WebSocket => "websocket",
            Case::Http => "http",
            Case::Pinned => "pinned",
            Case::Fallback => "fallback",
        }
    }

    /// The `x-wsfirst-transport` and `x-wsfirst-reason` headers this case must be served with.
    fn expected(self) -> (&'static str, &'static str) {
        match self {
            Case::WebSocket => ("websocket", "websocket"),
            Case::Http => ("http", "mode_http"),
            Case::Pinned => ("http", "pinned"),
            Case::Fallback => ("http", "fallback"),
        }
    }
}

fn request() -> Request<Body> {
    Request::post("/v1/responses")
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(Body::from(STREAM))
        .expect("a valid request")
}

/// Sends one request and reads the whole body: (transport, reason, status, body).
async fn exchange(service: &RouteService) -> (String, String, StatusCode, Bytes) {
    let response = match service.clone().oneshot(request()).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (transport, reason) = (header("x-wsfirst-transport"), header("x-wsfirst-reason"));
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body reads to the end")
        .to_bytes();
    (transport, reason, status, body)
}

/// The upstream, the shared parts and the route service of one case, ready to time.
async fn set_up(case: Case) -> (TestUpstream, Wsfirst, RouteService) {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("hello world"));
    let table = EligibilityTable::builder()
        .allow("local", "responses")
        .build()
        .expect("a valid eligibility table");
    let wsfirst = Wsfirst::builder().eligibility(table).build();
    let mode = match case {
        Case::Http => TransportMode::Http,
        _ => TransportMode::Auto,
    };
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(mode)
        .build()
        .expect("a valid route");
    let options = match case {
        Case::Fallback => {
            upstream.set_default_ws_script(WsScript::refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "wrong endpoint",
            ));
            RouteOptions::new().no_breaker()
        }
        _ => RouteOptions::new(),
    };
    if let Case::Pinned = case {
        let key = route.breaker_key_for(request().headers());
        wsfirst.breakers().pin(&key, None);
    }
    let service = wsfirst.route_with(route, options);

    // One request outside the clock: checks the path and warms the pooled connection.
    let (transport, reason, status, body) = exchange(&service).await;
    assert_eq!(
        (transport.as_str(), reason.as_str(), status),
        (case.expected().0, case.expected().1, StatusCode::OK),
        "case {} is not served the way it should be",
        case.name()
    );
    assert_eq!(
        body,
        Answer::text("hello world").sse(),
        "case {}",
        case.name()
    );
    (upstream, wsfirst, service)
}

fn end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("end_to_end");
    for case in [Case::WebSocket, Case::Http, Case::Pinned, Case::Fallback] {
        let (upstream, wsfirst, service) = runtime.block_on(set_up(case));
        let before = (
            upstream.handshakes(),
            upstream.ws_requests(),
            upstream.http_requests(),
        );
        let mut sent = 0;
        group.bench_function(case.name(), |b| {
            b.iter_custom(|iters| {
                sent += iters;
                timed_requests(&runtime, &service, iters)
            });
        });
        // What the requests (warm-up included) cost the upstream, to read the figures with.
        println!(
            "end_to_end/{}: {sent} requests sent; upstream saw {} handshakes, {} websocket and \
             {} http requests",
            case.name(),
            upstream.handshakes() - before.0,
            upstream.ws_requests() - before.1,
            upstream.http_requests() - before.2,
        );
        runtime.block_on(async {
            wsfirst.shutdown().await;
            upstream.shutdown().await;
        });
    }
    group.finish();
}

/// Sends `iters` requests one after the other, each read to the end, and returns the time taken.
fn timed_requests(runtime: &Runtime, service: &RouteService, iters: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let response = match service.clone().oneshot(request()).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let body = response
                .into_body()
                .collect()
                .await
                .expect("the body reads to the end");
            black_box(body);
        }
        start.elapsed()
    })
}

// ---------------------------------------------------------------------------------------------
// In process, no I/O.
// ---------------------------------------------------------------------------------------------

/// Polls a future that completes at once.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-process future did not complete at once"),
    }
}

fn openai_route(mode: TransportMode) -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .mode(mode)
        .build()
        .expect("a valid route")
}

/// A typical request of the route: the route extension, credentials, a JSON body's headers.
fn in_process_request<B>(route: &Route, body: B) -> Request<B> {
    let mut request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .header("content-length", STREAM.len())
        .body(body)
        .expect("a valid request");
    request.extensions_mut().insert(route.clone());
    request
}

/// The upstream stand-in of `all_layers_http`: answers any request at once with the SSE body.
#[derive(Clone, Debug)]
struct Inline {
    answer: Bytes,
}

impl<B> Service<Request<B>> for Inline {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        drop(request);
        std::future::ready(Ok(Response::new(Full::new(self.answer.clone()))))
    }
}

/// One call through `service` with the response body read to the end.
fn call_and_read<S, B, R>(service: &mut S, request: Request<B>) -> Bytes
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
    R: http_body::Body<Data = Bytes>,
    R::Error: std::fmt::Debug,
{
    now(async {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("the stand-in answers");
        response
            .into_body()
            .collect()
            .await
            .expect("the body reads")
            .to_bytes()
    })
}

fn in_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_process");

    // The decision alone.
    let table = openai_responses_table();
    let route = openai_route(TransportMode::Auto);
    let request = in_process_request(&route, ());
    assert!(
        table
            .decide(&route, &RequestHead::new(&request))
            .is_websocket(),
        "the typical route must be eligible"
    );
    group.bench_function("eligibility_decide", |b| {
        b.iter(|| {
            black_box(table.decide(black_box(&route), &RequestHead::new(black_box(&request))))
        });
    });

    // The eligibility layer's pass-through cost over a bare `service_fn`.
    let bare = service_fn(|request: Request<Empty<Bytes>>| async move {
        drop(request);
        Ok::<_, Infallible>(Response::new(()))
    });
    let mut bare_service = bare;
    group.bench_function("bare", |b| {
        b.iter_batched(
            || in_process_request(&route, Empty::new()),
            |request| {
                now(async {
                    let response = bare_service.ready().await?.call(request).await?;
                    Ok::<_, Infallible>(black_box(response))
                })
            },
            BatchSize::SmallInput,
        );
    });
    let mut layered = EligibilityLayer::new(openai_responses_table()).layer(bare);
    group.bench_function("eligibility_layer", |b| {
        b.iter_batched(
            || in_process_request(&route, Empty::new()),
            |request| {
                now(async {
                    let response = layered.ready().await?.call(request).await?;
                    Ok::<_, BoxError>(black_box(response))
                })
                .expect("the layer passes the request through")
            },
            BatchSize::SmallInput,
        );
    });

    // All four layers on the HTTP path (mode `http`) over an inline stand-in, body read.
    let answer = Bytes::from(Answer::text("hello world").sse());
    let inline = Inline {
        answer: answer.clone(),
    };
    let http_route = openai_route(TransportMode::Http);
    let mut bare_inline = inline.clone();
    group.bench_function("bare_inline", |b| {
        b.iter_batched(
            || {
                in_process_request(
                    &http_route,
                    Full::new(Bytes::from_static(STREAM.as_bytes())),
                )
            },
            |request| black_box(call_and_read(&mut bare_inline, request)),
            BatchSize::SmallInput,
        );
    });
    let mut all_layers = ServiceBuilder::new()
        .layer(EligibilityLayer::new(openai_responses_table()))
        .layer(CircuitBreakerLayer::new(BreakerConfig::default()))
        .layer(FallbackLayer::new(FallbackConfig::default()))
        .layer(WebSocketLayer::new(WebSocketConfig::default()))
        .service(inline);
    let check = call_and_read(
        &mut all_layers,
        in_process_request(
            &http_route,
            Full::new(Bytes::from_static(STREAM.as_bytes())),
        ),
    );
    assert_eq!(
        check, answer,
        "the layers pass the answer through unchanged"
    );
    group.bench_function("all_layers_http", |b| {
        b.iter_batched(
            || {
                in_process_request(
                    &http_route,
                    Full::new(Bytes::from_static(STREAM.as_bytes())),
                )
            },
            |request| black_box(call_and_read(&mut all_layers, request)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = end_to_end, in_process
}
criterion_main!(benches);
