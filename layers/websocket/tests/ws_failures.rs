//! Every way a WebSocket attempt can fail maps to its typed `WsFailure` (phase and kind), against
//! the scriptable loopback upstream.
#![cfg(feature = "testing")]

mod ws_support;

use std::time::Duration;

use http::StatusCode;
use ws_support::*;
use wsfirst_core::{FailureKind, HttpReason, Intent, MissingExtension, Phase, Served, Transport};
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

fn config() -> WebSocketConfig {
    WebSocketConfig::builder().build().unwrap()
}

async fn failing(upstream: &TestUpstream, stream: bool) -> wsfirst_core::WsFailure {
    let (mut service, http_calls) = service(config(), &Pool::new());
    let failure = failure_of(call(&mut service, request(&route(upstream), stream)).await);
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    failure
}

#[tokio::test]
async fn refused_connection_is_a_connect_io_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/v1/responses", listener.local_addr().unwrap());
    drop(listener);
    let (mut service, _) = service(config(), &Pool::new());
    let failure = failure_of(call(&mut service, request(&route_to(&url), true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    assert!(
        matches!(failure.kind(), FailureKind::Io { kind, .. } if *kind == std::io::ErrorKind::ConnectionRefused),
        "{failure:?}"
    );
}

#[tokio::test]
async fn unknown_host_is_a_connect_dns_failure() {
    let (mut service, _) = service(config(), &Pool::new());
    let route = route_to("ws://wsfirst-test-host.invalid/v1/responses");
    let failure = failure_of(call(&mut service, request(&route, true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    assert!(matches!(failure.kind(), FailureKind::Dns(_)), "{failure:?}");
}

#[tokio::test]
async fn tls_to_a_plain_server_is_a_connect_tls_failure() {
    let upstream = TestUpstream::start().await;
    let url = upstream.ws_url().replacen("ws://", "wss://", 1);
    let (mut service, _) = service(config(), &Pool::new());
    let failure = failure_of(call(&mut service, request(&route_to(&url), true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    assert!(matches!(failure.kind(), FailureKind::Tls(_)), "{failure:?}");
    assert!(failure.is_replay_safe());
}

#[tokio::test]
async fn refused_upgrade_keeps_status_and_body() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong endpoint",
    ));
    let failure = failing(&upstream, true).await;
    assert_eq!(failure.phase(), Phase::Handshake);
    match failure.kind() {
        FailureKind::UpgradeStatus { status, body } => {
            assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(&body[..], b"wrong endpoint");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(upstream.ws_requests(), 0);
}

#[tokio::test]
async fn hung_upgrade_is_a_handshake_timeout() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Hang);
    let (mut service, _) = service(config(), &Pool::new());
    let route = route(&upstream);
    let task = spawn(async move { call(&mut service, request(&route, true)).await.map(|_| ()) });
    // The upgrade request arrived and nothing answers it: let virtual time run out the timeout.
    until(|| upstream.handshakes() == 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(6)).await;
    let failure = failure_of(task.await.unwrap());
    assert_eq!(failure.phase(), Phase::Handshake);
    assert_eq!(
        failure.kind(),
        &FailureKind::Timeout(Duration::from_secs(5))
    );
    assert_eq!(upstream.ws_requests(), 0);
}

#[tokio::test]
async fn close_before_the_first_event_keeps_the_close_code() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::CloseBeforeFirstEvent { code: 1011 });
    let failure = failing(&upstream, true).await;
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert!(
        matches!(
            failure.kind(),
            FailureKind::Closed {
                code: Some(1011),
                ..
            }
        ),
        "{failure:?}"
    );
    // Our request was written: the upstream may have executed it.
    assert!(!failure.is_replay_safe());
    assert_eq!(failure.delivery(), wsfirst_core::Delivery::MaybeExecuted);
}

#[tokio::test]
async fn error_event_before_output_keeps_its_code() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::error_event("server_error", "overloaded"));
    let failure = failing(&upstream, true).await;
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert_eq!(
        failure.kind(),
        &FailureKind::UpstreamError {
            code: Some("server_error".into()),
            message: "overloaded".into(),
            scope: wsfirst_core::ErrorScope::Provider,
        }
    );
}

#[tokio::test]
async fn unreadable_event_is_a_protocol_failure() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::raw_events(["this is not json"]));
    let failure = failing(&upstream, true).await;
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert!(
        matches!(failure.kind(), FailureKind::Protocol(_)),
        "{failure:?}"
    );
}

