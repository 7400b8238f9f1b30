//! Steering from clients in WebSocket mode (`response.steer`): handed to the upstream
//! WebSocket connection that runs the target response, whose `response.steer.accepted` and the
//! steered response's successor come back on the target's lane; over HTTP, or for a response
//! not running, `response.steer.failed` at once with the input returned.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::time::Duration;

use client_ws_support::{Client, Gateway, create, next, response, send};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{HttpScript, TestUpstream, WsScript},
};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// The next event (text message) of the connection.
async fn next_event(client: &mut Client) -> Value {
    loop {
        match next(client).await {
            Some(Message::Text(text)) => return json_of(text.as_str()),
            Some(_) => continue,
            None => panic!("the connection ended"),
        }
    }
}

fn steer(target: &str) -> Message {
    Message::text(
        json!({"type": "response.steer", "previous_response_id": target, "input": "also this"})
            .to_string(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_steer_reaches_the_upstream_connection_and_its_events_come_back_on_the_lane() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    // Slow events (paused time), so that the target still runs when the steer comes.
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_secs(1),
    });
    let gateway = Gateway::start(&upstream, TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(
        &mut client,
        create("first", r#""stream_id":"main","store":false"#),
    )
    .await;
    let created = next_event(&mut client).await;
    assert_eq!(created["type"], "response.created", "{created}");
    let target = created["response"]["id"].as_str().unwrap().to_owned();
    send(&mut client, steer(&target)).await;

    let mut accepted = None;
    let mut completed = Vec::new();
    while completed.len() < 2 {
        let event = next_event(&mut client).await;
        assert_ne!(event["type"], "error", "{event}");
        assert_ne!(event["type"], "response.steer.failed", "{event}");
        assert_eq!(event["stream_id"], "main", "{event}");
        match event["type"].as_str() {
            Some("response.steer.accepted") => accepted = Some(event),
            Some("response.completed") => {
                completed.push(event["response"]["id"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    let accepted = accepted.expect("response.steer.accepted");
    assert_eq!(accepted["steer"]["previous_response_id"], target.as_str());
    // The steered response, then its successor, both on the lane.
    assert_eq!(completed[0], target);
    assert_ne!(completed[1], target);
    assert_eq!(upstream.steers(), 1);
    assert_eq!(upstream.ws_requests(), 1);

    // The successor is the connection's latest response: a store: false turn continues it on
    // the same upstream connection, and nothing of the steered answer is left on it.
    let extra = format!(
        r#""stream_id":"main","store":false,"previous_response_id":"{}""#,
        completed[1]
    );
    send(&mut client, create("next", &extra)).await;
    let messages = response(&mut client).await;
    let last = json_of(messages.last().unwrap());
    assert_eq!(last["type"], "response.completed", "{messages:?}");
    assert_eq!(upstream.ws_connections(), 1);
    assert_eq!(upstream.http_requests(), 0);
    drop(client);
    gateway.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_steer_of_a_response_running_over_http_fails_at_once_with_its_input() {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    upstream.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(1),
    });
    let gateway = Gateway::start(&upstream, TransportMode::Http, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("first", r#""stream_id":"main""#)).await;
    let created = next_event(&mut client).await;
    assert_eq!(created["type"], "response.created", "{created}");
    let target = created["response"]["id"].as_str().unwrap().to_owned();
    send(&mut client, steer(&target)).await;
    let failed = next_event(&mut client).await;
    assert_eq!(failed["type"], "response.steer.failed", "{failed}");
    assert_eq!(
        failed["error"]["code"], "steering_not_supported",
        "{failed}"
    );
    assert_eq!(failed["steer"]["input"], "also this", "{failed}");
    assert_eq!(failed["stream_id"], "main", "{failed}");
    assert_eq!(upstream.steers(), 0);
    // The target still ends normally.
    let rest = response(&mut client).await;
    assert_eq!(json_of(rest.last().unwrap())["type"], "response.completed");
    drop(client);
    gateway.stop().await;
}
