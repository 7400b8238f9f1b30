//! The test kit's WebSocket side, driven by a raw tokio-tungstenite client.
#![cfg(feature = "testing")]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::{net::TcpStream, time::timeout};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest},
};
use wsfirst_websocket::testing::{Answer, TestUpstream, Transport, WsScript};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CREATE: &str = r#"{"type":"response.create","model":"gpt-kit","input":"hi"}"#;

async fn connect(upstream: &TestUpstream) -> Socket {
    let mut request = upstream.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer sk-test".parse().unwrap());
    connect_async(request).await.expect("upgrade accepted").0
}

/// Reads the next message, failing the test on anything but a text message.
async fn next_text(socket: &mut Socket) -> String {
    match socket.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Reads `count` text messages.
async fn texts(socket: &mut Socket, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..count {
        texts.push(next_text(socket).await);
    }
    texts
}

/// Reads until a close frame and returns its code; `None` when the stream ends without one.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code.into()),
            Some(Ok(Message::Text(text))) => panic!("unexpected text message {text}"),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn accept_serves_sequential_requests_on_one_connection() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("hello world"));
    let mut socket = connect(&upstream).await;
    for round in 1..=2 {
        socket.send(Message::text(CREATE)).await.unwrap();
        let answer = Answer::text("hello world");
        assert_eq!(texts(&mut socket, answer.len()).await, answer.messages());
        assert_eq!(upstream.ws_requests(), round);
    }
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.ws_connections(), 1);
    assert_eq!(upstream.http_requests(), 0);
    let captured = upstream.captured();
    assert_eq!(captured.len(), 2);
    for request in &captured {
        assert_eq!(request.transport, Transport::WebSocket);
        assert_eq!(request.connection, Some(1));
        assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(request.uri.path(), "/v1/responses");
        assert_eq!(request.body, CREATE.as_bytes());
    }
    upstream.shutdown().await;
}

#[tokio::test]
async fn refuse_answers_the_upgrade_with_the_status_and_body() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));
    upstream.push_ws_script(WsScript::Refuse {
        status: StatusCode::UPGRADE_REQUIRED,
        body: String::new(),
    });
    let first = connect_async(upstream.ws_url()).await.unwrap_err();
    let tungstenite::Error::Http(response) = first else {
        panic!("expected an http error, got {first:?}");
    };
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.body().as_deref(), Some(&b"boom"[..]));
    let second = connect_async(upstream.ws_url()).await.unwrap_err();
    assert!(
        matches!(&second, tungstenite::Error::Http(r) if r.status() == StatusCode::UPGRADE_REQUIRED),
        "{second:?}"
    );
    // The queue is used up: the default script accepts.
    let _socket = connect(&upstream).await;
    assert_eq!(upstream.handshakes(), 3);
    assert_eq!(upstream.ws_connections(), 1);
    assert_eq!(upstream.ws_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers_the_upgrade_until_shutdown() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Hang);
    let mut connecting = tokio::spawn(connect_async(upstream.ws_url()));
    assert!(
        timeout(Duration::from_secs(3600), &mut connecting)
            .await
            .is_err(),
        "the upgrade was answered"
    );
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.ws_connections(), 0);
    upstream.shutdown().await;
    let error = connecting.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, tungstenite::Error::Http(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE),
        "{error:?}"
    );
}

#[tokio::test]
async fn close_before_first_event_receives_the_request_then_closes() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::CloseBeforeFirstEvent { code: 1011 });
    let mut socket = connect(&upstream).await;
    socket.send(Message::text(CREATE)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1011));
    assert_eq!(upstream.ws_requests(), 1);
}

#[tokio::test]
async fn close_after_events_sends_that_many_events_then_closes() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 3,
        code: 4000,
    });
    let mut socket = connect(&upstream).await;
    socket.send(Message::text(CREATE)).await.unwrap();
    let answer = Answer::default();
    assert_eq!(texts(&mut socket, 3).await, answer.messages()[..3]);
    assert_eq!(close_code(&mut socket).await, Some(4000));
}

#[tokio::test]
async fn close_code_1006_drops_the_connection_without_a_close_frame() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 1,
        code: 1006,
    });
    let mut socket = connect(&upstream).await;
    socket.send(Message::text(CREATE)).await.unwrap();
    assert_eq!(
        texts(&mut socket, 1).await,
        Answer::default().messages()[..1]
    );
    assert_eq!(close_code(&mut socket).await, None);
}

