//! Future types
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Empty;
//! use tower::{Layer, Service, ServiceExt};
//! use wsfirst_core::{BoxError, HttpReason, Intent};
//! use wsfirst_fallback::{FallbackLayer, ReplayBody, future::ResponseFuture};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let inner = tower::service_fn(|_: Request<ReplayBody<Empty<Bytes>>>| async {
//!     Ok::<_, BoxError>(Response::new("answer"))
//! });
//! let mut service = FallbackLayer::default().layer(inner);
//!
//! let mut request = Request::new(Empty::<Bytes>::new());
//! request.extensions_mut().insert(Intent::Http(HttpReason::ModeHttp));
//! let future: ResponseFuture<_, Empty<Bytes>> = service.ready().await?.call(request);
//! assert_eq!(*future.await?.body(), "answer");
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, request::Parts};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use wsfirst_core::{BoxError, HttpReason, Intent, Route, Served, WsFailure, find_ws_failure};

use crate::{
    BodyTooLarge, FallbackConfig, HttpAfterWebSocket, ReadBodyError, ReplayBody, warn::Warnings,
};

pin_project! {
    /// Response future of [`Fallback`](crate::Fallback).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future, B>,
        // Everything a candidate needs to be replayed; `None` for a pass-through.
        candidate: Option<Candidate<S>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Not a candidate: the inner future's answer is the answer.
        PassThrough {
            #[pin]
            future: F,
        },
        // Failed before calling the inner service, or finished (`None`).
        Failed {
            error: Option<BoxError>,
        },
        // Reading the caller's body into memory.
        Buffering {
            #[pin]
            body: B,
        },
        // The WebSocket attempt.
        WebSocket {
            #[pin]
            future: F,
        },
        // The WebSocket attempt failed in a replay-safe phase; waiting for the inner service.
        WaitingReady,
        // The replay over HTTP.
        Http {
            #[pin]
            future: F,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(crate) fn pass_through(future: S::Future) -> Self {
        Self {
            state: State::PassThrough { future },
            candidate: None,
        }
    }

    pub(crate) fn error(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            candidate: None,
        }
    }

    pub(crate) fn candidate(body: B, candidate: Candidate<S>) -> Self {
        Self {
            state: State::Buffering { body },
            candidate: Some(candidate),
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::PassThrough { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(polled_after_completion)));
                }
                StateProj::Buffering { body } => {
                    let Some(candidate) = this.candidate.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let error: BoxError = match ready!(body.poll_frame(cx)) {
                        Some(Ok(frame)) => match candidate.push(frame) {
                            Ok(()) => continue,
                            Err(too_large) => Box::new(too_large),
                        },
                        Some(Err(error)) => Box::new(ReadBodyError::new(error.into())),
                        None => {
                            let request = candidate.websocket_request();
                            candidate.started = Instant::now();
                            let future = candidate.service.call(request);
                            this.state.set(State::WebSocket { future });
                            continue;
                        }
                    };
                    // Nothing was sent upstream.
                    *this.candidate = None;
                    this.state.set(State::Failed { error: None });
                    return Poll::Ready(Err(error));
                }
                StateProj::WebSocket { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Failed { error: None });
                    let Some(candidate) = this.candidate.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let error: BoxError = match result {
                        Ok(response) => {
                            *this.candidate = None;
                            return Poll::Ready(Ok(response));
                        }
                        Err(error) => error.into(),
                    };
                    let replay = candidate.config.get_replay();
                    match find_ws_failure(&*error) {
                        Some(failure) if replay.allows(failure) => {
                            candidate.record_fallback(failure.clone());
                            this.state.set(State::WaitingReady);
                        }
                        _ => {
                            *this.candidate = None;
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                StateProj::WaitingReady => {
                    let Some(candidate) = this.candidate.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let ready = ready!(candidate.service.poll_ready(cx));
                    let request = match ready {
                        Ok(()) => candidate.http_request(),
                        Err(error) => Err(error.into()),
                    };
                    match request {
                        Ok(request) => {
                            let future = candidate.service.call(request);
                            this.state.set(State::Http { future });
                        }
                        Err(error) => {
                            let failure = candidate.failure.take();
                            *this.candidate = None;
                            this.state.set(State::Failed { error: None });
                            return Poll::Ready(Err(http_failed(failure, error)));
                        }
                    }
                }
                StateProj::Http { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Failed { error: None });
                    let Some(candidate) = this.candidate.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    return Poll::Ready(match (result, candidate.failure) {
                        (Ok(mut response), Some(failure)) => {
                            response
                                .extensions_mut()
                                .insert(Served::fallback(failure, candidate.attempt));
                            Ok(response)
                        }
                        (Ok(response), None) => Ok(response),
                        (Err(error), failure) => Err(http_failed(failure, error.into())),
                    });
                }
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::PassThrough { .. } => "pass_through",
            State::Failed { .. } => "failed",
            State::Buffering { .. } => "buffering",
            State::WebSocket { .. } => "websocket",
            State::WaitingReady => "waiting_ready",
            State::Http { .. } => "http",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

fn polled_after_completion() -> BoxError {
    "the fallback response future was polled after it completed".into()
}

fn http_failed(failure: Option<WsFailure>, error: BoxError) -> BoxError {
    match failure {
        Some(failure) => Box::new(HttpAfterWebSocket::new(failure, error)),
        None => error,
    }
}

/// A WebSocket candidate's request and everything needed to replay it.
pub(crate) struct Candidate<S> {
    /// The ready inner service, moved out of `Fallback`.
    service: S,
    /// The request without its body; taken by the replay.
    head: Option<Parts>,
    route: Route,
    config: FallbackConfig,
    warnings: Arc<Warnings>,
    /// The declared size, as a capacity hint.
    declared: u64,
    buffer: Buffer,
    trailers: Option<HeaderMap>,
    /// When the WebSocket attempt started.
    started: Instant,
    /// The replay-safe failure of the WebSocket attempt, once it failed.
    failure: Option<WsFailure>,
    /// How long the WebSocket attempt took.
    attempt: Duration,
}

impl<S> Candidate<S> {
    pub(crate) fn new(
        service: S,
        head: Parts,
        route: Route,
        config: FallbackConfig,
        warnings: Arc<Warnings>,
        declared: u64,
    ) -> Self {
        Self {
            service,
            head: Some(head),
            route,
            config,
            warnings,
            declared,
            buffer: Buffer::Empty,
            trailers: None,
            started: Instant::now(),
            failure: None,
            attempt: Duration::ZERO,
        }
    }

    fn push(&mut self, frame: Frame<Bytes>) -> Result<(), BodyTooLarge> {
        match frame.into_data() {
            Ok(data) => {
                let limit = self.config.get_body_limit();
                if self.buffer.len().saturating_add(data.len()) > limit {
                    return Err(BodyTooLarge::new(limit));
                }
                let hint = usize::try_from(self.declared).unwrap_or(limit).min(limit);
                self.buffer.push(data, hint);
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    match &mut self.trailers {
                        Some(existing) => existing.extend(trailers),
                        None => self.trailers = Some(trailers),
                    }
                }
            }
        }
        Ok(())
    }

    /// The request for the WebSocket attempt: a copy of the caller's, as it came.
    fn websocket_request<B>(&mut self) -> Request<ReplayBody<B>> {
        let data = self.buffer.freeze();
        let body = ReplayBody::buffered_with_trailers(data, self.trailers.clone());
        let mut parts = Request::new(()).into_parts().0;
        if let Some(head) = &self.head {
            parts.method = head.method.clone();
            parts.uri = head.uri.clone();
            parts.version = head.version;
            parts.headers = head.headers.clone();
            parts.extensions = head.extensions.clone();
        }
        Request::from_parts(parts, body)
    }

    /// The replay: the caller's request, intent rewritten to a fallback.
    fn http_request<B>(&mut self) -> Result<Request<ReplayBody<B>>, BoxError> {
        let (Some(mut head), Some(failure)) = (self.head.take(), self.failure.clone()) else {
            return Err(polled_after_completion());
        };
        head.extensions
            .insert(Intent::Http(HttpReason::Fallback(failure)));
        let body = ReplayBody::buffered_with_trailers(self.buffer.freeze(), self.trailers.take());
        Ok(Request::from_parts(head, body))
    }

    /// Logs and counts a fallback, and keeps the failure for the replay.
    fn record_fallback(&mut self, failure: WsFailure) {
        let now = Instant::now();
        self.attempt = now.saturating_duration_since(self.started);
        let route = &self.route;
        let (phase, cause) = (failure.phase().as_str(), failure.kind().as_str());
        tracing::debug!(
            provider = route.provider(),
            api = route.api(),
            phase,
            cause,
            attempt_ms = self.attempt.as_millis() as u64,
            error = %failure,
            "websocket attempt failed before the first event; replaying the request over http",
        );
        metrics::counter!(
            "wsfirst_fallbacks_total",
            "provider" => route.provider_shared(),
            "cause" => cause,
            "phase" => phase,
        )
        .increment(1);
        if let Some(interval) = self.config.get_warn_interval() {
            let key = route.breaker_key();
            if let Some(quiet) = self.warnings.check(key, interval, now) {
                tracing::warn!(
                    provider = route.provider(),
                    api = route.api(),
                    key = %key,
                    phase,
                    cause,
                    fallbacks_not_logged = quiet,
                    error = %failure,
                    "websocket attempts are failing and requests fall back to http; \
                     this is logged at most once per {}s for this upstream",
                    interval.as_secs(),
                );
            }
        }
        self.failure = Some(failure);
    }
}

/// The buffered body: no copy for a body of one chunk.
enum Buffer {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Buffer {
    fn len(&self) -> usize {
        match self {
            Buffer::Empty => 0,
            Buffer::One(bytes) => bytes.len(),
            Buffer::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, data: Bytes, capacity: usize) {
        if data.is_empty() {
            return;
        }
        match self {
            Buffer::Empty => *self = Buffer::One(data),
            Buffer::One(first) => {
                let mut many = BytesMut::with_capacity(capacity.max(first.len() + data.len()));
                many.extend_from_slice(first);
                many.extend_from_slice(&data);
                *self = Buffer::Many(many);
            }
            Buffer::Many(many) => many.extend_from_slice(&data),
        }
    }

    /// The bytes so far, as one cheaply clonable `Bytes`.
    fn freeze(&mut self) -> Bytes {
        match std::mem::replace(self, Buffer::Empty) {
            Buffer::Empty => Bytes::new(),
            Buffer::One(bytes) => {
                *self = Buffer::One(bytes.clone());
                bytes
            }
            Buffer::Many(many) => {
                let bytes = many.freeze();
                *self = Buffer::One(bytes.clone());
                bytes
            }
        }
    }
}
