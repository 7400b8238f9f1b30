//! The HTTP upstream's response body: the upstream's bytes as they arrive, failing when the
//! upstream goes silent for longer than the idle timeout.
//!
//! Not tower-http's `TimeoutBody`, whose idle timer (reset by each frame) would fit: in
//! tower-http 0.7 it forwards neither `size_hint` nor `is_end_stream`, so a JSON answer's exact
//! length would be lost (served chunked instead of with its `Content-Length`) and the end of a
//! body would cost one more poll.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use tokio::time::{Instant, Sleep};
use wsfirst_core::BoxError;

use crate::{HttpUpstreamError, HttpUpstreamErrorKind, service::Upstream};

/// The body of an [`HttpUpstream`](crate::HttpUpstream) response: the upstream's body,
/// unchanged, that ends with an [`HttpUpstreamError`] of kind
/// [`BodyTimeout`](HttpUpstreamErrorKind::BodyTimeout) when no data arrives for the idle timeout
/// (each frame restarts the timer, so a long answer that keeps coming never times out).
///
/// `Unpin`, like hyper's own body (the timer is boxed once per response).
pub struct UpstreamBody {
    inner: Incoming,
    idle: Option<Pin<Box<Sleep>>>,
    timeout: Option<Duration>,
    host: Upstream,
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, timeout: Option<Duration>, host: Upstream) -> Self {
        Self {
            inner,
            idle: timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout))),
            timeout,
            host,
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("idle_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let (Some(idle), Some(timeout)) = (this.idle.as_mut(), this.timeout) {
                idle.as_mut().reset(Instant::now() + timeout);
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if let Some(idle) = this.idle.as_mut() {
            ready!(idle.as_mut().poll(cx));
            tracing::debug!(upstream = %this.host, "http upstream body idle timeout elapsed");
            return Poll::Ready(Some(Err(Box::new(HttpUpstreamError::without_source(
                HttpUpstreamErrorKind::BodyTimeout,
                this.host.host(),
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
