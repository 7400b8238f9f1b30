//! [`RawCodec`]: the request body as one message, each reply message a body chunk, end on close.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use wsfirst_websocket::{Codec, Decoded, Exchange, Message, RawCodec};
//!
//! let codec = RawCodec::new();
//! let (parts, ()) = http::Request::new(()).into_parts();
//! let encoded = codec.encode(&parts, Bytes::from_static(b"ping"))?;
//! assert_eq!(encoded.messages(), &[Message::text("ping")]);
//! assert!(codec.ends_on_close());
//! assert_eq!(
//!     codec.decode(Message::binary(Bytes::from_static(b"pong")), &Exchange::new(true))?,
//!     Decoded::Event { frame: Some(Bytes::from_static(b"pong")) },
//! );
//! # Ok::<(), wsfirst_websocket::CodecError>(())
//! ```

use bytes::Bytes;
use http::HeaderValue;

use crate::{Codec, CodecError, Decoded, Encoded, Exchange, Message};

/// A codec for upstreams without a framing of their own: the request body is sent as one message
/// (text when it is UTF-8, binary otherwise), each message of the answer is a body chunk, and the
/// answer ends when the upstream closes the connection normally. Connections are not reused.
#[derive(Clone, Debug)]
pub struct RawCodec {
    content_type: HeaderValue,
}

impl RawCodec {
    /// A raw codec answering with `application/octet-stream`.
    pub fn new() -> Self {
        Self {
            content_type: HeaderValue::from_static("application/octet-stream"),
        }
    }

    /// Sets the response's content type.
    pub fn content_type(mut self, content_type: HeaderValue) -> Self {
        self.content_type = content_type;
        self
    }
}

impl Default for RawCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for RawCodec {
    fn encode(&self, _request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError> {
        let message = match std::str::from_utf8(&body) {
            Ok(_) => Message::Text(
                body.try_into()
                    .map_err(|_| CodecError::new("the request body is not utf-8"))?,
            ),
            Err(_) => Message::Binary(body),
        };
        Ok(Encoded::new(vec![message], self.content_type.clone()))
    }

    fn decode(&self, message: Message, _exchange: &Exchange) -> Result<Decoded, CodecError> {
        Ok(match message {
            Message::Text(text) => Decoded::Event {
                frame: Some(Bytes::from(text)),
            },
            Message::Binary(bytes) => Decoded::Event { frame: Some(bytes) },
            _ => Decoded::Ignore,
        })
    }

    fn ends_on_close(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bodies_stay_binary() {
        let (parts, ()) = http::Request::new(()).into_parts();
        let encoded = RawCodec::new()
            .encode(&parts, Bytes::from_static(&[0xff, 0]))
            .unwrap();
        assert_eq!(
            encoded.messages(),
            &[Message::binary(Bytes::from_static(&[0xff, 0]))]
        );
        assert_eq!(encoded.content_type(), "application/octet-stream");
    }

    #[test]
    fn text_messages_are_chunks() {
        let decoded = RawCodec::new()
            .decode(Message::text("abc"), &Exchange::new(true))
            .unwrap();
        assert_eq!(
            decoded,
            Decoded::Event {
                frame: Some(Bytes::from_static(b"abc"))
            }
        );
    }
}
