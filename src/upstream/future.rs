//! Future types

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use wsfirst_core::BoxError;

use super::{HttpUpstreamError, HttpUpstreamErrorKind, service::client_error};

pin_project! {
    /// The response future of [`HttpUpstream`](super::HttpUpstream).
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Failed { error: Option<BoxError> },
        Waiting {
            #[pin]
            response: hyper_util::client::legacy::ResponseFuture,
            #[pin]
            deadline: Option<Sleep>,
            host: Arc<str>,
        },
    }
}

impl ResponseFuture {
    pub(crate) fn new(
        response: hyper_util::client::legacy::ResponseFuture,
        timeout: Option<Duration>,
        host: Arc<str>,
    ) -> Self {
        Self {
            state: State::Waiting {
                response,
                deadline: timeout.map(tokio::time::sleep),
                host,
            },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<hyper::body::Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                "http upstream response future polled after completion".into()
            }))),
            StateProj::Waiting {
                response,
                deadline,
                host,
            } => {
                if let Poll::Ready(result) = response.poll(cx) {
                    return Poll::Ready(
                        result.map_err(|error| Box::new(client_error(error, host)) as BoxError),
                    );
                }
                if let Some(deadline) = deadline.as_pin_mut() {
                    ready!(deadline.poll(cx));
                    tracing::debug!(upstream = %host, "http upstream response timeout elapsed");
                    return Poll::Ready(Err(Box::new(HttpUpstreamError::without_source(
                        HttpUpstreamErrorKind::Timeout,
                        &**host,
                    ))));
                }
                Poll::Pending
            }
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
