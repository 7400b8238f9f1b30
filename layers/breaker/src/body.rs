//! The response body wrapper that reports how a WebSocket-served stream ended.
//!
//! # Example
//!
//! A body that is not tracked (the request went over HTTP) passes frames through unchanged:
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use wsfirst_breaker::ResponseBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let body = ResponseBody::untracked(Full::new(bytes::Bytes::from_static(b"hello")));
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hello");
//! # }
//! ```

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use wsfirst_core::{BoxError, FailureKind, Phase, WsFailure, find_ws_failure};

use crate::cache::SlotRef;

/// Which key a WebSocket-served body reports to when it ends.
#[derive(Debug)]
pub(crate) struct BodyTracker {
    pub(crate) slot: SlotRef,
    pub(crate) generation: u32,
}

pin_project! {
    /// Response body of [`CircuitBreaker`](crate::CircuitBreaker): the inner body, unchanged,
    /// plus a report to the breaker when a WebSocket-served body ends. The end of the stream is a
    /// success; an error is a mid-stream failure (the [`WsFailure`] in the error's source chain,
    /// or a generic mid-stream I/O failure when there is none); a body dropped before its end
    /// reports nothing. Errors are boxed.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        tracker: Option<BodyTracker>,
    }
}

impl<B> ResponseBody<B> {
    #[inline]
    pub(crate) fn new(inner: B, tracker: Option<BodyTracker>) -> Self
    where
        B: Body,
    {
        let mut body = ResponseBody { inner, tracker };
        if body.inner.is_end_stream() {
            // Nobody may poll an empty body: its end is now.
            if let Some(tracker) = body.tracker.take() {
                tracker.slot.closed_success(tracker.generation);
            }
        }
        body
    }

    /// A body that reports nothing.
    pub fn untracked(inner: B) -> Self {
        ResponseBody {
            inner,
            tracker: None,
        }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// The inner body; the breaker hears nothing more of it.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        match ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if this.inner.is_end_stream() {
                    if let Some(tracker) = this.tracker.take() {
                        tracker.slot.closed_success(tracker.generation);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                let error: BoxError = error.into();
                if let Some(tracker) = this.tracker.take() {
                    let failure = find_ws_failure(&*error).cloned().unwrap_or_else(|| {
                        WsFailure::new(
                            Phase::MidStream,
                            FailureKind::Io {
                                kind: std::io::ErrorKind::Other,
                                message: error.to_string(),
                            },
                        )
                    });
                    tracker
                        .slot
                        .closed_failure(tracker.generation, &failure, Instant::now());
                }
                Poll::Ready(Some(Err(error)))
            }
            None => {
                if let Some(tracker) = this.tracker.take() {
                    tracker.slot.closed_success(tracker.generation);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
