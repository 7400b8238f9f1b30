//! Closed-state overhead per call of the wsfirst breaker, `failsafe` and `tower-resilience`'s
//! circuit breaker, against the bare service, at 1 and 2 threads.
//!
//! Every case sends the same kind of request (with `Route`, `Intent::WebSocket` and an
//! `Authorization` header) to the same inner service, which answers at once with a response
//! carrying `Served::websocket`; futures are polled with a no-op waker. Requests and responses are
//! built before the clock starts and recycled after it stops (the inner service hands out
//! pre-built responses and keeps the requests), so the timed loop allocates nothing of its own and
//! the difference to `bare` is the breaker's cost: `poll_ready`, `call`, reading the extensions,
//! the future, and the response body wrapper.
//!
//! At 2 threads each thread has its own service clone, all share one breaker (one key), and the
//! threads start each chunk of calls together; the figure is the time per call seen by each
//! thread (no cliff = about the same as at 1 thread).
//!
//! Pinning: each timed thread pins itself (`core_affinity`) to a core of its own, thread `i` to
//! the `i`-th core the process may run on, so that the 2-thread figures always come from two
//! threads on two cores (never time-sliced on one) and the 1-thread figures always from the
//! first core. Whether two "cores" are hyperthread siblings is the host's business (a VM's vCPUs
//! may be either): the figures hold for the host they are taken on. Where the cores cannot be
//! listed or pinning fails, the threads run unpinned and the bench says so on stderr.
//!
//! Stack placement: where on the stack the calls' futures and responses land moved one case by
//! up to 10 ns per call in one build (2026-11-30, the same binary with the timed loop's frame
//! shifted by 16 to 1,024 bytes: same instructions, different stalls), which is as much as the
//! differences this bench is read for. So each thread runs its chunks of calls at eight stack
//! offsets in turn (multiples of 528 bytes: every 16-byte step within a cache line, spread over
//! a page), and a figure is their average rather than the luck of one build's layout. Code
//! placement still differs from build to build: compare builds over several cases, not one.
//!
//! Cases: `bare` (the inner service alone), `floor` (a layer without state that does only what
//! wsfirst's contract makes every breaker do: read the request's `Intent`, `Route` and credential
//! header and the response's `Served`, and wrap the future and the body; the breaker's own cost is
//! `wsfirst` minus `floor`), `wsfirst` (the breaker, closed, key scoped to each
//! request's `Authorization` header as by default), `wsfirst_fixed_credential` (the same with a
//! route whose credential is fixed), `wsfirst_http_passthrough` (requests already on HTTP: only
//! the layer's plumbing), `wsfirst_clone_per_call` (the service cloned from a never-called
//! prototype for every call, as axum's `Router` does, so its own remembered key is always empty:
//! it takes the one its thread remembers for the service, and its hold on the registry from the
//! thread's copy), `failsafe` and `tower_resilience`. The prototype is made on the bench's main
//! thread and cloned on the timed ones, as a router shared by a server's worker threads is.
//!
//! `cargo bench -p wsfirst-breaker --bench closed_overhead`

use std::{
    cell::RefCell,
    future::Future,
    hint::black_box,
    pin::pin,
    sync::Barrier,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use http_body_util::Empty;
use tower::{Layer, Service};
use wsfirst_breaker::{BreakerConfig, CircuitBreakerLayer, ResponseBody};
use wsfirst_core::{BoxError, HttpReason, Intent, Route, Served, Transport};

type Body = Empty<bytes::Bytes>;

/// How many calls are timed between two untimed set-ups.
const CHUNK: usize = 64;

thread_local! {
    /// Pre-built responses the upstream hands out.
    static RESPONSES: RefCell<Vec<Response<Body>>> = const { RefCell::new(Vec::new()) };
    /// Requests the upstream received, kept for reuse.
    static RECEIVED: RefCell<Vec<Request<()>>> = const { RefCell::new(Vec::new()) };
}

/// The upstream stand-in: answers every request at once with a pre-built response.
#[derive(Clone, Debug)]
struct Upstream;

impl Service<Request<()>> for Upstream {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        RECEIVED.with(|received| received.borrow_mut().push(request));
        let response = RESPONSES.with(|responses| responses.borrow_mut().pop());
        std::future::ready(response.ok_or_else(|| "no pre-built response left".into()))
    }
}

