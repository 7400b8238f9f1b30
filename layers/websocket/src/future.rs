//! Future types
//!
//! [`ResponseFuture`] is the future of [`WebSocket`](crate::WebSocket): it resolves with the
//! inner HTTP service's response or, for a WebSocket request, once the first event arrived.
//! Polling it again after it completed panics, like tower's futures.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Response;
use pin_project_lite::pin_project;
use wsfirst_core::{BoxError, HttpReason, Served};

use crate::{Body, body::WsBody};

/// The boxed WebSocket attempt: one allocation per attempt, dwarfed by its network I/O.
pub(crate) type AttemptFuture =
    Pin<Box<dyn Future<Output = Result<Response<WsBody>, BoxError>> + Send + 'static>>;

pin_project! {
    /// Response future of [`WebSocket`](crate::WebSocket).
    ///
    /// The HTTP pass-through path polls the inner future in place (no allocation); the WebSocket
    /// path is one boxed attempt.
    ///
    /// # Panics
    ///
    /// When polled again after it completed.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Http {
            #[pin]
            future: F,
            reason: Option<HttpReason>,
        },
        WebSocket {
            future: AttemptFuture,
        },
        Failed {
            error: Option<BoxError>,
        },
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn http(future: F, reason: Option<HttpReason>) -> Self {
        Self {
            state: State::Http { future, reason },
        }
    }

    pub(crate) fn websocket(future: AttemptFuture) -> Self {
        Self {
            state: State::WebSocket { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Http { .. } => "http",
            State::WebSocket { .. } => "websocket",
            State::Failed { .. } => "failed",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Http { future, reason } => {
                let result = ready!(future.poll(cx));
                let reason = reason.take();
                result.map_err(Into::into).map(|mut response| {
                    if let Some(reason) = reason {
                        if response.extensions().get::<Served>().is_none() {
                            response.extensions_mut().insert(Served::http(reason));
                        }
                    }
                    response.map(Body::http)
                })
            }
            StateProj::WebSocket { future } => {
                ready!(future.as_mut().poll(cx)).map(|response| response.map(Body::websocket))
            }
            StateProj::Failed { error } => Err(error
                .take()
                .unwrap_or_else(|| unreachable!("a failed future holds its error until done"))),
            StateProj::Done => panic!("`ResponseFuture` polled after completion"),
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use futures_util::FutureExt;

    use super::*;

    type Inner = Ready<Result<Response<()>, BoxError>>;

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn polling_a_completed_http_future_panics() {
        let mut future = ResponseFuture::http(ready(Ok(Response::new(()))) as Inner, None);
        assert!((&mut future).now_or_never().unwrap().is_ok());
        let _ = (&mut future).now_or_never();
    }

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn polling_a_completed_failed_future_panics() {
        let mut future = ResponseFuture::<Inner>::failed("no intent".into());
        assert!((&mut future).now_or_never().unwrap().is_err());
        let _ = (&mut future).now_or_never();
    }
}
