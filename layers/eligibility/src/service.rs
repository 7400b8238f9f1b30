//! The [`Eligibility`] service: decides each request's transport, records the decision, and
//! calls the inner service.

use std::task::{Context, Poll};

use http::Request;
use http_body::Body;
use tower_service::Service;
use wsfirst_core::{
    BoxError, HttpReason, Intent, MissingExtension, Route, TransportMode, WebSocketOnly,
};

use crate::{EligibilityLayer, Policy, RequestHead, future::ResponseFuture};

/// The metric counting decisions, labelled `provider`, `api`, `verdict` and `reason`.
pub const DECISIONS_METRIC: &str = "wsfirst_eligibility_decisions_total";

/// Sets each request's [`Intent`] from a [`Policy`], then calls the inner service.
///
/// The request must carry a [`Route`]; without one the response future fails with
/// [`MissingExtension::ROUTE`] (boxed) and the inner service is not called. A route whose mode
/// is [`TransportMode::Http`] gets [`HttpReason::ModeHttp`] without asking the policy; every
/// other request gets the policy's decision, which replaces any `Intent` already present. A
/// request marked [`WebSocketOnly`] that is decided for HTTP fails with its
/// [`WebSocketRequired`](wsfirst_core::WebSocketRequired) error (boxed), and the inner service
/// is not called.
///
/// Every decision is a `tracing` DEBUG event (target `wsfirst_eligibility`, fields `provider`,
/// `api`, `verdict`, `reason`) and an increment of the counter
/// `wsfirst_eligibility_decisions_total{provider, api, verdict, reason}`, where `verdict` is
/// `websocket` or `http` and `reason` is [`Intent::reason_label`].
///
/// ```
/// use tower::{Service, ServiceExt};
/// use wsfirst_core::{Intent, Route};
/// use wsfirst_eligibility::{Eligibility, EligibilityTable};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wsfirst_core::BoxError> {
/// let inner = tower::service_fn(|request: http::Request<String>| async move {
///     let intent = request.extensions().get::<Intent>().cloned();
///     Ok::<_, std::convert::Infallible>(intent)
/// });
/// let table = EligibilityTable::builder()
///     .allow("openai", "openai-responses")
///     .deny("openai-codex", "openai-codex-responses")
///     .build()?;
/// let mut service = Eligibility::new(inner, table);
///
/// let route = Route::builder("openai-codex", "openai-codex-responses")
///     .ws_url("wss://chatgpt.com/backend-api/codex/responses")
///     .http_url("https://chatgpt.com/backend-api/codex/responses")
///     .build()?;
/// let mut request = http::Request::new(String::new());
/// request.extensions_mut().insert(route);
/// let intent = service.ready().await?.call(request).await?;
/// assert_eq!(
///     intent.unwrap().to_string(),
///     "http because the provider and api pair is on the deny list",
/// );
///
/// // No route: a clear error, no panic.
/// let error = service.ready().await?.call(http::Request::new(String::new())).await.unwrap_err();
/// assert!(error.to_string().starts_with("request has no `Route` extension"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Eligibility<P, S> {
    inner: S,
    policy: P,
}

impl<P, S> Eligibility<P, S> {
    /// Wraps `inner`, deciding with `policy`.
    pub fn new(inner: S, policy: P) -> Self {
        Self { inner, policy }
    }

    /// A layer deciding with `policy`.
    pub fn layer(policy: P) -> EligibilityLayer<P> {
        EligibilityLayer::new(policy)
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    wsfirst_core::define_inner_service_accessors!();
}

impl<P, S, B> Service<Request<B>> for Eligibility<P, S>
where
    P: Policy,
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    B: Body,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(route) = request.extensions().get::<Route>() else {
            tracing::debug!(
                target: "wsfirst_eligibility",
                "request has no Route extension; not calling the inner service"
            );
            return ResponseFuture::failed(MissingExtension::ROUTE.into());
        };
        let intent = if route.mode() == TransportMode::Http {
            Intent::Http(HttpReason::ModeHttp)
        } else {
            let mut head = RequestHead::new(&request);
            if head.declared_body_size().is_none() {
                head = head.with_declared_body_size(request.body().size_hint().exact());
            }
            self.policy.decide(route, &head)
        };
        record(route, &intent);
        if let (Intent::Http(reason), Some(only)) =
            (&intent, request.extensions().get::<WebSocketOnly>())
        {
            // Never over HTTP: answered here, the inner service is not called.
            return ResponseFuture::failed(Box::new(only.refuse(reason.clone())));
        }
        request.extensions_mut().insert(intent);
        ResponseFuture::inner(self.inner.call(request))
    }
}

fn record(route: &Route, intent: &Intent) {
    let (verdict, reason) = (intent.verdict(), intent.reason_label());
    tracing::debug!(
        target: "wsfirst_eligibility",
        provider = route.provider(),
        api = route.api(),
        verdict,
        reason,
        "transport decided: {intent}"
    );
    metrics::counter!(
        DECISIONS_METRIC,
        "provider" => route.provider_shared(),
        "api" => route.api_shared(),
        "verdict" => verdict,
        "reason" => reason,
    )
    .increment(1);
}
