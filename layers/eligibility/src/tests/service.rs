//! The layer: the intent it sets, what it does without a route, errors, readiness and metrics.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::Poll,
};

use http::{HeaderName, Request, header::CONTENT_LENGTH};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_service::Service;
use tower_test::mock;
use wsfirst_core::{
    BoxError, HttpReason, Ineligible, Intent, MissingExtension, Route, TransportMode,
};

use super::{CODEX_WS, OPENAI_WS, openai_builder, route};
use crate::{
    DECISIONS_METRIC, Eligibility, EligibilityLayer, EligibilityTable, Policy, RequestHead,
    policy_fn,
};

type Req = Request<String>;

fn openai() -> Route {
    route(
        "openai",
        "openai-responses",
        Some(OPENAI_WS),
        TransportMode::Auto,
    )
}

fn request_for(route: Route) -> Req {
    let mut request = Request::new(String::new());
    request.extensions_mut().insert(route);
    request
}

fn table() -> EligibilityTable {
    openai_builder()
        .override_header(HeaderName::from_static("x-wsfirst-transport"))
        .max_message_size(1024)
        .build()
        .unwrap()
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
        Some(CODEX_WS),
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
            Some(OPENAI_WS),
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
            Some("wss://api.anthropic.com/v1"),
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
        Some(OPENAI_WS),
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
        Some(CODEX_WS),
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

#[tokio::test]
async fn a_websocket_only_request_decided_for_http_is_refused_without_calling_inner() {
    let (mut service, mut handle) =
        mock::spawn_layer::<Req, &'static str, _>(EligibilityLayer::new(table()));
    assert!(service.poll_ready().is_ready());
    let mode_http = route(
        "openai",
        "openai-responses",
        Some(OPENAI_WS),
        TransportMode::Http,
    );
    let mut request = request_for(mode_http);
    request
        .extensions_mut()
        .insert(wsfirst_core::WebSocketOnly::new("generate"));
    // Passed to the inner service instead, it would wait for an answer forever: say so.
    let error = tokio::select! {
        result = service.call(request) => result.unwrap_err(),
        _ = handle.next_request() => panic!("the inner service was called"),
    };
    let refused = wsfirst_core::find_websocket_required(&*error).expect("a WebSocketRequired");
    assert_eq!(refused.reason(), &HttpReason::ModeHttp);
    assert!(!refused.is_temporary());

    // Decided for the WebSocket, it goes on as usual.
    let mut request = request_for(openai());
    request
        .extensions_mut()
        .insert(wsfirst_core::WebSocketOnly::new("generate"));
    assert_eq!(intent_seen(table(), request).await, Intent::WebSocket);
}
