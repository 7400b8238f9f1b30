//! A web page the operator opens must not be able to spend the key the gateway holds: a
//! browser-like client (it sends `Origin`) cannot open a client WebSocket from another site, a
//! CORS-simple `POST` (`text/plain`) is refused, and with a list of host names a rebound DNS
//! name is refused. SDK-like clients (no `Origin`, JSON) pass.

use std::time::Duration;

use axum::{Router, routing::post_service};
use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_tungstenite::{connect_async, tungstenite::client::IntoClientRequest};
use wsfirst::{
    Wsfirst,
    client_ws::ClientWsConfig,
    core::{Route, TransportMode},
    guard::{AllowedHostsLayer, AllowedOrigins},
    serve::{ServerConfig, serve},
};
use wsfirst_websocket::testing::TestUpstream;

/// The gateway's route (the preset, which refuses a `POST` that is not JSON) with its client
/// WebSocket and the guards; its address.
async fn gateway(
    upstream: &TestUpstream,
    origins: AllowedOrigins,
    hosts: Option<&[&str]>,
) -> (std::net::SocketAddr, JoinHandle<()>) {
    let wsfirst = Wsfirst::builder().build();
    let route = Route::builder("local", "responses")
        .http_url(upstream.http_url())
        .mode(TransportMode::Http)
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    let clients = wsfirst
        .client_websocket(&service, ClientWsConfig::default())
        .allow_origins(origins);
    let mut app = Router::new().route("/v1/responses", post_service(service).get_service(clients));
    if let Some(hosts) = hosts {
        app = app.layer(AllowedHostsLayer::new(hosts));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        serve(
            listener,
            app,
            ServerConfig::default(),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    (addr, server)
}

/// Opens a client WebSocket with this `Origin` (none: an SDK); the upgrade's status and body.
async fn upgrade(addr: std::net::SocketAddr, origin: Option<&str>) -> (StatusCode, String) {
    let mut request = format!("ws://{addr}/v1/responses")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let connected = tokio::time::timeout(Duration::from_secs(20), connect_async(request))
        .await
        .expect("the upgrade is answered");
    match connected {
        Ok((_, response)) => (response.status(), String::new()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default();
            (response.status(), body)
        }
        Err(error) => panic!("{error}"),
    }
}

/// Sends a raw HTTP/1.1 request; the whole answer.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn post(host: &str, content_type: &str) -> String {
    let body = r#"{"model":"m","input":"hi"}"#;
    format!(
        "POST /v1/responses HTTP/1.1\r\nhost: {host}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_page_of_another_site_cannot_open_a_client_websocket() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, AllowedOrigins::default(), None).await;
    let (status, body) = upgrade(addr, Some("https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("origin_not_allowed"), "{body}");
    // `null`: a sandboxed frame or a local file.
    assert_eq!(upgrade(addr, Some("null")).await.0, StatusCode::FORBIDDEN);
    // A page on another port of the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", addr.port().wrapping_add(1));
    assert_eq!(
        upgrade(addr, Some(&other_port)).await.0,
        StatusCode::FORBIDDEN
    );
    // SDKs send no Origin; a page of the gateway's own origin is its own.
    assert_eq!(upgrade(addr, None).await.0, StatusCode::SWITCHING_PROTOCOLS);
    let own = format!("http://{addr}");
    assert_eq!(
        upgrade(addr, Some(&own)).await.0,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(upstream.http_requests(), 0);
    server.abort();
}

#[tokio::test]
async fn a_listed_browser_app_may_open_a_client_websocket() {
    let upstream = TestUpstream::start().await;
    let origins = AllowedOrigins::new(["https://chat.example.com"]);
    let (addr, server) = gateway(&upstream, origins, None).await;
    let allowed = upgrade(addr, Some("https://chat.example.com")).await;
    assert_eq!(allowed.0, StatusCode::SWITCHING_PROTOCOLS);
    let other = upgrade(addr, Some("https://chat.example.com.evil.example")).await;
    assert_eq!(other.0, StatusCode::FORBIDDEN);
    server.abort();
}

#[tokio::test]
async fn a_cors_simple_post_is_refused_before_the_upstream() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, AllowedOrigins::default(), None).await;
    let host = addr.to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
    ] {
        let answer = raw(addr, &post(&host, content_type)).await;
        assert!(
            answer.starts_with("HTTP/1.1 415"),
            "{content_type}: {answer}"
        );
        assert!(
            answer.contains("\"code\":\"unsupported_media_type\""),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
    }
    assert_eq!(upstream.http_requests(), 0, "nothing reached the upstream");
    let answer = raw(addr, &post(&host, "application/json; charset=utf-8")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(upstream.http_requests(), 1);
    server.abort();
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_when_hosts_are_listed() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(
        &upstream,
        AllowedOrigins::default(),
        Some(&["127.0.0.1", "localhost"]),
    )
    .await;
    let answer = raw(addr, &post("rebound.attacker.example", "application/json")).await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(answer.contains("host_not_allowed"), "{answer}");
    assert_eq!(upstream.http_requests(), 0);
    let answer = raw(addr, &post(&addr.to_string(), "application/json")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.abort();
}
