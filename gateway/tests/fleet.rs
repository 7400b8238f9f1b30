//! Three gateways (replicas) built from one configuration file with a `[breaker_store]`, in front
//! of one real upstream whose WebSocket upgrade answers 500, sharing a real `redis-server` that
//! the test starts on a free loopback port. Redis runs in real time: every wait is a bounded
//! polling loop, nothing asserts on durations.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wsfirst::{
    RouteService,
    breaker::BreakerState,
    breaker_store::testing::{RedisServer, until},
    websocket::testing::{TestUpstream, WsScript},
};
use wsfirst_gateway::{Configured, config::Config};

const STREAM: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;

/// Sends `body` to `service`: the status and the transport header.
async fn exchange(service: &RouteService, body: &str) -> (StatusCode, String) {
    let request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let transport = response
        .headers()
        .get("x-wsfirst-transport")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status();
    // Read to the end: the breaker learns from the whole answer.
    response.into_body().collect().await.unwrap();
    (status, transport)
}

/// The gateway's file: one WebSocket route to `upstream`, tripping after 3 failures, pinned
/// for `open_for`, and the shared store.
fn config(upstream: &TestUpstream, redis: &RedisServer, prefix: &str, open_for: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
        fingerprint_key_env = "CARGO_PKG_DESCRIPTION"

        [eligibility]
        websocket_pairs = [["local", "responses"]]

        [breaker_store]
        redis_url = "{url}"
        prefix = "{prefix}"

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"

        [routes.breaker]
        consecutive_failures = 3
        failure_rate_threshold = 1.0
        open_duration = "{open_for}"
        half_open_probes = 1
        "#,
        url = redis.url(),
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .unwrap()
}

async fn fleet(config: &Config, replicas: usize) -> Vec<Configured> {
    let fleet: Vec<Configured> = (0..replicas)
        .map(|_| Configured::from_config(config).unwrap())
        .collect();
    until("every replica is connected to the store", || {
        fleet
            .iter()
            .all(|g| g.breaker_store.as_ref().unwrap().is_connected())
    })
    .await;
    fleet
}

fn state(gateway: &Configured) -> Option<BreakerState> {
    gateway
        .wsfirst
        .breakers()
        .snapshot()
        .first()
        .map(|snapshot| snapshot.state)
}

/// Waits until every store has handled what it was told.
async fn settled(fleet: &[Configured]) {
    until("the stores have handled every event", || {
        fleet
            .iter()
            .all(|g| g.breaker_store.as_ref().unwrap().pending_events() == 0)
    })
    .await;
}

/// Sends requests round robin, one at a time and each failure told to the store before the
/// next, until a replica is pinned; returns the handshakes the upstream answered until every
/// replica was pinned.
async fn handshakes_until_pinned(fleet: &[Configured], upstream: &TestUpstream) -> usize {
    let mut sent = 0;
    while !fleet.iter().any(|g| state(g) == Some(BreakerState::Open)) {
        assert!(
            sent < 3 * fleet.len(),
            "pinned before each replica would be alone"
        );
        let (status, _) = exchange(&fleet[sent % fleet.len()].routes[0].1, STREAM).await;
        assert_eq!(status, StatusCode::OK, "the fallback serves every request");
        sent += 1;
        settled(fleet).await;
    }
    until("every replica is pinned", || {
        fleet.iter().all(|g| state(g) == Some(BreakerState::Open))
    })
    .await;
    upstream.handshakes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_pay_the_threshold_once_not_three_times() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));

    // One replica: its own threshold.
    let one = fleet(&config(&upstream, &redis, "one", "60s"), 1).await;
    let alone = handshakes_until_pinned(&one, &upstream).await;
    assert_eq!(alone, 3);

    // Three replicas sharing the store: the same 3 handshakes in total, not 9.
    let before = upstream.handshakes();
    let three = fleet(&config(&upstream, &redis, "three", "60s"), 3).await;
    let together = handshakes_until_pinned(&three, &upstream).await - before;
    assert_eq!(together, 3, "threshold 3 across the fleet");
    // Pinned everywhere: no handshake more, the pin and its cause are on every replica.
    for gateway in &three {
        let (status, transport) = exchange(&gateway.routes[0].1, STREAM).await;
        assert_eq!((status, transport.as_str()), (StatusCode::OK, "http"));
        let snapshot = gateway.wsfirst.breakers().snapshot().remove(0);
        assert!(snapshot.until_secs.is_some_and(|secs| secs > 0.0));
    }
    assert_eq!(upstream.handshakes() - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_recovers_with_probes_when_the_upstream_heals() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));
    let three = fleet(&config(&upstream, &redis, "heal", "300ms"), 3).await;
    handshakes_until_pinned(&three, &upstream).await;
    upstream.set_default_ws_script(WsScript::Accept);
    // Requests go on; once the pin ends a probe succeeds and every replica closes.
    let mut rounds = 0;
    while !three.iter().all(|g| state(g) == Some(BreakerState::Closed)) {
        rounds += 1;
        assert!(rounds < 500, "the fleet never recovered");
        for gateway in &three {
            let (status, _) = exchange(&gateway.routes[0].1, STREAM).await;
            assert_eq!(status, StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for gateway in &three {
        let (_, transport) = exchange(&gateway.routes[0].1, STREAM).await;
        assert_eq!(transport, "websocket");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pin_on_one_gateway_is_seen_by_the_others() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let upstream = TestUpstream::start().await;
    let three = fleet(&config(&upstream, &redis, "admin", "60s"), 3).await;
    for gateway in &three {
        let (_, transport) = exchange(&gateway.routes[0].1, STREAM).await;
        assert_eq!(transport, "websocket");
    }
    let key = three[0].wsfirst.breakers().snapshot()[0].key.to_string();
    let pin = Request::post("/transport/pin")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({ "key": key, "for": "10m" }).to_string(),
        ))
        .unwrap();
    let response = three[1].wsfirst.admin_router().oneshot(pin).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    until("every replica shows the pin by hand", || {
        three.iter().all(|g| {
            g.wsfirst
                .breakers()
                .snapshot()
                .first()
                .is_some_and(|s| s.state == BreakerState::Open && s.pinned_by_hand)
        })
    })
    .await;
    // The admin view of another replica shows the shared state.
    let view = Request::get("/transport").body(Body::empty()).unwrap();
    let response = three[2].wsfirst.admin_router().oneshot(view).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["keys"][0]["state"], "open");
    assert_eq!(json["keys"][0]["pinned_by_hand"], true);
    for gateway in &three {
        let (_, transport) = exchange(&gateway.routes[0].1, STREAM).await;
        assert_eq!(transport, "http");
    }
    // Nothing secret went into the store's logs or keys: the admin view never had the credential.
    assert!(!String::from_utf8_lossy(&body).contains("sk-test"));
}