fn fresh_response() -> Response<Body> {
    let mut response = Response::new(Empty::new());
    response
        .extensions_mut()
        .insert(Served::websocket(Duration::from_millis(1)));
    response
}

/// The route of a case: its breaker key is scoped to the `Authorization` header of each request
/// (the default, which fingerprints the header on every request), or to a credential fixed for the
/// route.
#[derive(Clone, Copy, Debug)]
enum Credential {
    PerRequest,
    Fixed,
}

fn route(credential: Credential) -> Route {
    let builder = Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses");
    let builder = match credential {
        Credential::PerRequest => builder,
        Credential::Fixed => builder.credential("Bearer sk-bench-credential-0123456789abcdef"),
    };
    builder
        .build()
        .unwrap_or_else(|error| panic!("bench route: {error}"))
}

fn fresh_request(route: &Route, intent: &Intent) -> Request<()> {
    let mut request = Request::new(());
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer sk-bench-credential-0123456789abcdef"),
    );
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(intent.clone());
    request
}

/// Polls a future to completion with a no-op waker (spinning if it is pending, which only a
/// contended lock inside a breaker causes).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::hint::spin_loop();
    }
}

/// A case: makes one call with a request; cloned once per thread.
trait Case: Clone + Send {
    type Output;

    fn call(&mut self, request: Request<()>) -> Option<Self::Output>;

    /// Turns an output back into a response the upstream can hand out again.
    fn recycle(&self, output: Self::Output) -> Response<Body>;
}

/// Any tower service over [`Upstream`] whose response can be turned back.
#[derive(Clone)]
struct Tower<S, R>(S, R);

impl<S, R, O> Case for Tower<S, R>
where
    S: Service<Request<()>, Response = O> + Clone + Send,
    R: Fn(O) -> Response<Body> + Clone + Send,
{
    type Output = O;

    fn call(&mut self, request: Request<()>) -> Option<O> {
        run(std::future::poll_fn(|cx| self.0.poll_ready(cx))).ok()?;
        run(self.0.call(request)).ok()
    }

    fn recycle(&self, output: O) -> Response<Body> {
        (self.1)(output)
    }
}

/// A tower service cloned from a never-called prototype for every call, the way axum's `Router`
/// calls a route's service: per-clone state (the breaker's own remembered key) is always cold.
#[derive(Clone)]
struct ClonePerCall<S, R>(S, R);

impl<S, R, O> Case for ClonePerCall<S, R>
where
    S: Service<Request<()>, Response = O> + Clone + Send,
    R: Fn(O) -> Response<Body> + Clone + Send,
{
    type Output = O;

    fn call(&mut self, request: Request<()>) -> Option<O> {
        let mut service = self.0.clone();
        run(std::future::poll_fn(|cx| service.poll_ready(cx))).ok()?;
        run(service.call(request)).ok()
    }

    fn recycle(&self, output: O) -> Response<Body> {
        (self.1)(output)
    }
}

/// The floor under any breaker that keeps wsfirst's contract: a layer without state that does
/// only the reads the contract requires (the request's `Intent`, its `Route` and the credential
/// header the key is scoped to, the response's `Served`) and wraps the future and the body the
/// same way. The breaker's own cost is `wsfirst` minus `floor`.
#[derive(Clone)]
struct Floor<S>(S);

pin_project_lite::pin_project! {
    struct FloorFuture<F> {
        #[pin]
        future: F,
        websocket: bool,
    }
}

impl<F: Future<Output = Result<Response<Body>, BoxError>>> Future for FloorFuture<F> {
    type Output = Result<Response<ResponseBody<Body>>, BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.future.poll(cx))?;
        let served = response.extensions().get::<Served>();
        black_box(*this.websocket && served.is_some_and(|s| s.transport() == Transport::WebSocket));
        Poll::Ready(Ok(response.map(ResponseBody::untracked)))
    }
}

impl<S> Service<Request<()>> for Floor<S>
where
    S: Service<Request<()>, Response = Response<Body>, Error = BoxError>,
{
    type Response = Response<ResponseBody<Body>>;
    type Error = BoxError;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let extensions = request.extensions();
        let websocket = extensions.get::<Intent>().is_some_and(Intent::is_websocket);
        let credential = extensions
            .get::<Route>()
            .and_then(Route::credential_header)
            .and_then(|name| request.headers().get(name));
        black_box(credential.map(HeaderValue::as_bytes));
        FloorFuture {
            future: self.0.call(request),
            websocket,
        }
    }
}

