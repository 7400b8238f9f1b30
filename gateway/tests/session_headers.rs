//! Headers that route a session, both ways, through a configured gateway against the test kit
//! on 127.0.0.1: a client's session headers (Codex's `session-id`, `x-codex-turn-state`...)
//! reach an HTTP upstream and never a pooled WebSocket's handshake; the routing headers an
//! upstream answers with (`x-codex-turn-state`, `openai-model`...) reach the client over HTTP
//! (streaming and JSON) and from a WebSocket's handshake answer, on every response the
//! connection serves; a header outside the policy is dropped either way.

#[path = "codex/gateway.rs"]
mod gateway;

use axum::{Router, body::Body};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower::ServiceExt;
use wsfirst::websocket::testing::{CapturedRequest, TestUpstream, Transport};
use wsfirst_gateway::{Configured, config::Config};

const STREAM: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;
const JSON: &str = r#"{"model":"gpt-test","input":"hi"}"#;

/// The session headers Codex 0.171 sends on every request (see `RESPONSES_SESSION_HEADERS`).
const SESSION: [(&str, &str); 9] = [
    ("session-id", "019a-session"),
    ("thread-id", "019a-session"),
    ("x-client-request-id", "019a-session"),
    ("originator", "codex_exec"),
    ("x-codex-turn-state", "ts-from-an-earlier-answer"),
    ("x-codex-turn-metadata", r#"{"turn_id":"t-1"}"#),
    ("x-codex-window-id", "019a-session:0"),
    ("x-codex-beta-features", "remote_compaction_v2"),
    ("x-codex-installation-id", "inst-1"),
];

/// Headers no policy forwards.
const NEVER: [&str; 3] = ["x-custom", "cookie", "x-codex-unknown"];

/// A gateway with the override header and one `auto` route to `upstream`.
fn configured(upstream: &TestUpstream) -> Router {
    let config = Config::from_toml_str(&format!(
        r#"
        [eligibility]
        websocket_pairs = [["local", "responses"]]
        override_header = "x-wsfirst-transport"

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .unwrap();
    Configured::from_config(&config).unwrap().router()
}

/// A Codex-like request over `transport_override` (`http` forces HTTP).
fn request(transport_override: &'static str, body: &'static str) -> Request<Body> {
    let mut builder = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-client")
        .header("content-type", "application/json")
        .header("x-wsfirst-transport", transport_override);
    for (name, value) in SESSION {
        builder = builder.header(name, value);
    }
    for name in NEVER {
        builder = builder.header(name, "1");
    }
    builder.body(Body::from(body)).unwrap()
}

/// Sends `request` and reads the whole answer.
async fn send(app: &Router, request: Request<Body>) -> Response<()> {
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (parts, body) = response.into_parts();
    body.collect().await.unwrap();
    Response::from_parts(parts, ())
}

fn last_on(upstream: &TestUpstream, transport: Transport) -> CapturedRequest {
    upstream
        .captured()
        .into_iter()
        .rev()
        .find(|captured| captured.transport == transport)
        .unwrap()
}

#[tokio::test]
async fn session_headers_reach_an_http_upstream_and_never_a_pooled_handshake() {
    let upstream = TestUpstream::start().await;
    let app = configured(&upstream);

    let response = send(&app, request("http", STREAM)).await;
    assert_eq!(response.headers()["x-wsfirst-transport"], "http");
    let http = last_on(&upstream, Transport::Http);
    for (name, value) in SESSION {
        assert_eq!(http.header(name), Some(value), "{name} over http");
    }

    let response = send(&app, request("websocket", STREAM)).await;
    assert_eq!(response.headers()["x-wsfirst-transport"], "websocket");
    let ws = last_on(&upstream, Transport::WebSocket);
    assert_eq!(ws.header("authorization"), Some("Bearer sk-client"));
    for (name, _) in SESSION {
        assert_eq!(ws.header(name), None, "{name} on the pooled handshake");
    }

    // Another session shares the pooled connection: its headers would have split the pool.
    let other = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-client")
        .header("content-type", "application/json")
        .header("session-id", "another-session")
        .header("x-codex-turn-metadata", r#"{"turn_id":"t-2"}"#)
        .body(Body::from(STREAM))
        .unwrap();
    send(&app, other).await;
    assert_eq!(upstream.handshakes(), 1);

    for captured in [&http, &ws] {
        for never in NEVER {
            assert_eq!(
                captured.header(never),
                None,
                "{never} over {:?}",
                captured.transport
            );
        }
    }
    upstream.shutdown().await;
}

#[tokio::test]
async fn the_upstream_s_turn_state_reaches_the_client_over_both_transports() {
    let upstream = TestUpstream::start().await;
    let mut answer = HeaderMap::new();
    answer.insert("x-codex-turn-state", HeaderValue::from_static("ts-kit-1"));
    answer.insert("openai-model", HeaderValue::from_static("gpt-kit"));
    answer.insert("x-models-etag", HeaderValue::from_static("etag-1"));
    answer.insert("x-internal-routing", HeaderValue::from_static("pod-7"));
    upstream.set_response_headers(answer);
    let app = configured(&upstream);

    for (transport, body) in [
        ("http", STREAM),
        ("http", JSON),
        ("websocket", STREAM),
        ("websocket", JSON),
        // Served on the pooled connection again: its handshake answer still applies.
        ("websocket", STREAM),
    ] {
        let response = send(&app, request(transport, body)).await;
        let headers = response.headers();
        assert_eq!(headers["x-wsfirst-transport"], transport, "{body}");
        assert_eq!(
            headers["x-codex-turn-state"], "ts-kit-1",
            "{transport} {body}"
        );
        assert_eq!(headers["openai-model"], "gpt-kit", "{transport} {body}");
        assert_eq!(headers["x-models-etag"], "etag-1", "{transport} {body}");
        assert_eq!(
            headers.get_all("x-codex-turn-state").iter().count(),
            1,
            "{transport} {body}"
        );
        if transport == "websocket" {
            // Of a handshake's answer, only the policy's answer headers are passed on.
            assert!(headers.get("x-internal-routing").is_none(), "{body}");
        }
    }
    assert_eq!(upstream.handshakes(), 1);
    upstream.shutdown().await;
}

/// A client WebSocket that brings a routing token back (Codex reconnecting within a turn) is
/// logged at INFO: the token cannot pick a pooled upstream connection. One without is not.
#[tokio::test]
async fn an_upgrade_that_brings_back_a_turn_state_is_logged_at_info() {
    let upstream = TestUpstream::start().await;
    let gateway = gateway::Gateway::start(&upstream, "auto");
    for turn_state in [None, Some("ts-from-an-earlier-answer")] {
        let mut tcp = TcpStream::connect(&gateway.addr).await.unwrap();
        let mut upgrade = String::from(
            "GET /v1/responses HTTP/1.1\r\nhost: gateway\r\nconnection: upgrade\r\n\
             upgrade: websocket\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        if let Some(token) = turn_state {
            upgrade.push_str(&format!("x-codex-turn-state: {token}\r\n"));
        }
        upgrade.push_str("\r\n");
        tcp.write_all(upgrade.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0_u8; 1];
            assert_eq!(
                tcp.read(&mut byte).await.unwrap(),
                1,
                "{}",
                gateway.output()
            );
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }
    let log = gateway.finish();
    let logged: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("brings back x-codex-turn-state"))
        .collect();
    assert_eq!(logged.len(), 1, "{log}");
    assert!(logged[0].contains("INFO"), "{log}");
    upstream.shutdown().await;
}
