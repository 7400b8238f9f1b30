//! The size limits of a wsfirst stack: what each protects, who owns it, and its default.
//!
//! Three settings bound how large a request may be. They answer different questions, so they
//! stay separate knobs, but their defaults come from one constant, [`DEFAULT_MAX_MESSAGE_SIZE`],
//! so that a request the WebSocket may carry can always be buffered for a replay over HTTP. A
//! fourth bounds the upstream's answer: it is its own question (an answer's final event repeats
//! the whole output, so it can be far larger than any request) with its own default,
//! [`DEFAULT_MAX_INCOMING_MESSAGE_SIZE`].
//!
//! | setting | owner | protects | default | over the limit |
//! |---|---|---|---|---|
//! | WebSocket message size | `wsfirst-websocket` (`WebSocketConfigBuilder::max_message_size`) | the upstream's frame limit: every request message sent on a WebSocket | [`DEFAULT_MAX_MESSAGE_SIZE`] | `TooLarge` in the send phase, replayed over HTTP |
//! | WebSocket incoming message size | `wsfirst-websocket` (`WebSocketConfigBuilder::max_incoming_message_size`) | the gateway's memory: every message received from the upstream | [`DEFAULT_MAX_INCOMING_MESSAGE_SIZE`] | `TooLarge` naming the size and the limit: a failure that is not sent again (the upstream executed the request), the body's error after the first event |
//! | eligibility body size | `wsfirst-eligibility` (`EligibilityTableBuilder::max_message_size`) | saves a doomed WebSocket attempt: a body declared larger than a message may be goes straight to HTTP | [`DEFAULT_MAX_MESSAGE_SIZE`] (keep it equal to the WebSocket message size) | `Http(Ineligible(BodyTooLarge))` |
//! | fallback buffer | `wsfirst-fallback` (`FallbackConfig::body_limit`) | the gateway's memory: how much of a request body is held so it can be replayed | [`DEFAULT_MAX_MESSAGE_SIZE`] | declared larger: sent over HTTP without a WebSocket attempt; undeclared and larger: `BodyTooLarge` before anything is sent |
//!
//! Lowering the fallback buffer below the WebSocket message size is allowed: requests in between
//! then never try the WebSocket (they cannot be replayed), which is safe.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::limits::{DEFAULT_MAX_INCOMING_MESSAGE_SIZE, DEFAULT_MAX_MESSAGE_SIZE};
//!
//! assert_eq!(DEFAULT_MAX_MESSAGE_SIZE, 16 * 1024 * 1024);
//! assert_eq!(DEFAULT_MAX_INCOMING_MESSAGE_SIZE, 64 * 1024 * 1024);
//! ```

/// The default of every request-side size limit above: 16 MiB (tungstenite's own default frame
/// size).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The default largest message received from the upstream: 64 MiB (tungstenite's own default
/// message size).
///
/// A Responses API answer ends with `response.completed`, which repeats the whole `response`
/// object: every output item, generated images as base64 and encrypted reasoning included, so
/// it can be many times larger than the request. The official Python SDK leaves the limit to
/// the caller (`websocket_connection_options={"max_size": ...}` of `responses.connect()`,
/// where `None` disables it: `src/openai/types/websocket_connection_options.py`); OpenAI's
/// Codex client keeps tungstenite's defaults (`websocket_config()` in
/// `codex-rs/codex-api/src/endpoint/responses_websocket.rs`). 64 MiB holds a long answer with
/// several images while still bounding what one bad upstream message can cost.
pub const DEFAULT_MAX_INCOMING_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
