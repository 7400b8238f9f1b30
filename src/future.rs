//! Future types

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;
use wsfirst_core::BoxError;

use crate::respond::{error_response, success};

pin_project! {
    /// The future of [`RouteService`](crate::RouteService): never fails, failures become
    /// responses (see [`error_response`]).
    ///
    /// `G` is the future of a route with a circuit breaker, `U` of a route without one.
    pub struct ResponseFuture<G, U> {
        #[pin]
        kind: Kind<G, U>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<G, U> {
        Guarded { #[pin] future: G },
        Unguarded { #[pin] future: U },
        Failed { error: Option<BoxError> },
    }
}

impl<G, U> ResponseFuture<G, U> {
    pub(crate) fn guarded(future: G) -> Self {
        Self {
            kind: Kind::Guarded { future },
        }
    }

    pub(crate) fn unguarded(future: U) -> Self {
        Self {
            kind: Kind::Unguarded { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<G, U> std::fmt::Debug for ResponseFuture<G, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<G, U, GB, UB> Future for ResponseFuture<G, U>
where
    G: Future<Output = Result<Response<GB>, BoxError>>,
    U: Future<Output = Result<Response<UB>, BoxError>>,
    GB: http_body::Body<Data = Bytes> + Send + 'static,
    GB::Error: Into<BoxError>,
    UB: http_body::Body<Data = Bytes> + Send + 'static,
    UB::Error: Into<BoxError>,
{
    type Output = Result<Response<axum::body::Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project().kind.project() {
            KindProj::Guarded { future } => match std::task::ready!(future.poll(cx)) {
                Ok(response) => success(response),
                Err(error) => error_response(&*error),
            },
            KindProj::Unguarded { future } => match std::task::ready!(future.poll(cx)) {
                Ok(response) => success(response),
                Err(error) => error_response(&*error),
            },
            KindProj::Failed { error } => {
                let error = error
                    .take()
                    .expect("`ResponseFuture` polled after completion");
                error_response(&*error)
            }
        };
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    type Never = std::future::Pending<Result<Response<axum::body::Body>, BoxError>>;

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn a_failed_future_polled_after_completion_panics() {
        let mut future = std::pin::pin!(ResponseFuture::<Never, Never>::failed("broken".into()));
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 502),
            other => panic!("unexpected {other:?}"),
        }
        let _ = future.as_mut().poll(&mut cx);
    }
}
