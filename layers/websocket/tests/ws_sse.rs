//! The answer produced from WebSocket events is byte-for-byte the answer of the HTTP path for the
//! same scripted upstream answer; the request goes out as `response.create` with the allowed
//! headers only.
#![cfg(feature = "testing")]

mod ws_support;

use bytes::Bytes;
use http::{Request, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use ws_support::*;
use wsfirst_core::{Served, Transport};
use wsfirst_websocket::{
    Pool, RawCodec, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
}

/// The kit's route, whose header policy sets a beta flag.
fn beta_route(upstream: &TestUpstream) -> wsfirst_core::Route {
    let route = route(upstream);
    let policy = route
        .headers()
        .to_builder()
        .static_header(
            http::HeaderName::from_static("openai-beta"),
            http::HeaderValue::from_static("responses-websocket=v1"),
        )
        .build()
        .unwrap();
    route.with_headers(policy)
}

/// The same request over the upstream's HTTP path: (content type, body).
async fn over_http(upstream: &TestUpstream, body: String) -> (String, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(upstream.http_url())
        .header("authorization", "Bearer sk-test")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success());
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (
        content_type,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// The same request through the WebSocket layer: (content type, body).
async fn over_websocket(upstream: &TestUpstream, body: String) -> (String, Bytes) {
    let (mut service, http_calls) = service(config(), &Pool::new());
    let response = call(&mut service, request_with(&route(upstream), body, &[]))
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<Served>().map(Served::transport),
        Some(Transport::WebSocket)
    );
    assert!(response.body().is_websocket());
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    (content_type, Bytes::from(bytes))
}

#[tokio::test]
async fn streaming_answer_is_the_http_paths_sse_byte_for_byte() {
    for answer in [
        Answer::text("hello world"),
        Answer::text(""),
        Answer::text("unicode: héllo wörld, \"quoted\", and a\nnewline"),
    ] {
        let upstream = TestUpstream::start().await;
        upstream.set_answer(answer.clone());
        let (ws_type, ws_body) = over_websocket(&upstream, body(true)).await;
        let (http_type, http_body) = over_http(&upstream, body(true)).await;
        assert_eq!(ws_body, http_body);
        assert_eq!(ws_body, answer.sse());
        assert_eq!(ws_type, "text/event-stream");
        assert!(http_type.starts_with(&ws_type), "{http_type}");
        assert_eq!((upstream.ws_requests(), upstream.http_requests()), (1, 1));
    }
}

#[tokio::test]
async fn large_streaming_answer_is_identical_too() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::large_text(1 << 20));
    let (_, ws_body) = over_websocket(&upstream, body(true)).await;
    let (_, http_body) = over_http(&upstream, body(true)).await;
    assert_eq!(ws_body.len(), http_body.len());
    assert!(ws_body == http_body);
}

#[tokio::test]
async fn non_streaming_answer_is_the_http_paths_json_byte_for_byte() {
    let upstream = TestUpstream::start().await;
    let answer = Answer::text("hello world");
    upstream.set_answer(answer.clone());
    let (ws_type, ws_body) = over_websocket(&upstream, body(false)).await;
    let (http_type, http_body) = over_http(&upstream, body(false)).await;
    assert_eq!(ws_body, http_body);
    assert_eq!(ws_body, answer.final_json().unwrap());
    assert_eq!(ws_type, "application/json");
    assert!(http_type.starts_with(&ws_type), "{http_type}");
}

#[tokio::test]
async fn request_becomes_response_create_with_allowed_headers_only() {
    let upstream = TestUpstream::start().await;
    let (mut service, _) = service(config(), &Pool::new());
    let body = r#"{"model":"gpt-kit","stream":true,"background":false,"input":[{"role":"user","content":"hi"}],"store":false}"#;
    let request = request_with(
        &beta_route(&upstream),
        body.to_owned(),
        &[
            ("cookie", "session=secret"),
            ("openai-organization", "org-1"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    );
    let response = call(&mut service, request).await.unwrap();
    read_body(response.into_body()).await;
    let captured = upstream.captured();
    assert_eq!(captured.len(), 1);
    assert_eq!(
        captured[0].body,
        r#"{"type":"response.create","model":"gpt-kit","input":[{"role":"user","content":"hi"}],"store":false}"#
    );
    assert_eq!(captured[0].uri.path(), "/v1/responses");
    assert_eq!(captured[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(captured[0].header("openai-organization"), Some("org-1"));
    assert_eq!(
        captured[0].header("openai-beta"),
        Some("responses-websocket=v1")
    );
    assert_eq!(captured[0].header("cookie"), None);
    assert_eq!(captured[0].header("x-forwarded-for"), None);
}

#[tokio::test]
async fn raw_codec_streams_each_message_and_ends_on_close() {
    let upstream = TestUpstream::start().await;
    let answer = Answer::raw_events(["one", "two", "three"]);
    upstream.set_answer(answer);
    upstream.set_default_ws_script(WsScript::Raw);
    let config = WebSocketConfig::builder()
        .codec(RawCodec::new())
        .build()
        .unwrap();
    let (mut service, _) = service(config, &Pool::new());
    let request = request_with(&route(&upstream), "ping".into(), &[]);
    let response = call(&mut service, request).await.unwrap();
    assert_eq!(response.headers()[CONTENT_TYPE], "application/octet-stream");
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, b"onetwothree");
    assert_eq!(upstream.captured()[0].body, "ping");
}
