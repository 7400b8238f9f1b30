//! Everything specific to the OpenAI Responses API in WebSocket mode, one concern per file: the
//! [codec](ResponsesCodec), what an error event is about ([`error_scope`]), the headers forwarded
//! to the handshake ([`FORWARD_HEADERS`]) and the default eligibility data
//! ([`WEBSOCKET_PAIRS`], [`DENIED_PAIRS`], [`PROVIDER_HOSTS`]).
//!
//! The generic parts of the crate know nothing of this API: the attempt and the body ask the
//! [`Codec`](crate::Codec) (its `decode` sets the [`ErrorScope`](wsfirst_core::ErrorScope) of an
//! error event, its `forward_headers` gives the configuration's default), and the facade feeds
//! the plain constants here to the eligibility table's builder. A second API's WebSocket mode
//! (another provider's) is one more module like this one.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::ErrorScope;
//! use wsfirst_websocket::{Codec, WebSocketConfig, responses};
//!
//! // The configuration's default forwarded headers are the codec's.
//! let config = WebSocketConfig::builder().codec(responses::ResponsesCodec::new()).build()?;
//! assert_eq!(config.forward_headers(), &responses::FORWARD_HEADERS);
//!
//! // An error event about the connection is retried once on a fresh one.
//! assert_eq!(
//!     responses::error_scope(Some("websocket_connection_limit_reached"), ""),
//!     ErrorScope::Connection,
//! );
//!
//! // The facade's default eligibility table allows this pair.
//! assert!(responses::WEBSOCKET_PAIRS.contains(&("openai", "openai-responses")));
//! # Ok::<(), wsfirst_websocket::ConfigError>(())
//! ```

mod codec;
mod eligibility;
mod errors;
mod headers;
pub mod unsupported;

pub use codec::ResponsesCodec;
pub use eligibility::{DENIED_PAIRS, PROVIDER_HOSTS, WEBSOCKET_PAIRS};
pub use errors::{CONNECTION_SCOPED_CODES, RECONNECT_MESSAGES, REQUEST_SCOPED_CODES, error_scope};
pub use headers::FORWARD_HEADERS;
