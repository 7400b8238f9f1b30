//! The [`Fallback`] service: which requests are candidates for a replay, and how a candidate
//! starts.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header::CONTENT_LENGTH};
use http_body::Body;
use tower_service::Service;
use wsfirst_core::{
    BoxError, HttpReason, Ineligible, Intent, MissingExtension, Route, TransportMode,
};

use crate::{
    BodyBudget, BodyTooLarge, FallbackConfig, FallbackLayer, ReplayBody,
    future::{Candidate, ResponseFuture},
    warn::Warnings,
};

/// Replays a request over HTTP when its WebSocket attempt fails before the first event.
///
/// A request is a *candidate* when its [`Intent`] is [`Intent::WebSocket`] and its [`Route`]'s
/// mode is [`TransportMode::Auto`]. For a candidate, `Fallback`:
///
/// 1. buffers the body (up to [`FallbackConfig::body_limit`], each byte held from its
///    [`BodyBudget`] until the request is done: past the budget it fails with
///    [`BudgetExhausted`](crate::BudgetExhausted)); a body declared larger goes to
///    the inner service at once with
///    `Intent::Http(HttpReason::Ineligible(Ineligible::BodyNotReplayable { .. }))`;
/// 2. calls the inner service with the request as it came (intent `WebSocket`), plus the
///    [`Replay`](crate::Replay) setting in its extensions, for the WebSocket layer;
/// 3. if that fails with a [`WsFailure`](wsfirst_core::WsFailure) that the
///    [`Replay`](crate::Replay) setting allows, waits for the inner service to be ready again and
///    calls it with the identical request (method, URI, version, headers, extensions, body bytes
///    and trailers), its intent rewritten to `Intent::Http(HttpReason::Fallback(failure))`, and
///    stamps [`Served::fallback`](wsfirst_core::Served::fallback) on the response.
///
/// A request of strict `websocket` mode is read the same way (its WebSocket message is the
/// whole body in memory: within the body limit, `BodyTooLarge` past it, and the budget), gets
/// the `Replay` extension too, and its failure reaches the caller: it is never replayed over
/// HTTP. A request with intent `Http` goes to the inner service with its body streamed through
/// untouched ([`ReplayBody::streaming`]), and so does every error: a failure that the setting does not allow
/// (one the upstream may have executed, such as
/// [`Phase::MidStream`](wsfirst_core::Phase::MidStream)) reaches the caller unchanged. Once the
/// inner future has answered with a response nothing is replayed: an error in the response body
/// flows through to the caller.
///
/// The inner service must be `Clone` (it is called twice for a replayed request); the request
/// body it sees is [`ReplayBody<B>`].
#[derive(Clone, Debug)]
pub struct Fallback<S> {
    inner: S,
    config: FallbackConfig,
    warnings: Arc<Warnings>,
    budget: BodyBudget,
}

impl<S> Fallback<S> {
    /// Wraps `inner`, buffering within the [process's budget](BodyBudget::process). Services
    /// cloned from this one share its warning record.
    pub fn new(inner: S, config: FallbackConfig) -> Self {
        Self::from_parts(inner, config, Arc::default(), BodyBudget::process())
    }

    pub(crate) fn from_parts(
        inner: S,
        config: FallbackConfig,
        warnings: Arc<Warnings>,
        budget: BodyBudget,
    ) -> Self {
        Self {
            inner,
            config,
            warnings,
            budget,
        }
    }

    /// The budget its buffered bodies are held from.
    pub fn budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// A layer that wraps services in `Fallback` with these settings.
    pub fn layer(config: FallbackConfig) -> FallbackLayer {
        FallbackLayer::new(config)
    }

    /// The settings.
    pub fn config(&self) -> &FallbackConfig {
        &self.config
    }

    wsfirst_core::define_inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for Fallback<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match request.extensions().get::<Intent>() {
            None => return ResponseFuture::error(MissingExtension::INTENT.into()),
            Some(Intent::Http(_)) => return self.pass_through(request),
            Some(Intent::WebSocket) => {}
        }
        // The WebSocket layer sends the request again on a fresh connection only as far as
        // this setting allows (strict mode included).
        request.extensions_mut().insert(self.config.replay());
        let Some(route) = request.extensions().get::<Route>() else {
            return ResponseFuture::error(MissingExtension::ROUTE.into());
        };
        // Strict mode: the failure is the caller's to see, so there is nothing to replay; but
        // the WebSocket message is the whole body in memory, so it is read here, within the
        // same body limit and budget as a candidate's.
        let replays = route.mode() == TransportMode::Auto;
        let route = route.clone();

        let limit = self.config.body_limit();
        let declared = declared_size(request.headers(), request.body());
        if declared > limit as u64 && !replays {
            return ResponseFuture::error(Box::new(BodyTooLarge::new(limit)));
        }
        if declared > limit as u64 {
            // It could not be replayed, so it must not risk a WebSocket attempt.
            tracing::debug!(
                provider = route.provider(),
                api = route.api(),
                declared,
                limit,
                "request body is larger than the fallback buffer; sending it over http",
            );
            request
                .extensions_mut()
                .insert(Intent::Http(HttpReason::Ineligible(
                    Ineligible::BodyNotReplayable {
                        declared,
                        limit: limit as u64,
                    },
                )));
            return self.pass_through(request);
        }

        // The ready service goes into the future; a clone stays for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (head, body) = request.into_parts();
        ResponseFuture::candidate(
            body,
            Candidate::new(
                inner,
                head,
                route,
                self.config,
                self.warnings.clone(),
                self.budget.clone(),
            )
            .replays(replays),
        )
    }
}

impl<S> Fallback<S> {
    fn pass_through<B, ResBody>(&mut self, request: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>>,
        B: Body,
    {
        ResponseFuture::pass_through(self.inner.call(request.map(ReplayBody::streaming)))
    }
}

/// The body's declared size: the larger of its size hint's lower bound and `Content-Length`.
fn declared_size<B: Body>(headers: &HeaderMap, body: &B) -> u64 {
    let content_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    body.size_hint().lower().max(content_length)
}
