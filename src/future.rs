//! Future types

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;
use wsfirst_core::BoxError;

use crate::respond::{error_response, success};

pin_project! {
    /// The future of [`Respond`](crate::respond::Respond): never fails, failures become
    /// responses (see [`error_response`]).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        NotReady { error: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::NotReady { error: Some(error) },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<axum::body::Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project().state.project() {
            StateProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(response) => success(response),
                Err(error) => error_response(&*error.into()),
            },
            StateProj::NotReady { error } => {
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
        let mut future = std::pin::pin!(ResponseFuture::<Never>::failed("broken".into()));
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 502),
            other => panic!("unexpected {other:?}"),
        }
        let _ = future.as_mut().poll(&mut cx);
    }
}
