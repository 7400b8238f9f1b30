//! The response [`Body`]: a WebSocket answer or the inner HTTP service's body.
//!
//! # Example
//!
//! ```
//! use http_body_util::BodyExt;
//! use wsfirst_websocket::Body;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst_core::BoxError> {
//! let body = Body::http(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")));
//! assert!(!body.is_websocket());
//! assert_eq!(body.collect().await?.to_bytes(), "hi");
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Sink, StreamExt};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use wsfirst_core::{BoxError, FailureKind, Phase, WsFailure};

use crate::{
    Codec, Decoded, Exchange, Message,
    metrics::{record_failure, record_stream_error},
    pool::{
        pooled::Pooled,
        stall::{Watchable, Watched},
    },
    read::read,
};

pin_project! {
    /// The response body of [`WebSocket`](crate::WebSocket): the frames of a WebSocket answer
    /// as they arrive, or the inner HTTP service's body unchanged.
    ///
    /// A WebSocket answer that fails after its first event (the connection closed, a timeout,
    /// an unreadable or oversized message) ends with an error whose source chain holds a
    /// [`WsFailure`] in [`Phase::MidStream`]. An error the upstream reports in the answer
    /// itself (a [`Decoded::Error`] with a frame, such as the Responses API's `error` event)
    /// is forwarded in the answer's format and the body then ends cleanly, as the HTTP
    /// endpoint's stream does.
    ///
    /// A streaming answer that is not polled for the pool's
    /// [`write_stall_timeout`](crate::PoolBuilder::write_stall_timeout) after handing out a
    /// frame loses its connection (closed, never pooled again) and ends with a
    /// [`FailureKind::Local`] failure in [`Phase::MidStream`]: see [`Pool`](crate::Pool), "The
    /// write-stall deadline".
    pub struct Body<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        WebSocket { inner: WsBody },
        Http { #[pin] inner: B },
    }
}

impl<B> Body<B> {
    /// Wraps an HTTP body.
    pub fn http(inner: B) -> Self {
        Self {
            kind: Kind::Http { inner },
        }
    }

    pub(crate) fn websocket(inner: WsBody) -> Self {
        Self {
            kind: Kind::WebSocket { inner },
        }
    }

    /// Whether the body is a WebSocket answer.
    pub fn is_websocket(&self) -> bool {
        matches!(self.kind, Kind::WebSocket { .. })
    }
}

impl<B> fmt::Debug for Body<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::WebSocket { inner } => f.debug_tuple("Body::WebSocket").field(inner).finish(),
            Kind::Http { .. } => f
                .debug_tuple("Body::Http")
                .field(&std::any::type_name::<B>())
                .finish(),
        }
    }
}

impl<B> http_body::Body for Body<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::WebSocket { inner } => inner.poll_frame(cx),
            KindProj::Http { inner } => inner.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::WebSocket { inner } => inner.is_end_stream(),
            Kind::Http { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::WebSocket { inner } => inner.size_hint(),
            Kind::Http { inner } => inner.size_hint(),
        }
    }
}

/// A WebSocket answer: complete (non-streaming) or read from the socket as the caller polls,
/// watched for a caller that stops reading.
pub(crate) enum WsBody {
    Full(Option<Bytes>),
    Stream(Watched<Streaming>),
}

impl fmt::Debug for WsBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsBody::Full(bytes) => f
                .debug_struct("Full")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            WsBody::Stream(watched) => {
                let streaming = watched.lock();
                f.debug_struct("Stream")
                    .field("events", &streaming.exchange.events())
                    .field("done", &streaming.done)
                    .field("stalled", &streaming.stalled.is_some())
                    .finish()
            }
        }
    }
}

