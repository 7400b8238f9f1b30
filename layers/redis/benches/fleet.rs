//! The cost of sharing breakers through Redis, where it could show.
//!
//! - `closed/in_process` and `closed/with_store`: one closed-state call through the breaker
//!   (request in, WebSocket-served response out, body ended), with a registry without a store
//!   and with a [`RedisStore`] connected to a local `redis-server`. The closed-state success
//!   path never talks to the store, so the two should be equal.
//! - `fleet/first_failure_to_all_pinned`: three replicas share a store; each sends one request
//!   that fails (threshold 3); the time from the first failure until all three replicas show the
//!   key open (the store counting, tripping and the stream reaching every replica). Each
//!   iteration resets the key first.
//!
//! Needs `redis-server` on PATH (it is started on a free loopback port); without it only
//! `closed/in_process` runs. `cargo bench -p wsfirst-breaker-redis --bench fleet`

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use tower::{Service, service_fn, util::BoxCloneSyncService};
use wsfirst_breaker::{BreakerConfig, BreakerRegistry, BreakerState, CircuitBreaker};
use wsfirst_breaker_redis::{RedisStore, RedisStoreConfig, testing::RedisServer};
use wsfirst_core::{FailureKind, Intent, Phase, Route, Served, WsFailure};

type Inner = BoxCloneSyncService<Request<()>, Response<Empty<Bytes>>, WsFailure>;

fn route() -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("ws://upstream.test/v1/responses")
        .http_url("http://upstream.test/v1/responses")
        .build()
        .unwrap()
}

fn request(route: &Route) -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(Intent::WebSocket);
    request
}

/// An upstream that serves every WebSocket request at once, or fails its upgrade with 500.
fn upstream(failing: bool) -> Inner {
    BoxCloneSyncService::new(service_fn(move |_: Request<()>| {
        std::future::ready(if failing {
            Err(WsFailure::new(
                Phase::Handshake,
                FailureKind::UpgradeStatus {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: Bytes::new(),
                },
            ))
        } else {
            let mut response = Response::new(Empty::new());
            response
                .extensions_mut()
                .insert(Served::websocket(Duration::from_millis(1)));
            Ok(response)
        })
    }))
}

fn registry(store: Option<&RedisStore>) -> BreakerRegistry {
    let config = BreakerConfig::builder()
        .consecutive_failures(3)
        .no_failure_rate()
        .build()
        .unwrap();
    let mut builder = BreakerRegistry::builder().config(config);
    if let Some(store) = store {
        builder = builder.store(Arc::new(store.clone()));
    }
    builder.build()
}

/// Polls a future that is ready at once (the upstream answers at once).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the closed-state path never waits"),
    }
}

fn store(runtime: &tokio::runtime::Runtime, server: &RedisServer, prefix: &str) -> RedisStore {
    let config = RedisStoreConfig::builder(server.url())
        .prefix(prefix)
        .build()
        .unwrap();
    let _guard = runtime.enter();
    RedisStore::new(config).unwrap()
}

fn wait_until(runtime: &tokio::runtime::Runtime, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    runtime.block_on(async {
        while !condition() {
            assert!(Instant::now() < deadline, "timed out");
            tokio::task::yield_now().await;
        }
    });
}

fn closed(c: &mut Criterion, runtime: &tokio::runtime::Runtime, server: Option<&RedisServer>) {
    let route = route();
    let mut group = c.benchmark_group("closed");
    let mut cases = vec![("in_process", None)];
    if let Some(server) = server {
        cases.push(("with_store", Some(store(runtime, server, "bench-closed"))));
    }
    for (name, store) in cases {
        let registry = registry(store.as_ref());
        if let Some(store) = &store {
            wait_until(runtime, || store.is_connected());
        }
        let mut service = CircuitBreaker::new(upstream(false), registry);
        group.bench_function(name, |b| {
            b.iter(|| {
                let response = now(service.call(request(&route))).unwrap();
                // The body is empty: the verdict is recorded as the response is made.
                black_box(response);
            })
        });
        drop(store);
    }
    group.finish();
}

fn fleet(c: &mut Criterion, runtime: &tokio::runtime::Runtime, server: &RedisServer) {
    let route = route();
    let stores: Vec<RedisStore> = (0..3)
        .map(|_| store(runtime, server, "bench-fleet"))
        .collect();
    let replicas: Vec<_> = stores
        .iter()
        .map(|store| {
            let registry = registry(Some(store));
            (
                registry.handle(),
                CircuitBreaker::new(upstream(true), registry),
            )
        })
        .collect();
    wait_until(runtime, || stores.iter().all(RedisStore::is_connected));
    let key = route.breaker_key().clone();
    c.bench_function("fleet/first_failure_to_all_pinned", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let _guard = runtime.enter();
                // Closed everywhere (and the fleet's count cleared) before the clock starts.
                replicas[0].0.reset(&key);
                wait_until(runtime, || {
                    stores.iter().all(|s| s.pending_events() == 0)
                        && replicas.iter().all(|(handle, _)| {
                            handle
                                .get(&key)
                                .is_none_or(|s| s.state == BreakerState::Closed)
                        })
                });
                let start = Instant::now();
                for (_, service) in &replicas {
                    let _ = now(service.clone().call(request(&route)));
                }
                wait_until(runtime, || {
                    replicas.iter().all(|(handle, _)| {
                        handle
                            .get(&key)
                            .is_some_and(|s| s.state == BreakerState::Open)
                    })
                });
                total += start.elapsed();
            }
            total
        })
    });
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    closed(c, &runtime, server.as_ref());
    if let Some(server) = &server {
        fleet(c, &runtime, server);
    }
}

criterion_group!(fleet_benches, benches);
criterion_main!(fleet_benches);
