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

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited, combinators::Collect};
use pin_project_lite::pin_project;
use tower_service::Service;
use wsfirst_core::{
    BoxError, Delivery, FailureKind, HttpReason, Ineligible, Intent, Phase, Route, Served,
    WebSocketOnly, WsFailure, find_ws_failure,
};

use crate::{
    Body, Pool, RequestBodyError, WebSocketConfig, attempt::attempt, body::WsBody,
    metrics::record_failure,
};

/// The boxed WebSocket attempt: one allocation per attempt, dwarfed by its network I/O.
pub(crate) type AttemptFuture =
    Pin<Box<dyn Future<Output = Result<Response<WsBody>, BoxError>> + Send + 'static>>;

pin_project! {
    /// Response future of [`WebSocket`](crate::WebSocket).
    ///
    /// The HTTP pass-through path polls the inner future in place (no allocation). A WebSocket
    /// request's body is read first (up to the message size limit); then the codec says whether
    /// the request sets a field that the WebSocket mode does not support
    /// ([`Codec::unsupported`](crate::Codec::unsupported)): if it does, the inner service gets
    /// the request with that body, unchanged; otherwise the attempt runs, boxed once.
    ///
    /// # Panics
    ///
    /// When polled again after it completed.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F>
    where
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        Http {
            #[pin]
            future: F,
            reason: Option<HttpReason>,
        },
        Reading {
            #[pin]
            body: Collect<Limited<B>>,
            next: Option<Next<S>>,
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

/// What a WebSocket request needs once its body is read: the ready inner service (for a request
/// that turns out to need HTTP) and everything the attempt takes.
pub(crate) struct Next<S> {
    pub(crate) inner: S,
    pub(crate) parts: http::request::Parts,
    /// The body's size hint before reading, for the size of a body over the limit.
    pub(crate) declared: u64,
    pub(crate) config: WebSocketConfig,
    pub(crate) pool: Pool,
    pub(crate) route: Route,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    pub(crate) fn http(future: S::Future, reason: Option<HttpReason>) -> Self {
        Self {
            state: State::Http { future, reason },
        }
    }

    /// Reads `body` (up to the configuration's message size limit), then goes on with `next`.
    pub(crate) fn websocket(body: B, next: Next<S>) -> Self {
        let limit = next.config.max_message_size();
        Self {
            state: State::Reading {
                body: Limited::new(body, limit).collect(),
                next: Some(next),
            },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Http { .. } => "http",
            State::Reading { .. } => "reading",
            State::WebSocket { .. } => "websocket",
            State::Failed { .. } => "failed",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + From<Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body<ResB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
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
                StateProj::Reading { body, next } => {
                    let read = ready!(body.poll(cx));
                    let next = next
                        .take()
                        .unwrap_or_else(|| unreachable!("a reading future holds its request"));
                    match read {
                        Ok(collected) => {
                            state.set(route(next, collected));
                            continue;
                        }
                        Err(error) => Err(read_failed(error, &next)),
                    }
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
            return Poll::Ready(output);
        }
    }
}

/// Where a WebSocket request goes once its body is read: to the inner service, body unchanged,
/// when the codec names a field that the WebSocket mode does not support; to the attempt
/// otherwise.
fn route<S, B>(next: Next<S>, collected: http_body_util::Collected<Bytes>) -> State<S, B, S::Future>
where
    S: Service<Request<B>>,
    B: http_body::Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    let Next {
        mut inner,
        mut parts,
        config,
        pool,
        route,
        ..
    } = next;
    // Trailers cannot be put back into a body made from bytes: such a request goes on to the
    // attempt, whose codec refuses the field (a replay-safe failure: a fallback layer replays the
    // identical request, trailers included, over HTTP).
    let trailers = collected.trailers().is_some();
    let body = collected.to_bytes();
    let unsupported = if trailers {
        None
    } else {
        config.codec().unsupported(&parts, &body)
    };
    let only = parts
        .extensions
        .get::<WebSocketOnly>()
        .copied()
        .or_else(|| {
            let field = config.codec().websocket_only(&parts, &body)?;
            Some(WebSocketOnly::new(field))
        });
    let Some(field) = unsupported else {
        // The ready inner service is not needed: dropping it now frees what its readiness holds.
        drop(inner);
        let attempt = attempt(config, pool, route, parts, body);
        return State::WebSocket {
            future: match only {
                None => Box::pin(attempt),
                Some(only) => Box::pin(async move {
                    attempt
                        .await
                        .map_err(|error| websocket_only_failed(only, error))
                }),
            },
        };
    };
    let reason = HttpReason::Ineligible(Ineligible::UnsupportedField(field));
    if let Some(only) = only {
        return State::Failed {
            error: Some(Box::new(only.refuse(reason))),
        };
    }
    tracing::debug!(
        provider = route.provider(),
        api = route.api(),
        field,
        "the request sets a field the websocket mode does not support; sending it over http",
    );
    metrics::counter!(
        "wsfirst_ws_ineligible_total",
        "provider" => route.provider_shared(),
        "api" => route.api_shared(),
        "reason" => reason.label(),
        "field" => field,
    )
    .increment(1);
    parts.extensions.insert(Intent::Http(reason.clone()));
    State::Http {
        future: inner.call(Request::from_parts(parts, B::from(body))),
        reason: Some(reason),
    }
}

/// The error of a WebSocket-only request's failed attempt: a failure before the first event
/// (which a fallback layer could replay over HTTP) becomes
/// [`WebSocketRequired`](wsfirst_core::WebSocketRequired), its source the failure; any other
/// error is left as it is.
fn websocket_only_failed(only: WebSocketOnly, error: BoxError) -> BoxError {
    match find_ws_failure(&*error) {
        Some(failure) if failure.phase().is_before_first_event() => {
            Box::new(only.refuse(HttpReason::Fallback(failure.clone())))
        }
        _ => error,
    }
}

/// The error of a body that could not be read: over the message size limit (a replay-safe
/// `Send` failure, as before the attempt could start), or the body's own error.
fn read_failed<S>(error: BoxError, next: &Next<S>) -> BoxError {
    if error.is::<LengthLimitError>() {
        let limit = next.config.max_message_size();
        let failure = WsFailure::new(
            Phase::Send,
            FailureKind::TooLarge {
                size: usize::try_from(next.declared)
                    .unwrap_or(usize::MAX)
                    .max(limit + 1),
                limit,
            },
        )
        .with_delivery(Delivery::Unsent);
        record_failure(&failure);
        Box::new(failure)
    } else {
        Box::new(RequestBodyError(error))
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use futures_util::FutureExt;
    use http_body_util::Full;

    use super::*;

    /// An inner service that answers at once.
    #[derive(Clone, Debug)]
    struct Answers;

    impl Service<Request<Full<Bytes>>> for Answers {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = Ready<Result<Self::Response, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
            ready(Ok(Response::new(Full::default())))
        }
    }

    type Tested = ResponseFuture<Answers, Full<Bytes>>;

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn polling_a_completed_http_future_panics() {
        let mut future = Tested::http(Answers.call(Request::default()), None);
        assert!((&mut future).now_or_never().unwrap().is_ok());
        let _ = (&mut future).now_or_never();
    }

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn polling_a_completed_failed_future_panics() {
        let mut future = Tested::failed("no intent".into());
        assert!((&mut future).now_or_never().unwrap().is_err());
        let _ = (&mut future).now_or_never();
    }
}
