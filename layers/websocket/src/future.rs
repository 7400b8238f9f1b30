//! Future types

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
        match self.project().state.project() {
            StateProj::Http { future, reason } => {
                let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                if let Some(reason) = reason.take() {
                    if response.extensions().get::<Served>().is_none() {
                        response.extensions_mut().insert(Served::http(reason));
                    }
                }
                Poll::Ready(Ok(response.map(Body::http)))
            }
            StateProj::WebSocket { future } => {
                let response = ready!(future.as_mut().poll(cx))?;
                Poll::Ready(Ok(response.map(Body::websocket)))
            }
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "response future polled after completion".into()))),
        }
    }
}
