//! Conversations keep their socket: the test kit keeps each connection's responses like the
//! Responses API does (`store: false` only on the connection that produced them), and the pool
//! sends a request with a `previous_response_id` to that connection.
//!
//! What a rejected turn looks like to the client depends on how error events are answered (an
//! `Err` carrying the upstream's error, or an HTTP-shaped 4xx response): [`outcome`] reads
//! either, and the tests assert on the error code and on counts.
#![cfg(feature = "testing")]

mod ws_support;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio_tungstenite::{connect_async, tungstenite::Message};
use ws_support::*;
use wsfirst_core::{BoxError, FailureKind, Route, find_ws_failure};
use wsfirst_websocket::{
    Body, Pool, WebSocketConfig,
    testing::{TestUpstream, WsScript},
};

/// The body of one turn of a conversation.
fn turn(store: bool, stream: bool, previous: Option<&str>, input: &str) -> String {
    let mut body = json!({"model": "gpt-kit", "input": input, "store": store, "stream": stream});
    if let Some(previous) = previous {
        body["previous_response_id"] = json!(previous);
    }
    body.to_string()
}

/// What the client got for one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A complete answer, with its response id.
    Answered(String),
    /// An error, with its code (or a description when it has none).
    Rejected(String),
}

impl Outcome {
    fn id(&self) -> Option<&str> {
        match self {
            Outcome::Answered(id) => Some(id),
            Outcome::Rejected(_) => None,
        }
    }
}

/// The code of an error in any of its shapes: an error event (`error.code` or `code`) or an
/// HTTP error body (`error.code`).
fn error_code(value: &Value) -> String {
    value["error"]["code"]
        .as_str()
        .or(value["code"].as_str())
        .unwrap_or("no code")
        .to_owned()
}

/// Reads what the client got: an answer (SSE or JSON) and its response id, or an error, whether
/// it came as an `Err`, as a non-2xx response, or as an SSE `error` event.
async fn outcome(result: Result<Response<Body<Full<Bytes>>>, BoxError>) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            return Outcome::Rejected(match find_ws_failure(&*error).map(|f| f.kind().clone()) {
                Some(FailureKind::UpstreamError {
                    code: Some(code), ..
                }) => code,
                _ => error.to_string(),
            });
        }
    };
    let status = response.status();
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value == "text/event-stream");
    let (bytes, error) = read_body(response.into_body()).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if sse && status.is_success() {
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let event: Value = serde_json::from_str(data).unwrap();
            match event["type"].as_str() {
                Some("response.completed") if error.is_none() => {
                    return Outcome::Answered(event["response"]["id"].as_str().unwrap().into());
                }
                Some("error") => return Outcome::Rejected(error_code(&event)),
                _ => {}
            }
        }
        return Outcome::Rejected(format!("no terminal event in {text:?} ({error:?})"));
    }
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match json["id"].as_str() {
        Some(id) if status.is_success() && error.is_none() => Outcome::Answered(id.into()),
        _ => Outcome::Rejected(error_code(&json)),
    }
}

async fn send(service: &mut Svc, route: &Route, body: String) -> Outcome {
    outcome(call(service, request_with(route, body, &[])).await).await
}

/// A conversation of `turns` turns, each continuing the previous answer, all conversations
/// taking each turn together (`barrier`), so that the connections come back to the pool in
/// another order than the next turns ask for them.
async fn converse(
    mut service: Svc,
    route: Route,
    store: bool,
    stream: bool,
    turns: usize,
    barrier: Arc<Barrier>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut previous: Option<String> = None;
    for number in 0..turns {
        barrier.wait().await;
        let body = turn(
            store,
            stream,
            previous.as_deref(),
            &format!("turn {number}"),
        );
        let outcome = send(&mut service, &route, body).await;
        previous = outcome.id().map(str::to_owned);
        outcomes.push(outcome);
    }
    outcomes
}

/// `conversations` concurrent conversations of `turns` turns; returns how many turns were
/// answered.
async fn concurrent_conversations(
    upstream: &TestUpstream,
    pool: &Pool,
    store: bool,
    conversations: usize,
    turns: usize,
) -> usize {
    let (service, http_calls) = service(WebSocketConfig::default(), pool);
    let route = route(upstream);
    let barrier = Arc::new(Barrier::new(conversations));
    let tasks: Vec<_> = (0..conversations)
        .map(|index| {
            spawn(converse(
                service.clone(),
                route.clone(),
                store,
                index % 2 == 0,
                turns,
                barrier.clone(),
            ))
        })
        .collect();
    let mut answered = 0;
    let mut rejected = Vec::new();
    for task in tasks {
        for outcome in task.await.unwrap() {
            match outcome {
                Outcome::Answered(_) => answered += 1,
                Outcome::Rejected(code) => rejected.push(code),
            }
        }
    }
    println!("rejected turns: {rejected:?}");
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    answered
}

