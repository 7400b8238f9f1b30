//! The Responses API's own signals at the layer level: error events with a client-error status
//! are answers (never failures), server errors are failures that are not sent again (the
//! upstream may have started on the request), errors after output end the stream the way the
//! HTTP endpoint's stream ends; a reused connection that the upstream closes as "going away"
//! with our request in hand is not sent again; the route's beta flags are added to the
//! client's; an answer may be silent for minutes.
#![cfg(feature = "testing")]

mod ws_support;

use std::{sync::atomic::Ordering, time::Duration};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use ws_support::*;
use wsfirst_core::{ErrorScope, FailureKind, Phase, Served, Transport};
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("not json ({error}): {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn a_client_error_before_output_is_answered_with_its_status_and_the_http_error_body() {
    let upstream = TestUpstream::start().await;
    let rejection = Answer::error(
        StatusCode::BAD_REQUEST,
        "invalid_value",
        "Invalid value: 'banana'. Supported values are: 'low', 'medium' and 'high'.",
    );
    let pool = Pool::new();
    let (mut service, http_calls) = service(config(), &pool);
    let route = route(&upstream);
    for stream in [true, false] {
        upstream.push_answer(rejection.clone());
        let response = call(&mut service, request(&route, stream)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{stream}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let served = response.extensions().get::<Served>().unwrap();
        assert_eq!(served.transport(), Transport::WebSocket);
        assert!(served.fallback_cause().is_none());
        let (bytes, error) = read_body(response.into_body()).await;
        assert!(error.is_none());
        assert_eq!(
            json_of(&bytes),
            json_of(rejection.http_error_body().unwrap().as_bytes())
        );
        assert_eq!(
            json_of(&bytes),
            json!({"error": {
                "message": "Invalid value: 'banana'. Supported values are: 'low', 'medium' and 'high'.",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_value",
            }})
        );
    }
    // Executed once each, never over HTTP, and the connection keeps serving.
    let response = call(&mut service, request(&route, true)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    assert_eq!((upstream.ws_requests(), upstream.handshakes()), (3, 1));
}

#[tokio::test]
async fn auth_not_found_and_unknown_previous_responses_are_answers_too() {
    let upstream = TestUpstream::start().await;
    let (mut service, http_calls) = service(config(), &Pool::new());
    let route = route(&upstream);
    let cases = [
        Answer::error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Incorrect API key provided.",
        ),
        Answer::error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            "The model `gpt-nope` does not exist.",
        ),
        Answer::previous_response_not_found("resp_unknown"),
    ];
    for answer in cases {
        upstream.push_answer(answer.clone());
        let response = call(&mut service, request(&route, true)).await.unwrap();
        assert_eq!(Some(response.status()), answer.error_status());
        let (bytes, _) = read_body(response.into_body()).await;
        assert_eq!(
            json_of(&bytes),
            json_of(answer.http_error_body().unwrap().as_bytes())
        );
    }
    // `previous_response_not_found` is not retried on a fresh connection any more.
    assert_eq!((upstream.ws_requests(), upstream.handshakes()), (3, 1));
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rate_limit_is_answered_429_with_its_retry_and_rate_limit_headers() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::error_event(
        Some(StatusCode::TOO_MANY_REQUESTS),
        json!({
            "type": "requests",
            "code": "rate_limit_exceeded",
            "message": "Rate limit reached for requests.",
            "param": null,
        }),
        &[
            ("retry-after", "7"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "7s"),
            ("openai-organization", "org-internal"),
        ],
    ));
    let (mut service, http_calls) = service(config(), &Pool::new());
    for stream in [true, false] {
        let response = call(&mut service, request(&route(&upstream), stream))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers: &HeaderMap = response.headers();
        assert_eq!(headers["retry-after"], "7");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(headers["x-ratelimit-reset-requests"], "7s");
        assert!(headers.get("openai-organization").is_none(), "{headers:?}");
        let (bytes, _) = read_body(response.into_body()).await;
        assert_eq!(json_of(&bytes)["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    assert_eq!(upstream.ws_requests(), 2);

    // The kit's ready-made rate limit carries the same kind of headers.
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::rate_limited(3));
    let (mut kit_service, _) = ws_support::service(config(), &Pool::new());
    let response = call(&mut kit_service, request(&route(&upstream), true))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
}

#[tokio::test]
async fn a_server_error_before_output_is_a_failure_of_the_provider_never_sent_again() {
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY] {
        let upstream = TestUpstream::start().await;
        upstream.set_answer(Answer::error(
            status,
            "server_error",
            "The server had an error.",
        ));
        let (mut service, http_calls) = service(config(), &Pool::new());
        let failure = failure_of(call(&mut service, request(&route(&upstream), true)).await);
        assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
        // The upstream may have started on it: neither this layer nor a fallback sends it again.
        assert!(!failure.is_replay_safe());
        assert_eq!(
            failure.kind(),
            &FailureKind::UpstreamError {
                code: Some("server_error".into()),
                message: "The server had an error.".into(),
                scope: ErrorScope::Provider,
            }
        );
        // Not retried on another connection.
        assert_eq!((upstream.ws_requests(), upstream.handshakes()), (1, 1));
        assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn the_connection_limit_is_retried_once_on_a_fresh_connection() {
    let upstream = TestUpstream::start().await;
    upstream.push_answer(Answer::connection_limit_reached());
    let (mut service, http_calls) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, error) = read_body(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 2));
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

// Paused time: an error that failed to end the answer would wait for the idle timeout (300 s).
#[tokio::test(start_paused = true)]
async fn an_error_after_output_ends_the_stream_like_the_http_stream_and_the_body_cleanly() {
    let upstream = TestUpstream::start().await;
    let text = Answer::text("hello world");
    let error = Answer::error_event(
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        json!({
            "type": "server_error",
            "code": "server_error",
            "message": "The model stopped.",
            "param": null,
            "headers": {"x-internal-shard": "7"},
        }),
        &[("x-request-id", "req_internal")],
    );
    upstream.push_answer(text.interrupted(3, &error));
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "a clean end: {error:?}");
    let body = String::from_utf8(bytes).unwrap();
    let expected: String = (0..3)
        .map(|i| text.sse_frame(i).unwrap())
        .collect::<String>()
        + "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The model stopped.\",\"param\":null,\"sequence_number\":3}\n\n";
    assert_eq!(body, expected);
    let last = body.rsplit_terminator("\n\n").next().unwrap();
    assert!(
        !last.contains("headers") && !last.contains("status") && !last.contains("internal"),
        "{last}"
    );

    // The connection is not reused after an error: what else the upstream sends is unknown.
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    read_body(response.into_body()).await;
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 2));
}

