//! Connection pooling against the scriptable upstream: reuse, affinity, credentials, idle expiry
//! and maximum age (virtual time), dead connections, coalesced handshakes, clean close.
#![cfg(feature = "testing")]

mod ws_support;

use std::time::Duration;

use http::StatusCode;
use tower::ServiceExt;
use ws_support::*;
use wsfirst_core::{FailureKind, Phase};
use wsfirst_websocket::{
    Pool, WebSocketConfig,
    testing::{TestUpstream, WsScript},
};

fn config() -> WebSocketConfig {
    WebSocketConfig::builder().build().unwrap()
}

/// Sends one request and reads its whole answer, which returns the connection to the pool.
async fn complete(service: &mut Svc, request: http::Request<http_body_util::Full<bytes::Bytes>>) {
    let response = call(service, request).await.expect("the attempt succeeds");
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert!(!bytes.is_empty());
}

/// Lets `by` pass in virtual time, then lets real time run again for real I/O.
async fn time_passes(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::new();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    complete(&mut service, request(&route, false)).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 1);
    assert_eq!(upstream.ws_requests(), 3);
    assert_eq!(pool.idle_connections(), 1);
}

#[tokio::test]
async fn layers_built_with_one_pool_share_connections() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::new();
    let (mut first, _) = service(config(), &pool);
    let (mut second, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut first, request(&route, true)).await;
    complete(&mut second, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 1);
}

#[tokio::test]
async fn affinity_values_get_their_own_connections() {
    let upstream = TestUpstream::start().await;
    let config = WebSocketConfig::builder()
        .affinity_header("x-session-id")
        .build()
        .unwrap();
    let (mut service, _) = service(config, &Pool::new());
    let route = route(&upstream);
    for session in ["a", "b", "a", "b"] {
        let request = request_with(&route, body(true), &[("x-session-id", session)]);
        complete(&mut service, request).await;
    }
    assert_eq!(upstream.handshakes(), 2);
    let connections: Vec<_> = upstream
        .captured()
        .iter()
        .map(|captured| captured.connection.unwrap())
        .collect();
    assert_eq!(connections[0], connections[2]);
    assert_eq!(connections[1], connections[3]);
    assert_ne!(connections[0], connections[1]);
}

#[tokio::test]
async fn credentials_never_share_a_connection() {
    let upstream = TestUpstream::start().await;
    let (mut service, _) = service(config(), &Pool::new());
    let route = route(&upstream);
    for key in ["Bearer sk-alice", "Bearer sk-bob", "Bearer sk-alice"] {
        let mut request = request(&route, true);
        request
            .headers_mut()
            .insert("authorization", key.parse().unwrap());
        complete(&mut service, request).await;
    }
    assert_eq!(upstream.handshakes(), 2);
    let captured = upstream.captured();
    assert_eq!(captured[1].header("authorization"), Some("Bearer sk-bob"));
    assert_eq!(captured[0].connection, captured[2].connection);
}

#[tokio::test]
async fn idle_connections_expire_after_the_idle_timeout() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    time_passes(Duration::from_secs(59)).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 1, "reused within the idle timeout");
    time_passes(Duration::from_secs(61)).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(
        upstream.handshakes(),
        2,
        "a new connection after the idle timeout"
    );
}

#[tokio::test]
async fn connections_rotate_at_max_age() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(2 * 3600))
        .max_age(Duration::from_secs(55 * 60))
        .build()
        .unwrap();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    time_passes(Duration::from_secs(50 * 60)).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 1, "reused at 50 minutes");
    time_passes(Duration::from_secs(6 * 60)).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 2, "rotated after 55 minutes");
}

#[tokio::test]
async fn connection_closed_by_the_upstream_while_idle_is_replaced_silently() {
    let upstream = TestUpstream::start().await;
    let (mut service, _) = service(config(), &Pool::new());
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    upstream.close_ws_connections();
    until(|| upstream.open_ws_connections() == 0).await;
    complete(&mut service, request(&route, true)).await;
    assert_eq!(upstream.handshakes(), 2);
    assert_eq!(upstream.ws_requests(), 2);
}

