//! Replays after a replay-safe WebSocket failure: the identical request, the marker on the answer, readiness, and a failed replay.

use super::*;

#[tokio::test]
async fn replays_each_replay_safe_phase_with_the_identical_request() {
    for phase in [
        Phase::Connect,
        Phase::Handshake,
        Phase::Send,
        Phase::BeforeFirstEvent,
    ] {
        let (mut service, mut handle) = spawn(FallbackConfig::default());
        let body = TestBody::chunked(br#"{"model":"gpt","stream":true}"#, 7);
        let response = send(
            &mut service,
            request(body, Intent::WebSocket, TransportMode::Auto),
        );

        let (websocket, reply) = handle.next_request().await.unwrap();
        assert_eq!(
            websocket.extensions().get::<Intent>(),
            Some(&Intent::WebSocket)
        );
        assert!(websocket.body().is_buffered());
        reply.send_error(failure(phase));

        let (http, reply) = handle.next_request().await.unwrap();
        assert_eq!(
            http.extensions().get::<Intent>(),
            Some(&Intent::Http(HttpReason::Fallback(failure(phase)))),
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
        assert_eq!(served.fallback_cause(), Some(&failure(phase)));
        assert!(served.ws_attempt().is_some());
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn served_fallback_replaces_the_inner_marker_and_times_the_attempt() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    reply.send_error(failure(Phase::Handshake));
    let (http, reply) = handle.next_request().await.unwrap();
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

#[tokio::test]
async fn connect_only_replays_setup_failures_only() {
    for (phase, replayed) in [
        (Phase::Connect, true),
        (Phase::Handshake, true),
        (Phase::Send, false),
        (Phase::BeforeFirstEvent, false),
    ] {
        let (mut service, mut handle) = spawn(
            FallbackConfig::builder()
                .replay(Replay::ConnectOnly)
                .build()
                .unwrap(),
        );
        let response = send(&mut service, candidate());
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(failure(phase));
        if replayed {
            let (_, reply) = handle.next_request().await.unwrap();
            reply.send_response(Response::new("http"));
            assert!(response.await.unwrap().is_ok(), "{phase:?}");
        } else {
            let error = response.await.unwrap().unwrap_err();
            assert_eq!(find_ws_failure(&*error), Some(&failure(phase)));
        }
        assert_no_more_requests(service, &mut handle).await;
    }
}

#[tokio::test]
async fn replay_waits_for_the_inner_service_to_be_ready() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    handle.allow(1);
    let response = send(&mut service, candidate());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Connect));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // The mock is out of capacity: no replay yet (calling it now would panic the task).
    assert!(handle.poll_request().is_pending());
    handle.allow(1);
    let (http, reply) = handle.next_request().await.unwrap();
    assert!(!http.extensions().get::<Intent>().unwrap().is_websocket());
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
}

#[tokio::test]
async fn http_failure_after_websocket_failure_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Handshake));
    let (_, reply) = handle.next_request().await.unwrap();
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

#[tokio::test]
async fn readiness_error_before_the_replay_carries_both() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    handle.allow(1);
    let response = send(&mut service, candidate());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Connect));
    handle.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    let both = error.downcast_ref::<HttpAfterWebSocket>().unwrap();
    assert_eq!(both.websocket(), &failure(Phase::Connect));
    assert!(both.http_error().downcast_ref::<NotAWsFailure>().is_some());
}

#[tokio::test]
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
    let (websocket, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::BeforeFirstEvent));
    let (http, reply) = handle.next_request().await.unwrap();
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());

    for request in [websocket, http] {
        let collected = request.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert!(collected.to_bytes() == data[..], "body differs");
    }
}