#[tokio::test]
async fn error_event_comes_after_the_given_events_and_keeps_the_connection() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::error_event(
        "websocket_connection_limit_reached",
        "too many connections",
    ));
    upstream.push_ws_script(WsScript::ErrorEvent {
        code: "server_error".into(),
        message: "oops".into(),
        after_events: 2,
    });
    let mut first = connect(&upstream).await;
    for _ in 0..2 {
        first.send(Message::text(CREATE)).await.unwrap();
        let error: Value = serde_json::from_str(&next_text(&mut first).await).unwrap();
        assert_eq!(
            error,
            json!({"type": "error", "error": {
                "code": "websocket_connection_limit_reached",
                "message": "too many connections",
            }})
        );
    }
    let mut second = connect(&upstream).await;
    second.send(Message::text(CREATE)).await.unwrap();
    let received = texts(&mut second, 3).await;
    assert_eq!(received[..2], Answer::default().messages()[..2]);
    let error: Value = serde_json::from_str(&received[2]).unwrap();
    assert_eq!(error["error"]["code"], "server_error");
    assert_eq!(upstream.ws_requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn slow_events_wait_before_each_event() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(10),
    });
    let mut socket = connect(&upstream).await;
    socket.send(Message::text(CREATE)).await.unwrap();
    let answer = Answer::default();
    let start = tokio::time::Instant::now();
    for expected in answer.messages() {
        assert!(
            timeout(Duration::from_secs(9), socket.next())
                .await
                .is_err(),
            "an event came early"
        );
        let message = timeout(Duration::from_secs(2), next_text(&mut socket))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "event {expected} did not come after the delay, at {:?}",
                    start.elapsed()
                )
            });
        assert_eq!(&message, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn stall_goes_silent_after_the_given_events() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::Stall { after_events: 2 });
    let mut socket = connect(&upstream).await;
    socket.send(Message::text(CREATE)).await.unwrap();
    assert_eq!(
        texts(&mut socket, 2).await,
        Answer::default().messages()[..2]
    );
    assert!(
        timeout(Duration::from_secs(3600), socket.next())
            .await
            .is_err()
    );
    assert_eq!(upstream.open_ws_connections(), 1);
}

#[tokio::test]
async fn raw_takes_any_message_and_closes_after_the_answer() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::Raw);
    upstream.set_answer(Answer::raw_events(["one", "two"]));
    let mut socket = connect(&upstream).await;
    socket.send(Message::binary(&b"\x00raw"[..])).await.unwrap();
    assert_eq!(texts(&mut socket, 2).await, ["one", "two"]);
    assert_eq!(close_code(&mut socket).await, Some(1000));
    assert_eq!(upstream.captured()[0].body, &b"\x00raw"[..]);
}

#[tokio::test]
async fn other_messages_get_an_error_event_and_are_not_counted() {
    let upstream = TestUpstream::start().await;
    let mut socket = connect(&upstream).await;
    socket
        .send(Message::text(r#"{"type":"session.update"}"#))
        .await
        .unwrap();
    let error: Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(error["error"]["code"], "invalid_request");
    assert_eq!(upstream.ws_requests(), 0);
    assert!(upstream.captured().is_empty());
}

#[tokio::test]
async fn queued_answers_come_before_the_current_one() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("later"));
    upstream.push_answer(Answer::text("first"));
    let mut socket = connect(&upstream).await;
    for text in ["first", "later", "later"] {
        socket.send(Message::text(CREATE)).await.unwrap();
        let answer = Answer::text(text);
        assert_eq!(texts(&mut socket, answer.len()).await, answer.messages());
    }
}

#[tokio::test]
async fn close_ws_connections_closes_with_going_away() {
    let upstream = TestUpstream::start().await;
    let mut first = connect(&upstream).await;
    let mut second = connect(&upstream).await;
    assert_eq!(upstream.ws_connections(), 2);
    upstream.close_ws_connections();
    assert_eq!(close_code(&mut first).await, Some(1001));
    assert_eq!(close_code(&mut second).await, Some(1001));
    // New connections are still accepted and numbered on.
    let mut third = connect(&upstream).await;
    third.send(Message::text(CREATE)).await.unwrap();
    texts(&mut third, Answer::default().len()).await;
    assert_eq!(upstream.captured()[0].connection, Some(3));
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let upstream = TestUpstream::start().await;
    let mut socket = connect(&upstream).await;
    let addr = upstream.addr();
    upstream.shutdown().await;
    assert_eq!(close_code(&mut socket).await, Some(1001));
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
