//! The [`Codec`] trait: how an HTTP-shaped request becomes WebSocket messages and how the
//! upstream's messages become the response body that the HTTP path would have returned.
//!
//! # Example
//!
//! A codec for an upstream that answers each request with one line of text per message and a
//! final `"DONE"` message, and that authenticates the handshake with the request's API key:
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderName, HeaderValue};
//! use wsfirst_websocket::{Codec, CodecError, Decoded, Encoded, Exchange, Message, WebSocketConfig};
//!
//! #[derive(Debug)]
//! struct Lines;
//!
//! /// The request headers this API's handshake needs.
//! static FORWARD: [HeaderName; 1] = [HeaderName::from_static("x-api-key")];
//!
//! impl Codec for Lines {
//!     fn encode(&self, _request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError> {
//!         let text = String::from_utf8(body.to_vec())
//!             .map_err(|_| CodecError::new("the request body is not utf-8"))?;
//!         Ok(Encoded::new(vec![Message::text(text)], HeaderValue::from_static("text/plain")))
//!     }
//!
//!     fn decode(&self, message: Message, _exchange: &Exchange) -> Result<Decoded, CodecError> {
//!         match message {
//!             Message::Text(text) if text.as_str() == "DONE" => Ok(Decoded::End { frame: None }),
//!             Message::Text(text) => Ok(Decoded::Event {
//!                 frame: Some(Bytes::from(format!("{}\n", text.as_str()))),
//!             }),
//!             _ => Ok(Decoded::Ignore),
//!         }
//!     }
//!
//!     fn forward_headers(&self) -> &[HeaderName] {
//!         &FORWARD
//!     }
//! }
//!
//! let (parts, ()) = http::Request::new(()).into_parts();
//! let encoded = Lines.encode(&parts, Bytes::from_static(b"hello"))?;
//! assert_eq!(encoded.messages(), &[Message::text("hello")]);
//! let decoded = Lines.decode(Message::text("hi"), &Exchange::new(true))?;
//! assert_eq!(decoded, Decoded::Event { frame: Some(Bytes::from_static(b"hi\n")) });
//!
//! // A configuration forwards the codec's headers unless it lists its own.
//! let config = WebSocketConfig::builder().codec(Lines).build()?;
//! assert_eq!(config.forward_headers(), &FORWARD);
//! # fn _object_safe(_: Box<dyn Codec>) {}
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use wsfirst_core::ErrorScope;

pub(crate) use crate::error::CodecError;
pub use tokio_tungstenite::tungstenite::Message;

/// Maps a request to WebSocket messages and the upstream's messages to response body frames.
///
/// A codec is shared by every request of a layer (`Arc<dyn Codec>`), so it holds configuration
/// only; what one exchange needs to know is in [`Exchange`].
pub trait Codec: fmt::Debug + Send + Sync + 'static {
    /// Turns the request (head and whole body) into the messages to send and says how the
    /// answer is shaped. An error here becomes a replay-safe `Send` failure, so an upstream
    /// reached over HTTP can answer the request with its own error.
    fn encode(&self, request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError>;

    /// Reads one message of the answer. Pings, pongs and close frames are handled by the layer
    /// and never reach the codec.
    fn decode(&self, message: Message, exchange: &Exchange) -> Result<Decoded, CodecError>;

    /// Whether a normal close of the connection (no close code or code 1000) ends the answer
    /// successfully. When `false` (the default), a close before the end is a failure, and a
    /// connection is returned to the pool after each answer.
    fn ends_on_close(&self) -> bool {
        false
    }

    /// The request headers this API's handshake needs, such as its credentials: a
    /// [`WebSocketConfig`](crate::WebSocketConfig) forwards them unless it is given its own list
    /// (default: none). Headers reserved for the handshake
    /// ([`is_reserved_for_websocket`](wsfirst_core::headers::is_reserved_for_websocket)) make
    /// the configuration fail to build.
    fn forward_headers(&self) -> &[HeaderName] {
        &[]
    }

    /// The name of a field of this request (head and whole body) that the API's WebSocket mode
    /// does not support, if any (default: none). Such a request is not tried on the WebSocket:
    /// the layer sends it, body unchanged, to its inner HTTP service with the intent
    /// `Intent::Http(HttpReason::Ineligible(Ineligible::UnsupportedField(field)))`
    /// ([`Ineligible::UnsupportedField`](wsfirst_core::Ineligible::UnsupportedField)), so that
    /// [`encode`](Codec::encode) never has to drop a field that changes what the request means.
    /// Called on every WebSocket request before `encode`, so it should be quick (the
    /// [`ResponsesCodec`](crate::ResponsesCodec) looks for the field's name before it parses).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wsfirst_websocket::{Codec, ResponsesCodec};
    ///
    /// let (parts, ()) = http::Request::post("/v1/responses").body(()).unwrap().into_parts();
    /// let background = Bytes::from_static(br#"{"model":"gpt-5","background":true,"input":"hi"}"#);
    /// assert_eq!(ResponsesCodec::new().unsupported(&parts, &background), Some("background"));
    /// let foreground = Bytes::from_static(br#"{"model":"gpt-5","input":"hi"}"#);
    /// assert_eq!(ResponsesCodec::new().unsupported(&parts, &foreground), None);
    /// ```
    fn unsupported(&self, _request: &http::request::Parts, _body: &Bytes) -> Option<&'static str> {
        None
    }
}

