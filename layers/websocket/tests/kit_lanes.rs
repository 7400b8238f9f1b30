//! The test kit keeps what the API keeps, where the API keeps it: the latest response of each
//! lane per connection; lanes in order within and in parallel across; warm-ups, steering, and
//! the HTTP endpoint's refusal of the WebSocket-only fields.
#![cfg(feature = "testing")]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config, tungstenite::Message,
};
use wsfirst_websocket::testing::{Answer, ConnectionMemory, TestUpstream, WsScript};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(upstream: &TestUpstream) -> Socket {
    // No Nagle delay: under paused time, small writes must not wait in the kernel.
    connect_async_with_config(upstream.ws_url(), None, true)
        .await
        .expect("upgrade accepted")
        .0
}

/// A `response.create` on `lane`, continuing `previous`, with `store: false`.
fn create(lane: Option<&str>, previous: Option<&str>) -> String {
    let mut body =
        json!({"type": "response.create", "model": "gpt-kit", "store": false, "input": "x"});
    if let Some(lane) = lane {
        body["stream_id"] = json!(lane);
    }
    if let Some(previous) = previous {
        body["previous_response_id"] = json!(previous);
    }
    body.to_string()
}

async fn send(socket: &mut Socket, text: String) {
    socket.send(Message::text(text)).await.unwrap();
}

async fn next_event(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads events until a terminal one (`response.completed` or `error`) and returns it.
async fn terminal(socket: &mut Socket) -> Value {
    loop {
        let event = next_event(socket).await;
        if matches!(event["type"].as_str(), Some("response.completed" | "error")) {
            return event;
        }
    }
}

async fn turn(socket: &mut Socket, lane: Option<&str>, previous: Option<&str>) -> Value {
    send(socket, create(lane, previous)).await;
    terminal(socket).await
}

fn id(event: &Value) -> String {
    event["response"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no response id in {event}"))
        .to_owned()
}

#[tokio::test]
async fn a_connection_keeps_the_latest_response_of_each_lane() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let mut socket = connect(&upstream).await;
    let main = id(&turn(&mut socket, Some("main"), None).await);
    let side = id(&turn(&mut socket, Some("side"), None).await);
    let default = id(&turn(&mut socket, None, None).await);
    // Each lane's latest response continues, from any lane (lineage is the response id's).
    let main_2 = turn(&mut socket, Some("main"), Some(&main)).await;
    assert_eq!(main_2["stream_id"], "main");
    let fork = turn(&mut socket, Some("fork"), Some(&side)).await;
    assert_eq!(fork["type"], "response.completed", "{fork}");
    let default_2 = turn(&mut socket, None, Some(&default)).await;
    assert_eq!(default_2["type"], "response.completed", "{default_2}");
    assert!(default_2.get("stream_id").is_none());
    // An older response of a lane is gone.
    let old = turn(&mut socket, Some("main"), Some(&main)).await;
    assert_eq!(old["error"]["code"], "previous_response_not_found");
    assert_eq!(old["stream_id"], "main");
    // `side` was continued on `fork`, not on its own lane: still its lane's latest.
    let side_2 = turn(&mut socket, Some("side"), Some(&side)).await;
    assert_eq!(side_2["type"], "response.completed", "{side_2}");
}

#[tokio::test]
async fn the_old_memory_of_the_last_responses_is_there_on_request() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    upstream.set_connection_memory(ConnectionMemory::Recent(64));
    let mut socket = connect(&upstream).await;
    let first = id(&turn(&mut socket, None, None).await);
    let _second = turn(&mut socket, None, Some(&first)).await;
    let again = turn(&mut socket, None, Some(&first)).await;
    assert_eq!(again["type"], "response.completed", "{again}");
}

