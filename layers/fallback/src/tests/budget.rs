//! The body budget: a body is buffered only within the budget shared by every request; past it
//! the request fails with `BudgetExhausted` before anything is sent, and the bytes come back when
//! a request is done.

use super::*;
use crate::{BodyBudget, BudgetExhausted};

/// Calls the service; the answer's task (which does not borrow the service).
fn start(
    service: &mut Svc,
    request: Request<TestBody>,
) -> tokio::task::JoinHandle<Result<Res, BoxError>> {
    assert!(service.poll_ready().is_ready());
    tokio::spawn(service.call(request))
}

fn spawn_with(budget: &BodyBudget) -> (Svc, Handle<Req, Res>) {
    mock::spawn_layer(FallbackLayer::new(FallbackConfig::default()).with_budget(budget.clone()))
}

#[tokio::test(start_paused = true)]
async fn bodies_held_at_once_share_one_budget() {
    let budget = BodyBudget::new(10);
    let (mut service, mut handle) = spawn_with(&budget);
    let first = start(
        &mut service,
        request(
            TestBody::chunked(b"123456", 2),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    // The first body is buffered and its WebSocket attempt runs: it holds 6 bytes.
    let (websocket, reply) = next(&mut handle).await;
    assert!(websocket.body().is_buffered());
    assert_eq!(budget.available(), 4);
    let second = start(
        &mut service,
        request(
            TestBody::chunked(b"123456", 2),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let error = second.await.unwrap().unwrap_err();
    assert_eq!(
        error
            .downcast_ref::<BudgetExhausted>()
            .map(BudgetExhausted::budget),
        Some(10)
    );
    assert_eq!(budget.available(), 4, "the refused request holds nothing");
    reply.send_response(Response::new("websocket"));
    assert!(first.await.unwrap().is_ok());
    assert_eq!(
        budget.available(),
        10,
        "a request done gives its bytes back"
    );
    // Room again.
    let third = start(
        &mut service,
        request(
            TestBody::chunked(b"123456", 2),
            Intent::WebSocket,
            TransportMode::Auto,
        ),
    );
    let (_, reply) = next(&mut handle).await;
    reply.send_response(Response::new("websocket"));
    assert!(third.await.unwrap().is_ok());
    assert_no_more_requests(service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_replay_holds_its_bytes_until_it_is_done() {
    let budget = BodyBudget::new(8);
    let (mut service, mut handle) = spawn_with(&budget);
    let response = send(&mut service, candidate());
    let (_, reply) = next(&mut handle).await;
    reply.send_error(failure(Phase::Handshake));
    let (http, reply) = next(&mut handle).await;
    assert_eq!(bytes_of(http.into_body()).await, Bytes::from_static(b"{}"));
    assert_eq!(budget.available(), 6);
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
    assert_eq!(budget.available(), 8);
}

#[tokio::test(start_paused = true)]
async fn requests_that_do_not_buffer_take_nothing() {
    let budget = BodyBudget::new(1);
    let (mut service, mut handle) = spawn_with(&budget);
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"a long body"),
            Intent::Http(HttpReason::ModeHttp),
            TransportMode::Http,
        ),
    );
    let (http, reply) = next(&mut handle).await;
    assert!(!http.body().is_buffered());
    reply.send_response(Response::new("http"));
    assert!(response.await.unwrap().is_ok());
    assert_eq!(budget.available(), 1);
}

/// Strict `websocket` mode is never replayed, but its WebSocket message is the whole body in
/// memory: it is held from the same budget (and refused past it, nothing sent), and given back
/// when the request is done.
#[tokio::test(start_paused = true)]
async fn a_strict_mode_body_is_held_from_the_budget_too() {
    let budget = BodyBudget::new(10);
    let (mut service, mut handle) = spawn_with(&budget);
    let strict = || {
        request(
            TestBody::chunked(b"123456", 2),
            Intent::WebSocket,
            TransportMode::WebSocket,
        )
    };
    let first = start(&mut service, strict());
    let (websocket, reply) = next(&mut handle).await;
    assert_eq!(
        bytes_of(websocket.into_body()).await,
        Bytes::from_static(b"123456")
    );
    assert_eq!(budget.available(), 4);
    let second = start(&mut service, strict());
    let error = second.await.unwrap().unwrap_err();
    assert!(error.is::<BudgetExhausted>(), "{error}");
    reply.send_response(Response::new("websocket"));
    assert!(first.await.unwrap().is_ok());
    assert_eq!(budget.available(), 10);
    assert_no_more_requests(service, &mut handle).await;
}

/// A strict-mode body declared larger than the body limit is refused at once: it cannot go
/// over HTTP instead.
#[tokio::test(start_paused = true)]
async fn a_strict_mode_body_declared_too_large_is_refused() {
    let config = FallbackConfig::builder().body_limit(4).build().unwrap();
    let (mut service, mut handle) =
        mock::spawn_layer(FallbackLayer::new(config).with_budget(BodyBudget::new(100)));
    let response = send(
        &mut service,
        request(
            TestBody::exact(b"123456"),
            Intent::WebSocket,
            TransportMode::WebSocket,
        ),
    );
    let error = response.await.unwrap().unwrap_err();
    assert!(error.is::<BodyTooLarge>(), "{error}");
    assert_no_more_requests(service, &mut handle).await;
}