/// The rest of a streaming answer after its first event. The socket is read only when the
/// caller polls the body, so a slow reader slows the upstream down (TCP backpressure) instead of
/// the answer piling up in memory; a reader that stops altogether loses the connection after
/// the write-stall timeout (see [`Watched`]).
pub(crate) struct Streaming {
    pub(crate) conn: Option<Pooled>,
    pub(crate) codec: Arc<dyn Codec>,
    pub(crate) exchange: Exchange,
    /// A frame to hand out before reading on (the first event's).
    pub(crate) pending: Option<Bytes>,
    pub(crate) done: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) idle: Pin<Box<Sleep>>,
    /// When the body handed out its last frame, if it was not polled since (from its creation,
    /// with the first event's frame waiting). `None` while the caller waits on the body.
    pub(crate) handed_out: Option<Instant>,
    /// The failure the watchdog ended the answer with, for the next poll.
    pub(crate) stalled: Option<WsFailure>,
    /// Messages for the connection from the answer's [`Steering`](crate::Steering) handle.
    pub(crate) steering: Option<mpsc::Receiver<Message>>,
    /// A steering message taken from the handle and not yet written.
    pub(crate) unsent: Option<Message>,
    /// Whether written steering messages still need a flush.
    pub(crate) unflushed: bool,
    /// Responses the upstream said it will run after the current one
    /// ([`Codec::extends_answer`]): the answer ends only after them.
    pub(crate) successors: usize,
    /// Set at the end of a response followed by a successor: the successor's id is the
    /// connection's latest response (for the conversation's next turn).
    pub(crate) successor_started: bool,
    /// Whether the request's responses live only in the connection's memory.
    pub(crate) holds: bool,
}

impl Watchable for Streaming {
    fn handed_out(&self) -> Option<Instant> {
        self.handed_out
    }

    fn holds_connection(&self) -> bool {
        self.conn.is_some()
    }

    fn stall(&mut self, after: Duration) -> Option<Pooled> {
        let failure = WsFailure::new(
            Phase::MidStream,
            FailureKind::Local(format!(
                "the caller read nothing of the answer for {after:?}: its websocket connection was closed"
            )),
        );
        record_failure(&failure);
        self.stalled = Some(failure);
        self.handed_out = None;
        self.conn.take()
    }
}

impl Streaming {
    fn fail(&mut self, failure: WsFailure) -> WsFailure {
        let failure = failure.in_phase(Phase::MidStream);
        record_failure(&failure);
        self.conn = None;
        self.done = true;
        failure
    }

