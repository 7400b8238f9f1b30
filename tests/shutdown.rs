//! Clean shutdown of the served router: the server stops accepting, the stream in flight
//! finishes within the grace period (or is closed past it), every pooled WebSocket gets a close
//! frame, and no connection, pooled WebSocket or task is left behind (counted).

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::post_service};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::{
    alive_tasks, local_table,
    recorder::{Ended, Recorder},
    until,
};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use wsfirst::{
    Wsfirst,
    core::Route,
    serve::{ServerConfig, serve},
    websocket::{
        Pool,
        testing::{Answer, TestUpstream},
    },
};

/// A bound on every wait, so that a broken shutdown fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// A gateway served on loopback in this process: the stack, the server task and its stop.
struct Served {
    wsfirst: Wsfirst,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn start(recorder: &Recorder, kit: &TestUpstream, grace: Duration) -> Served {
    let wsfirst = Wsfirst::builder()
        .eligibility(local_table())
        // The reaper task (which closes expired idle connections) ends at its next tick after
        // the pool is closed: half the idle timeout.
        .pool(
            Pool::builder()
                .idle_timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
        )
        .build();
    let route = Route::builder("local", "responses")
        .ws_url(recorder.ws_url())
        .http_url(kit.http_url())
        .build()
        .unwrap();
    let router = Router::new().route("/v1/responses", post_service(wsfirst.route(route)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServerConfig::builder()
        .shutdown_grace(grace)
        .build()
        .unwrap();
    let server = tokio::spawn(serve(listener, router, config, async move {
        let _ = stopped.await;
    }));
    Served {
        wsfirst,
        addr,
        stop: Some(stop),
        server,
    }
}

/// Sends a streaming request whose input is `input` with `credential`; the response head.
async fn send(addr: SocketAddr, input: &str, credential: &str) -> http::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let body = format!(r#"{{"model":"gpt-test","input":"{input}","stream":true}}"#);
    let request = Request::post("/v1/responses")
        .header("host", addr.to_string())
        .header("authorization", credential)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("the gateway answers")
        .unwrap()
}

/// Reads `body` until its first whole SSE event.
async fn first_event(body: &mut Incoming) -> Vec<u8> {
    let mut received = Vec::new();
    while !received.windows(2).any(|window| window == b"\n\n") {
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("an event arrives")
            .expect("the stream has an event")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    received
}

/// Waits until new connections are refused (or reset while the listener closes).
async fn refused(addr: SocketAddr) {
    let wait = async {
        loop {
            match TcpStream::connect(addr).await {
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return;
                }
                Err(error) => panic!("connecting after shutdown: {error:?}"),
                Ok(stream) => drop(stream),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("the server stops accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_stream_closes_every_pooled_websocket_and_leaves_nothing() {
    let answer = Answer::text("hello world");
    let tasks_before = alive_tasks();
    let kit = TestUpstream::start().await;
    let recorder = Recorder::start(answer.clone(), Duration::from_millis(30)).await;
    let mut served = start(&recorder, &kit, WAIT).await;

    // One connection left idle in the pool, one serving a slow stream.
    let quick = send(served.addr, "quick", "Bearer sk-a").await;
    let quick = quick.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(quick, answer.sse());
    let response = send(served.addr, "slow", "Bearer sk-b").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-wsfirst-transport"], "websocket");
    let mut body = response.into_body();
    let mut received = first_event(&mut body).await;
    assert!(
        received.len() < answer.sse().len(),
        "the stream is in flight"
    );
    let pool = served.wsfirst.pool().clone();
    assert_eq!((pool.connections(), pool.idle_connections()), (2, 1));

    served.stop.take().unwrap().send(()).unwrap();
    refused(served.addr).await;
    // The stream in flight finishes, whole.
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("the stream ends")
        .expect("the stream ends without error")
        .to_bytes();
    received.extend_from_slice(&rest);
    assert_eq!(String::from_utf8_lossy(&received), answer.sse());
    tokio::time::timeout(WAIT, &mut served.server)
        .await
        .expect("serve returns once the stream ended")
        .unwrap()
        .unwrap();

    // Every pooled WebSocket is closed with a close frame.
    assert_eq!(pool.shutdown(WAIT).await, 0);
    assert_eq!(pool.connections(), 0);
    until("the upstream saw its connections close", || {
        recorder.open() == 0
    })
    .await;
    let ended = recorder.ended();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(
        ended.iter().all(|how| matches!(how, Ended::Close(_))),
        "{ended:?}"
    );
    assert_eq!(kit.http_requests(), 0);

    drop(pool);
    nothing_left(served, recorder, kit, tasks_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_grace_period_is_closed_and_its_websocket_too() {
    let tasks_before = alive_tasks();
    let kit = TestUpstream::start().await;
    let recorder = Recorder::start(Answer::text("hello world"), Duration::from_millis(30)).await;
    let mut served = start(&recorder, &kit, Duration::from_millis(200)).await;

    // A stream whose upstream goes silent after three events: it never ends on its own.
    let response = send(served.addr, "stall", "Bearer sk-a").await;
    let mut body = response.into_body();
    first_event(&mut body).await;
    let pool = served.wsfirst.pool().clone();
    assert_eq!(pool.connections(), 1);

    served.stop.take().unwrap().send(()).unwrap();
    // Past the grace period the server closes the connection and returns.
    tokio::time::timeout(WAIT, &mut served.server)
        .await
        .expect("serve returns after the grace period")
        .unwrap()
        .unwrap();
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("the cut stream ends");
    assert!(
        rest.is_err(),
        "the client sees its stream cut, not a clean end"
    );

    // The cut answer's WebSocket is closed with a close frame, never pooled again.
    assert_eq!(pool.shutdown(WAIT).await, 0);
    assert_eq!((pool.connections(), pool.idle_connections()), (0, 0));
    until("the upstream saw its connection close", || {
        recorder.open() == 0
    })
    .await;
    assert_eq!(recorder.ended(), [Ended::Close(None)]);

    drop(pool);
    nothing_left(served, recorder, kit, tasks_before).await;
}

/// Nothing left behind: with the stack and the upstreams gone, the runtime is back to its tasks
/// of before.
async fn nothing_left(served: Served, recorder: Recorder, kit: TestUpstream, before: usize) {
    drop(served);
    drop(recorder);
    kit.shutdown().await;
    until("the tasks of the stack end", || alive_tasks() <= before).await;
}