// The test kit behaves like the API.

async fn ws_turn(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    body: &str,
) -> Value {
    let mut create: Value = serde_json::from_str(body).unwrap();
    create["type"] = json!("response.create");
    socket
        .send(Message::text(create.to_string()))
        .await
        .unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("the connection ended");
        };
        let event: Value = serde_json::from_str(text.as_str()).unwrap();
        if matches!(event["type"].as_str(), Some("response.completed" | "error")) {
            return event;
        }
    }
}

async fn http_turn(upstream: &TestUpstream, body: &str) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::post(upstream.http_url())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn kit_keeps_unstored_responses_on_their_connection_only() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let (mut first, _) = connect_async(upstream.ws_url()).await.unwrap();
    let (mut second, _) = connect_async(upstream.ws_url()).await.unwrap();
    let answer = ws_turn(&mut first, &turn(false, true, None, "a")).await;
    let id = answer["response"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "resp_kit_0001");

    // The connection that produced it continues it, and keeps the latest response only (per
    // lane), as the API does: continuing the older one fails once it was continued.
    let next = ws_turn(&mut first, &turn(false, true, Some(&id), "b")).await;
    assert_eq!(next["response"]["id"], "resp_kit_0002");
    let again = ws_turn(&mut first, &turn(false, true, Some(&id), "b")).await;
    assert_eq!(again["error"]["code"], "previous_response_not_found");
    let next = ws_turn(&mut first, &turn(false, true, Some("resp_kit_0002"), "b")).await;
    assert_eq!(next["response"]["id"], "resp_kit_0003");
    // Another connection, and the HTTP endpoint, cannot find it.
    let error = ws_turn(&mut second, &turn(false, true, Some(&id), "c")).await;
    assert_eq!(
        error,
        json!({
            "type": "error",
            "status": 400,
            "error": {
                "type": "invalid_request_error",
                "code": "previous_response_not_found",
                "message": format!("Previous response with id '{id}' not found."),
                "param": "previous_response_id",
            },
        })
    );
    // The connection stays open and serves the next request.
    let fresh = ws_turn(&mut second, &turn(false, true, None, "d")).await;
    assert_eq!(fresh["type"], "response.completed");
    let (status, body) = http_turn(&upstream, &turn(false, false, Some(&id), "e")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "error": {
                "message": format!("Previous response with id '{id}' not found."),
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            },
        })
    );
    // Gone with its connection.
    drop(first);
    let (mut third, _) = connect_async(upstream.ws_url()).await.unwrap();
    let error = ws_turn(&mut third, &turn(false, true, Some(&id), "f")).await;
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    // Every request was received and counted, rejected ones included.
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (7, 1));
}

#[tokio::test]
async fn kit_shares_stored_responses_with_every_connection_and_http() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let (mut first, _) = connect_async(upstream.ws_url()).await.unwrap();
    let (mut second, _) = connect_async(upstream.ws_url()).await.unwrap();
    // `store` absent means stored, as in the API.
    let body = json!({"model": "gpt-kit", "input": "a"}).to_string();
    let answer = ws_turn(&mut first, &body).await;
    let id = answer["response"]["id"].as_str().unwrap().to_owned();
    let next = ws_turn(&mut second, &turn(true, true, Some(&id), "b")).await;
    assert_eq!(next["type"], "response.completed");
    let (status, json) = http_turn(&upstream, &turn(true, false, Some(&id), "c")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // A response produced over HTTP is stored too.
    let over_http = json["id"].as_str().unwrap().to_owned();
    let next = ws_turn(&mut first, &turn(true, true, Some(&over_http), "d")).await;
    assert_eq!(next["type"], "response.completed");
    // Unknown everywhere.
    let (status, json) = http_turn(&upstream, &turn(true, true, Some("resp_never"), "e")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "previous_response_not_found");
}

// The pool follows conversations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_conversations_of_four_turns_without_store_open_about_eight_connections() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let pool = Pool::new();
    let answered = concurrent_conversations(&upstream, &pool, false, 8, 4).await;
    let connections = upstream.ws_connections();
    println!(
        "8 conversations x 4 turns with store: false: {answered} answered, {connections} websocket connections opened"
    );
    assert_eq!(answered, 32);
    assert_eq!(upstream.ws_requests(), 32, "no turn ran twice");
    assert!(
        connections <= 8 + 2,
        "{connections} connections for 8 conversations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_conversations_of_four_turns_with_store_succeed() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let pool = Pool::new();
    let answered = concurrent_conversations(&upstream, &pool, true, 8, 4).await;
    println!(
        "8 conversations x 4 turns with store: true: {answered} answered, {} websocket connections opened",
        upstream.ws_connections()
    );
    assert_eq!(answered, 32);
}