/// What [`Codec::encode`] produced: the messages to send and the shape of the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    messages: Vec<Message>,
    content_type: HeaderValue,
    streaming: bool,
}

impl Encoded {
    /// A streaming answer with this content type, produced by sending `messages`.
    pub fn new(messages: Vec<Message>, content_type: HeaderValue) -> Self {
        Self {
            messages,
            content_type,
            streaming: true,
        }
    }

    /// Whether the answer streams. A streaming answer's response is returned at the first event
    /// and its body forwards frames as they arrive; a non-streaming answer's frames are gathered
    /// and the response is returned at the end (default `true`).
    pub fn streaming(mut self, streaming: bool) -> Self {
        self.streaming = streaming;
        self
    }

    /// The messages to send, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The response's content type.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// Whether the answer streams.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    pub(crate) fn into_parts(self) -> (Vec<Message>, HeaderValue, bool) {
        (self.messages, self.content_type, self.streaming)
    }
}

/// What one exchange (one request and its answer) looks like, passed to [`Codec::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    streaming: bool,
    events: usize,
}

impl Exchange {
    /// An exchange that streams or not, with no event seen yet.
    pub fn new(streaming: bool) -> Self {
        Self {
            streaming,
            events: 0,
        }
    }

    /// Whether the request asked for a streaming answer.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// How many events of this answer were decoded before this one.
    pub fn events(&self) -> usize {
        self.events
    }

    pub(crate) fn record_event(&mut self) {
        self.events += 1;
    }
}

/// What one message of the answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not part of the answer (for example a keep-alive message); no timer is reset.
    Ignore,
    /// An event of the answer, with the body frame to forward, if any.
    Event {
        /// Bytes to append to the response body.
        frame: Option<Bytes>,
    },
    /// The last event of the answer; the connection may serve another request.
    End {
        /// Bytes to append to the response body.
        frame: Option<Bytes>,
    },
    /// The upstream reported an error. Before any event this fails the attempt (replay-safe);
    /// after, the frame is forwarded and the body ends with a mid-stream failure.
    Error {
        /// Bytes to forward when the error comes after output (such as an SSE `error` frame).
        frame: Option<Bytes>,
        /// The error's code, such as `server_error`.
        code: Option<String>,
        /// The error's message.
        message: String,
        /// What the error is about: a [`Connection`](ErrorScope::Connection) error before any
        /// event is retried once on a fresh connection; the breaker counts only
        /// [`Provider`](ErrorScope::Provider) errors.
        scope: ErrorScope,
    },
}
