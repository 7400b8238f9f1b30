//! What the breaker's keys cost in memory, and how long a sweep of many keys takes.
//!
//! Keys are made the way traffic makes them: one request per credential through the service
//! (routes scope keys to the `Authorization` header by default), each answered at once over the
//! WebSocket. A counting global allocator (`stats_alloc`) measures the heap they keep: the bytes
//! the program asked for and has not given back (the allocator's own overhead per block is not
//! in them). Time is tokio's paused clock, so that a sweep can find every key idle without
//! waiting; the sweeps themselves are timed with the real clock, once each (a sweep that evicts
//! can only run once).
//!
//! Printed: the heap per key and the number of blocks per key, at 100,000 keys; then the time of
//! one sweep of those keys when all were used since the last one (each mark is cleared), when
//! none was (nothing to do but look), and when all are idle (each is evicted and freed), with the
//! heap left after; and the time of one snapshot of every key (what the admin's list of keys
//! reads). Single sweeps of 100,000 keys (tens of megabytes) depend on what the caches hold:
//! compare runs, not single figures.
//!
//! `cargo bench -p wsfirst-breaker --bench memory` (a few seconds)

use std::{
    alloc::System,
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use http_body_util::Empty;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};
use wsfirst_breaker::{BreakerRegistry, CircuitBreakerLayer};
use wsfirst_core::{BoxError, Intent, Route, Served};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// How many keys the registry is filled with.
const KEYS: usize = 100_000;

/// The upstream stand-in: answers every request at once, over the WebSocket.
#[derive(Clone, Debug)]
struct Upstream;

impl Service<Request<()>> for Upstream {
    type Response = Response<Empty<bytes::Bytes>>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(Empty::new());
        response
            .extensions_mut()
            .insert(Served::websocket(Duration::from_millis(1)));
        std::future::ready(Ok(response))
    }
}

/// Polls a future that is ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench's services answer at once"),
    }
}

/// The heap the program holds now, in bytes asked for.
fn held(region: &Region<'_, System>) -> isize {
    // A reallocation is in both counts already (by its difference).
    let change = region.change();
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

/// Times `f`, once.
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let result = f();
    (result, start.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    runtime.block_on(async {
        let route = Route::builder("openai", "openai-responses")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/responses")
            .build()
            .unwrap_or_else(|error| panic!("bench route: {error}"));
        let registry = BreakerRegistry::builder()
            .max_keys(KEYS)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        let mut service = CircuitBreakerLayer::from_registry(registry.clone()).layer(Upstream);
        let handle = registry.handle();

        let region = Region::new(GLOBAL);
        let before = region.change();
        let (_, filling) = timed(|| {
            for i in 0..KEYS {
                let mut request = Request::new(());
                let credential = format!("Bearer sk-memory-bench-{i:032}");
                let value = HeaderValue::try_from(credential)
                    .unwrap_or_else(|error| panic!("header: {error}"));
                request.headers_mut().insert(AUTHORIZATION, value);
                request.extensions_mut().insert(route.clone());
                request.extensions_mut().insert(Intent::WebSocket);
                let response = now(service.call(request))
                    .unwrap_or_else(|error| panic!("bench call: {error}"));
                drop(response);
            }
        });
        assert_eq!(registry.len(), KEYS, "every credential made a key");
        let kept = held(&region);
        let blocks = {
            let change = region.change();
            (change.allocations - before.allocations) as isize
                - (change.deallocations - before.deallocations) as isize
        };
        println!("breaker keys: {KEYS} keys made in {filling:.2?} (one request each)");
        println!(
            "  heap per key: {} bytes in {:.1} blocks ({:.1} MB for {KEYS} keys, bytes asked for)",
            kept / KEYS as isize,
            blocks as f64 / KEYS as f64,
            kept as f64 / 1e6,
        );

        let (kept_all, all_used) = timed(|| handle.evict_idle());
        let (kept_none, none_used) = timed(|| handle.evict_idle());
        assert_eq!((kept_all, kept_none), (0, 0), "no key is idle yet");
        println!("  sweep of {KEYS} keys, all used since the last sweep: {all_used:.2?}");
        println!("  sweep of {KEYS} keys, none used since the last sweep: {none_used:.2?}");
        let (listed, snapshot) = timed(|| handle.snapshot().len());
        assert_eq!(listed, KEYS);
        println!("  snapshot of {KEYS} keys: {snapshot:.2?}");
        tokio::time::advance(Duration::from_secs(3601)).await;
        let (evicted, evicting) = timed(|| handle.evict_idle());
        assert_eq!(evicted, KEYS, "every key is idle");
        println!(
            "  sweep of {KEYS} keys, all idle (evicted and freed): {evicting:.2?}; heap left: {} bytes",
            held(&region)
        );
        drop(service);
    });
}
