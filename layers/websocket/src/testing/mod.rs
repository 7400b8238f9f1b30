//! A scriptable loopback upstream for tests: the Responses API over a WebSocket and over HTTP
//! (SSE or JSON) on one `127.0.0.1` port (feature `testing`).
//!
//! [`TestUpstream::start`] binds an ephemeral port. A `GET` with `Upgrade: websocket` on any path
//! is a WebSocket handshake, handled by the next [`WsScript`] (accept, refuse with any status,
//! hang, close before or after N events or on the n-th request, send an error event, send events slowly, stall); every
//! `POST` on any path is an HTTP request, handled by the next [`HttpScript`] (answer, fail with a
//! status, slow, abort mid-stream). Both transports serve the same [`Answer`], byte for byte:
//!
//! - over the WebSocket, each `{"type":"response.create",...}` text message is a request, and
//!   each event of the answer goes back as one text message; a connection serves any number of
//!   requests in sequence, as a pooled one does;
//! - over HTTP, a body with `"stream": true` gets `event: <type>\ndata: <json>\n\n` per event
//!   (`text/event-stream`), where `<json>` is the exact text of the WebSocket message; another
//!   body gets the raw text of the terminal event's `response` field (`application/json`).
//!
//! **Conversations** follow the API's rules (OpenAI's WebSocket-mode guide,
//! <https://developers.openai.com/api/docs/guides/websocket-mode>). Each WebSocket connection
//! keeps in memory the id of the **latest response of each lane** it produced (sent in full),
//! whatever its `store`, and forgets them when it closes ([`ConnectionMemory::LatestPerLane`];
//! a test that needs the kit's old, forgiving memory of the last 64 responses asks for
//! [`ConnectionMemory::Recent`] with [`TestUpstream::set_connection_memory`]). A response
//! produced with `store` not `false` (the API's default) is also stored, known to every
//! connection and to the HTTP side. A request with a `previous_response_id` that its connection
//! does not keep (on any of its lanes: lineage follows `previous_response_id`, not the lane)
//! and nobody stored gets, over the WebSocket, the API's error event (the connection stays open):
//! `{"type":"error","status":400,"error":{"type":"invalid_request_error","code":"previous_response_not_found","message":"Previous response with id '…' not found.","param":"previous_response_id"}}`,
//! and over HTTP a `400` with the body
//! `{"error":{"message":…,"type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`.
//! (Those requests still count as executed; no answer is taken for them. A connection with the
//! [`WsScript::Raw`] script, and an HTTP request with an [`HttpScript::Status`] script, ignore
//! `previous_response_id`.) The response id of an answer is the one in its events, so give
//! each answer its own ([`TestUpstream::set_unique_response_ids`]) to hold several
//! conversations.
//!
//! **The rest of the WebSocket mode** (the `openai` Python SDK's
//! `openai/types/responses/responses_client_event.py` and `response_steer_*_event.py`):
//!
//! - **Lanes.** A `response.create` with a `stream_id` (1 to 256 of `[A-Za-z0-9_.-]`, else a
//!   400 error event with `param: "stream_id"`) runs on that lane: requests of one lane are
//!   answered in order (FIFO), lanes in parallel, and every event of the answer (error events
//!   included) ends with `"stream_id":<lane>`. A connection serves at most 256 lanes.
//! - **Warm-ups.** `"generate": false` prepares state without output: the answer is
//!   `response.created` then `response.completed` with an empty `output` and a response id of
//!   the kit's own (`resp_kit_warmup_0001`, ...), which becomes the lane's latest response. No
//!   queued [`Answer`] is used.
//! - **Steering.** `{"type":"response.steer","previous_response_id":…,"input":…}` aimed at a
//!   response running on the connection gets `response.steer.accepted` (with a `steer.id` of
//!   the kit's own), and once that response ends its successor runs on the same lane (the next
//!   answer, continuing it); aimed at any other response it gets `response.steer.failed` at
//!   once, with the input returned and the code `response_already_completed` (the lane's
//!   latest response) or `response_not_found`. Steers are counted by
//!   [`TestUpstream::steers`], not as requests.
//! - `response.processed` (an acknowledgement Codex may send) is ignored; any other message
//!   that is not a `response.create` gets an error event.
//! - **Over HTTP**, a body with `stream_id` or `generate` (WebSocket-only fields) gets the
//!   API's `400` for unknown parameters:
//!   `{"error":{"message":"Unknown parameter: 'stream_id'.","type":"invalid_request_error","param":"stream_id","code":"unknown_parameter"}}`.
//!
//! The upstream counts handshakes ([`TestUpstream::handshakes`], refused and hung ones
//! included), requests executed per transport ([`TestUpstream::ws_requests`],
//! [`TestUpstream::http_requests`]) and captures the headers and body of the most recent requests
//! ([`TestUpstream::captured`], bounded: [`TestUpstream::set_capture_limit`]). Timers are `tokio::time`, so paused time drives slow scripts.
//! [`TestUpstream::set_response_headers`] adds headers to every answer, HTTP responses and
//! WebSocket handshake answers alike (such as Codex's routing token `x-codex-turn-state`).
//!
//! With paused time (`#[tokio::test(start_paused = true)]`), the clock jumps ahead whenever the
//! runtime waits for nothing but I/O. The upstream disables Nagle's algorithm on its sockets so
//! its small writes reach the client at once; a client that sends several small messages in a
//! row under paused time should disable it too (`TCP_NODELAY`), or the clock can run ahead of
//! its bytes.
//!
//! # Example
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::{connect_async, tungstenite::Message};
//! use wsfirst_websocket::testing::{Answer, TestUpstream, WsScript};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = TestUpstream::start().await;
//! upstream.set_answer(Answer::text("hello world"));
//! // The first connection is refused the way the incident's endpoint was; the next is accepted.
//! upstream.push_ws_script(WsScript::refuse(http::StatusCode::INTERNAL_SERVER_ERROR, "oops"));
//!
//! assert!(connect_async(upstream.ws_url()).await.is_err());
//!
//! let (mut socket, _) = connect_async(upstream.ws_url()).await?;
//! socket
//!     .send(Message::text(r#"{"type":"response.create","model":"gpt-kit","input":"hi"}"#))
//!     .await?;
//! let mut received = Vec::new();
//! while let Some(message) = socket.next().await {
//!     let text = message?.into_text()?.to_string();
//!     let done = text.contains(r#""type":"response.completed""#);
//!     received.push(text);
//!     if done {
//!         break;
//!     }
//! }
//!
//! let answer = Answer::text("hello world");
//! assert_eq!(received, answer.messages());
//! assert_eq!((upstream.handshakes(), upstream.ws_requests(), upstream.http_requests()), (2, 1, 0));
//! assert_eq!(upstream.captured()[0].json().unwrap()["input"], "hi");
//! upstream.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod answer;
mod http_side;
mod lanes;
mod script;
mod server;
mod shared;
mod ws_side;

pub use answer::Answer;
pub use script::{HttpScript, WsScript};
pub use server::TestUpstream;
pub use shared::{CapturedRequest, ConnectionMemory};
pub use wsfirst_core::Transport;