    /// Writes the messages of the [`Steering`](crate::Steering) handle to the connection
    /// without waiting: what cannot be written now waits for the next poll (the receiver and
    /// the socket wake the caller). A write that fails is left to the read side, which sees
    /// the broken connection.
    fn write_steering(&mut self, cx: &mut Context<'_>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let stream = conn.stream();
        loop {
            if self.unsent.is_none() {
                match self
                    .steering
                    .as_mut()
                    .map(|steering| steering.poll_recv(cx))
                {
                    Some(Poll::Ready(Some(message))) => self.unsent = Some(message),
                    Some(Poll::Ready(None)) => self.steering = None,
                    Some(Poll::Pending) | None => {}
                }
            }
            let Some(message) = self.unsent.take() else {
                break;
            };
            match Pin::new(&mut *stream).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let _ = Pin::new(&mut *stream).start_send(message);
                    self.unflushed = true;
                }
                Poll::Ready(Err(_)) => break,
                Poll::Pending => {
                    self.unsent = Some(message);
                    break;
                }
            }
        }
        if self.unflushed && Pin::new(&mut *stream).poll_flush(cx).is_ready() {
            self.unflushed = false;
        }
    }

    fn end(&mut self) {
        self.done = true;
        self.steering = None;
        if let Some(conn) = self.conn.take() {
            if !self.codec.ends_on_close() {
                conn.release();
            }
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.pending.take() {
            self.handed_out = Some(Instant::now());
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if let Some(failure) = self.stalled.take() {
            self.done = true;
            return Poll::Ready(Some(Err(Box::new(failure))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        // The caller is reading: until a frame is handed out, the stall deadline does not run.
        self.handed_out = None;
        loop {
            self.write_steering(cx);
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let incoming = match conn.stream().poll_next_unpin(cx) {
                Poll::Pending => {
                    ready!(self.idle.as_mut().poll(cx));
                    let failure = self.fail(WsFailure::new(
                        Phase::MidStream,
                        FailureKind::Timeout(self.idle_timeout),
                    ));
                    return Poll::Ready(Some(Err(Box::new(failure))));
                }
                Poll::Ready(incoming) => incoming,
            };
            if let Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) = &incoming {
                if self.codec.extends_answer(message) {
                    self.successors += 1;
                }
                if self.successor_started {
                    if let Some(id) = self.codec.response_id(message) {
                        self.successor_started = false;
                        if let Some(conn) = self.conn.as_mut() {
                            conn.produced(&id, self.holds);
                        }
                    }
                }
            }
            match read(incoming, &*self.codec, &self.exchange, Phase::MidStream) {
                Ok(Decoded::Ignore) => continue,
                Ok(Decoded::End { frame }) if self.successors > 0 => {
                    // The upstream runs another response for this request: read on to its end.
                    self.successors -= 1;
                    self.successor_started = true;
                    self.exchange.record_event();
                    let now = Instant::now();
                    self.idle.as_mut().reset(now + self.idle_timeout);
                    if let Some(frame) = frame {
                        self.handed_out = Some(now);
                        return Poll::Ready(Some(Ok(Frame::data(frame))));
                    }
                }
                Ok(Decoded::Event { frame }) => {
                    self.exchange.record_event();
                    let now = Instant::now();
                    self.idle.as_mut().reset(now + self.idle_timeout);
                    if let Some(frame) = frame {
                        self.handed_out = Some(now);
                        return Poll::Ready(Some(Ok(Frame::data(frame))));
                    }
                }
                Ok(Decoded::End { frame }) => {
                    self.exchange.record_event();
                    self.end();
                    return Poll::Ready(frame.map(|frame| Ok(Frame::data(frame))));
                }
                Ok(Decoded::Error {
                    frame: Some(frame),
                    code,
                    message,
                    ..
                }) => {
                    // The error in the answer's own format ends the answer, as the HTTP
                    // stream would end: a clean end, so the caller (and the breaker) sees an
                    // answer that reached its end. The connection is not reused: what else
                    // the upstream may still send for this request is unknown.
                    record_stream_error(code.as_deref(), &message);
                    self.exchange.record_event();
                    self.conn = None;
                    self.done = true;
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                Ok(Decoded::Error {
                    frame: None,
                    code,
                    message,
                    scope,
                }) => {
                    // Nothing to tell the caller in the answer's format: the body's error does.
                    let failure = self.fail(WsFailure::new(
                        Phase::MidStream,
                        FailureKind::UpstreamError {
                            code,
                            message,
                            scope,
                        },
                    ));
                    return Poll::Ready(Some(Err(Box::new(failure))));
                }
                Ok(Decoded::Reject { status, .. }) => {
                    // The response (status 200) left long ago: a codec may not reject now.
                    let failure = self.fail(WsFailure::new(
                        Phase::MidStream,
                        FailureKind::Protocol(format!(
                            "the codec answered with status {} after the answer's first event",
                            status.as_u16()
                        )),
                    ));
                    return Poll::Ready(Some(Err(Box::new(failure))));
                }
                Err(failure) => {
                    let failure = self.fail(failure);
                    return Poll::Ready(Some(Err(Box::new(failure))));
                }
            }
        }
    }
}

impl WsBody {
    /// A streaming answer, watched for a caller that stops reading (the pool's write-stall
    /// timeout) while it holds its connection.
    pub(crate) fn stream(streaming: Streaming) -> Self {
        let stall = streaming
            .conn
            .as_ref()
            .map_or(Duration::MAX, Pooled::write_stall_timeout);
        WsBody::Stream(Watched::new(streaming, stall))
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            WsBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            WsBody::Stream(watched) => {
                let (poll, ended) = {
                    let mut streaming = watched.lock();
                    let poll = streaming.poll_frame(cx);
                    (poll, streaming.conn.is_none())
                };
                if ended {
                    watched.stop();
                }
                poll
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WsBody::Full(bytes) => bytes.is_none(),
            WsBody::Stream(watched) => {
                let streaming = watched.lock();
                streaming.done && streaming.pending.is_none() && streaming.stalled.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            WsBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            WsBody::Full(None) => SizeHint::with_exact(0),
            WsBody::Stream(_) => SizeHint::default(),
        }
    }
}