/// 64 concurrent WebSocket requests for one key.
fn sixty_four(
    service: &Svc,
    route: &wsfirst_core::Route,
) -> Vec<tokio::task::JoinHandle<wsfirst_core::WsFailure>> {
    (0..64)
        .map(|_| {
            let service = service.clone();
            let request = request(route, true);
            spawn(async move { failure_of(service.oneshot(request).await.map(|_| ())) })
        })
        .collect()
}

#[tokio::test]
async fn concurrent_requests_to_a_refusing_endpoint_cost_one_handshake() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "down"));
    let (service, _) = service(config(), &Pool::new());
    let tasks = sixty_four(&service, &route(&upstream));
    for task in tasks {
        let failure = task.await.unwrap();
        assert_eq!(failure.phase(), Phase::Handshake);
        assert_eq!(
            failure.kind().upgrade_status(),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
    assert_eq!(upstream.handshakes(), 1);
}

#[tokio::test]
async fn concurrent_requests_to_a_hanging_endpoint_cost_one_handshake_timeout() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::Hang);
    let (service, _) = service(config(), &Pool::new());
    let tasks = sixty_four(&service, &route(&upstream));
    until(|| upstream.handshakes() == 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(6)).await;
    for task in tasks {
        let failure = task.await.unwrap();
        assert_eq!(
            failure.kind(),
            &FailureKind::Timeout(Duration::from_secs(5))
        );
        assert!(failure.is_replay_safe());
    }
    assert_eq!(upstream.handshakes(), 1);
}

#[tokio::test]
async fn closing_the_pool_closes_its_connections() {
    let upstream = TestUpstream::start().await;
    let pool = Pool::new();
    let (mut service, _) = service(config(), &pool);
    complete(&mut service, request(&route(&upstream), true)).await;
    assert_eq!(upstream.open_ws_connections(), 1);
    pool.close().await;
    until(|| upstream.open_ws_connections() == 0).await;
    assert_eq!(pool.connections(), 0);
    let failure = failure_of(call(&mut service, request(&route(&upstream), true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    assert_eq!(upstream.handshakes(), 1);
}

#[tokio::test]
async fn a_conversation_never_follows_an_expired_connection() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    // A hold no longer than the idle timeout: the connection expires at 60 s.
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(60))
        .conversation_hold(Duration::from_secs(60))
        .build()
        .unwrap();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    let first = r#"{"model":"gpt-kit","input":"hi","store":false,"stream":true}"#;
    complete(&mut service, request_with(&route, first.into(), &[])).await;
    let next = r#"{"model":"gpt-kit","input":"more","store":false,"stream":true,"previous_response_id":"resp_kit_0001"}"#;
    time_passes(Duration::from_secs(59)).await;
    complete(&mut service, request_with(&route, next.into(), &[])).await;
    assert_eq!(upstream.captured()[1].connection, Some(1), "followed");
    time_passes(Duration::from_secs(61)).await;
    // Expired with its connection: the turn goes to a new one, which cannot know the response.
    let next = r#"{"model":"gpt-kit","input":"again","store":false,"stream":true,"previous_response_id":"resp_kit_0002"}"#;
    let _ = call(&mut service, request_with(&route, next.into(), &[])).await;
    assert_eq!(upstream.captured()[2].connection, Some(2));
}

/// The reaper task ends as soon as the pool shuts down, not at its next tick (30 s with the
/// default idle timeout): a shut-down pool leaves no task behind.
#[tokio::test]
async fn shutdown_leaves_no_reaper_task_behind() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let upstream = TestUpstream::start().await;
    let pool = Pool::new();
    let (mut service, _) = service(config(), &pool);
    let route = route(&upstream);
    complete(&mut service, request(&route, true)).await;
    assert_eq!(pool.idle_connections(), 1);

    assert_eq!(pool.shutdown(Duration::from_secs(5)).await, 0);
    upstream.shutdown().await;
    // Within seconds, where the reaper's next tick is 30 s away.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tasks() > before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(tasks(), before, "tasks left after the pool's shutdown");
}
