//! The response future's contract: polled after completion, it panics.

use std::{pin::pin, task::Context};

use super::*;

/// Polls `future` to completion, then once more; returns the panic's message.
fn poll_after_completion<F: std::future::Future>(future: F) -> String {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_ready());
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = future.as_mut().poll(&mut cx);
    }))
    .unwrap_err();
    panic.downcast_ref::<&str>().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn polled_after_completion_it_panics() {
    let mut h = Harness::new(config().build().unwrap());
    let route = route(TransportMode::Auto);
    // A WebSocket attempt, answered.
    let (future, send) = h.start_ws(&route).await;
    send.send_response(response(Some(Served::websocket(Duration::ZERO))));
    assert_eq!(
        poll_after_completion(future),
        "`ResponseFuture` polled after completion"
    );
    // A request refused for a missing extension: its error, then the panic.
    let mut no_route = Request::new(());
    no_route.extensions_mut().insert(Intent::WebSocket);
    let refused = h.service.ready().await.unwrap().call(no_route);
    assert_eq!(
        poll_after_completion(refused),
        "`ResponseFuture` polled after completion"
    );
}
