//! Everything specific to the OpenAI Responses API in WebSocket mode, one concern per file: the
//! [codec](ResponsesCodec), what an error event is about ([`error_scope`], [`is_answer`]), the
//! headers forwarded to the handshake ([`FORWARD_HEADERS`], [`LIST_HEADERS`]) and passed on with
//! an error ([`is_answer_header`]), and the default eligibility data ([`WEBSOCKET_PAIRS`],
//! [`DENIED_PAIRS`], [`PROVIDER_HOSTS`]).
//!
//! # What the Responses API sends, and what we do
//!
//! Sources: OpenAI's WebSocket-mode guide
//! (<https://developers.openai.com/api/docs/guides/websocket-mode>), the official Python SDK
//! (`openai`: `responses.connect()` in `src/openai/resources/responses/responses.py`, the event
//! types in `src/openai/types/responses/responses_server_event.py`, the recoverable close codes
//! in `src/openai/types/websocket_reconnection.py`) and OpenAI's Codex Rust client
//! (`codex-rs/codex-api/src/endpoint/responses_websocket.rs`).
//!
//! | the upstream sends | the client gets | replayed over HTTP | the breaker |
//! |---|---|---|---|
//! | events, then `response.completed` / `failed` / `incomplete` | the same SSE stream (or final JSON) as over HTTP | no | a success |
//! | before any event, an `error` event with a 4xx status (`invalid_value`, auth, not found, `previous_response_not_found`, ...) | that status and the HTTP endpoint's error body `{"error":{"message","type","param","code"}}` (`application/json`), streaming or not | no | a success (the path answered) |
//! | before any event, an `error` event with status 429 | status 429, the same body, and the event's `retry-after`, `retry-after-ms`, `x-should-retry`, `x-request-id` and `x-ratelimit-*` headers ([`is_answer_header`]) | no | a success |
//! | before any event, an `error` event with a 5xx status or none | a failure: the upstream may have started on the request, so it is not sent again | no | counted, unless its code is one of [`REQUEST_SCOPED_CODES`] |
//! | before any event, `websocket_connection_limit_reached` ([`CONNECTION_SCOPED_CODES`]; it comes with status 400) or a message of [`RECONNECT_MESSAGES`] | the answer of a fresh connection, tried once (the request was refused, not executed); if that fails too, a failure that may be replayed | only after the second try (under `replay = "before_first_event"`) | not counted |
//! | after output, an `error` event (streaming request) | the HTTP stream's ending: `event: error` with `{"type":"error","code","message","param","sequence_number"}` (the event's other fields, such as `headers`, are dropped), then a clean end of the body | no | a success: the answer, error included, reached its end (only transport failures mid-stream count) |
//! | after `response.created`, an `error` event (non-streaming request) | the event's status (500 without one) and the HTTP error body | no | a success |
//! | a close (any code) or end of stream on a reused connection, already there before the request is written | the answer of a fresh connection (the request was not sent) | only if that fails too | not counted for the reused connection |
//! | a close (any code, 1001 included) or end of stream after the request was written, before any event | a `Closed` failure: the upstream may have executed the request, it is not sent again | no | counted |
//! | a message larger than [`max_incoming_message_size`](crate::WebSocketConfigBuilder::max_incoming_message_size) (64 MiB) | a `TooLarge` failure (the body's error after the first event) | no | not counted |
//! | silence longer than [`idle_timeout`](crate::WebSocketConfigBuilder::idle_timeout) (300 s) between two events | a mid-stream `Timeout` failure | no | counted |
//!
//! On the handshake, the route's static `OpenAI-Beta` value is added to the client's own beta
//! flags ([`LIST_HEADERS`]), comma-separated and without duplicates.
//!
//! The generic parts of the crate know nothing of this API: the attempt and the body ask the
//! [`Codec`](crate::Codec) (its `decode` sets the [`ErrorScope`](wsfirst_core::ErrorScope) of an
//! error event), and the facade feeds
//! the plain constants here to the eligibility table's builder. A second API's WebSocket mode
//! (another provider's) is one more module like this one.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::ErrorScope;
//! use wsfirst_websocket::responses;
//!
//! // A route's default header policy forwards the API's headers.
//! let policy = wsfirst_core::headers::HeaderPolicy::responses();
//! assert_eq!(policy.forward_headers(), &responses::FORWARD_HEADERS);
//!
//! // An error event about the connection (a refusal: not executed) is sent again once on a
//! // fresh connection; a client error is the upstream's answer.
//! assert_eq!(
//!     responses::error_scope(Some("websocket_connection_limit_reached"), ""),
//!     ErrorScope::Connection,
//! );
//! assert!(responses::is_answer(Some(http::StatusCode::BAD_REQUEST), Some("invalid_value"), ""));
//!
//! // The facade's default eligibility table allows this pair.
//! assert!(responses::WEBSOCKET_PAIRS.contains(&("openai", "openai-responses")));
//! ```

mod codec;
pub mod conversation;
mod eligibility;
mod errors;
mod headers;
mod json_answer;
pub mod lanes;
pub mod unsupported;
pub mod websocket_only;

pub use codec::{ResponsesCodec, fields_in_order};
pub use eligibility::{DENIED_PAIRS, PROVIDER_HOSTS, WEBSOCKET_PAIRS};
pub use errors::{
    CONNECTION_SCOPED_CODES, RECONNECT_MESSAGES, REQUEST_SCOPED_CODES, error_scope, is_answer,
};
pub use headers::{
    ANSWER_HEADER_PREFIXES, ANSWER_HEADERS, FORWARD_HEADERS, LIST_HEADERS, is_answer_header,
};
