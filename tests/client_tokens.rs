//! A route whose upstream credential the gateway holds asks clients for a token of their own
//! (`RouteOptions::client_tokens`): on `POST`s and before client WebSocket upgrades, raw over
//! 127.0.0.1. Without a token or with a wrong one, `401` and nothing reaches the upstream; with
//! the right one the upstream gets the held key, never the client's token. An open route asks
//! for nothing.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::time::Duration;

use axum::{Router, routing::post_service};
use http::{HeaderName, HeaderValue, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_tungstenite::{connect_async, tungstenite::client::IntoClientRequest};
use wsfirst::{
    RouteOptions,
    client_ws::ClientWsConfig,
    core::{Route, Transport, TransportMode, headers::HeaderPolicy},
    guard::ClientTokens,
    serve::{ServerConfig, serve},
};
use wsfirst_websocket::testing::TestUpstream;

use client_ws_support::{Client, create, response, send};

const TOKEN: &str = "client-token-0123456789";
const HELD: &str = "sk-held-by-the-gateway";

/// A gateway whose route sets `api-key` itself (the held key), in `mode`, with `tokens` (none:
/// open); its address.
async fn gateway(
    upstream: &TestUpstream,
    mode: TransportMode,
    tokens: Option<ClientTokens>,
) -> (std::net::SocketAddr, JoinHandle<()>) {
    let wsfirst = support::wsfirst();
    let headers = HeaderPolicy::responses()
        .to_builder()
        .static_header(
            HeaderName::from_static("api-key"),
            HeaderValue::from_static(HELD),
        )
        .build()
        .unwrap();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(mode)
        .headers(headers)
        .build()
        .unwrap();
    let mut options = RouteOptions::new();
    if let Some(tokens) = tokens {
        options = options.client_tokens(tokens);
    }
    let service = wsfirst.route_with(route, options);
    let clients = wsfirst.client_websocket(&service, ClientWsConfig::default());
    let app = Router::new().route("/v1/responses", post_service(service).get_service(clients));
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

fn tokens() -> Option<ClientTokens> {
    Some(ClientTokens::new(["another-client-token-000", TOKEN]).unwrap())
}

/// A raw JSON `POST` with this `Authorization` line (none: no header); the whole answer.
async fn post(addr: std::net::SocketAddr, authorization: Option<&str>) -> String {
    let body = r#"{"model":"m","input":"hi"}"#;
    let authorization = authorization
        .map(|value| format!("authorization: {value}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{authorization}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_refused(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("www-authenticate: Bearer"), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_api_key\""), "{answer}");
    assert!(
        answer.contains("\"type\":\"invalid_request_error\""),
        "{answer}"
    );
}

/// What the upstream saw: the held key, never the client's token (nor any `Authorization`).
fn assert_upstream_saw_only_the_held_key(upstream: &TestUpstream, transport: Transport) {
    let captured = upstream.captured();
    assert!(!captured.is_empty());
    for request in captured {
        assert_eq!(request.transport, transport);
        assert_eq!(request.headers["api-key"], HELD, "{:?}", request.headers);
        assert!(
            request.headers.get("authorization").is_none(),
            "{:?}",
            request.headers
        );
        let shown = format!("{:?}{:?}", request.headers, request.body);
        assert!(
            !shown.contains(TOKEN),
            "the client token went upstream: {shown}"
        );
    }
}

#[tokio::test]
async fn a_post_needs_one_of_the_tokens_and_the_upstream_never_sees_it() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, TransportMode::Http, tokens()).await;
    assert_refused(&post(addr, None).await);
    assert_refused(&post(addr, Some("Bearer client-token-0123456780")).await);
    assert_refused(&post(addr, Some(&format!("Basic {TOKEN}"))).await);
    assert_refused(&post(addr, Some(HELD)).await);
    assert_eq!(upstream.http_requests(), 0, "nothing reached the upstream");

    let answer = post(addr, Some(&format!("Bearer {TOKEN}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(upstream.http_requests(), 1);
    assert_upstream_saw_only_the_held_key(&upstream, Transport::Http);
    server.abort();
}

#[tokio::test]
async fn over_the_websocket_transport_too_the_upstream_gets_the_held_key() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, TransportMode::WebSocket, tokens()).await;
    assert_refused(&post(addr, Some("Bearer wrong-token-0123456789")).await);
    let answer = post(addr, Some(&format!("bearer {TOKEN}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(upstream.ws_requests(), 1);
    assert_upstream_saw_only_the_held_key(&upstream, Transport::WebSocket);
    server.abort();
}

/// Opens a client WebSocket with this `Authorization` (none: no header); the upgrade's status,
/// `WWW-Authenticate` and body, and the connection when it was upgraded.
async fn upgrade(
    addr: std::net::SocketAddr,
    authorization: Option<&str>,
) -> (StatusCode, String, Option<Client>) {
    let mut request = format!("ws://{addr}/v1/responses")
        .into_client_request()
        .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    let connected = tokio::time::timeout(Duration::from_secs(20), connect_async(request))
        .await
        .expect("the upgrade is answered");
    match connected {
        Ok((client, response)) => (response.status(), String::new(), Some(client)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default();
            (response.status(), format!("{challenge} {body}"), None)
        }
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn a_client_websocket_needs_one_of_the_tokens_before_the_upgrade() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, TransportMode::WebSocket, tokens()).await;
    for authorization in [None, Some("Bearer wrong-token-0123456789")] {
        let (status, answer, _) = upgrade(addr, authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert!(answer.starts_with("Bearer "), "{answer}");
        assert!(answer.contains("invalid_api_key"), "{answer}");
    }
    let (status, _, client) = upgrade(addr, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let mut client = client.unwrap();
    send(&mut client, create("hello", "")).await;
    let events = response(&mut client).await;
    assert!(
        events.last().unwrap().contains("response.completed"),
        "{events:?}"
    );
    assert_eq!(upstream.ws_requests(), 1);
    assert_upstream_saw_only_the_held_key(&upstream, Transport::WebSocket);
    server.abort();
}

#[tokio::test]
async fn an_open_route_asks_for_no_token() {
    let upstream = TestUpstream::start().await;
    let (addr, server) = gateway(&upstream, TransportMode::Http, None).await;
    let answer = post(addr, None).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, _, _) = upgrade(addr, None).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(upstream.captured()[0].headers["api-key"], HELD);
    server.abort();
}
