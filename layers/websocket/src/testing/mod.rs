//! A scriptable loopback upstream for tests: the Responses API over a WebSocket and over HTTP
//! (SSE or JSON) on one `127.0.0.1` port (feature `testing`).
//!
//! [`TestUpstream::start`] binds an ephemeral port. A `GET` with `Upgrade: websocket` on any path
//! is a WebSocket handshake, handled by the next [`WsScript`] (accept, refuse with any status,
//! hang, close before or after N events, send an error event, send events slowly, stall); every
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
//! The upstream counts handshakes ([`TestUpstream::handshakes`], refused and hung ones
//! included), requests executed per transport ([`TestUpstream::ws_requests`],
//! [`TestUpstream::http_requests`]) and captures every request's headers and body
//! ([`TestUpstream::captured`]). Timers are `tokio::time`, so paused time drives slow scripts.
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
mod script;
mod server;
mod shared;
mod ws_side;

pub use answer::Answer;
pub use script::{HttpScript, WsScript};
pub use server::TestUpstream;
pub use shared::CapturedRequest;
pub use wsfirst_core::Transport;