#[tokio::test]
async fn silent_upstream_is_a_first_event_timeout() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Stall { after_events: 0 });
    let (mut service, _) = service(config(), &Pool::new());
    let route = route(&upstream);
    let task = spawn(async move { call(&mut service, request(&route, true)).await.map(|_| ()) });
    until(|| upstream.ws_requests() == 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    let failure = failure_of(task.await.unwrap());
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert_eq!(
        failure.kind(),
        &FailureKind::Timeout(Duration::from_secs(30))
    );
}

#[tokio::test]
async fn oversized_request_is_a_send_failure_and_never_sent() {
    let upstream = TestUpstream::start().await;
    let config = WebSocketConfig::builder()
        .max_message_size(64)
        .build()
        .unwrap();
    let (mut service, _) = service(config, &Pool::new());
    let body = format!(
        r#"{{"model":"gpt-kit","input":"{}","stream":true}}"#,
        "x".repeat(100)
    );
    let failure = failure_of(call(&mut service, request_with(&route(&upstream), body, &[])).await);
    assert_eq!(failure.phase(), Phase::Send);
    assert!(
        matches!(failure.kind(), FailureKind::TooLarge { limit: 64, .. }),
        "{failure:?}"
    );
    assert_eq!(upstream.handshakes(), 0);
}

#[tokio::test]
async fn oversized_event_mid_stream_is_too_large() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::large_text(64 * 1024));
    let config = WebSocketConfig::builder()
        .max_incoming_message_size(8 * 1024)
        .build()
        .unwrap();
    let (mut service, _) = service(config, &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(bytes.starts_with(b"event: response.created\n"));
    let error = error.expect("the body ends with an error");
    let failure = wsfirst_core::find_ws_failure(&*error).unwrap();
    assert_eq!(failure.phase(), Phase::MidStream);
    assert!(
        matches!(failure.kind(), FailureKind::TooLarge { limit, .. } if *limit == 8 * 1024),
        "{failure:?}"
    );
    assert!(
        failure
            .to_string()
            .contains("exceeds the limit of 8192 bytes"),
        "{failure}"
    );
}

#[tokio::test]
async fn close_mid_stream_ends_the_body_with_a_mid_stream_failure() {
    let upstream = TestUpstream::start().await;
    let answer = Answer::text("hello world");
    upstream.set_answer(answer.clone());
    upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 3,
        code: 1011,
    });
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<Served>().map(Served::transport),
        Some(Transport::WebSocket)
    );
    let (bytes, error) = read_body(response.into_body()).await;
    let expected: String = (0..3).map(|i| answer.sse_frame(i).unwrap()).collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    let error = error.expect("the body ends with an error");
    let failure = wsfirst_core::find_ws_failure(&*error).unwrap();
    assert_eq!(failure.phase(), Phase::MidStream);
    assert!(!failure.is_replay_safe());
    assert!(
        matches!(
            failure.kind(),
            FailureKind::Closed {
                code: Some(1011),
                ..
            }
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn close_mid_answer_of_a_non_streaming_request_fails_the_future_mid_stream() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 3,
        code: 1011,
    });
    let failure = failing(&upstream, false).await;
    assert_eq!(failure.phase(), Phase::MidStream);
    assert!(matches!(
        failure.kind(),
        FailureKind::Closed {
            code: Some(1011),
            ..
        }
    ));
}

// Paused time: an error that failed to end the answer would wait for the idle timeout (300 s).
#[tokio::test(start_paused = true)]
async fn error_event_after_output_is_forwarded_in_the_http_shape_then_the_body_ends() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::ErrorEvent {
        code: "server_error".into(),
        message: "lost".into(),
        after_events: 2,
    });
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    let text = String::from_utf8(bytes).unwrap();
    let frames: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 3, "{text}");
    assert_eq!(
        frames[2],
        r#"event: error
data: {"type":"error","code":"server_error","message":"lost","param":null,"sequence_number":2}"#
    );
    assert!(error.is_none(), "a clean end: {error:?}");
}