#[tokio::test(start_paused = true)]
async fn lanes_run_in_parallel_and_in_order_within() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(1),
    });
    let mut socket = connect(&upstream).await;
    send(&mut socket, create(Some("a"), None)).await;
    send(&mut socket, create(Some("a"), None)).await;
    send(&mut socket, create(Some("b"), None)).await;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let answer_len = Answer::default().len();
    while seen.len() < 3 * answer_len {
        let event = next_event(&mut socket).await;
        let lane = event["stream_id"]
            .as_str()
            .expect("every event carries its lane");
        let kind = event["type"].as_str().unwrap().to_owned();
        let response = event["response"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        seen.push((lane.to_owned(), kind, response));
    }
    let position = |lane: &str, kind: &str, nth: usize| {
        seen.iter()
            .enumerate()
            .filter(|(_, (l, k, _))| l == lane && k == kind)
            .nth(nth)
            .map(|(index, _)| index)
            .unwrap_or_else(|| panic!("no {kind} #{nth} on {lane}: {seen:?}"))
    };
    // Lane b did not wait for lane a's first answer...
    assert!(position("b", "response.created", 0) < position("a", "response.completed", 0));
    // ...and lane a's second answer waited for its first.
    assert!(position("a", "response.completed", 0) < position("a", "response.created", 1));
    assert_eq!(upstream.ws_requests(), 3);
    assert_eq!(upstream.ws_connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn steering_a_running_response_is_accepted_and_its_successor_follows() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(1),
    });
    let mut socket = connect(&upstream).await;
    send(&mut socket, create(Some("main"), None)).await;
    let created = next_event(&mut socket).await;
    assert_eq!(created["type"], "response.created");
    let target = id(&created);
    let steer =
        json!({"type": "response.steer", "previous_response_id": target, "input": "also this"});
    send(&mut socket, steer.to_string()).await;
    let mut accepted = None;
    let mut completed = Vec::new();
    while completed.len() < 2 {
        let event = next_event(&mut socket).await;
        assert_eq!(event["stream_id"], "main", "{event}");
        match event["type"].as_str() {
            Some("response.steer.accepted") => accepted = Some(event),
            Some("response.completed") => completed.push(id(&event)),
            _ => {}
        }
    }
    let accepted = accepted.expect("response.steer.accepted");
    assert_eq!(accepted["steer"]["previous_response_id"], target.as_str());
    assert!(accepted["steer"]["id"].as_str().is_some());
    // The steered response, then its successor on the same lane.
    assert_eq!(completed[0], target);
    assert_ne!(completed[1], target);
    assert_eq!(upstream.steers(), 1);
    assert_eq!(upstream.ws_requests(), 1);

    // A completed response (the lane's latest), or an unknown one, fails at once with its
    // input returned.
    let steer = json!({"type": "response.steer", "previous_response_id": completed[1], "input": "also this"});
    send(&mut socket, steer.to_string()).await;
    let failed = next_event(&mut socket).await;
    assert_eq!(failed["type"], "response.steer.failed");
    assert_eq!(failed["error"]["code"], "response_already_completed");
    assert_eq!(failed["steer"]["input"], "also this");
    let unknown = json!({"type": "response.steer", "previous_response_id": "resp_nope", "input": [{"role": "user", "content": "hi"}]});
    send(&mut socket, unknown.to_string()).await;
    let failed = next_event(&mut socket).await;
    assert_eq!(failed["error"]["code"], "response_not_found");
    assert_eq!(failed["steer"]["input"], unknown["input"]);
    assert!(failed.get("stream_id").is_none());
}

#[tokio::test]
async fn a_warm_up_prepares_state_without_output() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    upstream.push_answer(Answer::text("kept for the real turn"));
    let mut socket = connect(&upstream).await;
    let mut warm: Value = serde_json::from_str(&create(Some("main"), None)).unwrap();
    warm["generate"] = json!(false);
    send(&mut socket, warm.to_string()).await;
    let created = next_event(&mut socket).await;
    let completed = next_event(&mut socket).await;
    assert_eq!(
        (created["type"].as_str(), completed["type"].as_str()),
        (Some("response.created"), Some("response.completed"))
    );
    assert_eq!(completed["response"]["output"], json!([]));
    assert_eq!(completed["stream_id"], "main");
    let warm_id = id(&completed);
    // The next turn continues it and gets the answer that was queued.
    let next = turn(&mut socket, Some("main"), Some(&warm_id)).await;
    assert_eq!(
        next["response"]["output"][0]["content"][0]["text"],
        "kept for the real turn"
    );
    assert_eq!(upstream.ws_requests(), 2);
}

#[tokio::test]
async fn bad_lanes_and_other_messages_get_error_events() {
    let upstream = TestUpstream::start().await;
    let mut socket = connect(&upstream).await;
    for lane in [
        json!("has space"),
        json!(""),
        json!(7),
        json!("x".repeat(257)),
    ] {
        let mut body: Value = serde_json::from_str(&create(None, None)).unwrap();
        body["stream_id"] = lane.clone();
        send(&mut socket, body.to_string()).await;
        let error = next_event(&mut socket).await;
        assert_eq!(
            (error["status"].as_u64(), error["error"]["param"].as_str()),
            (Some(400), Some("stream_id")),
            "{lane}: {error}"
        );
    }
    // An acknowledgement gets no answer: the next event is the next request's.
    send(
        &mut socket,
        json!({"type": "response.processed", "response_id": "r"}).to_string(),
    )
    .await;
    let next = turn(&mut socket, Some("ok.lane-1_"), None).await;
    assert_eq!(next["type"], "response.completed");
}

async fn post(upstream: &TestUpstream, body: Value) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::post(upstream.http_url())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn the_http_endpoint_refuses_the_websocket_only_fields() {
    let upstream = TestUpstream::start().await;
    for (field, value) in [("stream_id", json!("main")), ("generate", json!(false))] {
        let mut body = json!({"model": "gpt-kit", "input": "x", "stream": true});
        body[field] = value;
        let (status, json) = post(&upstream, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json,
            json!({"error": {
                "message": format!("Unknown parameter: '{field}'."),
                "type": "invalid_request_error",
                "param": field,
                "code": "unknown_parameter",
            }})
        );
    }
    let (status, _) = post(&upstream, json!({"model": "gpt-kit", "input": "x"})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_kit_keeps_a_bounded_window_of_requests() {
    let upstream = TestUpstream::start().await;
    upstream.set_capture_limit(2);
    for input in ["a", "b", "c"] {
        post(&upstream, json!({"model": "gpt-kit", "input": input})).await;
    }
    let inputs: Vec<Value> = upstream
        .captured()
        .iter()
        .map(|request| request.json().unwrap()["input"].clone())
        .collect();
    assert_eq!(inputs, [json!("b"), json!("c")]);
    assert_eq!(upstream.http_requests(), 3);
    upstream.set_capture_limit(0);
    assert!(upstream.captured().is_empty());
}