#[tokio::test]
async fn a_stored_conversation_continues_on_any_connection() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    // Never wait: while its connection is busy, the turn goes elsewhere.
    let pool = Pool::builder()
        .conversation_wait(Duration::ZERO)
        .build()
        .unwrap();
    upstream.push_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(20),
    });
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let route = route(&upstream);
    let first = send(&mut service, &route, turn(true, true, None, "a")).await;
    let id = first.id().unwrap().to_owned();
    // Another request holds the conversation's connection.
    let busy = call(&mut service, request(&route, true)).await.unwrap();
    let next = send(&mut service, &route, turn(true, true, Some(&id), "b")).await;
    assert!(next.id().is_some(), "{next:?}");
    let connections: Vec<_> = upstream
        .captured()
        .iter()
        .map(|captured| captured.connection.unwrap())
        .collect();
    assert_eq!(connections, [1, 1, 2]);
    let (_, error) = read_body(busy.into_body()).await;
    assert!(error.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_turn_waits_for_its_busy_connection() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    // Slow answers, so that a request holds the connection a while; a wait long enough for it.
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(1),
    });
    let pool = Pool::builder()
        .conversation_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let route = route(&upstream);
    // The first turn streams slowly, holding its connection; the client sends the next turn
    // before the first one's answer has ended (its id is known from its first event).
    let busy = call(
        &mut service,
        request_with(&route, turn(false, true, None, "a"), &[]),
    )
    .await
    .unwrap();
    let next = spawn({
        let (mut service, route) = (service.clone(), route.clone());
        let body = turn(false, false, Some("resp_kit_0001"), "b");
        async move { send(&mut service, &route, body).await }
    });
    // While the next turn waits, the first answer runs to its end and frees the connection.
    let (_, error) = read_body(busy.into_body()).await;
    assert!(error.is_none());
    let next = next.await.unwrap();
    assert!(next.id().is_some(), "{next:?}");
    assert_eq!(upstream.ws_connections(), 1);
    assert_eq!(upstream.ws_requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn after_the_wait_a_turn_takes_another_connection_and_gets_the_upstreams_answer() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    // The conversation's connection answers slowly; the others at once.
    upstream.push_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(10),
    });
    let pool = Pool::new(); // the default wait, 5 s
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let route = route(&upstream);
    // The conversation's first turn holds its connection for far longer than the wait (its
    // body is unread), and the client sends the next turn meanwhile.
    let busy = call(
        &mut service,
        request_with(&route, turn(false, true, None, "a"), &[]),
    )
    .await
    .unwrap();
    let id = "resp_kit_0001".to_owned();
    let started = tokio::time::Instant::now();
    let next = send(&mut service, &route, turn(false, true, Some(&id), "b")).await;
    assert!(started.elapsed() >= Duration::from_secs(5));
    // Another connection cannot know the response: the upstream says so, and the client hears it.
    assert_eq!(
        next,
        Outcome::Rejected("previous_response_not_found".into())
    );
    let turn = upstream
        .captured()
        .into_iter()
        .find(|captured| captured.json().unwrap()["previous_response_id"] == json!(id))
        .unwrap();
    assert_eq!(turn.connection, Some(2));
    drop(busy);
}

#[tokio::test]
async fn when_the_conversations_connection_died_the_turn_takes_a_fresh_one() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let pool = Pool::new();
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let route = route(&upstream);
    let unstored = send(&mut service, &route, turn(false, true, None, "a")).await;
    let stored = send(&mut service, &route, turn(true, false, None, "b")).await;
    upstream.close_ws_connections();
    until(|| upstream.open_ws_connections() == 0).await;

    // Without `store`, the response died with its connection: the upstream's answer reaches the
    // client as it is.
    let unstored_id = unstored.id().unwrap();
    let next = send(
        &mut service,
        &route,
        turn(false, true, Some(unstored_id), "c"),
    )
    .await;
    assert_eq!(
        next,
        Outcome::Rejected("previous_response_not_found".into())
    );
    // Stored, it continues on the new connection.
    let stored_id = stored.id().unwrap();
    let next = send(
        &mut service,
        &route,
        turn(true, false, Some(stored_id), "d"),
    )
    .await;
    assert!(next.id().is_some(), "{next:?}");
    let continued = upstream.captured().last().unwrap().connection.unwrap();
    assert!(continued > 1);
}

