//! `wsfirst::serve::serve` on 127.0.0.1: a client that trickles bytes, sends huge headers or
//! opens too many connections cannot hold the gateway. Raw sockets, so the client controls every
//! byte; paused time, so the timeouts elapse without waiting.

use std::time::Duration;

use axum::{Router, routing::post};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use wsfirst::{
    Wsfirst,
    core::{Route, TransportMode},
    serve::{ServerConfig, serve},
};
use wsfirst_websocket::testing::TestUpstream;

/// Serves `router` with `config`; returns its address and the server task.
async fn start(router: Router, config: ServerConfig) -> (std::net::SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        serve(listener, router, config, std::future::pending())
            .await
            .unwrap();
    });
    (addr, server)
}

fn echo() -> Router {
    Router::new().route("/echo", post(|body: String| async move { body }))
}

/// Reads until the peer closes or `limit` of (paused) time passes; `None` on the limit.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut text = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut text)).await {
        Ok(_) => Some(String::from_utf8_lossy(&text).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let config = ServerConfig::builder()
        .header_read_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (addr, server) = start(echo(), config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // The rest of the headers never comes: the server closes the connection itself.
    let answer = read_to_close(&mut client, Duration::from_secs(600)).await;
    assert!(answer.is_some(), "the connection was held open");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_trickles_its_body_gets_a_408() {
    let upstream = TestUpstream::start().await;
    let wsfirst = Wsfirst::builder().build();
    let route = Route::builder("local", "responses")
        .http_url(upstream.http_url())
        .mode(TransportMode::Http)
        .build()
        .unwrap();
    let router = Router::new().route(
        "/v1/responses",
        axum::routing::post_service(wsfirst.route(route)),
    );
    let config = ServerConfig::builder()
        .body_read_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (addr, server) = start(router, config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"model\":",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut client, Duration::from_secs(600))
        .await
        .expect("the connection was held open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_body_timeout"), "{answer}");
    assert_eq!(upstream.http_requests(), 0, "nothing reached the upstream");
    server.abort();
}

#[tokio::test]
async fn huge_request_headers_are_refused() {
    let config = ServerConfig::builder()
        .max_header_bytes(8192)
        .build()
        .unwrap();
    let (addr, server) = start(echo(), config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let huge = "a".repeat(20 * 1024);
    let request = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\nx-huge: {huge}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
    );
    // The server may stop reading before the whole request is written.
    let _ = client.write_all(request.as_bytes()).await;
    let answer = read_to_close(&mut client, Duration::from_secs(30))
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let config = ServerConfig::builder()
        .max_connections(1)
        .header_read_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (addr, server) = start(echo(), config).await;
    // The first connection takes the only slot and sends nothing.
    let first = TcpStream::connect(addr).await.unwrap();
    tokio::task::yield_now().await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
        )
        .await
        .unwrap();
    assert_eq!(
        read_to_close(&mut second, Duration::from_secs(60)).await,
        None,
        "the second connection was served while the first held the only slot"
    );
    drop(first);
    let answer = read_to_close(&mut second, Duration::from_secs(60))
        .await
        .expect("served once the slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hi"), "{answer}");
    server.abort();
}
