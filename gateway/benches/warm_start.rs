//! First-request latency with and without warm connections (`[routes.pool] min_idle`): the
//! optimised `wsfirst-gateway` binary as its own process on 127.0.0.1, a route whose gateway
//! holds the credential (a static `Authorization`, so the key is known at start), in front of
//! the test kit's upstream on 127.0.0.1 answering a short stream.
//!
//! Each iteration starts a fresh gateway, waits until it listens and (with `min_idle`) until
//! the upstream saw its warm-up handshakes, opens the client's keep-alive connection, and times
//! one streaming request read to the end: the first request of the key. Cases:
//!
//! - `first_request/min_idle_0`: today's default: the request opens the WebSocket (TCP and
//!   upgrade) before it sends anything;
//! - `first_request/min_idle_1`: the gateway opened one at start: the request takes it;
//! - `second_request/min_idle_0`: for reference, the second request on the same gateway (the
//!   pooled connection of the first), the steady state.
//!
//! Client and upstream share this process's 2-worker runtime; the gateway is its own process.
//! Nothing is asserted on time; each request is checked (status, transport header).
//!
//! `flock /tmp/bench.lock cargo bench -p wsfirst-gateway --bench warm_start`

#[allow(dead_code)]
#[path = "load/child.rs"]
mod child;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, runtime::Runtime};
use wsfirst::websocket::testing::{Answer, TestUpstream};

use crate::child::Server;

const STREAM: &str = r#"{"model":"gpt-kit","input":"hi","stream":true}"#;

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
}

/// The gateway's configuration: one route to `upstream` keeping `min_idle` warm connections.
fn config(upstream: &TestUpstream, min_idle: usize) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"

[eligibility]
websocket_pairs = [["local", "responses"]]

[[routes]]
path = "/v1/responses"
provider = "local"
api = "responses"
http_url = "{http}"
ws_url = "{ws}"
headers = {{ Authorization = "Bearer sk-gateway" }}

[routes.pool]
min_idle = {min_idle}
"#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    )
}

/// A fresh gateway with `min_idle`, warm (the upstream saw its handshakes), and a client
/// connection to it.
async fn fresh_gateway(
    upstream: &TestUpstream,
    min_idle: usize,
) -> (Server, SendRequest<Full<Bytes>>) {
    let path = std::env::temp_dir().join(format!(
        "wsfirst-warm-start-{}-{min_idle}.toml",
        std::process::id()
    ));
    std::fs::write(&path, config(upstream, min_idle)).expect("write the config");
    let before = upstream.handshakes();
    let mut command = Command::new(child::gateway_binary());
    command.arg(&path);
    let gateway = Server::start(command);
    while upstream.handshakes() < before + min_idle {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(connection);
    let _ = std::fs::remove_file(&path);
    (gateway, sender)
}

/// One streaming request, read to the end; checked, not timed here.
async fn one_request(sender: &mut SendRequest<Full<Bytes>>) {
    sender.ready().await.expect("the connection is ready");
    let request = Request::post("/v1/responses")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(STREAM.as_bytes())))
        .unwrap();
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let transport = response.headers().get("x-wsfirst-transport").cloned();
    let body = response.into_body().collect().await.expect("the body");
    assert_eq!(
        transport.as_ref().map(|value| value.as_bytes()),
        Some(&b"websocket"[..])
    );
    assert!(!body.to_bytes().is_empty());
}

/// The time of the first (or, with `second`, the second) request of `iters` fresh gateways.
async fn measure(upstream: &TestUpstream, min_idle: usize, second: bool, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (gateway, mut sender) = fresh_gateway(upstream, min_idle).await;
        if second {
            one_request(&mut sender).await;
        }
        let started = Instant::now();
        one_request(&mut sender).await;
        total += started.elapsed();
        drop(gateway);
    }
    total
}

fn warm_start(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let upstream = runtime.block_on(TestUpstream::start());
    upstream.set_answer(Answer::text("hello world"));
    upstream.set_capture_limit(0);
    let mut group = c.benchmark_group("first_request");
    group.sampling_mode(SamplingMode::Flat);
    for min_idle in [0, 1] {
        group.bench_function(format!("min_idle_{min_idle}"), |b| {
            b.iter_custom(|iters| run(&runtime, &upstream, min_idle, false, iters));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("second_request");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("min_idle_0", |b| {
        b.iter_custom(|iters| run(&runtime, &upstream, 0, true, iters));
    });
    group.finish();
}

fn run(
    runtime: &Runtime,
    upstream: &TestUpstream,
    min_idle: usize,
    second: bool,
    iters: u64,
) -> Duration {
    runtime.block_on(measure(upstream, min_idle, second, iters))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = warm_start
}
criterion_main!(benches);
