//! How long `wsfirst::serve::serve` keeps a connection open: the idle timer counts from the end of
//! the last response (a keep-alive connection used now and then stays open), a response that
//! streams for longer than the idle timeout is never cut, and after shutdown a stream may run as
//! long as the grace period allows, even more than a day. Paused time: the hours pass at once.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::Body,
    routing::{get, post},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use wsfirst::serve::{ServerConfig, serve};

/// A router with `/echo` (the request body back) and `/stream` (`chunks` lines, one every
/// `period`).
fn router(chunks: u32, period: Duration) -> Router {
    Router::new()
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/stream",
            get(move || async move {
                let lines = futures_util::stream::unfold(0, move |line| async move {
                    if line == chunks {
                        return None;
                    }
                    tokio::time::sleep(period).await;
                    Some((
                        Ok::<_, Infallible>(Bytes::from(format!("{line}\n"))),
                        line + 1,
                    ))
                });
                Body::from_stream(lines)
            }),
        )
}

/// The lines `/stream` sends, all of them.
fn all_lines(chunks: u32) -> String {
    (0..chunks).map(|line| format!("{line}\n")).collect()
}

/// Serves `router` with `config` until the returned sender fires (or is dropped).
async fn start(
    router: Router,
    config: ServerConfig,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, router, config, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, server)
}

/// An HTTP/1 connection to `addr`: its sender and the connection's task.
async fn connect(addr: SocketAddr) -> (http1::SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, connection)
}

fn echo(text: &'static str) -> http::Request<Full<Bytes>> {
    http::Request::post("http://x/echo")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .unwrap()
}

fn stream() -> http::Request<Full<Bytes>> {
    http::Request::get("http://x/stream")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_idle_timer_counts_from_the_end_of_the_last_response() {
    let config = ServerConfig::builder()
        .idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (addr, _stop, server) = start(router(0, Duration::ZERO), config).await;
    let (mut sender, connection) = connect(addr).await;
    // Three requests 3 s apart: 6 s after the accept, but never 5 s without one.
    for text in ["one", "two", "three"] {
        let response = sender.send_request(echo(text)).await.unwrap();
        assert_eq!(response.status(), 200);
        // The length is known: sent as `Content-Length`, not chunked.
        assert_eq!(response.headers()["content-length"], text.len().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, text.as_bytes());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Then nothing: the server closes the connection.
    let ended = tokio::time::timeout(Duration::from_secs(3600), connection).await;
    assert!(ended.is_ok(), "the idle connection was held open");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_response_streaming_longer_than_the_idle_timeout_is_not_cut() {
    // Idle 2 s (and a close grace of 2 s, the header timeout): the stream takes 10 s.
    let config = ServerConfig::builder()
        .idle_timeout(Duration::from_secs(2))
        .header_read_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (addr, _stop, server) = start(router(10, Duration::from_secs(1)), config).await;
    let (mut sender, _connection) = connect(addr).await;
    let response = sender.send_request(stream()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, all_lines(10).as_bytes());
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn after_shutdown_a_stream_may_run_for_more_than_a_day_within_its_grace() {
    let config = ServerConfig::builder()
        .shutdown_grace(Duration::from_secs(2 * 86_400))
        .build()
        .unwrap();
    // 26 lines an hour apart: 26 hours.
    let (addr, stop, server) = start(router(26, Duration::from_secs(3600)), config).await;
    let (mut sender, _connection) = connect(addr).await;
    let response = sender.send_request(stream()).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "0\n");
    stop.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        [first, rest].concat(),
        all_lines(26).as_bytes(),
        "the stream was cut within its grace period"
    );
    tokio::time::timeout(Duration::from_secs(3600), server)
        .await
        .expect("serve returned once the stream ended")
        .unwrap();
}
