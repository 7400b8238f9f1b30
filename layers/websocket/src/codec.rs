//! The [`Codec`] trait: how an HTTP-shaped request becomes WebSocket messages and how the
//! upstream's messages become the response body that the HTTP path would have returned.
//!
//! # Example
//!
//! A codec for an upstream that answers each request with one line of text per message and a
//! final `"DONE"` message, refuses a request it cannot serve with `"DENIED <reason>"` before
//! any line (which its HTTP endpoint answers with status 403 and the reason). Which request
//! headers reach its handshake (such as its API key) is the route's
//! [header policy](wsfirst_core::Route::headers), not the codec's business:
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use wsfirst_websocket::{Codec, CodecError, Decoded, Encoded, Exchange, Message, WebSocketConfig};
//!
//! #[derive(Debug)]
//! struct Lines;
//!
//! impl Codec for Lines {
//!     fn encode(&self, _request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError> {
//!         let text = String::from_utf8(body.to_vec())
//!             .map_err(|_| CodecError::new("the request body is not utf-8"))?;
//!         Ok(Encoded::new(vec![Message::text(text)], HeaderValue::from_static("text/plain")))
//!     }
//!
//!     fn decode(&self, message: Message, exchange: &Exchange) -> Result<Decoded, CodecError> {
//!         match message {
//!             Message::Text(text) if text.as_str() == "DONE" => Ok(Decoded::End { frame: None }),
//!             Message::Text(text) if text.as_str().starts_with("DENIED ") && exchange.events() == 0 => {
//!                 let mut headers = HeaderMap::new();
//!                 headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
//!                 Ok(Decoded::Reject {
//!                     status: StatusCode::FORBIDDEN,
//!                     headers,
//!                     body: Bytes::from(text.as_str()["DENIED ".len()..].to_owned()),
//!                 })
//!             }
//!             Message::Text(text) => Ok(Decoded::Event {
//!                 frame: Some(Bytes::from(format!("{}\n", text.as_str()))),
//!             }),
//!             _ => Ok(Decoded::Ignore),
//!         }
//!     }
//! }
//!
//! let (parts, ()) = http::Request::new(()).into_parts();
//! let encoded = Lines.encode(&parts, Bytes::from_static(b"hello"))?;
//! assert_eq!(encoded.messages(), &[Message::text("hello")]);
//! let decoded = Lines.decode(Message::text("hi"), &Exchange::new(true))?;
//! assert_eq!(decoded, Decoded::Event { frame: Some(Bytes::from_static(b"hi\n")) });
//! let denied = Lines.decode(Message::text("DENIED not yours"), &Exchange::new(true))?;
//! assert!(matches!(denied, Decoded::Reject { status: StatusCode::FORBIDDEN, .. }));
//!
//! let config = WebSocketConfig::builder().codec(Lines).build()?;
//! # fn _object_safe(_: Box<dyn Codec>) {}
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
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

    /// The id of the earlier response this request continues, if any (for the Responses API,
    /// its `previous_response_id`); default: none.
    ///
    /// The [`Pool`](crate::Pool) sends a request that continues a response to the connection
    /// that produced it (the only place where an upstream that keeps its responses in the
    /// connection's memory can find it), waiting a bounded time while that connection is
    /// busy. When the connection is gone, or the wait runs out, the request takes another
    /// connection and the upstream's answer, whatever it is, reaches the client. Asked once per
    /// request, before [`encode`](Self::encode); `None` leaves the choice of connection to the
    /// pool alone.
    fn continues(&self, _request: &http::request::Parts, _body: &Bytes) -> Option<String> {
        None
    }

    /// Whether the response this request produces lives only in the memory of the connection
    /// that produces it (for the Responses API, `store: false`: neither another connection
    /// nor the HTTP endpoint can continue it); default: `false`.
    ///
    /// The [`Pool`](crate::Pool) then holds that connection for the conversation's next turn
    /// while it is idle ([`PoolBuilder::conversation_hold`](crate::PoolBuilder::conversation_hold)):
    /// requests of other conversations take another connection. Asked once per request,
    /// before [`encode`](Self::encode).
    fn holds(&self, _request: &http::request::Parts, _body: &Bytes) -> bool {
        false
    }

    /// The id of the response that this message of the answer belongs to, if it carries one
    /// (for the Responses API, the `response.id` of `response.created`); default: none.
    ///
    /// Asked about each message up to and including the answer's first event (pings, pongs and
    /// close frames excluded), until it gives an id: the pool then remembers that the
    /// connection produced this response, so that a request [continuing](Self::continues) it
    /// goes to the same connection.
    fn response_id(&self, _message: &Message) -> Option<String> {
        None
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

    /// Whether this message of a streaming answer says that the upstream will run another
    /// response on this exchange once the current one ends (for the Responses API,
    /// `response.steer.accepted`: the steering input runs as the target's successor on its
    /// lane); default: `false`. The body then reads on past the next end of an answer, so that
    /// the connection goes back to the pool only when nothing more comes for this request. See
    /// [`Steering`](crate::Steering).
    fn extends_answer(&self, _message: &Message) -> bool {
        false
    }

    /// The name of a field of this request that only the API's WebSocket mode knows and that
    /// makes the request WebSocket-only, if any (default: none; for the Responses API,
    /// `"generate": false`, a warm-up). The layer then marks the request
    /// [`WebSocketOnly`](wsfirst_core::WebSocketOnly): it is never sent to the inner HTTP
    /// service, and a failed attempt fails with
    /// [`WebSocketRequired`](wsfirst_core::WebSocketRequired), which a fallback layer does not
    /// replay. Called on every WebSocket request before `encode`, so it should be quick.
    fn websocket_only(
        &self,
        _request: &http::request::Parts,
        _body: &Bytes,
    ) -> Option<&'static str> {
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
///
/// Which variant ends an answer, and what the caller then gets:
///
/// | variant | before the response is built | after a streaming answer's first event |
/// |---|---|---|
/// | [`End`](Decoded::End) | the response (a non-streaming answer: its whole body) | the body's last frame, then a clean end |
/// | [`Reject`](Decoded::Reject) | a response with the upstream's own status, headers and body; never replayed, a success for the breaker | not allowed: a `Protocol` failure |
/// | [`Error`](Decoded::Error) | a failure, not sent again, except a [`Connection`](ErrorScope::Connection) error: a refusal, sent again once on a fresh connection, then replayable | its frame, then a clean end; without a frame, the body ends with a mid-stream failure |
///
/// A non-streaming answer's response is built at its end, so everything it decodes is "before
/// the response is built" (but after its first event, an [`Error`](Decoded::Error) is a
/// mid-stream failure, never replayed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The upstream answered the request with an answer of its own that the HTTP endpoint
    /// would have given too, such as a client error (status 400, 401, 404, 429): the caller
    /// gets this status, these headers and this body as the response, stamped as served by the
    /// WebSocket. It is never replayed over HTTP (the upstream already answered) and the
    /// breaker does not count it as a failure (the WebSocket path worked). Before any event,
    /// the connection may serve another request; after one (a non-streaming answer), it is not
    /// reused.
    Reject {
        /// The response's status.
        status: StatusCode,
        /// The response's headers, its content type included.
        headers: HeaderMap,
        /// The response's whole body.
        body: Bytes,
    },
    /// The upstream reported an error. Before any event this fails the attempt (sent again only
    /// when its scope is [`Connection`](ErrorScope::Connection), see the crate docs, "When a
    /// request is sent again");
    /// after, the frame (the error in the answer's own format, such as an SSE `error` event) is
    /// forwarded and the body ends cleanly, as the HTTP endpoint's stream would; without a
    /// frame the body ends with a mid-stream failure. The connection is not reused.
    Error {
        /// Bytes to forward when the error comes after output (such as an SSE `error` frame).
        frame: Option<Bytes>,
        /// The error's code, such as `server_error`.
        code: Option<String>,
        /// The error's message.
        message: String,
        /// What the error is about: a [`Connection`](ErrorScope::Connection) error before any
        /// event says the upstream refused the request on this connection without executing it
        /// (so use it only where the API says so), and it is sent again once on a fresh
        /// connection; the breaker counts only
        /// [`Provider`](ErrorScope::Provider) errors.
        scope: ErrorScope,
    },
}
