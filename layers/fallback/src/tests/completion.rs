//! A response future polled again after it completed panics, on every path, with one message.

use std::{future::poll_fn, pin::pin};

use super::*;

/// Answers the inner service's next request with `answer`.
fn answer_next(mut handle: Handle<Req, Res>, answer: &'static str) {
    tokio::spawn(async move {
        let (_, reply) = next(&mut handle).await;
        reply.send_response(Response::new(answer));
    });
}

/// Runs `future` to its end, then polls it once more.
async fn poll_twice<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let output = bounded("the response future", future.as_mut()).await;
    poll_fn(|cx| future.as_mut().poll(cx)).await;
    output
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn pass_through_panics_when_polled_again() {
    let (mut service, handle) = spawn(FallbackConfig::default());
    answer_next(handle, "http");
    let request = request(
        TestBody::exact(b"{}"),
        Intent::Http(HttpReason::ModeHttp),
        TransportMode::Http,
    );
    assert!(service.poll_ready().is_ready());
    poll_twice(service.call(request)).await.unwrap();
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn candidate_panics_when_polled_again() {
    let (mut service, handle) = spawn(FallbackConfig::default());
    answer_next(handle, "websocket");
    assert!(service.poll_ready().is_ready());
    poll_twice(service.call(candidate())).await.unwrap();
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn early_error_panics_when_polled_again() {
    let (mut service, _handle) = spawn(FallbackConfig::default());
    assert!(service.poll_ready().is_ready());
    let no_intent = Request::new(TestBody::exact(b"{}"));
    poll_twice(service.call(no_intent)).await.unwrap_err();
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn buffering_failure_panics_when_polled_again() {
    let (mut service, _handle) = spawn(limited(1));
    assert!(service.poll_ready().is_ready());
    let request = request(
        TestBody::chunked(b"12", 1),
        Intent::WebSocket,
        TransportMode::Auto,
    );
    poll_twice(service.call(request)).await.unwrap_err();
}
