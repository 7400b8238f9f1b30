//! Bounded state whatever the clients send: the registry's cap on keys (least recently used
//! first, pins by hand kept) under floods of distinct credentials, and the
//! `wsfirst_breaker_state` gauge with one series per provider and endpoint (per credential only
//! when asked for).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Layer, Service, ServiceExt, service_fn};
use wsfirst_breaker::{
    BreakerConfig, BreakerRegistry, BreakerState, CircuitBreakerLayer, ResponseBody,
};
use wsfirst_core::{BoxError, BreakerKey, FailureKind, Intent, Phase, Route, Served, WsFailure};

/// The header that tells the stand-in how the WebSocket attempt goes: `fail` (a counted
/// upgrade failure, replayed over HTTP) or anything else (served by the WebSocket).
const OUTCOME: &str = "x-outcome";

/// The layers under the breaker: a WebSocket attempt that goes as the request's `x-outcome`
/// header says, replayed over HTTP when it fails (as the fallback layer does).
fn transports()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone {
    service_fn(|request: Request<()>| async move {
        let fail = request
            .headers()
            .get(OUTCOME)
            .is_some_and(|value| value == "fail");
        let served = match request.extensions().get::<Intent>() {
            Some(Intent::WebSocket) if fail => Served::fallback(
                WsFailure::new(
                    Phase::Handshake,
                    FailureKind::UpgradeStatus {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        body: Bytes::new(),
                    },
                ),
                Duration::from_millis(1),
            ),
            Some(Intent::WebSocket) => Served::websocket(Duration::from_millis(1)),
            Some(Intent::Http(reason)) => Served::http(reason.clone()),
            None => return Err::<_, BoxError>("no intent".into()),
        };
        let mut response = Response::new(Full::new(Bytes::from_static(b"answer")));
        response.extensions_mut().insert(served);
        Ok(response)
    })
}

fn route() -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .build()
        .unwrap()
}

fn request(route: &Route, credential: &str, fail: bool) -> Request<()> {
    let mut request = Request::new(());
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, credential.parse().unwrap());
    if fail {
        headers.insert(OUTCOME, "fail".parse().unwrap());
    }
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(Intent::WebSocket);
    request
}

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .consecutive_failures(1)
        .jitter(0.0)
        .build()
        .unwrap()
}

/// The response of the breaker over [`transports`].
type Answer = Response<ResponseBody<Full<Bytes>>>;

fn service(
    registry: &BreakerRegistry,
) -> impl Service<Request<()>, Response = Answer, Error = BoxError> {
    CircuitBreakerLayer::from_registry(registry.clone()).layer(transports())
}

/// Sends one request with `credential` and reads its body to the end.
async fn send<S>(service: &mut S, credential: &str, fail: bool)
where
    S: Service<Request<()>, Response = Answer, Error = BoxError>,
{
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(&route(), credential, fail))
        .await
        .unwrap();
    response.into_body().collect().await.unwrap();
}

