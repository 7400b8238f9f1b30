//! Lanes from clients in WebSocket mode (`stream_id`): each lane's responses in order, lanes in
//! parallel, every event and error with its lane, over the upstream's WebSocket and over HTTP
//! (where `stream_id` is removed from the request and put back on every event); warm-ups
//! (`generate: false`) never reach HTTP; error events carry their headers in both places.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::{collections::HashMap, time::Duration};

use client_ws_support::{Client, Gateway, create, next, response, send};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{Answer, TestUpstream, WsScript},
};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

async fn start(mode: TransportMode, config: ClientWsConfig) -> (TestUpstream, Gateway) {
    let upstream = TestUpstream::start().await;
    upstream.set_unique_response_ids(true);
    let gateway = Gateway::start(&upstream, mode, config).await;
    (upstream, gateway)
}

/// Reads text messages until `responses` terminal events arrived; each message with its lane.
async fn lane_events(client: &mut Client, responses: usize) -> Vec<(Option<String>, Value)> {
    let mut events = Vec::new();
    let mut ended = 0;
    while ended < responses {
        let Some(Message::Text(text)) = next(client).await else {
            continue;
        };
        let event = json_of(text.as_str());
        let lane = event["stream_id"].as_str().map(str::to_owned);
        if matches!(
            event["type"].as_str(),
            Some("response.completed" | "response.failed" | "response.incomplete" | "error")
        ) {
            ended += 1;
        }
        events.push((lane, event));
    }
    events
}

