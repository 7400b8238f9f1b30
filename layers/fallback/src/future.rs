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

use bytes::Bytes;
use http::{HeaderMap, Request, Response, request::Parts};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use wsfirst_core::{
    BoxError, HttpReason, Intent, Route, Served, WebSocketOnly, WsFailure, find_websocket_required,
    find_ws_failure,
};

use crate::{
    BodyBudget, BodyTooLarge, BudgetPermit, FallbackConfig, HttpAfterWebSocket, ReadBodyError,
    ReplayBody, warn::Warnings,
};

/// What a [`ResponseFuture`] polled after it completed panics with.
const POLLED_AFTER_COMPLETION: &str = "`ResponseFuture` polled after completion";

/// What a candidate's state without its candidate (a bug) panics with.
const NO_CANDIDATE: &str = "a fallback candidate's state without its candidate";

pin_project! {
    /// Response future of [`Fallback`](crate::Fallback).
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics with "`ResponseFuture` polled after
    /// completion".
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S::Future, B>,
        // Everything a candidate needs to be replayed; `None` for a pass-through.
        candidate: Option<Candidate<S>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        B: Body,
    {
        // Not a candidate: the inner future's answer is the answer.
        PassThrough {
            #[pin]
            future: F,
        },
        // Failed before calling the inner service.
        Failed {
            error: Option<BoxError>,
        },
        // Reading the caller's body into memory: at most the body limit, each frame's bytes
        // held from the body budget first.
        Buffering {
            #[pin]
            body: B,
            chunks: Vec<Bytes>,
        },
        // The WebSocket attempt.
        WebSocket {
            #[pin]
            future: F,
        },
        // The WebSocket attempt failed and the setting replays it; waiting for the inner service.
        WaitingReady,
        // The replay over HTTP.
        Http {
            #[pin]
            future: F,
        },
        // The answer was returned.
        Done,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
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
            state: State::Buffering {
                body,
                chunks: Vec::new(),
            },
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
                StateProj::PassThrough { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(result.map_err(Into::into));
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect(POLLED_AFTER_COMPLETION);
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Buffering { body, chunks } => {
                    let frame = ready!(body.poll_frame(cx));
                    let candidate = this.candidate.as_mut().expect(NO_CANDIDATE);
                    let failed: BoxError = match frame {
                        Some(Ok(frame)) => match candidate.buffer(frame, chunks) {
                            Ok(()) => continue,
                            Err(error) => error,
                        },
                        // The body's own error.
                        Some(Err(error)) => Box::new(ReadBodyError::new(error.into())),
                        None => {
                            candidate.data = concat(std::mem::take(chunks));
                            let request = candidate.websocket_request();
                            candidate.started = Instant::now();
                            let future = candidate.service.call(request);
                            this.state.set(State::WebSocket { future });
                            continue;
                        }
                    };
                    // Nothing was sent upstream.
                    *this.candidate = None;
                    this.state.set(State::Done);
                    return Poll::Ready(Err(failed));
                }
                StateProj::WebSocket { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    let error: BoxError = match result {
                        Ok(response) => {
                            *this.candidate = None;
                            return Poll::Ready(Ok(response));
                        }
                        Err(error) => error.into(),
                    };
                    let candidate = this.candidate.as_mut().expect(NO_CANDIDATE);
                    let error = match candidate.websocket_only(error) {
                        // Never over HTTP (a warm-up): the refusal is the caller's answer.
                        Ok(refused) => {
                            *this.candidate = None;
                            return Poll::Ready(Err(refused));
                        }
                        Err(error) => error,
                    };
                    match find_ws_failure(&*error) {
                        Some(failure)
                            if candidate.replays && candidate.config.replay().allows(failure) =>
                        {
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
                    let candidate = this.candidate.as_mut().expect(NO_CANDIDATE);
                    match ready!(candidate.service.poll_ready(cx)) {
                        Ok(()) => {
                            let request = candidate.http_request();
                            let future = candidate.service.call(request);
                            this.state.set(State::Http { future });
                        }
                        Err(error) => {
                            let failure = candidate.failure.take();
                            *this.candidate = None;
                            this.state.set(State::Done);
                            return Poll::Ready(Err(http_failed(failure, error.into())));
                        }
                    }
                }
                StateProj::Http { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    let candidate = this.candidate.take().expect(NO_CANDIDATE);
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
                StateProj::Done => panic!("{POLLED_AFTER_COMPLETION}"),
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::PassThrough { .. } => "pass_through",
            State::Failed { .. } => "failed",
            State::Buffering { .. } => "buffering",
            State::WebSocket { .. } => "websocket",
            State::WaitingReady => "waiting_ready",
            State::Http { .. } => "http",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

fn http_failed(failure: Option<WsFailure>, error: BoxError) -> BoxError {
    match failure {
        Some(failure) => Box::new(HttpAfterWebSocket::new(failure, error)),
        None => error,
    }
}

/// The buffered chunks as one [`Bytes`] (without a copy when there is one chunk).
fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut data = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            for chunk in &chunks {
                data.extend_from_slice(chunk);
            }
            Bytes::from(data)
        }
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
    budget: BodyBudget,
    /// `false` in strict `websocket` mode: the body is buffered (within the budget) for the
    /// WebSocket message, never replayed.
    replays: bool,
    /// The budget's bytes for the buffered body, held until the candidate is done.
    held: Option<BudgetPermit>,
    /// The bytes buffered so far.
    buffered: usize,
    /// The buffered body, once read.
    data: Bytes,
    trailers: Option<HeaderMap>,
    /// When the WebSocket attempt started.
    started: Instant,
    /// The failure of the WebSocket attempt that the setting replays, once it failed.
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
        budget: BodyBudget,
    ) -> Self {
        Self {
            service,
            head: Some(head),
            route,
            config,
            warnings,
            budget,
            replays: true,
            held: None,
            buffered: 0,
            data: Bytes::new(),
            trailers: None,
            started: Instant::now(),
            failure: None,
            attempt: Duration::ZERO,
        }
    }

    /// Whether a failure the setting allows is replayed over HTTP (`false`: strict mode).
    pub(crate) fn replays(mut self, replays: bool) -> Self {
        self.replays = replays;
        self
    }

    /// Keeps a frame of the caller's body: data within the body limit and the budget, trailers.
    fn buffer(
        &mut self,
        frame: http_body::Frame<Bytes>,
        chunks: &mut Vec<Bytes>,
    ) -> Result<(), BoxError> {
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    match &mut self.trailers {
                        Some(all) => all.extend(trailers),
                        None => self.trailers = Some(trailers),
                    }
                }
                return Ok(());
            }
        };
        let limit = self.config.body_limit();
        let buffered = self.buffered.saturating_add(data.len());
        if buffered > limit {
            return Err(Box::new(BodyTooLarge::new(limit)));
        }
        match &mut self.held {
            Some(held) => held.grow(data.len())?,
            None => self.held = Some(self.budget.try_reserve(data.len())?),
        }
        self.buffered = buffered;
        if !data.is_empty() {
            chunks.push(data);
        }
        Ok(())
    }

    /// The request for the WebSocket attempt: a copy of the caller's, as it came.
    fn websocket_request<B>(&self) -> Request<ReplayBody<B>> {
        let body = ReplayBody::buffered_with_trailers(self.data.clone(), self.trailers.clone());
        let mut parts = Request::new(()).into_parts().0;
        let head = self.head.as_ref().expect(NO_CANDIDATE);
        parts.method = head.method.clone();
        parts.uri = head.uri.clone();
        parts.version = head.version;
        parts.headers = head.headers.clone();
        parts.extensions = head.extensions.clone();
        Request::from_parts(parts, body)
    }

    /// The answer instead of a replay when the request must not go over HTTP: the error itself
    /// when a layer below already refused it (the WebSocket layer, which reads the body), or a
    /// [`WebSocketRequired`](wsfirst_core::WebSocketRequired) whose source is the attempt's
    /// failure when the request is marked [`WebSocketOnly`]. `Err`: the error, for the replay
    /// rules to decide.
    fn websocket_only(&self, error: BoxError) -> Result<BoxError, BoxError> {
        if find_websocket_required(&*error).is_some() {
            return Ok(error);
        }
        let head = self.head.as_ref().expect(NO_CANDIDATE);
        match (
            head.extensions.get::<WebSocketOnly>(),
            find_ws_failure(&*error),
        ) {
            (Some(only), Some(failure)) => {
                Ok(Box::new(only.refuse(HttpReason::Fallback(failure.clone()))))
            }
            _ => Err(error),
        }
    }

    /// The replay: the caller's request, intent rewritten to a fallback.
    fn http_request<B>(&mut self) -> Request<ReplayBody<B>> {
        let mut head = self.head.take().expect(NO_CANDIDATE);
        let failure = self.failure.clone().expect(NO_CANDIDATE);
        head.extensions
            .insert(Intent::Http(HttpReason::Fallback(failure)));
        let body = ReplayBody::buffered_with_trailers(
            std::mem::take(&mut self.data),
            self.trailers.take(),
        );
        Request::from_parts(head, body)
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
        if let Some(interval) = self.config.warn_interval() {
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
