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

/// The client half of an HTTP/2 connection's start: the preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn short_header_timeout(max_connections: usize) -> ServerConfig {
    ServerConfig::builder()
        .header_read_timeout(Duration::from_secs(2))
        .max_connections(max_connections)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let (addr, server) = start(echo(), short_header_timeout(8)).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Protocol detection waits for the first bytes: it must not wait forever.
    let answer = read_to_close(&mut silent, Duration::from_secs(600)).await;
    assert_eq!(
        answer.as_deref(),
        Some(""),
        "the silent connection was held open"
    );
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_that_sends_only_its_preface_is_closed() {
    // Pings too rare to matter: the header timeout alone closes it.
    let config = ServerConfig::builder()
        .header_read_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (addr, server) = start(echo(), config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(H2_PREFACE).await.unwrap();
    let answer = read_to_close(&mut client, Duration::from_secs(600)).await;
    assert!(
        answer.is_some(),
        "the http/2 connection without streams was held open"
    );
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn max_connections_silent_connections_do_not_stop_the_server() {
    // The probe of the review: every slot taken by a connection that sends nothing.
    let (addr, server) = start(echo(), short_header_timeout(4)).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
        tokio::task::yield_now().await;
    }
    let mut h2 = TcpStream::connect(addr).await.unwrap();
    h2.write_all(H2_PREFACE).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut client, Duration::from_secs(600))
        .await
        .expect("no answer while silent connections held every slot");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(silent);
    server.abort();
}

/// Reads HTTP/2 frames until the server's first SETTINGS frame; its parameters.
async fn server_settings(stream: &mut TcpStream) -> Vec<(u16, u32)> {
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.unwrap();
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.unwrap();
        if head[3] == 0x4 && head[4] & 0x1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|entry| {
                    (
                        u16::from_be_bytes([entry[0], entry[1]]),
                        u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]),
                    )
                })
                .collect();
        }
    }
}

#[tokio::test]
async fn http2_connections_are_capped_in_streams() {
    let config = ServerConfig::builder()
        .max_concurrent_streams(7)
        .build()
        .unwrap();
    assert_eq!(ServerConfig::default().max_concurrent_streams(), 100);
    let (addr, server) = start(echo(), config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(H2_PREFACE).await.unwrap();
    let settings = tokio::time::timeout(Duration::from_secs(30), server_settings(&mut client))
        .await
        .expect("no settings frame");
    // SETTINGS_MAX_CONCURRENT_STREAMS
    assert!(settings.contains(&(0x3, 7)), "{settings:?}");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let config = ServerConfig::builder()
        .idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (addr, server) = start(echo(), config).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::post("http://x/echo")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // The client keeps the connection (and answers pings); the server closes it once idle.
    let ended = tokio::time::timeout(Duration::from_secs(3600), connection).await;
    assert!(ended.is_ok(), "the idle http/2 connection was held open");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn an_http2_peer_that_stops_answering_pings_is_closed_mid_request() {
    let router = Router::new().route("/hang", post(std::future::pending::<&'static str>));
    let config = ServerConfig::builder()
        .http2_keep_alive_interval(Duration::from_secs(20))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (addr, server) = start(router, config).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(H2_PREFACE).await.unwrap();
    // SETTINGS ACK, then a POST /hang whose body never comes (HPACK: :method POST, :scheme
    // http, :path "/hang" and :authority "x" as literals of indexed names).
    let block = b"\x83\x86\x04\x05/hang\x01\x01x";
    let mut frames = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00".to_vec();
    frames.extend_from_slice(&[0, 0, block.len() as u8, 0x1, 0x4, 0, 0, 0, 1]);
    frames.extend_from_slice(block);
    client.write_all(&frames).await.unwrap();
    // The request runs forever and the client answers no ping: only keep-alive can end it.
    let answer = read_to_close(&mut client, Duration::from_secs(3600)).await;
    assert!(answer.is_some(), "the silent http/2 peer was held open");
    server.abort();
}
