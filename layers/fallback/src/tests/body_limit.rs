//! The buffer limit: declared sizes over it go to HTTP, undeclared ones fail before anything is sent, read errors stay read errors.

use http_body_util::{Full, LengthLimitError, Limited};

use super::*;

#[tokio::test(start_paused = true)]
async fn declared_oversize_body_goes_straight_to_http() {
    let (mut service, mut handle) = spawn(limited(4));
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"12345"),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (http, reply) = next(&mut handle).await;
    assert_eq!(
        http.extensions().get::<Intent>(),
        Some(&Intent::Http(HttpReason::Ineligible(
            Ineligible::BodyNotReplayable {
                declared: 5,
                limit: 4
            }
        )))
    );
    assert!(!http.body().is_buffered());
    assert_eq!(
        bytes_of(http.into_body()).await,
        Bytes::from_static(b"12345")
    );
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn content_length_over_the_limit_goes_straight_to_http() {
    let (mut service, mut handle) = spawn(limited(4));
    let mut request = request(
        TestBody::chunked(b"123456", 2),
        Intent::WebSocket,
        TransportMode::Auto,
    );
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
    let response = send(&mut service, request);
    let (http, reply) = next(&mut handle).await;
    assert_eq!(
        http.extensions().get::<Intent>().map(Intent::reason_label),
        Some("body_not_replayable")
    );
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn undeclared_oversize_body_fails_before_anything_is_sent() {
    let (mut service, mut handle) = spawn(limited(4));
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"12345", 2),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let error = response.await.unwrap().unwrap_err();
    assert_eq!(
        error
            .downcast_ref::<BodyTooLarge>()
            .map(BodyTooLarge::limit),
        Some(4)
    );
    assert!(error.to_string().contains("limit of 4 bytes"), "{error}");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn body_at_the_limit_is_buffered() {
    let (mut service, mut handle) = spawn(limited(4));
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"1234", 3),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (websocket, reply) = next(&mut handle).await;
    assert_eq!(
        websocket.body().as_bytes(),
        Some(&Bytes::from_static(b"1234"))
    );
    reply.send_response(Response::new("websocket"));
    assert!(response.await.unwrap().is_ok());
}

/// The error of a candidate whose body fails with `error` after one byte.
async fn error_of_body_failing_with(error: BoxError) -> BoxError {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let body = TestBody {
        chunks: VecDeque::from([Ok(Bytes::from_static(b"1")), Err(error)]),
        ..TestBody::default()
    };
    let response = send(
        &mut service,
        request(body, Intent::WebSocket, TransportMode::Auto),
    );
    let error = response.await.unwrap().unwrap_err();
    assert_no_more_requests(service, &mut handle).await;
    error
}

#[tokio::test(start_paused = true)]
async fn body_error_while_buffering_fails_before_anything_is_sent() {
    let error = error_of_body_failing_with("reset by peer".into()).await;
    assert!(error.downcast_ref::<ReadBodyError>().is_some(), "{error}");
    assert_eq!(
        error.to_string(),
        "failed to read the request body: reset by peer"
    );
}

#[tokio::test(start_paused = true)]
async fn the_callers_own_length_limit_is_a_read_error_not_ours() {
    // The caller's body is itself length-limited (by a server in front, say) and fails with the
    // same error type that our buffer's limit uses: it is the body's error, not `BodyTooLarge`.
    let own_limit = Limited::new(Full::new(Bytes::from_static(b"12345")), 2)
        .collect()
        .await
        .unwrap_err();
    assert!(own_limit.is::<LengthLimitError>());
    let error = error_of_body_failing_with(own_limit).await;
    assert!(error.downcast_ref::<ReadBodyError>().is_some(), "{error}");
    assert_eq!(
        error.to_string(),
        "failed to read the request body: length limit exceeded"
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_limit_buffers_a_body_larger_than_the_old_eight_mib() {
    let data = vec![b'x'; 8 * 1024 * 1024 + 1];
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(
        &mut service,
        request(
            TestBody::chunked(&data, 1024 * 1024),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (websocket, reply) = next(&mut handle).await;
    assert_eq!(
        websocket.body().as_bytes().map(Bytes::len),
        Some(data.len())
    );
    reply.send_response(Response::new("websocket"));
    assert!(response.await.unwrap().is_ok());
}
