//! What is not replayed: mid-stream failures, other errors, strict mode, HTTP intents, successes, requests without extensions.

use super::*;

#[tokio::test(start_paused = true)]
async fn mid_stream_failure_is_not_replayed() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::MidStream));

    let error = response.await.unwrap().unwrap_err();
    assert_eq!(
        find_ws_failure(&*error).map(WsFailure::phase),
        Some(Phase::MidStream)
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn other_errors_reach_the_caller_unchanged() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(NotAWsFailure);

    let error = response.await.unwrap().unwrap_err();
    assert!(error.downcast_ref::<NotAWsFailure>().is_some(), "{error}");
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn strict_mode_surfaces_the_failure_of_a_body_read_within_the_budget() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"abc", 1),
            Intent::WebSocket,
            TransportMode::WebSocket,
        ),
    );
    let (websocket, reply) = next(&mut handle).await;
    assert!(websocket.body().is_buffered());
    reply.send_error(failure(Phase::Handshake));

    let error = response.await.unwrap().unwrap_err();
    assert_eq!(find_ws_failure(&*error), Some(&failure(Phase::Handshake)));
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn http_intent_passes_through_unbuffered_and_untouched() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let intent = Intent::Http(HttpReason::ModeHttp);
    let response = send(
        &mut service,
        request(
            TestBody::chunked(b"abc", 1),
            intent.clone(),
            TransportMode::Http,
        ),
    );
    let (http, reply) = next(&mut handle).await;
    assert_eq!(http.extensions().get::<Intent>(), Some(&intent));
    assert!(!http.body().is_buffered());
    assert_eq!(bytes_of(http.into_body()).await, Bytes::from_static(b"abc"));
    let mut answer = Response::new("http");
    answer
        .extensions_mut()
        .insert(Served::http(HttpReason::ModeHttp));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::http(HttpReason::ModeHttp))
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn websocket_success_is_returned_as_is() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    let mut answer = Response::new("websocket");
    answer
        .extensions_mut()
        .insert(Served::websocket(Duration::from_millis(3)));
    reply.send_response(answer);

    let response = response.await.unwrap().unwrap();
    assert_eq!(*response.body(), "websocket");
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::websocket(Duration::from_millis(3)))
    );
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn missing_extensions_are_errors() {
    let (mut service, mut handle) = spawn(FallbackConfig::default());

    let no_intent = Request::new(TestBody::exact(b"{}"));
    let error = send(&mut service, no_intent).await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::INTENT)
    );

    let mut no_route = Request::new(TestBody::exact(b"{}"));
    no_route.extensions_mut().insert(Intent::WebSocket);
    let error = send(&mut service, no_route).await.unwrap().unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::ROUTE)
    );
    assert_no_more_requests(service, &mut handle).await;
}
