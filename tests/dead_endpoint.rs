//! A WebSocket endpoint that refuses every upgrade costs at most the breaker's threshold of
//! handshakes, however many requests are in flight: the breaker counts a refused handshake when
//! it happens, not when the HTTP answer that replaced it is done, and a request admitted before
//! the key tripped starts no handshake after it.
//!
//! The HTTP upstream holds every answer until the test releases them, so that the requests stay
//! in flight together and the breaker cannot learn anything from an HTTP answer: requests arrive
//! in waves, each wave after the previous one reached the HTTP upstream (its handshake refused,
//! or its key pinned).

mod support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Body, extract::State, routing::post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::until;
use tokio::sync::watch;
use tower::ServiceExt;
use wsfirst::{
    breaker::BreakerState,
    core::{Route, Served, Transport},
    websocket::testing::{TestUpstream, WsScript},
};

/// The breaker's threshold in [`support::wsfirst`]: 3 failures in a row.
const THRESHOLD: usize = 3;

/// The waves the requests arrive in.
const WAVES: usize = 8;

/// An HTTP upstream that counts executions per request (by its `input`) and answers none until
/// released.
#[derive(Clone)]
struct Held {
    executions: Arc<Mutex<HashMap<String, usize>>>,
    release: watch::Receiver<bool>,
}

async fn held(State(held): State<Held>, body: Bytes) -> &'static str {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let input = json["input"].as_str().unwrap().to_owned();
    *held.executions.lock().unwrap().entry(input).or_default() += 1;
    let mut release = held.release.clone();
    release.wait_for(|released| *released).await.unwrap();
    r#"{"object":"response","status":"completed"}"#
}

async fn start_held(held: Held) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/responses", post(self::held))
        .with_state(held);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends `concurrency` requests in [`WAVES`] waves to a WebSocket endpoint that refuses every
/// upgrade with 500, all of them in flight until the last one reached the HTTP upstream.
async fn dead_endpoint(concurrency: usize) {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong endpoint",
    ));
    let (release, released) = watch::channel(false);
    let executions = Arc::new(Mutex::new(HashMap::new()));
    let http = start_held(Held {
        executions: executions.clone(),
        release: released,
    })
    .await;
    let wsfirst = support::wsfirst();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(format!("http://{http}/v1/responses"))
        .build()
        .unwrap();
    let service = wsfirst.route(route);

    let mut tasks = tokio::task::JoinSet::new();
    let per_wave = concurrency / WAVES;
    for wave in 0..WAVES {
        for n in wave * per_wave..(wave + 1) * per_wave {
            let service = service.clone();
            tasks.spawn(async move {
                let body = format!(r#"{{"model":"gpt-test","input":"request {n}"}}"#);
                let request = Request::post("/v1/responses")
                    .header("authorization", "Bearer sk-test")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap();
                let response = service.oneshot(request).await.unwrap();
                let status = response.status();
                let served = response.extensions().get::<Served>().map(Served::transport);
                response.into_body().collect().await.unwrap();
                (status, served)
            });
        }
        let sent = (wave + 1) * per_wave;
        until("the wave reached the http upstream", || {
            executions.lock().unwrap().len() == sent
        })
        .await;
    }
    let handshakes = upstream.handshakes();
    release.send(true).unwrap();
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap(), (StatusCode::OK, Some(Transport::Http)));
        answered += 1;
    }
    assert_eq!(answered, concurrency);
    println!("{concurrency} requests in flight: {handshakes} handshakes");
    assert!(
        handshakes <= THRESHOLD,
        "{handshakes} handshakes for {concurrency} requests in flight, threshold {THRESHOLD}"
    );
    // Every request executed exactly once, over HTTP; none over the WebSocket.
    let executions = executions.lock().unwrap();
    assert_eq!(executions.len(), concurrency);
    assert!(executions.values().all(|&n| n == 1), "{executions:?}");
    assert_eq!(upstream.ws_requests(), 0);
    // Each refused handshake counted once: the key tripped on the last one.
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(
        (handshakes, snapshot[0].state),
        (THRESHOLD, BreakerState::Open),
        "{:?}",
        snapshot[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_costs_at_most_the_threshold_with_64_requests_in_flight() {
    dead_endpoint(64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_costs_at_most_the_threshold_with_256_requests_in_flight() {
    dead_endpoint(256).await;
}