/// The key of `credential` on [`route`].
fn key(credential: &str) -> BreakerKey {
    route().breaker_key_for(&{
        let mut headers = http::HeaderMap::new();
        headers.insert(AUTHORIZATION, credential.parse().unwrap());
        headers
    })
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_credentials_never_holds_more_than_max_keys() {
    let registry = BreakerRegistry::builder()
        .config(config())
        .max_keys(100)
        .build();
    let mut service = service(&registry);
    for i in 0..2_000 {
        // Half of them trip their key: open keys are evicted like closed ones when full.
        send(&mut service, &format!("Bearer sk-{i}"), i % 2 == 0).await;
        assert!(registry.len() <= 100, "{} keys after {i}", registry.len());
    }
    // The newest key is always there.
    assert!(registry.handle().get(&key("Bearer sk-1999")).is_some());
}

#[tokio::test(start_paused = true)]
async fn keys_in_regular_use_outlive_a_flood_and_idle_ones_do_not() {
    let registry = BreakerRegistry::builder()
        .config(config())
        .max_keys(16)
        .build();
    let handle = registry.handle();
    let mut service = service(&registry);
    send(&mut service, "Bearer sk-once", false).await;
    // A key tripped by failures and used once stays pinned for 30 s, but it is not kept when
    // the registry needs room after it was last used (idle eviction alone would keep it).
    send(&mut service, "Bearer sk-tripped", true).await;
    assert_eq!(
        handle.get(&key("Bearer sk-tripped")).unwrap().state,
        BreakerState::Open
    );
    for round in 0..100 {
        tokio::time::advance(Duration::from_millis(100)).await;
        send(&mut service, "Bearer sk-alice", false).await;
        send(&mut service, "Bearer sk-bob", round % 3 == 0).await;
        send(&mut service, &format!("Bearer sk-flood-{round}"), false).await;
        assert!(registry.len() <= 16);
    }
    for regular in ["Bearer sk-alice", "Bearer sk-bob"] {
        assert!(handle.get(&key(regular)).is_some(), "{regular} evicted");
    }
    assert!(handle.get(&key("Bearer sk-once")).is_none());
    assert!(handle.get(&key("Bearer sk-tripped")).is_none());
    // Bob's key kept its state through the flood: tripped in the last round that failed.
    assert_ne!(
        handle.get(&key("Bearer sk-bob")).unwrap().state,
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn keys_pinned_by_hand_are_kept_when_full_and_the_overshoot_is_bounded() {
    let registry = BreakerRegistry::builder()
        .config(config())
        .max_keys(4)
        .build();
    let handle = registry.handle();
    let pinned: Vec<BreakerKey> = (0..4)
        .map(|i| BreakerKey::new(format!("ops-{i}"), "wss://ops.example/v1", None))
        .collect();
    handle.pin(&pinned[0], None);
    handle.pin(&pinned[1], Some(Duration::from_secs(3600)));
    let mut service = service(&registry);
    for i in 0..50 {
        send(&mut service, &format!("Bearer sk-{i}"), false).await;
        assert!(registry.len() <= 4);
    }
    for key in &pinned[..2] {
        assert!(handle.get(key).unwrap().pinned_by_hand, "{key} evicted");
    }
    // Every key pinned by hand: the new key is added all the same, one over the cap.
    handle.pin(&pinned[2], None);
    handle.pin(&pinned[3], None);
    assert_eq!(registry.len(), 4);
    send(&mut service, "Bearer sk-new", false).await;
    assert_eq!(registry.len(), 5);
    assert!(handle.get(&key("Bearer sk-new")).is_some());
    // Once the pins end, the next new key evicts down again (to seven eighths of the cap, at
    // least one key under it).
    for key in &pinned {
        assert!(handle.unpin(key));
    }
    send(&mut service, "Bearer sk-newer", false).await;
    assert!(registry.len() <= 4, "{} keys", registry.len());
    assert!(handle.get(&key("Bearer sk-newer")).is_some());
}

/// The `wsfirst_breaker_state` series: their labels (sorted, `name=value`) and values. Gauges
/// read 0 after a snapshot until they are set again.
fn state_series(snapshotter: &Snapshotter) -> Vec<(Vec<String>, f64)> {
    let mut series: Vec<(Vec<String>, f64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "wsfirst_breaker_state")
        .map(|(key, _, _, value)| {
            let mut labels: Vec<String> = key
                .key()
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let DebugValue::Gauge(value) = value else {
                panic!("not a gauge: {value:?}");
            };
            (labels, value.into_inner())
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    series
}

const SCOPE: [&str; 2] = [
    "endpoint=wss://api.openai.com/v1/responses",
    "provider=openai",
];

#[tokio::test(start_paused = true)]
async fn the_state_gauge_has_one_series_per_endpoint_showing_its_worst_key() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let registry = BreakerRegistry::builder().config(config()).build();
    let mut service = service(&registry);
    let credentials: Vec<String> = (0..10).map(|i| format!("Bearer sk-{i}")).collect();
    for credential in &credentials {
        send(&mut service, credential, true).await;
    }
    assert_eq!(registry.len(), 10);
    assert_eq!(
        state_series(&snapshotter),
        [(SCOPE.map(String::from).to_vec(), 1.0)]
    );

    // Nine keys come back through a probe; the tenth goes half-open, its probe dropped.
    tokio::time::advance(Duration::from_secs(30)).await;
    for credential in &credentials[..9] {
        send(&mut service, credential, false).await;
    }
    let probe = service
        .ready()
        .await
        .unwrap()
        .call(request(&route(), &credentials[9], false));
    drop(probe);
    let last = registry.handle().get(&key(&credentials[9])).unwrap();
    assert_eq!(last.state, BreakerState::HalfOpen);
    assert_eq!(
        state_series(&snapshotter),
        [(SCOPE.map(String::from).to_vec(), 2.0)]
    );

    send(&mut service, &credentials[9], false).await;
    assert_eq!(
        state_series(&snapshotter),
        [(SCOPE.map(String::from).to_vec(), 0.0)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_state_gauge_counts_evicted_keys_out() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let registry = BreakerRegistry::builder()
        .config(config())
        .max_keys(2)
        .build();
    let mut service = service(&registry);
    send(&mut service, "Bearer sk-0", true).await;
    assert_eq!(state_series(&snapshotter)[0].1, 1.0);
    // A sweep sees the key used (and clears the mark); after it the key is not used again, so
    // it is the least recently used when the registry needs room.
    assert_eq!(registry.handle().evict_idle(), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    send(&mut service, "Bearer sk-1", false).await;
    send(&mut service, "Bearer sk-2", false).await;
    assert!(registry.handle().get(&key("Bearer sk-0")).is_none());
    assert_eq!(state_series(&snapshotter)[0].1, 0.0);
}

#[tokio::test(start_paused = true)]
async fn the_state_gauge_per_credential_is_opt_in() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let registry = BreakerRegistry::builder()
        .config(config())
        .state_gauge_per_credential(true)
        .build();
    assert!(format!("{registry:?}").contains("per_credential: true"));
    let mut service = service(&registry);
    for credential in ["Bearer sk-a", "Bearer sk-b", "Bearer sk-c"] {
        send(&mut service, credential, true).await;
    }
    let series = state_series(&snapshotter);
    assert_eq!(series.len(), 3, "{series:?}");
    for credential in ["Bearer sk-a", "Bearer sk-b", "Bearer sk-c"] {
        let fingerprint = key(credential).credential().unwrap().to_string();
        let mut labels = vec![format!("credential={fingerprint}")];
        labels.extend(SCOPE.map(String::from));
        assert!(
            series.contains(&(labels.clone(), 1.0)),
            "{labels:?} not in {series:?}"
        );
    }
}
