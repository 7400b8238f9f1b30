//! The test kit's HTTP side, driven by a raw hyper-util client, and its agreement with the
//! WebSocket side.
#![cfg(feature = "testing")]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::{connect_async, tungstenite::Message};
use wsfirst_websocket::testing::{Answer, HttpScript, TestUpstream, Transport, WsScript};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn post(upstream: &TestUpstream, body: &Value) -> Request<Full<Bytes>> {
    Request::post(upstream.http_url())
        .header(header::AUTHORIZATION, "Bearer sk-test")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Response<impl http_body::Body<Data = Bytes, Error: std::error::Error> + use<>> {
    client.request(request).await.expect("http request")
}

async fn body_text<B>(response: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The messages a raw WebSocket client receives for one request.
async fn ws_messages(upstream: &TestUpstream, count: usize) -> Vec<String> {
    let (mut socket, _) = connect_async(upstream.ws_url()).await.unwrap();
    socket
        .send(Message::text(
            r#"{"type":"response.create","model":"gpt-kit","input":"hi"}"#,
        ))
        .await
        .unwrap();
    let mut messages = Vec::new();
    while messages.len() < count {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => messages.push(text.to_string()),
            other => panic!("expected a text message, got {other:?}"),
        }
    }
    messages
}

/// Frames WebSocket messages as SSE, reading each message's `"type"`.
fn frame_as_sse(messages: &[String]) -> String {
    messages
        .iter()
        .map(|message| {
            let value: Value = serde_json::from_str(message).unwrap();
            let kind = value["type"].as_str().unwrap();
            format!("event: {kind}\ndata: {message}\n\n")
        })
        .collect()
}

#[tokio::test]
async fn streaming_answer_is_the_websocket_messages_framed_as_sse() {
    for answer in [
        Answer::text("hello world"),
        Answer::text("naïve café ✓ \"quoted\"\nnew line"),
        Answer::large_text(1 << 20),
    ] {
        let upstream = TestUpstream::start().await;
        upstream.set_answer(answer.clone());
        let messages = ws_messages(&upstream, answer.len()).await;
        let response = send(
            &client(),
            post(&upstream, &json!({"model": "gpt-kit", "stream": true})),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let sse = body_text(response).await;
        assert_eq!(sse, frame_as_sse(&messages));
        assert_eq!(sse, answer.sse());
        assert_eq!((upstream.ws_requests(), upstream.http_requests()), (1, 1));
    }
}

#[tokio::test]
async fn non_streaming_answer_is_the_raw_final_response() {
    let upstream = TestUpstream::start().await;
    let answer = Answer::text("hello world");
    let messages = ws_messages(&upstream, answer.len()).await;
    for body in [json!({"model": "gpt-kit"}), json!({"stream": false})] {
        let response = send(&client(), post(&upstream, &body)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let text = body_text(response).await;
        // The exact bytes of the `response` field of the last WebSocket message.
        let last = messages.last().unwrap();
        assert!(last.contains(&format!("\"response\":{text}")), "{text}");
        let completed: Value = serde_json::from_str(last).unwrap();
        assert_eq!(completed["type"], "response.completed");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            completed["response"]
        );
    }
    assert_eq!(upstream.http_requests(), 2);
}

#[tokio::test]
async fn requests_are_counted_and_captured() {
    let upstream = TestUpstream::start().await;
    let client = client();
    let body = json!({"model": "gpt-kit", "input": "hello", "stream": true});
    let mut request = post(&upstream, &body);
    *request.uri_mut() = format!("http://{}/any/path?x=1", upstream.addr())
        .parse()
        .unwrap();
    body_text(send(&client, request).await).await;
    assert_eq!(upstream.http_requests(), 1);
    assert_eq!(upstream.ws_requests(), 0);
    assert_eq!(upstream.handshakes(), 0);
    let captured = upstream.captured();
    assert_eq!(captured.len(), 1);
    let request = &captured[0];
    assert_eq!(request.transport, Transport::Http);
    assert_eq!(request.connection, None);
    assert_eq!(request.uri, "/any/path?x=1");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(request.json(), Some(body));
}

#[tokio::test]
async fn scripted_status_fails_requests() {
    let upstream = TestUpstream::start().await;
    upstream.push_http_script(HttpScript::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: "slow down".into(),
    });
    upstream.set_http_status(StatusCode::BAD_GATEWAY);
    let client = client();
    let body = json!({"stream": true});
    let first = send(&client, post(&upstream, &body)).await;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_text(first).await, "slow down");
    for _ in 0..2 {
        let response = send(&client, post(&upstream, &body)).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let error: Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(error["error"]["message"], "scripted status 502");
    }
    assert_eq!(upstream.http_requests(), 3);
    // The WebSocket side is scripted separately and still answers.
    upstream.set_default_ws_script(WsScript::Accept);
    assert_eq!(ws_messages(&upstream, 1).await.len(), 1);
}

#[tokio::test]
async fn abort_after_events_ends_the_body_with_an_error() {
    let upstream = TestUpstream::start().await;
    upstream.push_http_script(HttpScript::AbortAfterEvents { events: 2 });
    let response = send(&client(), post(&upstream, &json!({"stream": true}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(error)) => break error,
            None => panic!("the body ended cleanly"),
        }
    };
    let answer = Answer::default();
    let expected = answer.sse_frame(0).unwrap() + &answer.sse_frame(1).unwrap();
    assert_eq!(String::from_utf8(received).unwrap(), expected);
    assert!(!error.to_string().is_empty());
}

#[tokio::test(start_paused = true)]
async fn slow_events_wait_before_each_frame() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(10),
    });
    let response = send(&client(), post(&upstream, &json!({"stream": true}))).await;
    let mut body = response.into_body();
    let answer = Answer::default();
    for index in 0..answer.len() {
        assert!(
            timeout(Duration::from_secs(9), body.frame()).await.is_err(),
            "frame {index} came early"
        );
        let frame = timeout(Duration::from_secs(2), body.frame())
            .await
            .expect("the frame comes after the delay")
            .unwrap()
            .unwrap();
        assert_eq!(
            frame.data_ref().unwrap(),
            answer.sse_frame(index).unwrap().as_bytes()
        );
    }
}

#[tokio::test]
async fn bad_requests_are_answered_with_errors() {
    let upstream = TestUpstream::start().await;
    let client = client();
    let get = Request::builder()
        .method(Method::GET)
        .uri(upstream.http_url())
        .body(Full::default())
        .unwrap();
    assert_eq!(
        send(&client, get).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(upstream.http_requests(), 0);
    let not_json = Request::post(upstream.http_url())
        .body(Full::new(Bytes::from_static(b"not json")))
        .unwrap();
    let response = send(&client, not_json).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.contains("not JSON"));
    // It reached the upstream, so it counts.
    assert_eq!(upstream.http_requests(), 1);
}

#[tokio::test]
async fn non_streaming_answer_without_terminal_event_is_a_server_error() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::events(vec![json!({"type": "response.created"})]));
    let response = send(&client(), post(&upstream, &json!({}))).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body_text(response).await.contains("no terminal event"));
}
