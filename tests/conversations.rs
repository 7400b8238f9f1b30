//! Conversations keep (and own) their socket, end to end: concurrent conversations with
//! `previous_response_id` through the whole stack (Eligibility -> CircuitBreaker -> Fallback ->
//! WebSocket -> HTTP) against the test upstream, which keeps `store: false` responses only on
//! the connection that produced them, like the Responses API.
//!
//! A turn whose previous response cannot be found gets a `400 previous_response_not_found`
//! from the upstream, over the WebSocket or over HTTP; the tests assert on the status and the
//! error code the client reads, which hold whichever transport delivered the answer.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tower::ServiceExt;
use wsfirst::{
    RouteService, Wsfirst,
    core::{Route, TransportMode},
    eligibility::EligibilityTable,
    websocket::testing::TestUpstream,
};

fn service(upstream: &TestUpstream) -> RouteService {
    let wsfirst = Wsfirst::builder()
        .eligibility(
            EligibilityTable::builder()
                .allow("local", "responses")
                .build()
                .unwrap(),
        )
        .build();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(TransportMode::Auto)
        .build()
        .unwrap();
    wsfirst.route(route)
}

fn turn(store: bool, stream: bool, previous: Option<&str>, input: &str) -> String {
    let mut body = json!({"model": "gpt-test", "input": input, "store": store, "stream": stream});
    if let Some(previous) = previous {
        body["previous_response_id"] = json!(previous);
    }
    body.to_string()
}

/// Sends one turn: `Ok(response id)` for a complete answer, else `Err((status, error code))`.
async fn send(service: &RouteService, body: String) -> Result<String, (StatusCode, String)> {
    let request = Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(Bytes::from(body)))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value == "text/event-stream");
    let bytes = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err((status, format!("body error: {error}"))),
    };
    let code = |value: &Value| {
        value["error"]["code"]
            .as_str()
            .or(value["code"].as_str())
            .unwrap_or("no code")
            .to_owned()
    };
    let text = String::from_utf8_lossy(&bytes);
    if status.is_success() && sse {
        for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
            let event: Value = serde_json::from_str(data).unwrap();
            match event["type"].as_str() {
                Some("response.completed") => {
                    return Ok(event["response"]["id"].as_str().unwrap().to_owned());
                }
                Some("error") => return Err((status, code(&event))),
                _ => {}
            }
        }
        return Err((status, format!("no terminal event in {text}")));
    }
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match json["id"].as_str() {
        Some(id) if status.is_success() => Ok(id.to_owned()),
        _ => Err((status, code(&json))),
    }
}

/// `conversations` concurrent conversations of `turns` turns, taking each turn together;
/// returns how many turns were answered.
async fn conversations(
    service: &RouteService,
    store: bool,
    conversations: usize,
    turns: usize,
) -> usize {
    let barrier = Arc::new(Barrier::new(conversations));
    let tasks: Vec<_> = (0..conversations)
        .map(|index| {
            let (service, barrier) = (service.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut answered = 0;
                let mut previous: Option<String> = None;
                for number in 0..turns {
                    barrier.wait().await;
                    let body = turn(
                        store,
                        index % 2 == 0,
                        previous.as_deref(),
                        &format!("conversation {index}, turn {number}"),
                    );
                    previous = send(&service, body).await.ok();
                    answered += usize::from(previous.is_some());
                }
                answered
            })
        })
        .collect();
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_conversations_of_four_turns_without_store_all_succeed_on_about_eight_sockets() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let service = service(&upstream);
    let answered = conversations(&service, false, 8, 4).await;
    let connections = upstream.ws_connections();
    println!(
        "8 conversations x 4 turns, store: false: {answered}/32 answered, \
         {connections} websocket connections, {} http requests",
        upstream.http_requests()
    );
    assert_eq!(answered, 32);
    assert!(connections <= 8 + 2, "{connections} connections");
    assert_eq!(upstream.ws_requests(), 32);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_conversations_of_four_turns_with_store_all_succeed() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let service = service(&upstream);
    assert_eq!(conversations(&service, true, 8, 4).await, 32);
    assert_eq!(upstream.http_requests(), 0);
}

#[tokio::test]
async fn a_turn_whose_socket_died_gets_the_upstreams_answer() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let service = service(&upstream);
    let unstored = send(&service, turn(false, true, None, "a")).await.unwrap();
    let stored = send(&service, turn(true, false, None, "b")).await.unwrap();
    upstream.close_ws_connections();
    while upstream.open_ws_connections() > 0 {
        tokio::task::yield_now().await;
    }
    // `store: false`: the response died with its socket; the client gets the upstream's 400.
    let error = send(&service, turn(false, false, Some(&unstored), "c"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        (
            StatusCode::BAD_REQUEST,
            "previous_response_not_found".to_owned()
        )
    );
    // Stored: it continues on a new socket.
    assert!(
        send(&service, turn(true, true, Some(&stored), "d"))
            .await
            .is_ok()
    );
}

/// Agent loops through the whole stack, with think time between turns (the tools running)
/// while one-shot requests (stored, and one in three `store: false`) share the pool: every turn finds its
/// previous response, against an upstream that keeps only the latest response of each lane
/// per connection. Without the pool's holds (`conversation_hold` zero), other requests take
/// the conversations' idle connections: 9 of the 30 turns got `previous_response_not_found`
/// (on 6 connections); with them, none (on 32: the one-shot `store: false` requests' are held
/// too, up to the key's maximum).
#[tokio::test(start_paused = true)]
async fn agent_loops_with_think_time_among_other_requests_never_lose_their_previous_response() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let service = service(&upstream);
    let (agents, turns) = (6, 5);
    let loops: Vec<_> = (0..agents)
        .map(|agent| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut previous: Option<String> = None;
                for number in 0..turns {
                    let input = format!("agent {agent}, turn {number}");
                    let body = turn(false, agent % 2 == 0, previous.as_deref(), &input);
                    let outcome = send(&service, body).await;
                    previous = outcome.clone().ok();
                    outcomes.push(outcome);
                    // Each agent thinks for its own time, so turns interleave with the others.
                    let think = 20 + 7 * agent as u64;
                    tokio::time::sleep(std::time::Duration::from_secs(think)).await;
                }
                outcomes
            })
        })
        .collect();
    let others = {
        let service = service.clone();
        tokio::spawn(async move {
            // Half a second after each agent's turn: the most recently returned connection
            // is then an agent's.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            for number in 0..120 {
                // One in three is a one-shot `store: false` request, whose connection the
                // pool holds too: the key reaches its 32 connections after about 80 s, when
                // every agent is past its first turn (the least recently used first-turn holds
                // are given up first).
                let body = turn(number % 3 != 0, true, None, &format!("other {number}"));
                assert!(send(&service, body).await.is_ok());
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    };
    let mut failed = Vec::new();
    for task in loops {
        failed.extend(task.await.unwrap().into_iter().filter_map(Result::err));
    }
    others.await.unwrap();
    println!(
        "{agents} agent loops x {turns} turns among 120 other requests: {} failed, {} websocket \
         connections, {} handshakes",
        failed.len(),
        upstream.ws_connections(),
        upstream.handshakes()
    );
    assert_eq!(failed, []);
    assert_eq!(upstream.http_requests(), 0);
}
