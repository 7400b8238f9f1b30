//! Clients in WebSocket mode, at the level of the stack: the test kit's upstream, the gateway
//! (`support/client_ws.rs`) and a plain tokio-tungstenite client. Every message a client gets
//! is compared with what the upstream's own WebSocket mode sends.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::time::Duration;

use client_ws_support::{Gateway, close_frame, create, event_type, next, response, send};
use http::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{Answer, TestUpstream, WsScript},
};

const TEXT: &str = "Hello over the client's websocket.";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

async fn start(mode: TransportMode, config: ClientWsConfig) -> (TestUpstream, Gateway) {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let gateway = Gateway::start(&upstream, mode, config).await;
    (upstream, gateway)
}

#[tokio::test]
async fn several_responses_on_one_connection_are_the_upstreams_messages_over_its_websocket() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    for turn in 0..3 {
        send(&mut client, create(&format!("turn {turn}"), "")).await;
        assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    }
    assert_eq!(upstream.ws_requests(), 3);
    assert_eq!(upstream.http_requests(), 0);
    // One upstream connection served the three: the pool kept it.
    assert_eq!(upstream.handshakes(), 1);
    let captured = upstream.captured();
    for (turn, request) in captured.iter().enumerate() {
        assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
        // The upstream got the client's message, as the client wrote it.
        assert_eq!(
            std::str::from_utf8(&request.body).unwrap(),
            format!(r#"{{"type":"response.create","model":"gpt-kit","input":"turn {turn}"}}"#)
        );
    }
    assert_eq!(gateway.wsfirst.client_connections().open(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_refused_upstream_upgrade_gives_the_same_messages_over_http() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong endpoint",
    ));
    let mut client = gateway.connect().await;
    for turn in 0..2 {
        send(&mut client, create(&format!("turn {turn}"), "")).await;
        assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    }
    assert_eq!(upstream.ws_requests(), 0);
    assert_eq!(upstream.http_requests(), 2);
    let http = &upstream.captured()[0];
    assert_eq!(http.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(
        http.json().unwrap(),
        json!({"model": "gpt-kit", "input": "turn 0", "stream": true})
    );
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn messages_sent_back_to_back_are_served_one_at_a_time_in_order() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.set_unique_response_ids(true);
    let mut client = gateway.connect().await;
    for turn in 0..4 {
        send(&mut client, create(&format!("turn {turn}"), "")).await;
    }
    for turn in 1..=4 {
        let messages = response(&mut client).await;
        assert_eq!(messages.len(), Answer::text(TEXT).len());
        // Each response's events are together, in the order of the requests.
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|text| json_of(text)["response"]["id"].as_str().map(str::to_owned))
            .collect();
        assert!(!ids.is_empty());
        assert!(
            ids.iter().all(|id| *id == format!("resp_kit_{turn:04}")),
            "{ids:?}"
        );
    }
    let inputs: Vec<Value> = upstream
        .captured()
        .iter()
        .map(|request| request.json().unwrap()["input"].clone())
        .collect();
    assert_eq!(inputs, ["turn 0", "turn 1", "turn 2", "turn 3"]);
    // One at a time: a single upstream connection was enough.
    assert_eq!(upstream.handshakes(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_error_is_the_upstreams_error_event_and_the_connection_stays_usable() {
    for mode in [TransportMode::Auto, TransportMode::Http] {
        let (upstream, gateway) = start(mode, ClientWsConfig::default()).await;
        let error = Answer::rate_limited(7);
        upstream.push_answer(error.clone());
        let mut client = gateway.connect().await;
        send(&mut client, create("too fast", "")).await;
        let messages = response(&mut client).await;
        assert_eq!(messages.len(), 1, "{mode:?}: {messages:?}");
        // The same event as the upstream's own, status and rate-limit headers included.
        assert_eq!(
            json_of(&messages[0]),
            json_of(&error.messages()[0]),
            "{mode:?}"
        );
        send(&mut client, create("again", "")).await;
        assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
        drop(client);
        gateway.stop().await;
        upstream.shutdown().await;
    }
}

#[tokio::test]
async fn the_upstream_websocket_dying_mid_response_is_an_error_event_and_the_next_response_is_served()
 {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 3,
        code: 1011,
    });
    let mut client = gateway.connect().await;
    send(&mut client, create("first", "")).await;
    let messages = response(&mut client).await;
    let answer = Answer::text(TEXT);
    assert_eq!(messages[..3], answer.messages()[..3]);
    assert_eq!(messages.len(), 4, "{messages:?}");
    let error = json_of(&messages[3]);
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 502);
    assert_eq!(error["sequence_number"], 3);
    assert_eq!(error["error"]["code"], "websocket_failed_mid_stream");
    // Executed once: never replayed after output.
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);

    send(&mut client, create("second", "")).await;
    assert_eq!(response(&mut client).await, answer.messages());
    assert_eq!(upstream.handshakes(), 2);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_store_false_chain_pinned_to_http_gets_the_upstreams_previous_response_not_found() {
    let (_upstream, gateway) = start(TransportMode::Http, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("first", r#""store":false"#)).await;
    assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    let previous = format!(
        r#""store":false,"previous_response_id":"{}""#,
        Answer::RESPONSE_ID
    );
    send(&mut client, create("second", &previous)).await;
    let messages = response(&mut client).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        json_of(&messages[0]),
        json_of(&Answer::previous_response_not_found(Answer::RESPONSE_ID).messages()[0])
    );
}

#[tokio::test]
async fn a_store_false_chain_follows_its_upstream_connection() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.set_unique_response_ids(true);
    let mut clients = [gateway.connect().await, gateway.connect().await];
    let mut previous: [Option<String>; 2] = [None, None];
    for turn in 0..4 {
        // Both clients' turns run at once, on two upstream connections.
        for (client, previous) in clients.iter_mut().zip(previous.iter()) {
            let extra = match previous {
                Some(id) => format!(r#""store":false,"previous_response_id":"{id}""#),
                None => r#""store":false"#.to_owned(),
            };
            send(client, create(&format!("turn {turn}"), &extra)).await;
        }
        for (client, previous) in clients.iter_mut().zip(previous.iter_mut()) {
            let messages = response(client).await;
            let last = json_of(messages.last().unwrap());
            assert_eq!(last["type"], "response.completed", "{messages:?}");
            *previous = last["response"]["id"].as_str().map(str::to_owned);
        }
    }
    assert_eq!(upstream.ws_requests(), 8);
    assert_eq!(upstream.http_requests(), 0);
    drop(clients);
    gateway.stop().await;
}

#[tokio::test]
async fn messages_other_than_a_create_get_their_answer_in_order() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    let mut client = gateway.connect().await;
    // An acknowledgement gets no answer; a steer of an unknown response fails at once with its
    // input; what the gateway does not serve gets a 400 error event.
    send(
        &mut client,
        Message::text(r#"{"type":"response.processed","response_id":"resp_x"}"#),
    )
    .await;
    send(
        &mut client,
        Message::text(r#"{"type":"response.steer","previous_response_id":"resp_x","input":"hi"}"#),
    )
    .await;
    send(&mut client, Message::binary(b"{}".to_vec())).await;
    send(&mut client, Message::text(r#"{"type":"session.update"}"#)).await;
    send(&mut client, create("fine", "")).await;
    let failed = json_of(&texts(&mut client, 1).await[0]);
    assert_eq!(failed["type"], "response.steer.failed", "{failed}");
    assert_eq!(failed["error"]["code"], "response_not_found");
    assert_eq!(
        failed["steer"],
        json!({"input": "hi", "previous_response_id": "resp_x"})
    );
    for (code, param) in [
        ("unsupported_message", Value::Null),
        ("unsupported_event_type", json!("type")),
    ] {
        let messages = response(&mut client).await;
        let event = json_of(&messages[0]);
        assert_eq!(event["status"], 400, "{event}");
        assert_eq!(event["error"]["code"], code, "{event}");
        assert_eq!(event["error"]["param"], param, "{event}");
    }
    assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    assert_eq!(upstream.ws_requests(), 1);
    drop(client);
    gateway.stop().await;
}

/// The next `count` text messages.
async fn texts(client: &mut client_ws_support::Client, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < count {
        if let Some(Message::Text(text)) = next(client).await {
            texts.push(text.as_str().to_owned());
        }
    }
    texts
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() {
    let config = ClientWsConfig::builder()
        .max_message_size(1024)
        .build()
        .unwrap();
    let (upstream, gateway) = start(TransportMode::Auto, config).await;
    let mut client = gateway.connect().await;
    send(&mut client, create(&"x".repeat(2048), "")).await;
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(upstream.ws_requests() + upstream.http_requests(), 0);
    drop(client);
    gateway.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_with_1000() {
    let config = ClientWsConfig::builder()
        .idle_timeout(Duration::from_secs(10))
        .ping_interval(None)
        .build()
        .unwrap();
    let (_upstream, gateway) = start(TransportMode::Auto, config).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("one", "")).await;
    assert_eq!(response(&mut client).await.len(), Answer::text(TEXT).len());
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(frame.reason.as_str(), "idle timeout");
}

#[tokio::test(start_paused = true)]
async fn the_lifetime_cap_sends_the_apis_reconnect_error_and_closes_with_1001() {
    let config = ClientWsConfig::builder()
        .max_lifetime(Duration::from_secs(15))
        .idle_timeout(Duration::from_secs(3600))
        .ping_interval(None)
        .build()
        .unwrap();
    let (_upstream, gateway) = start(TransportMode::Auto, config).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("one", "")).await;
    assert_eq!(response(&mut client).await.len(), Answer::text(TEXT).len());
    let messages = response(&mut client).await;
    let event = json_of(&messages[0]);
    assert_eq!(event["status"], 400);
    assert_eq!(event["error"]["code"], "websocket_connection_limit_reached");
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_answer_pings_is_closed_with_1011() {
    let config = ClientWsConfig::builder()
        .ping_interval(Some(Duration::from_secs(30)))
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (_upstream, gateway) = start(TransportMode::Auto, config).await;
    let mut client = gateway.connect().await;
    // The client reads nothing, so it answers no ping; after two intervals it is gone.
    tokio::time::sleep(Duration::from_secs(90)).await;
    let mut pings = 0;
    let frame = loop {
        match next(&mut client).await.expect("a close frame comes") {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => break frame.expect("with a code"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1);
    assert_eq!(frame.code, CloseCode::Error);
}

#[tokio::test]
async fn a_client_that_reads_too_slowly_is_closed_with_1008() {
    let config = ClientWsConfig::builder()
        .send_buffer(64 * 1024)
        .build()
        .unwrap();
    let (upstream, gateway) = start(TransportMode::Auto, config).await;
    // About 40 MiB of events (the 8 MiB text comes again in the done events): more than
    // loopback's socket buffers and the send buffer together.
    upstream.set_answer(Answer::large_text(8 << 20));
    let mut client = gateway.connect().await;
    send(&mut client, create("a lot", "")).await;
    // Nothing is read until the gateway has given up on the client.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gateway.wsfirst.client_connections().open() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was not closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "client reads too slowly");
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_closes_client_connections_with_1001_after_the_running_response() {
    let (upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(20),
    });
    let mut client = gateway.connect().await;
    send(&mut client, create("one", "")).await;
    // The first event arrived: the response runs.
    let Some(Message::Text(first)) = next(&mut client).await else {
        panic!("an event")
    };
    assert_eq!(event_type(first.as_str()), "response.created");
    let connections = gateway.wsfirst.client_connections().clone();
    let closing = tokio::spawn(async move { connections.close().await });
    let rest = response(&mut client).await;
    assert_eq!(
        rest.len() + 1,
        Answer::text(TEXT).len(),
        "the response finished"
    );
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    tokio::time::timeout(client_ws_support::WAIT, closing)
        .await
        .expect("close returns")
        .unwrap();
    assert_eq!(gateway.wsfirst.client_connections().open(), 0);
    // New upgrades are refused from now on.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/v1/responses", gateway.addr))
        .await
        .unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("{other:?}"),
    }
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn a_plain_get_on_the_route_is_a_400_and_post_still_works() {
    let (_upstream, gateway) = start(TransportMode::Auto, ClientWsConfig::default()).await;
    let (status, _, _, _) = support::exchange(&gateway.service, support::STREAM).await;
    assert_eq!(status, StatusCode::OK);
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /v1/responses HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(client_ws_support::WAIT, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not_a_websocket_upgrade"), "{answer}");
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_past_the_grace_cuts_the_running_response_and_refuses_the_queued_ones() {
    let config = ClientWsConfig::builder()
        .shutdown_grace(Duration::ZERO)
        .build()
        .unwrap();
    let (upstream, gateway) = start(TransportMode::Auto, config).await;
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(50),
    });
    let mut client = gateway.connect().await;
    send(&mut client, create("running", "")).await;
    send(&mut client, create("queued", "")).await;
    let Some(Message::Text(first)) = next(&mut client).await else {
        panic!("an event")
    };
    assert_eq!(event_type(first.as_str()), "response.created");
    let connections = gateway.wsfirst.client_connections().clone();
    let closing = tokio::spawn(async move { connections.close().await });
    // The running response ends with the shutdown's error event, then the queued one gets it.
    for _ in 0..2 {
        let messages = response(&mut client).await;
        let event = json_of(messages.last().unwrap());
        assert_eq!(event["status"], 503, "{messages:?}");
        assert_eq!(event["error"]["code"], "server_shutting_down");
    }
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    tokio::time::timeout(client_ws_support::WAIT, closing)
        .await
        .expect("close returns")
        .unwrap();
    // The queued request never reached the upstream.
    assert_eq!(upstream.ws_requests(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn upgrades_past_max_connections_are_refused_with_503() {
    let config = ClientWsConfig::builder()
        .max_connections(1)
        .build()
        .unwrap();
    let (_upstream, gateway) = start(TransportMode::Auto, config).await;
    let url = format!("ws://{}/v1/responses", gateway.addr);
    let client = gateway.connect().await;
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("{other:?}"),
    }
    drop(client);
    let deadline = tokio::time::Instant::now() + client_ws_support::WAIT;
    while gateway.wsfirst.client_connections().open() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first connection did not end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut client = gateway.connect().await;
    send(&mut client, create("again", "")).await;
    assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    drop(client);
    gateway.stop().await;
}

#[tokio::test]
async fn an_http_answer_cut_mid_stream_is_an_error_event_and_the_next_response_is_served() {
    let (upstream, gateway) = start(TransportMode::Http, ClientWsConfig::default()).await;
    upstream
        .push_http_script(wsfirst::websocket::testing::HttpScript::AbortAfterEvents { events: 2 });
    let mut client = gateway.connect().await;
    send(&mut client, create("cut", "")).await;
    let messages = response(&mut client).await;
    assert_eq!(messages[..2], Answer::text(TEXT).messages()[..2]);
    let error = json_of(messages.last().unwrap());
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 502, "{error}");
    assert_eq!(error["sequence_number"], 2, "{error}");
    send(&mut client, create("whole", "")).await;
    assert_eq!(response(&mut client).await, Answer::text(TEXT).messages());
    assert_eq!(upstream.http_requests(), 2);
    drop(client);
    gateway.stop().await;
}
