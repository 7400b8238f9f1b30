//! The gateway the way users run it: the `Configured` router served over a real listener on
//! 127.0.0.1 (as the `wsfirst-gateway` binary serves it), driven by a hyper HTTP/1.1 client with a
//! keep-alive connection, in front of the test kit's upstream on 127.0.0.1.
//!
//! Cases, one streaming request each (`{"stream": true}`, the body read to the end):
//!
//! - `direct_http`: the client straight to the upstream's HTTP endpoint, the floor;
//! - `gateway_websocket`: through the gateway on a healthy `auto` route (pooled WebSocket);
//! - `gateway_http`: through the gateway on a route in mode `http`;
//! - `gateway_pinned`: through the gateway on an `auto` route whose key is pinned to HTTP;
//! - `gateway_pinned_no_nodelay`: the same, served by plain `axum::serve` (accepted sockets
//!   without `TCP_NODELAY`), the way the gateway served before `wsfirst::serve`: the figure a
//!   regression of that fix would show.
//!
//! Client, gateway and upstream share one 2-worker tokio runtime, so the figures include every
//! party's work. Nothing is asserted on time; each case is checked once (status, transport
//! header, bytes) before it is timed.
//!
//! `flock /tmp/bench.lock cargo bench -p wsfirst-gateway --bench gateway`

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{net::TcpListener, runtime::Runtime};
use wsfirst::{
    serve::{ServerConfig, serve},
    websocket::testing::{Answer, TestUpstream},
};
use wsfirst_gateway::{Configured, config::Config};

const STREAM: &str = r#"{"model":"gpt-kit","input":"hi","stream":true}"#;
const TEXT: &str = "hello world, this answer streams over a few more events than the shortest";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Everything one run needs: the upstream, the gateway's addresses, the client.
struct Setup {
    upstream: TestUpstream,
    configured: Configured,
    gateway: SocketAddr,
    plain: SocketAddr,
    client: HttpClient,
}

async fn set_up() -> Setup {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let config = Config::from_toml_str(&format!(
        r#"
        [eligibility]
        websocket_pairs = [["local", "responses"]]

        [[routes]]
        path = "/ws/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"

        [[routes]]
        path = "/http/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        mode = "http"

        # Another endpoint (same upstream, named by host name): its own breaker key.
        [[routes]]
        path = "/pinned/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{pinned_ws}"
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
        pinned_ws = upstream.ws_url().replace("127.0.0.1", "localhost"),
    ))
    .expect("a valid configuration");
    let configured = Configured::from_config(&config).expect("the stack builds");
    // The pinned route's key, pinned by hand until unpinned.
    let pinned = configured
        .routes
        .iter()
        .find(|(path, _)| path.starts_with("/pinned"))
        .map(|(_, service)| service.route().breaker_key_for(&request_headers()))
        .expect("the pinned route");
    configured.wsfirst.breakers().pin(&pinned, None);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let gateway = listener.local_addr().expect("an address");
    let router = configured.router();
    tokio::spawn(serve(
        listener,
        router.clone(),
        ServerConfig::default(),
        std::future::pending(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let plain = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let client = Client::builder(TokioExecutor::new()).build_http();
    Setup {
        upstream,
        configured,
        gateway,
        plain,
        client,
    }
}

fn request_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        "Bearer sk-bench".parse().expect("a header"),
    );
    headers
}

/// One streaming request read to the end: (status, reason header, body).
async fn exchange(client: &HttpClient, url: &str) -> (StatusCode, String, Bytes) {
    let request = Request::post(url)
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(STREAM.as_bytes())))
        .expect("a request");
    let response = client.request(request).await.expect("an answer");
    let status = response.status();
    let transport = response
        .headers()
        .get("x-wsfirst-reason")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, transport, body)
}

fn gateway(c: &mut Criterion) {
    let runtime: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let setup = runtime.block_on(set_up());
    let expected = Answer::text(TEXT).sse();
    let cases = [
        ("direct_http", setup.upstream.http_url(), "-"),
        (
            "gateway_websocket",
            format!("http://{}/ws/v1/responses", setup.gateway),
            "websocket",
        ),
        (
            "gateway_http",
            format!("http://{}/http/v1/responses", setup.gateway),
            "mode_http",
        ),
        (
            "gateway_pinned",
            format!("http://{}/pinned/v1/responses", setup.gateway),
            "pinned",
        ),
        (
            "gateway_pinned_no_nodelay",
            format!("http://{}/pinned/v1/responses", setup.plain),
            "pinned",
        ),
    ];
    let mut group = c.benchmark_group("gateway");
    for (name, url, reason) in cases {
        let (status, served, body) = runtime.block_on(exchange(&setup.client, &url));
        assert_eq!(
            (status, served.as_str()),
            (StatusCode::OK, reason),
            "{name}"
        );
        assert_eq!(body, expected, "{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(exchange(&setup.client, &url).await);
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    runtime.block_on(async {
        setup.configured.wsfirst.shutdown().await;
        setup.upstream.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = gateway
}
criterion_main!(benches);