#[tokio::test]
async fn stalled_stream_is_an_idle_timeout() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Stall { after_events: 2 });
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    tokio::time::pause();
    let (_, error) = read_body(response.into_body()).await;
    let error = error.expect("the body ends with an error");
    let failure = wsfirst_core::find_ws_failure(&*error).unwrap();
    assert_eq!(failure.phase(), Phase::MidStream);
    assert_eq!(
        failure.kind(),
        &FailureKind::Timeout(Duration::from_secs(300))
    );
}

#[tokio::test]
async fn connection_scoped_error_retries_once_on_a_fresh_connection() {
    let upstream = TestUpstream::start().await;
    upstream.push_ws_script(WsScript::error_event(
        "websocket_connection_limit_reached",
        "too many",
    ));
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 2));

    // Twice in a row: the second one is the caller's failure.
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::error_event(
        "websocket_connection_limit_reached",
        "too many",
    ));
    let failure = failing(&upstream, true).await;
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert_eq!(
        failure.kind().upstream_code(),
        Some("websocket_connection_limit_reached")
    );
    assert_eq!(upstream.handshakes(), 2);

    // A response id a connection does not know is no connection's business: never retried.
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::error_event("previous_response_not_found", "gone"));
    let failure = failing(&upstream, true).await;
    assert_eq!(
        failure.kind().error_scope(),
        Some(wsfirst_core::ErrorScope::Request)
    );
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (1, 1));
}

#[tokio::test]
async fn http_requests_pass_through_with_served_http() {
    let (mut service, http_calls) = service(config(), &Pool::new());
    let mut request = request(&route_to("ws://127.0.0.1:9/never"), true);
    request
        .extensions_mut()
        .insert(Intent::Http(HttpReason::ModeHttp));
    let response = call(&mut service, request).await.unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::http(HttpReason::ModeHttp))
    );
    assert!(!response.body().is_websocket());
    let (bytes, error) = read_body(response.into_body()).await;
    assert_eq!(
        (bytes.as_slice(), error.is_none()),
        (&b"over http"[..], true)
    );
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_extensions_are_errors_naming_them() {
    let (mut service, http_calls) = service(config(), &Pool::new());
    let mut no_intent = request(&route_to("ws://127.0.0.1:9/x"), true);
    no_intent.extensions_mut().remove::<Intent>();
    let error = call(&mut service, no_intent).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::INTENT)
    );

    let mut no_route = request(&route_to("ws://127.0.0.1:9/x"), true);
    no_route.extensions_mut().remove::<wsfirst_core::Route>();
    let error = call(&mut service, no_route).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::ROUTE)
    );
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn upstream_that_stops_reading_is_a_send_timeout() {
    // An upstream that completes the upgrade and then never reads: a message larger than the
    // socket buffers can never be written out, so only a timeout ends the send.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/responses", listener.local_addr().unwrap());
    let (upgraded, is_upgraded) = tokio::sync::oneshot::channel();
    let _server = spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _ = upgraded.send(());
        std::future::pending::<()>().await;
        drop(socket);
    });
    let config = WebSocketConfig::builder()
        .max_message_size(64 << 20)
        .build()
        .unwrap();
    let (mut service, http_calls) = service(config, &Pool::new());
    let input = "x".repeat(40 << 20);
    let body = format!(r#"{{"model":"gpt-kit","input":"{input}","stream":true}}"#);
    let route = route_to(&url);
    let task = spawn(async move {
        call(&mut service, request_with(&route, body, &[]))
            .await
            .map(|_| ())
    });
    is_upgraded.await.unwrap();
    // From here the client can only wait for the socket; let virtual time run.
    tokio::time::pause();
    let result = tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("the send was never bounded by a timeout")
        .unwrap();
    let failure = failure_of(result);
    assert_eq!(failure.phase(), Phase::Send);
    assert_eq!(
        failure.kind(),
        &FailureKind::Timeout(Duration::from_secs(30))
    );
    // The message never went out in full: the upstream cannot have acted on it.
    assert_eq!(failure.delivery(), wsfirst_core::Delivery::Incomplete);
    assert!(failure.is_replay_safe());
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}
