use std::task::{Context, Poll};

use http::Request;
use http_body::Body;
use tower_service::Service;
use wsfirst_core::{BoxError, HttpReason, Intent, MissingExtension, Route, TransportMode};

use crate::{EligibilityLayer, Policy, RequestHead, future::ResponseFuture};

/// The metric counting decisions, labelled `provider`, `api`, `verdict` and `reason`.
pub const DECISIONS_METRIC: &str = "wsfirst_eligibility_decisions_total";

/// Sets each request's [`Intent`] from a [`Policy`], then calls the inner service.
///
/// The request must carry a [`Route`]; without one the response future fails with
/// [`MissingExtension::ROUTE`] (boxed) and the inner service is not called. A route whose mode
/// is [`TransportMode::Http`] gets [`HttpReason::ModeHttp`] without asking the policy; every
/// other request gets the policy's decision, which replaces any `Intent` already present.
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
/// let mut service = Eligibility::new(inner, EligibilityTable::openai_default());
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

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
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

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Poll,
    };

    use http::{HeaderName, header::CONTENT_LENGTH};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower_test::mock;
    use wsfirst_core::Ineligible;

    use super::*;
    use crate::{EligibilityTable, policy_fn};

    type Req = Request<String>;

    const OPENAI_WS: &str = "wss://api.openai.com/v1/responses";

    fn route(provider: &str, api: &str, ws_url: &str, mode: TransportMode) -> Route {
        Route::builder(provider, api)
            .ws_url(ws_url)
            .http_url("https://api.openai.com/v1/responses")
            .mode(mode)
            .build()
            .unwrap()
    }

    fn openai() -> Route {
        route("openai", "openai-responses", OPENAI_WS, TransportMode::Auto)
    }

    fn request_for(route: Route) -> Req {
        let mut request = Request::new(String::new());
        request.extensions_mut().insert(route);
        request
    }

    fn table() -> EligibilityTable {
        EligibilityTable::openai_default()
            .to_builder()
            .override_header(HeaderName::from_static("x-wsfirst-transport"))
            .max_message_size(1024)
            .build()
    }

    /// Sends `request` through the layer and returns the Intent the inner service saw.
    async fn intent_seen(policy: EligibilityTable, request: Req) -> Intent {
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(policy));
        assert!(service.poll_ready().is_ready());
        let response = service.call(request);
        let (seen, send) = handle.next_request().await.expect("inner service called");
        send.send_response("ok");
        assert_eq!(response.await.unwrap(), "ok");
        seen.extensions()
            .get::<Intent>()
            .cloned()
            .expect("intent set")
    }

    #[tokio::test]
    async fn sets_the_intent_and_passes_the_request_on() {
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(table()));
        assert!(service.poll_ready().is_ready());
        let mut request = request_for(openai());
        *request.body_mut() = "hello".to_owned();
        let response = service.call(request);
        let (seen, send) = handle.next_request().await.unwrap();
        assert_eq!(seen.extensions().get::<Intent>(), Some(&Intent::WebSocket));
        assert_eq!(seen.body(), "hello");
        send.send_response("done");
        assert_eq!(response.await.unwrap(), "done");

        let codex = route(
            "openai-codex",
            "openai-codex-responses",
            "wss://chatgpt.com/backend-api/codex/responses",
            TransportMode::Auto,
        );
        assert_eq!(
            intent_seen(table(), request_for(codex)).await,
            Intent::Http(HttpReason::Ineligible(Ineligible::Denied))
        );
    }

    #[tokio::test]
    async fn missing_route_is_an_error_and_the_inner_service_is_not_called() {
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(table()));
        assert!(service.poll_ready().is_ready());
        let error = service.call(Request::new(String::new())).await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<MissingExtension>(),
            Some(&MissingExtension::ROUTE)
        );
        assert!(handle.poll_request().is_pending());
    }

    #[tokio::test]
    async fn inner_errors_are_boxed() {
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(table()));
        assert!(service.poll_ready().is_ready());
        let response = service.call(request_for(openai()));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(std::io::Error::other("upstream down"));
        assert_eq!(response.await.unwrap_err().to_string(), "upstream down");
    }

    #[tokio::test]
    async fn override_header_narrows_but_never_widens() {
        let mut forced = request_for(openai());
        forced
            .headers_mut()
            .insert("x-wsfirst-transport", "http".parse().unwrap());
        assert_eq!(
            intent_seen(table(), forced).await,
            Intent::Http(HttpReason::Ineligible(Ineligible::RequestOverride))
        );

        for value in ["websocket", "ws", "nonsense"] {
            let mut widen = request_for(route(
                "openai",
                "openai-responses",
                OPENAI_WS,
                TransportMode::Http,
            ));
            widen
                .headers_mut()
                .insert("x-wsfirst-transport", value.parse().unwrap());
            assert_eq!(
                intent_seen(table(), widen).await,
                Intent::Http(HttpReason::ModeHttp),
                "{value}"
            );

            let mut widen = request_for(route(
                "anthropic",
                "messages",
                "wss://api.anthropic.com/v1",
                TransportMode::Auto,
            ));
            widen
                .headers_mut()
                .insert("x-wsfirst-transport", value.parse().unwrap());
            assert_eq!(
                intent_seen(table(), widen).await,
                Intent::Http(HttpReason::Ineligible(Ineligible::UnknownProvider)),
                "{value}"
            );
        }
    }

    #[tokio::test]
    async fn body_too_large_by_content_length_or_size_hint() {
        let too_large = Intent::Http(HttpReason::Ineligible(Ineligible::BodyTooLarge {
            declared: 2048,
            limit: 1024,
        }));

        let mut declared = request_for(openai());
        declared
            .headers_mut()
            .insert(CONTENT_LENGTH, "2048".parse().unwrap());
        assert_eq!(intent_seen(table(), declared).await, too_large);

        // No Content-Length: the body's exact size hint counts.
        let mut hinted = request_for(openai());
        *hinted.body_mut() = "x".repeat(2048);
        assert_eq!(intent_seen(table(), hinted).await, too_large);

        let mut fits = request_for(openai());
        *fits.body_mut() = "x".repeat(1024);
        assert_eq!(intent_seen(table(), fits).await, Intent::WebSocket);
    }

    #[tokio::test]
    async fn mode_http_does_not_ask_the_policy() {
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let policy = policy_fn(move |_: &Route, _: &RequestHead<'_>| {
            counter.fetch_add(1, Ordering::SeqCst);
            Intent::WebSocket
        });
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(policy));
        assert!(service.poll_ready().is_ready());
        let request = request_for(route(
            "openai",
            "openai-responses",
            OPENAI_WS,
            TransportMode::Http,
        ));
        let response = service.call(request);
        let (seen, send) = handle.next_request().await.unwrap();
        send.send_response("ok");
        response.await.unwrap();
        assert_eq!(
            seen.extensions().get::<Intent>(),
            Some(&Intent::Http(HttpReason::ModeHttp))
        );
        assert_eq!(asked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn poll_ready_waits_for_the_inner_service() {
        let (mut service, mut handle) =
            mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(table()));
        handle.allow(0);
        assert!(service.poll_ready().is_pending());
        handle.allow(1);
        assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    }

    #[test]
    fn services_are_send_sync_and_take_shared_trait_objects() {
        fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
        let shared: Arc<dyn Policy + Send + Sync> = Arc::new(table());
        let layer = EligibilityLayer::new(shared);
        let service = tower_layer::Layer::layer(
            &layer,
            tower::service_fn(|_: Req| async { Ok::<_, BoxError>(()) }),
        );
        assert_send_sync(&service);
        let mut service = service;
        let future = service.call(request_for(openai()));
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&future);
    }

    #[test]
    fn every_decision_is_counted_with_its_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut service = Eligibility::new(
            tower::service_fn(|_: Req| async { Ok::<_, BoxError>(()) }),
            table(),
        );
        let codex = route(
            "openai-codex",
            "openai-codex-responses",
            "wss://chatgpt.com/backend-api/codex/responses",
            TransportMode::Auto,
        );
        metrics::with_local_recorder(&recorder, || {
            // The decision is made and recorded in `call`.
            drop(service.call(request_for(openai())));
            drop(service.call(request_for(openai())));
            drop(service.call(request_for(codex)));
            drop(service.call(Request::new(String::new())));
        });

        let mut counted: Vec<(Vec<(String, String)>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == DECISIONS_METRIC)
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let DebugValue::Counter(count) = value else {
                    panic!("{DECISIONS_METRIC} is not a counter: {value:?}");
                };
                (labels, count)
            })
            .collect();
        counted.sort();
        let labels = |provider: &str, api: &str, verdict: &str, reason: &str| {
            vec![
                ("provider".to_owned(), provider.to_owned()),
                ("api".to_owned(), api.to_owned()),
                ("verdict".to_owned(), verdict.to_owned()),
                ("reason".to_owned(), reason.to_owned()),
            ]
        };
        assert_eq!(
            counted,
            vec![
                (
                    labels("openai", "openai-responses", "websocket", "eligible"),
                    2
                ),
                (
                    labels("openai-codex", "openai-codex-responses", "http", "denied"),
                    1
                ),
            ]
        );
    }
}