// Paused time: an error that failed to end the answer would wait for the idle timeout (300 s).
#[tokio::test(start_paused = true)]
async fn an_error_after_a_non_streaming_answers_first_event_is_the_http_endpoints_answer() {
    let upstream = TestUpstream::start().await;
    let error = Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "lost");
    upstream.set_answer(Answer::text("hello world").interrupted(2, &error));
    let (mut service, http_calls) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), false))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.extensions().get::<Served>().map(Served::transport),
        Some(Transport::WebSocket)
    );
    let (bytes, _) = read_body(response.into_body()).await;
    assert_eq!(
        json_of(&bytes),
        json_of(error.http_error_body().unwrap().as_bytes())
    );
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    // Failed after its first event: the connection is not reused.
    let response = call(&mut service, request(&route(&upstream), false))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (2, 2));
}

/// An upstream on 127.0.0.1 whose first connection answers its first request with `answer`
/// and closes with `code` when the second request arrives, and whose other connections answer
/// every request: the shape of a server going away with a request in hand.
/// Returns the URL and a counter of accepted connections.
async fn going_away_upstream(
    answer: Answer,
    code: u16,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/responses", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = answer.clone();
            spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut requests = 0;
                while let Some(Ok(message)) = socket.next().await {
                    if !message.is_text() {
                        continue;
                    }
                    requests += 1;
                    if number == 1 && requests == 2 {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: "going away".into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        while let Some(Ok(_)) = socket.next().await {}
                        return;
                    }
                    for event in answer.messages() {
                        if socket.send(Message::text(event.clone())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn a_reused_connection_closed_as_going_away_after_the_write_is_not_sent_again() {
    for code in [1001, 1011, 1012, 1013] {
        let answer = Answer::text("hello world");
        let (url, accepted) = going_away_upstream(answer.clone(), code).await;
        let (mut service, http_calls) = service(config(), &Pool::new());
        let route = route_to(&url);
        let response = call(&mut service, request(&route, false))
            .await
            .unwrap_or_else(|error| panic!("{code}: {error}"));
        let (bytes, error) = read_body(response.into_body()).await;
        assert!(error.is_none());
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            answer.final_json().unwrap()
        );
        // The upstream closes with the second request in hand: it may have executed it.
        let failure = failure_of(call(&mut service, request(&route, false)).await);
        assert_eq!(failure.phase(), Phase::BeforeFirstEvent, "{code}");
        assert_eq!(
            failure.kind(),
            &FailureKind::Closed {
                code: Some(code),
                reason: "going away".into()
            }
        );
        assert!(!failure.is_replay_safe(), "{code}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "{code}: no fresh connection"
        );
        assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn a_fresh_connection_closed_before_any_event_is_still_a_failure() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::CloseBeforeFirstEvent { code: 1012 });
    let (mut service, _) = service(config(), &Pool::new());
    let failure = failure_of(call(&mut service, request(&route(&upstream), true)).await);
    assert!(
        matches!(
            failure.kind(),
            FailureKind::Closed {
                code: Some(1012),
                ..
            }
        ),
        "{failure:?}"
    );
    assert_eq!(upstream.handshakes(), 1);
}

#[tokio::test]
async fn the_routes_beta_flag_is_added_to_the_clients_own() {
    let upstream = TestUpstream::start().await;
    let route = route(&upstream);
    let policy = route
        .headers()
        .to_builder()
        .static_header(
            http::HeaderName::from_static("openai-beta"),
            http::HeaderValue::from_static("responses_websockets=2026-02-06"),
        )
        .build()
        .unwrap();
    let (mut service, _) = service(WebSocketConfig::default(), &Pool::new());
    let request = request_with(
        &route.with_headers(policy),
        body(true),
        &[(
            "openai-beta",
            "assistants=v2, responses_websockets=2026-02-06",
        )],
    );
    let response = call(&mut service, request).await.unwrap();
    read_body(response.into_body()).await;
    let captured = upstream.captured();
    assert_eq!(
        captured[0].header("openai-beta"),
        Some("assistants=v2, responses_websockets=2026-02-06")
    );
    assert_eq!(captured[0].headers.get_all("openai-beta").iter().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_may_be_silent_for_minutes_between_events() {
    let upstream = TestUpstream::start().await;
    // A reasoning model thinking for 200 s before each event (the first one too, so the
    // first-event timeout is raised; the idle timeout keeps its default).
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(200),
    });
    let config = WebSocketConfig::builder()
        .first_event_timeout(Duration::from_secs(250))
        .build()
        .unwrap();
    assert_eq!(config.idle_timeout(), Duration::from_secs(300));
    let (mut service, _) = service(config, &Pool::new());
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(String::from_utf8(bytes).unwrap(), Answer::default().sse());
}

#[tokio::test]
async fn an_answer_larger_than_the_old_16_mib_limit_is_received_by_default() {
    let upstream = TestUpstream::start().await;
    // A `response.completed` event of 17 MiB, such as one repeating generated images.
    let image = "A".repeat(17 << 20);
    let answer = Answer::raw_events([
        r#"{"type":"response.created","response":{"id":"resp_big","status":"in_progress"}}"#
            .to_owned(),
        format!(
            r#"{{"type":"response.completed","response":{{"id":"resp_big","status":"completed","output":[{{"type":"image_generation_call","result":"{image}"}}]}}}}"#
        ),
    ]);
    upstream.set_answer(answer.clone());
    let (mut service, _) = service(config(), &Pool::new());
    let response = call(&mut service, request(&route(&upstream), false))
        .await
        .unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes.len(), answer.final_json().unwrap().len());
}
