//! Three gateway replicas in one process sharing their breakers through a local Redis.
//!
//! Run with `cargo run -p wsfirst-gateway --example fleet`. It starts a throwaway `redis-server` on a free loopback
//! port (if one is installed: `apt-get install redis-server`; without it the example says so and
//! stops), a fake Responses API upstream whose WebSocket upgrade answers `500`, and three
//! replicas built from one configuration file with a `[breaker_store]`. Then:
//!
//! 1. the same traffic without a store, for comparison: each replica pays its own threshold;
//! 2. with the store: the fleet pins after the threshold in total, and every replica routes
//!    around the dead WebSocket;
//! 3. a pin by hand on one replica, timed until every other replica shows it;
//! 4. the upstream heals: one probe across the fleet brings every replica back;
//! 5. Redis is killed and restarted: requests keep flowing on local breakers, and the replicas
//!    catch up.
//!
//! Set `RUST_LOG=info` to see the breaker's logs (one WARN per replica when it is pinned, the
//! store's one WARN when Redis goes away and one INFO when it is back).

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;
use wsfirst::{
    breaker::BreakerState,
    core::BoxError,
    websocket::testing::{TestUpstream, WsScript},
};
use wsfirst_breaker_redis::testing::RedisServer;
use wsfirst_gateway::{Configured, config::Config};

const BODY: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("fleet example failed: {error}");
        std::process::exit(1);
    }
}

fn file(upstream: &TestUpstream, store: Option<(&RedisServer, &str)>) -> Result<Config, BoxError> {
    let store = store.map_or(String::new(), |(redis, prefix)| {
        format!(
            "[breaker_store]\nredis_url = \"{}\"\nprefix = \"{prefix}\"\n",
            redis.url()
        )
    });
    Ok(Config::from_toml_str(&format!(
        r#"
        fingerprint_key_env = "CARGO_PKG_DESCRIPTION"
        {store}
        [eligibility]
        websocket_pairs = [["local", "responses"]]

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"

        [routes.breaker]
        consecutive_failures = 3
        open_duration = "2s"
        half_open_probes = 1
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))?)
}

async fn send(gateway: &Configured) -> Result<String, BoxError> {
    let request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-example")
        .header("content-type", "application/json")
        .body(Body::from(BODY))?;
    let response = gateway.routes[0].1.clone().oneshot(request).await?;
    let transport = response
        .headers()
        .get("x-wsfirst-transport")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await?;
    Ok(transport)
}

fn state(gateway: &Configured) -> Option<BreakerState> {
    gateway
        .wsfirst
        .breakers()
        .snapshot()
        .first()
        .map(|snapshot| snapshot.state)
}

fn all(fleet: &[Configured], wanted: BreakerState) -> bool {
    fleet.iter().all(|g| state(g) == Some(wanted))
}

/// Sends one request on every replica at once, every 10 ms, until `done`; at most 10 s.
async fn traffic(fleet: &[Configured], done: impl Fn() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return Err("the fleet did not get there within 10 s".into());
        }
        let sends = fleet.iter().map(send);
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn run() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off")),
        )
        .init();
    let Some(mut redis) = RedisServer::start() else {
        println!("no redis-server installed: apt-get install redis-server, then run this again");
        return Ok(());
    };
    println!("redis-server on {}", redis.url());
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));

    // 1. Without a store.
    let config = file(&upstream, None)?;
    let alone: Vec<Configured> = (0..3)
        .map(|_| Configured::from_config(&config))
        .collect::<Result<_, _>>()?;
    traffic(&alone, || all(&alone, BreakerState::Open)).await?;
    let without = upstream.handshakes();
    println!("1. without a store: {without} failed handshakes before all 3 replicas were pinned");

    // 2. With the store.
    let config = file(&upstream, Some((&redis, "fleet-example")))?;
    let fleet: Vec<Configured> = (0..3)
        .map(|_| Configured::from_config(&config))
        .collect::<Result<_, _>>()?;
    let connected = || {
        fleet
            .iter()
            .all(|g| g.breaker_store.as_ref().is_some_and(|s| s.is_connected()))
    };
    traffic(&fleet[..0], connected).await?;
    let before = upstream.handshakes();
    let started = Instant::now();
    traffic(&fleet, || all(&fleet, BreakerState::Open)).await?;
    println!(
        "2. with the store:  {} failed handshakes before all 3 replicas were pinned ({} ms after the first request)",
        upstream.handshakes() - before,
        started.elapsed().as_millis()
    );
    let snapshot = fleet[2].wsfirst.breakers().snapshot().remove(0);
    println!(
        "   replica 3 sees: {} for {:.1}s more, trips {}, last failure {:?}",
        snapshot.state,
        snapshot.until_secs.unwrap_or_default(),
        snapshot.trips,
        snapshot.last_failure.map(|f| f.message),
    );

    // 3. A pin by hand on replica 1, timed until the others show it.
    let handle = fleet[0].wsfirst.breakers();
    let key = handle.snapshot().remove(0).key;
    handle.unpin(&key);
    traffic(&fleet[..0], || all(&fleet, BreakerState::Closed)).await?;
    let pinned_at = Instant::now();
    handle.pin(&key, Some(Duration::from_secs(600)));
    while !fleet[1..].iter().all(|g| {
        g.wsfirst
            .breakers()
            .get(&key)
            .is_some_and(|s| s.pinned_by_hand)
    }) {
        if pinned_at.elapsed() > Duration::from_secs(10) {
            return Err("the pin did not reach the other replicas".into());
        }
        tokio::task::yield_now().await;
    }
    println!(
        "3. pin by hand on replica 1: on replicas 2 and 3 after {:.2} ms",
        pinned_at.elapsed().as_secs_f64() * 1000.0
    );

    // 4. The upstream heals; the pin by hand is lifted, then a trip's pin ends.
    upstream.set_default_ws_script(WsScript::Accept);
    fleet[2].wsfirst.breakers().reset(&key);
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "boom"));
    traffic(&fleet, || all(&fleet, BreakerState::Open)).await?;
    upstream.set_default_ws_script(WsScript::Accept);
    let healed_at = upstream.handshakes();
    traffic(&fleet, || all(&fleet, BreakerState::Closed)).await?;
    println!(
        "4. healed: {} probe handshake(s) across the fleet, then every replica closed",
        upstream.handshakes() - healed_at
    );

    // 5. Redis killed, then restarted.
    redis.kill();
    let down = || {
        fleet
            .iter()
            .all(|g| g.breaker_store.as_ref().is_some_and(|s| !s.is_connected()))
    };
    traffic(&fleet, down).await?;
    for _ in 0..5 {
        for gateway in &fleet {
            send(gateway).await?;
        }
    }
    println!("5. redis killed: 15 more requests served, each replica on its own breaker");
    let restarted = Instant::now();
    redis.restart();
    traffic(&fleet, connected).await?;
    println!(
        "   redis restarted: every replica reconnected and caught up after {} ms",
        restarted.elapsed().as_millis()
    );
    Ok(())
}
