//! Replays after a replay-safe WebSocket failure: the identical request, the marker on the answer, readiness, and a failed replay.

use super::*;

/// A failure of each kind the upstream provably did not execute: not sent (connect, handshake),
/// not sent in full, refused.
fn unexecuted() -> [WsFailure; 4] {
    [
        failure(Phase::Connect),
        failure(Phase::Handshake),
        failure(Phase::Send),
        failure(Phase::BeforeFirstEvent).with_delivery(Delivery::Refused),
    ]
}

#[tokio::test(start_paused = true)]
async fn replays_each_unexecuted_failure_with_the_identical_request() {
    for failure in unexecuted() {
        let phase = failure.phase();
        let (mut service, mut handle) = spawn(FallbackConfig::default());
        let body = TestBody::chunked(br#"{"model":"gpt","stream":true}"#, 7);
        let response = send(
            &mut service,
            request(body, Intent::WebSocket, TransportMode::Auto),
        );

        let (websocket, reply) = next(&mut handle).await;
        assert_eq!(
            websocket.extensions().get::<Intent>(),
            Some(&Intent::WebSocket)
        );
        assert!(websocket.body().is_buffered());
        assert_eq!(
            websocket.extensions().get::<Replay>(),
            Some(&Replay::BeforeFirstEvent)
        );
        reply.send_error(failure.clone());

        let (http, reply) = next(&mut handle).await;
        assert_eq!(
            http.extensions().get::<Intent>(),
            Some(&Intent::Http(HttpReason::Fallback(failure.clone()))),
            "{phase:?}"
        );
        assert_eq!(http.method(), websocket.method());
        assert_eq!(http.uri(), websocket.uri());
        assert_eq!(http.version(), websocket.version());
        assert_eq!(http.headers(), websocket.headers());
        assert_eq!(
            http.extensions().get::<Route>().map(Route::api),
            Some("openai-responses")
        );
        let (http_body, ws_body) = (http.into_body(), websocket.into_body());
        assert_eq!(bytes_of(http_body).await, bytes_of(ws_body).await);
        reply.send_response(Response::new("over http"));

        let response = response.await.unwrap().unwrap();
        assert_eq!(*response.body(), "over http");
        let served = response.extensions().get::<Served>().unwrap();
        assert_eq!(served.transport(), Transport::Http);
        assert_eq!(served.fallback_cause(), Some(&failure));
        assert!(served.ws_attempt().is_some());
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_request_was_written_is_never_replayed() {
    for replay in [Replay::BeforeFirstEvent, Replay::ConnectOnly] {
        let config = FallbackConfig::builder().replay(replay).build().unwrap();
        let (mut service, mut handle) = spawn(config);
        let response = send(&mut service, candidate());
        let (_, reply) = next(&mut handle).await;
        let closed = WsFailure::new(
            Phase::BeforeFirstEvent,
            FailureKind::Closed {
                code: Some(1001),
                reason: String::new(),
            },
        );
        assert_eq!(closed.delivery(), Delivery::MaybeExecuted);
        reply.send_error(closed.clone());
        let error = response.await.unwrap().unwrap_err();
        assert_eq!(find_ws_failure(&*error), Some(&closed), "{replay:?}");
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_setting_reaches_the_websocket_layer_in_strict_mode_too() {
    let config = FallbackConfig::builder()
        .replay(Replay::ConnectOnly)
        .build()
        .unwrap();
    let (mut service, mut handle) = spawn(config);
    let strict = request(
        TestBody::exact(b"{}"),
        Intent::WebSocket,
        TransportMode::WebSocket,
    );
    let response = send(&mut service, strict);
    let (websocket, reply) = next(&mut handle).await;
    assert_eq!(
        websocket.extensions().get::<Replay>(),
        Some(&Replay::ConnectOnly)
    );
    reply.send_response(Response::new("ws"));
    assert!(response.await.unwrap().is_ok());
    // An HTTP request does not need it.
    let http = request(
        TestBody::exact(b"{}"),
        Intent::Http(HttpReason::ModeHttp),
        TransportMode::Http,
    );
    let response = send(&mut service, http);
    let (http, reply) = next(&mut handle).await;
    assert_eq!(http.extensions().get::<Replay>(), None);
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn served_fallback_replaces_the_inner_marker_and_times_the_attempt() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    reply.send_error(failure(Phase::Handshake));
    let (http, reply) = next(&mut handle).await;
    // What the WebSocket layer stamps on a response it passed to HTTP.
    let reason = http
        .extensions()
        .get::<Intent>()
        .unwrap()
        .http_reason()
        .unwrap();
    let mut answer = Response::new("http");
    answer.extensions_mut().insert(Served::http(reason.clone()));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::fallback(
            failure(Phase::Handshake),
            Duration::from_secs(5)
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn connect_only_replays_only_what_was_not_written_at_all() {
    let not_written = failure(Phase::Send).with_delivery(Delivery::Unsent);
    for (failure, replayed) in [
        (failure(Phase::Connect), true),
        (failure(Phase::Handshake), true),
        (not_written, true),
        (failure(Phase::Send), false),
        (
            failure(Phase::BeforeFirstEvent).with_delivery(Delivery::Refused),
            false,
        ),
        (failure(Phase::BeforeFirstEvent), false),
    ] {
        let phase = failure.phase();
        let (mut service, mut handle) = spawn(
            FallbackConfig::builder()
                .replay(Replay::ConnectOnly)
                .build()
                .unwrap(),
        );
        let response = send(&mut service, candidate());
        let (_, reply) = next(&mut handle).await;
        reply.send_error(failure.clone());
        if replayed {
            let (_, reply) = next(&mut handle).await;
            reply.send_response(Response::new("http"));
            assert!(response.await.unwrap().is_ok(), "{phase:?}");
        } else {
            let error = response.await.unwrap().unwrap_err();
            assert_eq!(find_ws_failure(&*error), Some(&failure), "{phase:?}");
        }
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn replay_waits_for_the_inner_service_to_be_ready() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    handle.allow(1);
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::Connect));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // The mock is out of capacity: no replay yet (calling it now would panic the task).
    assert!(handle.poll_request().is_pending());
    handle.allow(1);
    let (http, reply) = next(&mut handle).await;
    assert!(!http.extensions().get::<Intent>().unwrap().is_websocket());
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn http_failure_after_websocket_failure_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::Handshake));
    let (_, reply) = next(&mut handle).await;
    reply.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    let both = error.downcast_ref::<HttpAfterWebSocket>().unwrap();
    assert_eq!(both.websocket(), &failure(Phase::Handshake));
    assert!(both.http_error().downcast_ref::<NotAWsFailure>().is_some());
    assert_eq!(
        error.to_string(),
        "websocket handshake failed: upgrade answered with status 500: oops, \
         then the http fallback failed: something else"
    );
    // The breaker outside finds the WebSocket failure to count.
    assert_eq!(find_ws_failure(&*error), Some(&failure(Phase::Handshake)));
    let chain: Vec<String> =
        std::iter::successors(Some(&*error as &(dyn Error + 'static)), |&e| e.source())
            .map(ToString::to_string)
            .collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[1], "http fallback failed: something else");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn readiness_error_before_the_replay_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    handle.allow(1);
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::Connect));
    handle.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    let both = error.downcast_ref::<HttpAfterWebSocket>().unwrap();
    assert_eq!(both.websocket(), &failure(Phase::Connect));
    assert!(both.http_error().downcast_ref::<NotAWsFailure>().is_some());
}

#[tokio::test(start_paused = true)]
async fn one_mib_body_is_replayed_byte_identical_with_trailers() {
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("123"));
    let mut body = TestBody::chunked(&data, 16 * 1024 + 3);
    body.trailers = Some(trailers.clone());

    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(
        &mut service,
        request(body, Intent::WebSocket, TransportMode::Auto),
    );
    let (websocket, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::Send));
    let (http, reply) = next(&mut handle).await;
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());

    for request in [websocket, http] {
        let collected = request.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert!(collected.to_bytes() == data[..], "body differs");
    }
}
