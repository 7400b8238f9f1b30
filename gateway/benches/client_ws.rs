//! Per-response latency of a client in WebSocket mode: one `response.create` message on an open
//! client connection, read to its `response.completed`, through the gateway against the
//! upstream's WebSocket directly.
//!
//! Cases (a tokio-tungstenite client keeps one connection open per case):
//!
//! - `direct_websocket`: the client straight to the test kit's upstream WebSocket, the floor;
//! - `gateway_websocket`: through the gateway's client WebSocket (`Configured` router, served by
//!   `wsfirst::serve::serve` on 127.0.0.1) on a healthy `auto` route (pooled upstream WebSocket);
//! - `gateway_http`: the same on a route in mode `http` (the upstream's SSE turned into
//!   messages).
//!
//! Client, gateway and upstream share one 2-worker tokio runtime, so the figures include every
//! party's work. Nothing is asserted on time; each case is checked once (the messages equal the
//! upstream's own) before it is timed.
//!
//! `flock /tmp/bench.lock cargo bench -p wsfirst-gateway --bench client_ws`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, runtime::Runtime};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};
use wsfirst::{
    serve::{ServerConfig, serve},
    websocket::testing::{Answer, TestUpstream},
};
use wsfirst_gateway::{Configured, config::Config};

const CREATE: &str = r#"{"type":"response.create","model":"gpt-kit","input":"hi"}"#;
const TEXT: &str = "hello world, this answer streams over a few more events than the shortest";

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

async fn set_up() -> (TestUpstream, Configured, std::net::SocketAddr) {
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
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .expect("a valid configuration");
    let configured = Configured::from_config(&config).expect("the stack builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let gateway = listener.local_addr().expect("an address");
    tokio::spawn(serve(
        listener,
        configured.router(),
        ServerConfig::default(),
        std::future::pending(),
    ));
    (upstream, configured, gateway)
}

async fn connect(url: &str) -> Client {
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        "Bearer sk-bench".parse().expect("a header"),
    );
    let (client, _) = connect_async(request).await.expect("connected");
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream.set_nodelay(true).expect("nodelay");
    }
    client
}

/// One response on an open connection, read to its terminal event: its messages.
async fn response(client: &mut Client) -> Vec<String> {
    client.send(Message::text(CREATE)).await.expect("sent");
    let mut messages = Vec::new();
    while let Some(message) = client.next().await {
        let Message::Text(text) = message.expect("a message") else {
            continue;
        };
        let done = text.as_str().contains(r#""type":"response.completed""#)
            || text.as_str().contains(r#""type":"error""#);
        messages.push(text.as_str().to_owned());
        if done {
            break;
        }
    }
    messages
}

fn client_ws(c: &mut Criterion) {
    let runtime: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (upstream, configured, gateway) = runtime.block_on(set_up());
    let expected = Answer::text(TEXT).messages().to_vec();
    let cases = [
        ("direct_websocket", upstream.ws_url()),
        (
            "gateway_websocket",
            format!("ws://{gateway}/ws/v1/responses"),
        ),
        ("gateway_http", format!("ws://{gateway}/http/v1/responses")),
    ];
    let mut group = c.benchmark_group("client_ws");
    for (name, url) in cases {
        let mut client = runtime.block_on(connect(&url));
        assert_eq!(runtime.block_on(response(&mut client)), expected, "{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(response(&mut client).await);
                    }
                    start.elapsed()
                })
            });
        });
        runtime.block_on(async {
            let _ = client.close(None).await;
        });
    }
    group.finish();
    runtime.block_on(async {
        configured.wsfirst.shutdown().await;
        upstream.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = client_ws
}
criterion_main!(benches);
