//! A response future polled again after it completed panics, on both paths, with one message.

use std::{
    future::{Future, poll_fn},
    pin::pin,
};

use http::Request;
use tower_service::Service;
use wsfirst_core::{BoxError, TransportMode};

use super::{OPENAI_WS, openai_table, route};
use crate::Eligibility;

/// Runs `future` to its end, then polls it once more.
async fn poll_twice<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let output = future.as_mut().await;
    poll_fn(|cx| future.as_mut().poll(cx)).await;
    output
}

fn service() -> Eligibility<
    crate::EligibilityTable,
    impl Service<Request<String>, Response = (), Error = BoxError, Future: Unpin>,
> {
    Eligibility::new(
        tower::service_fn(|_: Request<String>| std::future::ready(Ok::<_, BoxError>(()))),
        openai_table(),
    )
}

#[tokio::test]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn inner_future_panics_when_polled_again() {
    let mut request = Request::new(String::new());
    request.extensions_mut().insert(route(
        "openai",
        "openai-responses",
        Some(OPENAI_WS),
        TransportMode::Auto,
    ));
    poll_twice(service().call(request)).await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
async fn missing_route_error_panics_when_polled_again() {
    poll_twice(service().call(Request::new(String::new())))
        .await
        .unwrap_err();
}