#[tokio::test]
async fn a_conversation_keeps_its_connection_while_others_come_and_go() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let pool = Pool::new();
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let route = route(&upstream);
    // Two conversations on two connections (the second opened while the first is busy).
    let first = call(
        &mut service,
        request_with(&route, turn(false, true, None, "a"), &[]),
    )
    .await
    .unwrap();
    let second = send(&mut service, &route, turn(false, true, None, "b")).await;
    let first = outcome(Ok(first)).await;
    // Each turn follows its own conversation, whichever connection was returned last.
    let (mut a, mut b) = (
        first.id().unwrap().to_owned(),
        second.id().unwrap().to_owned(),
    );
    for number in 0..3 {
        let next = send(
            &mut service,
            &route,
            turn(false, true, Some(&a), &format!("a{number}")),
        )
        .await;
        a = next.id().unwrap().to_owned();
        let next = send(
            &mut service,
            &route,
            turn(false, false, Some(&b), &format!("b{number}")),
        )
        .await;
        b = next.id().unwrap().to_owned();
    }
    assert_eq!(upstream.ws_connections(), 2);
    let by_connection = |input: &str| {
        upstream
            .captured()
            .into_iter()
            .filter(|captured| {
                captured.json().unwrap()["input"]
                    .as_str()
                    .unwrap()
                    .starts_with(input)
            })
            .map(|captured| captured.connection.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(by_connection("a"), [1, 1, 1, 1]);
    assert_eq!(by_connection("b"), [2, 2, 2, 2]);
}

/// Agent loops of `turns` turns with `think` time between them (the tools running), while
/// other requests (one every two seconds, alternately stored and one-shot `store: false`)
/// share the pool; returns (turns answered, turns rejected with
/// `previous_response_not_found`, connections opened).
async fn agent_loops_among_other_traffic(
    pool: &Pool,
    agents: usize,
    turns: usize,
    think: Duration,
) -> (usize, usize, usize) {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let (service, _) = service(WebSocketConfig::default(), pool);
    let route = route(&upstream);
    let loops: Vec<_> = (0..agents)
        .map(|agent| {
            let (mut service, route) = (service.clone(), route.clone());
            spawn(async move {
                let mut outcomes = Vec::new();
                let mut previous: Option<String> = None;
                for number in 0..turns {
                    let input = format!("agent {agent} turn {number}");
                    let body = turn(false, agent % 2 == 0, previous.as_deref(), &input);
                    let outcome = send(&mut service, &route, body).await;
                    previous = outcome.id().map(str::to_owned);
                    outcomes.push(outcome);
                    tokio::time::sleep(think).await;
                }
                outcomes
            })
        })
        .collect();
    let (done_tx, mut done) = tokio::sync::watch::channel(false);
    let others = spawn({
        let (mut service, route) = (service.clone(), route.clone());
        async move {
            let mut number = 0;
            while !*done.borrow_and_update() {
                let body = turn(number % 2 == 0, true, None, &format!("other {number}"));
                let outcome = send(&mut service, &route, body).await;
                assert!(outcome.id().is_some(), "{outcome:?}");
                number += 1;
                let _ = tokio::time::timeout(Duration::from_secs(2), done.changed()).await;
            }
            number
        }
    });
    let (mut answered, mut not_found) = (0, 0);
    for task in loops {
        for outcome in task.await.unwrap() {
            match outcome {
                Outcome::Answered(_) => answered += 1,
                Outcome::Rejected(code) if code == "previous_response_not_found" => not_found += 1,
                Outcome::Rejected(code) => panic!("a turn failed with {code}"),
            }
        }
    }
    done_tx.send_replace(true);
    let others = others.await.unwrap();
    assert!(others > 0);
    (answered, not_found, upstream.ws_connections())
}

#[tokio::test(start_paused = true)]
async fn agent_loops_with_think_time_keep_their_connections_while_others_share_the_pool() {
    // Without holds (`conversation_hold(Duration::ZERO)`), 1 of the 24 turns gets
    // `previous_response_not_found` here: another request took its connection during the
    // think time and replaced the connection's one remembered response.
    let pool = Pool::new();
    let (answered, not_found, connections) =
        agent_loops_among_other_traffic(&pool, 4, 6, Duration::from_secs(30)).await;
    println!("agent loops: {answered} turns answered, {connections} connections opened");
    assert_eq!((answered, not_found), (24, 0));
}