#[tokio::test]
async fn lanes_run_in_parallel_in_order_within_and_every_event_carries_its_lane() {
    for mode in [TransportMode::Auto, TransportMode::Http] {
        let (upstream, gateway) = start(mode, ClientWsConfig::default()).await;
        // Slow answers on the upstream's websocket, so that lanes overlap there.
        upstream.set_default_ws_script(WsScript::SlowEvents {
            delay: Duration::from_millis(5),
        });
        let mut client = gateway.connect().await;
        send(&mut client, create("a1", r#""stream_id":"a""#)).await;
        send(&mut client, create("a2", r#""stream_id":"a""#)).await;
        send(&mut client, create("b1", r#""stream_id":"b""#)).await;
        send(&mut client, create("d1", "")).await;
        let events = lane_events(&mut client, 4).await;
        let mut completed: HashMap<Option<String>, Vec<String>> = HashMap::new();
        for (lane, event) in &events {
            assert_ne!(event["type"], "error", "{mode:?}: {event}");
            if event["type"] == "response.completed" {
                completed
                    .entry(lane.clone())
                    .or_default()
                    .push(event["response"]["id"].as_str().unwrap().to_owned());
            }
        }
        // Every event of a lane's response carries the lane; the default lane's none.
        let lanes: Vec<Option<&str>> = events.iter().map(|(lane, _)| lane.as_deref()).collect();
        assert_eq!(
            lanes.iter().filter(|lane| **lane == Some("a")).count(),
            2 * Answer::default().len(),
            "{mode:?}"
        );
        assert_eq!(
            lanes.iter().filter(|lane| **lane == Some("b")).count(),
            Answer::default().len()
        );
        assert_eq!(completed[&Some("a".to_owned())].len(), 2, "{mode:?}");
        assert_eq!(completed[&None].len(), 1, "{mode:?}");
        // Lane a's second response started after its first ended.
        let position = |lane: &str, kind: &str, nth: usize| {
            events
                .iter()
                .enumerate()
                .filter(|(_, (l, e))| l.as_deref() == Some(lane) && e["type"] == kind)
                .nth(nth)
                .map(|(index, _)| index)
                .unwrap()
        };
        assert!(position("a", "response.completed", 0) < position("a", "response.created", 1));
        if mode == TransportMode::Auto {
            // Lane b did not wait for lane a: served one at a time, it would start after both
            // of a's responses.
            assert!(position("b", "response.created", 0) < position("a", "response.completed", 1));
        }
        // The upstream never saw a lane: removed from every request, whatever the transport.
        for request in upstream.captured() {
            assert!(
                request.json().unwrap().get("stream_id").is_none(),
                "{mode:?}"
            );
        }
        assert_eq!(upstream.ws_requests() + upstream.http_requests(), 4);
        drop(client);
        gateway.stop().await;
    }
}

#[tokio::test]
async fn lanes_past_the_maximum_are_refused_with_their_lane_and_bad_lanes_are_refused() {
    let config = ClientWsConfig::builder().max_lanes(1).build().unwrap();
    let (upstream, gateway) = start(TransportMode::Auto, config).await;
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(20),
    });
    let mut client = gateway.connect().await;
    send(&mut client, create("a1", r#""stream_id":"a""#)).await;
    send(&mut client, create("b1", r#""stream_id":"b""#)).await;
    send(&mut client, create("c1", r#""stream_id":"no spaces""#)).await;
    let events = lane_events(&mut client, 3).await;
    let refused: Vec<&Value> = events
        .iter()
        .map(|(_, event)| event)
        .filter(|event| event["type"] == "error")
        .collect();
    assert_eq!(refused.len(), 2, "{events:?}");
    assert!(
        refused.iter().any(|event| {
            event["error"]["code"] == "too_many_lanes" && event["stream_id"] == "b"
        })
    );
    assert!(refused.iter().any(|event| {
        event["error"]["code"] == "invalid_value" && event["error"]["param"] == "stream_id"
    }));
    assert_eq!(upstream.ws_requests(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_warm_up_is_served_by_the_upstreams_websocket_and_never_reaches_http() {
    // Over the upstream's websocket: prepared, then continued on the same lane.
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(
        &mut client,
        create(
            "warm",
            r#""stream_id":"main","store":false,"generate":false"#,
        ),
    )
    .await;
    let messages = response(&mut client).await;
    let completed = json_of(messages.last().unwrap());
    assert_eq!(completed["type"], "response.completed", "{messages:?}");
    assert_eq!(completed["response"]["output"], json!([]));
    assert_eq!(completed["stream_id"], "main");
    let warm = completed["response"]["id"].as_str().unwrap().to_owned();
    let extra = format!(r#""stream_id":"main","store":false,"previous_response_id":"{warm}""#);
    send(&mut client, create("turn", &extra)).await;
    let messages = response(&mut client).await;
    assert_eq!(
        json_of(messages.last().unwrap())["type"],
        "response.completed",
        "{messages:?}"
    );
    drop(client);
    gateway.stop().await;

    // Over HTTP: the gateway answers with an error event, nothing reaches the upstream.
    let (upstream_http, gateway) = start(TransportMode::Http, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(
        &mut client,
        create("warm", r#""stream_id":"main","generate":false"#),
    )
    .await;
    let messages = response(&mut client).await;
    let error = json_of(&messages[0]);
    assert_eq!(
        (error["error"]["code"].as_str(), error["stream_id"].as_str()),
        (Some("websocket_required"), Some("main")),
        "{error}"
    );
    assert_eq!(upstream_http.http_requests(), 0);
    assert_eq!(upstream.http_requests(), 0);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_warm_up_whose_websocket_fails_gets_an_error_event_and_is_not_replayed() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.set_default_ws_script(WsScript::refuse(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "no websocket here",
    ));
    let mut client = gateway.connect().await;
    send(&mut client, create("warm", r#""generate":false"#)).await;
    let messages = response(&mut client).await;
    let error = json_of(&messages[0]);
    assert_eq!(error["error"]["code"], "websocket_unavailable", "{error}");
    assert_eq!(upstream.http_requests(), 0);
    // The connection stays usable.
    send(&mut client, create("turn", "")).await;
    let messages = response(&mut client).await;
    assert_eq!(
        json_of(messages.last().unwrap())["type"],
        "response.completed"
    );
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn error_events_carry_their_headers_inside_error_and_at_the_top_level() {
    for mode in [TransportMode::Auto, TransportMode::Http] {
        let (upstream, gateway) = start(mode, ClientWsConfig::default()).await;
        upstream.push_answer(Answer::rate_limited(7));
        let mut client = gateway.connect().await;
        send(&mut client, create("fast", r#""stream_id":"x""#)).await;
        let event = json_of(&response(&mut client).await[0]);
        assert_eq!(event["headers"]["retry-after"], "7", "{mode:?}: {event}");
        assert_eq!(
            event["error"]["headers"]["retry-after"], "7",
            "{mode:?}: {event}"
        );
        assert_eq!(event["stream_id"], "x", "{mode:?}: {event}");
        drop(client);
        gateway.stop().await;
    }
}
