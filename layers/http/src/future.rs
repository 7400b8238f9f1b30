//! Future types

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use wsfirst_core::BoxError;

use crate::{
    HttpUpstreamError, HttpUpstreamErrorKind, UpstreamBody, error::client_error, service::Upstream,
};

pin_project! {
    /// The response future of [`HttpUpstream`](crate::HttpUpstream).
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Failed { error: Option<BoxError> },
        Done,
        Waiting {
            #[pin]
            response: hyper_util::client::legacy::ResponseFuture,
            #[pin]
            deadline: Option<Sleep>,
            idle: Option<Duration>,
            host: Upstream,
        },
    }
}

impl ResponseFuture {
    pub(crate) fn new(
        response: hyper_util::client::legacy::ResponseFuture,
        timeout: Option<Duration>,
        idle: Option<Duration>,
        host: Upstream,
    ) -> Self {
        Self {
            state: State::Waiting {
                response,
                deadline: timeout.map(tokio::time::sleep),
                idle,
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
    type Output = Result<Response<UpstreamBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Failed { error } => Err(error
                .take()
                .expect("`ResponseFuture` polled after completion")),
            StateProj::Done => panic!("`ResponseFuture` polled after completion"),
            StateProj::Waiting {
                response,
                deadline,
                idle,
                host,
            } => {
                if let Poll::Ready(result) = response.poll(cx) {
                    result
                        .map(|response| {
                            response.map(|body| UpstreamBody::new(body, *idle, host.clone()))
                        })
                        .map_err(|error| Box::new(client_error(error, &host.host())) as BoxError)
                } else if let Some(deadline) = deadline.as_pin_mut() {
                    ready!(deadline.poll(cx));
                    tracing::debug!(upstream = %host, "http upstream response timeout elapsed");
                    Err(Box::new(HttpUpstreamError::without_source(
                        HttpUpstreamErrorKind::Timeout,
                        host.host(),
                    )) as BoxError)
                } else {
                    return Poll::Pending;
                }
            }
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
