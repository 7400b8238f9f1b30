//! Clients in WebSocket mode that keep up: one that reads everything it is sent gets
//! everything, however much more than the send buffer that is in total, and one that does
//! nothing but answer the keep-alive pings is still closed when it has been idle too long.

#[path = "support/client_ws.rs"]
mod client_ws_support;
mod support;

use std::time::Duration;

use client_ws_support::{Gateway, create, next, response, send};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};
use wsfirst::{
    client_ws::ClientWsConfig,
    core::TransportMode,
    websocket::testing::{Answer, TestUpstream},
};

async fn start(answer: &Answer, config: ClientWsConfig) -> (TestUpstream, Gateway) {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(answer.clone());
    let gateway = Gateway::start(&upstream, TransportMode::Auto, config).await;
    (upstream, gateway)
}

#[tokio::test]
async fn a_client_that_keeps_up_gets_many_times_the_send_buffer() {
    let answer = Answer::large_text(16 * 1024);
    let per_response: usize = answer.messages().iter().map(String::len).sum();
    // Each response fits in the buffer twice over, so a client that reads each one before it
    // asks for the next is never too slow; all of them together fill it several times.
    let send_buffer = 2 * per_response;
    let turns = 8;
    let config = ClientWsConfig::builder()
        .send_buffer(send_buffer)
        .build()
        .unwrap();
    let (upstream, gateway) = start(&answer, config).await;
    let mut client = gateway.connect().await;
    for turn in 0..turns {
        send(&mut client, create(&format!("turn {turn}"), "")).await;
        assert_eq!(
            response(&mut client).await,
            answer.messages(),
            "turn {turn}"
        );
    }
    assert!(turns * per_response > 3 * send_buffer);
    assert_eq!(upstream.ws_requests(), turns);
    assert_eq!(gateway.wsfirst.client_connections().open(), 1);
    drop(client);
    gateway.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_only_answers_pings_is_closed_at_the_idle_timeout() {
    let idle = Duration::from_secs(60);
    let interval = Duration::from_secs(10);
    let config = ClientWsConfig::builder()
        .idle_timeout(idle)
        .ping_interval(Some(interval))
        .build()
        .unwrap();
    let answer = Answer::text("Hello.");
    let (_upstream, gateway) = start(&answer, config).await;
    let mut client = gateway.connect().await;
    send(&mut client, create("one", "")).await;
    assert_eq!(response(&mut client).await, answer.messages());
    // Reading answers each ping with a pong, which keeps the connection alive but does not
    // make it busy: the close comes after about idle / interval pings, not never.
    let most = (idle.as_secs() / interval.as_secs() + 1) as usize;
    let mut pings = 0;
    let frame = loop {
        match next(&mut client).await.expect("a close frame comes") {
            Message::Ping(_) => {
                pings += 1;
                assert!(pings <= most, "still open after {pings} pings");
            }
            Message::Close(frame) => break frame.expect("with a code"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "the pings were on");
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(frame.reason.as_str(), "idle timeout");
    gateway.stop().await;
}
