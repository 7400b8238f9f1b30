//! What the pieces of a closed-state call cost on their own, to read `closed_overhead` against:
//! the `http` extension and header lookups every breaker with wsfirst's contract must make, the
//! credential comparison (and the keyed hash it is made with, beside the SipHash-1-3 it replaced),
//! the reference count and the atomic load wsfirst's breaker adds, and `failsafe`'s own call and
//! `Instant::now()` for the comparison with the figures quoted for other breakers.
//!
//! `cargo bench -p wsfirst-breaker --bench components`

use std::{
    hash::BuildHasher,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use wsfirst_core::{Intent, Route, Served};

fn components(c: &mut Criterion) {
    let route = Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .build()
        .unwrap_or_else(|error| panic!("bench route: {error}"));
    let mut request = Request::new(());
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer sk-bench-credential-0123456789abcdef"),
    );
    request.extensions_mut().insert(route);
    request.extensions_mut().insert(Intent::WebSocket);
    let mut response = Response::new(());
    response
        .extensions_mut()
        .insert(Served::websocket(Duration::from_millis(1)));

    let mut group = c.benchmark_group("components");
    group.bench_function("nothing", |b| b.iter(|| black_box(&request)));
    group.bench_function("request_intent_lookup", |b| {
        b.iter(|| black_box(black_box(&request).extensions().get::<Intent>().is_some()))
    });
    group.bench_function("request_route_lookup", |b| {
        b.iter(|| black_box(black_box(&request).extensions().get::<Route>().is_some()))
    });
    group.bench_function("request_authorization_lookup", |b| {
        b.iter(|| black_box(black_box(&request).headers().get(AUTHORIZATION).is_some()))
    });
    group.bench_function("response_served_lookup", |b| {
        b.iter(|| black_box(black_box(&response).extensions().get::<Served>().is_some()))
    });
    // Two header values with the same bytes in different buffers, as two requests carry them.
    let remembered = HeaderValue::from_bytes(b"Bearer sk-bench-credential-0123456789abcdef")
        .unwrap_or_else(|error| panic!("bench header: {error}"));
    let incoming = HeaderValue::from_bytes(remembered.as_bytes())
        .unwrap_or_else(|error| panic!("bench header: {error}"));
    group.bench_function("credential_comparison", |b| {
        b.iter(|| black_box(black_box(&remembered).as_bytes() == black_box(&incoming).as_bytes()))
    });
    // The keyed hash the breaker compares credentials by, and the SipHash-1-3 it replaced.
    let secrets = rapidhash::v3::RapidSecrets::seed(0x5eed);
    group.bench_function("credential_hash_rapidhash", |b| {
        b.iter(|| {
            let bytes = black_box(&incoming).as_bytes();
            black_box(rapidhash::v3::rapidhash_v3_seeded(bytes, &secrets))
        })
    });
    let siphash = std::hash::RandomState::new();
    group.bench_function("credential_hash_siphash13", |b| {
        b.iter(|| black_box(siphash.hash_one(black_box(&incoming).as_bytes())))
    });
    let shared = Arc::new(AtomicU64::new(0));
    group.bench_function("arc_clone_and_drop", |b| {
        b.iter(|| drop(black_box(black_box(&shared).clone())))
    });
    group.bench_function("atomic_load_acquire", |b| {
        b.iter(|| black_box(black_box(&shared).load(Ordering::Acquire)))
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe_call", |b| {
        b.iter(|| black_box(failsafe.call(|| Ok::<u64, ()>(black_box(1))).is_ok()))
    });
    group.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = components
}
criterion_main!(benches);