#[derive(Clone)]
struct Failsafe<B>(B, Upstream);

// `failsafe` is built without its `futures-support` feature here, so its synchronous `call`
// wraps the whole call (as in failsafe's own benchmarks).
impl<B: failsafe::CircuitBreaker + Clone + Send> Case for Failsafe<B> {
    type Output = Response<Body>;

    fn call(&mut self, request: Request<()>) -> Option<Response<Body>> {
        let upstream = &mut self.1;
        self.0
            .call(|| {
                let ready = run(std::future::poll_fn(|cx| upstream.poll_ready(cx)));
                ready.and_then(|()| run(upstream.call(request)))
            })
            .ok()
    }

    fn recycle(&self, output: Response<Body>) -> Response<Body> {
        output
    }
}

/// Runs `f` with the stack `chunk % 8` times 528 bytes further down (see the module docs).
fn at_stack_offset(chunk: usize, f: impl FnOnce()) {
    match chunk % 8 {
        0 => f(),
        1 => below::<528>(f),
        2 => below::<1056>(f),
        3 => below::<1584>(f),
        4 => below::<2112>(f),
        5 => below::<2640>(f),
        6 => below::<3168>(f),
        _ => below::<3696>(f),
    }
}

/// Runs `f` below `N` bytes of this frame's stack.
#[inline(never)]
fn below<const N: usize>(f: impl FnOnce()) {
    let pad = [0u8; N];
    black_box(&pad);
    f();
    black_box(&pad);
}

/// Pins the running thread to the `index`-th core the process may use (see the module docs).
fn pin_to_core(index: usize) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let pinned = core_affinity::get_core_ids()
        .and_then(|cores| cores.get(index).copied())
        .is_some_and(core_affinity::set_for_current);
    if !pinned {
        WARNED.call_once(|| eprintln!("closed_overhead: thread {index} runs unpinned"));
    }
}

