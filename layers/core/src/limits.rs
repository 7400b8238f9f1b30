//! The size limits of a wsfirst stack: what each protects, who owns it, and one default for all.
//!
//! Three settings bound how large a request or an answer may be. They answer different questions,
//! so they stay separate knobs, but their defaults come from the one constant below, so that a
//! request the WebSocket may carry can always be buffered for a replay over HTTP.
//!
//! | setting | owner | protects | default | over the limit |
//! |---|---|---|---|---|
//! | WebSocket message size | `wsfirst-websocket` (`WebSocketConfigBuilder::max_message_size`) | the gateway's memory and the upstream's frame limit: every message sent or received on a WebSocket | [`DEFAULT_MAX_MESSAGE_SIZE`] | a request: `TooLarge` in the send phase, replayed over HTTP; an answer's message: the answer fails |
//! | eligibility body size | `wsfirst-eligibility` (`EligibilityTableBuilder::max_message_size`) | saves a doomed WebSocket attempt: a body declared larger than a message may be goes straight to HTTP | [`DEFAULT_MAX_MESSAGE_SIZE`] (keep it equal to the WebSocket message size) | `Http(Ineligible(BodyTooLarge))` |
//! | fallback buffer | `wsfirst-fallback` (`FallbackConfig::body_limit`) | the gateway's memory: how much of a request body is held so it can be replayed | [`DEFAULT_MAX_MESSAGE_SIZE`] | declared larger: sent over HTTP without a WebSocket attempt; undeclared and larger: `BodyTooLarge` before anything is sent |
//!
//! Lowering the fallback buffer below the WebSocket message size is allowed: requests in between
//! then never try the WebSocket (they cannot be replayed), which is safe.
//!
//! # Example
//!
//! ```
//! assert_eq!(wsfirst_core::limits::DEFAULT_MAX_MESSAGE_SIZE, 16 * 1024 * 1024);
//! ```

/// The default of every size limit above: 16 MiB (tungstenite's own default frame size).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