/// Runs `iters` calls on each of `threads` threads and returns the slowest thread's timed total.
fn measure<C: Case>(
    case: &C,
    intent: &Intent,
    credential: Credential,
    threads: usize,
    iters: u64,
) -> Duration {
    let route = route(credential);
    let start_chunk = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let mut case = case.clone();
                let (route, start_chunk) = (&route, &start_chunk);
                scope.spawn(move || {
                    pin_to_core(thread);
                    let mut requests: Vec<Request<()>> =
                        (0..CHUNK).map(|_| fresh_request(route, intent)).collect();
                    let mut outputs: Vec<C::Output> = Vec::with_capacity(CHUNK);
                    RESPONSES.with(|r| r.borrow_mut().extend((0..CHUNK).map(|_| fresh_response())));
                    RECEIVED.with(|r| r.borrow_mut().reserve(CHUNK));
                    // Warm the case's per-clone state (the breaker's key cache) outside the clock.
                    if let Some(output) = case.call(fresh_request(route, intent)) {
                        drop(output);
                    }
                    RECEIVED.with(|r| r.borrow_mut().clear());
                    RESPONSES.with(|r| r.borrow_mut().push(fresh_response()));
                    let mut total = Duration::ZERO;
                    let mut left = iters as usize;
                    let mut chunk = 0;
                    while left > 0 {
                        let n = left.min(CHUNK);
                        left -= n;
                        start_chunk.wait();
                        let start = Instant::now();
                        at_stack_offset(chunk, || {
                            timed_calls(&mut case, &mut requests, &mut outputs, n);
                        });
                        total += start.elapsed();
                        chunk += 1;
                        // Untimed: put requests and responses back for the next chunk.
                        RECEIVED.with(|r| requests.append(&mut r.borrow_mut()));
                        RESPONSES.with(|r| {
                            let mut responses = r.borrow_mut();
                            responses.extend(outputs.drain(..).map(|o| case.recycle(o)));
                        });
                        while requests.len() < CHUNK {
                            requests.push(fresh_request(route, intent));
                        }
                    }
                    total
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

/// With `CLOSED_OVERHEAD_CALLGRIND=<case>:<calls>` in the environment, that case makes that many
/// calls on one thread instead of being timed, and no other case runs, for counting instructions
/// under callgrind (repeatable on a busy machine, unlike times):
///
/// ```text
/// CLOSED_OVERHEAD_CALLGRIND=wsfirst:100000 valgrind --tool=callgrind \
///     --toggle-collect='*timed_calls*' target/release/deps/closed_overhead-<hash> --bench
/// ```
///
/// The total then counts the calls alone (divide by their number): the chunks' set-up between
/// them is not collected.
fn callgrind_calls() -> Option<(String, u64)> {
    let spec = std::env::var("CLOSED_OVERHEAD_CALLGRIND").ok()?;
    let parsed = spec
        .split_once(':')
        .and_then(|(case, calls)| Some((case.to_owned(), calls.parse().ok()?)));
    Some(parsed.expect("CLOSED_OVERHEAD_CALLGRIND: <case>:<calls>"))
}

/// The timed calls of one chunk; out of line so that `callgrind --toggle-collect=*timed_calls*`
/// counts exactly them (see [`calls_under_callgrind`]).
#[inline(never)]
fn timed_calls<C: Case>(
    case: &mut C,
    requests: &mut Vec<Request<()>>,
    outputs: &mut Vec<C::Output>,
    n: usize,
) {
    for request in requests.drain(..n) {
        if let Some(output) = case.call(black_box(request)) {
            outputs.push(output);
        }
    }
}

fn bench_case<C: Case>(c: &mut Criterion, name: &str, case: C) {
    bench_with(c, name, case, Intent::WebSocket, Credential::PerRequest);
}

fn bench_with<C: Case>(
    c: &mut Criterion,
    name: &str,
    case: C,
    intent: Intent,
    credential: Credential,
) {
    if let Some((only, calls)) = callgrind_calls() {
        if only == name {
            measure(&case, &intent, credential, 1, calls);
        }
        return;
    }
    let mut group = c.benchmark_group("closed_overhead");
    for threads in [1, 2] {
        group.bench_function(format!("{name}/{threads}_thread"), |b| {
            b.iter_custom(|iters| measure(&case, &intent, credential, threads, iters))
        });
    }
    group.finish();
}

fn closed_overhead(c: &mut Criterion) {
    bench_case(c, "bare", Tower(Upstream, |r: Response<Body>| r));
    bench_case(
        c,
        "floor",
        Tower(Floor(Upstream), |r: Response<ResponseBody<Body>>| {
            r.map(ResponseBody::into_inner)
        }),
    );

    let wsfirst = CircuitBreakerLayer::new(BreakerConfig::default()).layer(Upstream);
    bench_case(
        c,
        "wsfirst",
        Tower(wsfirst, |r: Response<ResponseBody<Body>>| {
            r.map(ResponseBody::into_inner)
        }),
    );

    // The same layer with requests already on HTTP: only the layer's plumbing (the `Intent`
    // lookup, the future and the body wrapper), no key lookup and no breaker state.
    let passthrough = CircuitBreakerLayer::new(BreakerConfig::default()).layer(Upstream);
    bench_with(
        c,
        "wsfirst_http_passthrough",
        Tower(passthrough, |r: Response<ResponseBody<Body>>| {
            r.map(ResponseBody::into_inner)
        }),
        Intent::Http(HttpReason::ModeHttp),
        Credential::PerRequest,
    );

    // The breaker with a route whose credential is fixed: no credential header to compare with
    // the one the key cache remembers.
    let fixed = CircuitBreakerLayer::new(BreakerConfig::default()).layer(Upstream);
    bench_with(
        c,
        "wsfirst_fixed_credential",
        Tower(fixed, |r: Response<ResponseBody<Body>>| {
            r.map(ResponseBody::into_inner)
        }),
        Intent::WebSocket,
        Credential::Fixed,
    );

    // The breaker's service cloned for every call from a prototype that is never called, as
    // axum's `Router` does: the clone's own remembered key is always empty, so every call takes
    // the key its thread remembers for the service (and the clone the thread's hold on the
    // registry).
    let prototype = CircuitBreakerLayer::new(BreakerConfig::default()).layer(Upstream);
    bench_case(
        c,
        "wsfirst_clone_per_call",
        ClonePerCall(prototype, |r: Response<ResponseBody<Body>>| {
            r.map(ResponseBody::into_inner)
        }),
    );

    let failsafe = failsafe::Config::new().build();
    bench_case(c, "failsafe", Failsafe(failsafe, Upstream));

    let resilience = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .unwrap_or_else(|error| panic!("tower-resilience config: {error:?}"))
        .layer(Upstream);
    bench_case(
        c,
        "tower_resilience",
        Tower(resilience, |r: Response<Body>| r),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = closed_overhead
}
criterion_main!(benches);
