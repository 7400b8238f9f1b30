//! [`ResponsesCodec`]: requests and events of the OpenAI Responses API in WebSocket mode.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use wsfirst_websocket::{Codec, Decoded, Exchange, Message, ResponsesCodec};
//!
//! let codec = ResponsesCodec::new();
//! let (parts, ()) = http::Request::post("/v1/responses").body(()).unwrap().into_parts();
//! let encoded = codec.encode(&parts, Bytes::from_static(br#"{"model":"gpt-5","stream":true,"input":"hi"}"#))?;
//! assert_eq!(
//!     encoded.messages(),
//!     &[Message::text(r#"{"type":"response.create","model":"gpt-5","input":"hi"}"#)],
//! );
//! assert_eq!(encoded.content_type(), "text/event-stream");
//!
//! let event = r#"{"type":"response.output_text.delta","delta":"he"}"#;
//! let decoded = codec.decode(Message::text(event), &Exchange::new(true))?;
//! assert_eq!(
//!     decoded,
//!     Decoded::Event { frame: Some(Bytes::from(format!("event: response.output_text.delta\ndata: {event}\n\n"))) },
//! );
//! # Ok::<(), wsfirst_websocket::CodecError>(())
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderName;
use http::HeaderValue;
use serde::{
    Deserialize,
    de::{MapAccess, Visitor},
};
use serde_json::value::RawValue;

use super::{FORWARD_HEADERS, error_scope, unsupported};
use crate::{Codec, CodecError, Decoded, Encoded, Exchange, Message};

/// The OpenAI Responses API over its WebSocket mode.
///
/// - Request: the POST body `{..., "stream": true}` becomes the message
///   `{"type": "response.create", ...}` without `stream` (field order kept), and without
///   `background` when it is `false` or `null` (its default). A body that sets a field the
///   WebSocket mode does not support ([`UNSUPPORTED_FIELDS`](super::unsupported::UNSUPPORTED_FIELDS):
///   `background: true`) is named by [`Codec::unsupported`], so the layer sends it over HTTP
///   unchanged; `encode` refuses it rather than drop the field.
/// - Streaming answer (`"stream": true`): each event becomes the server-sent event
///   `event: <type>\ndata: <json>\n\n` with the message's exact text, `text/event-stream`.
/// - Non-streaming answer: the exact JSON text of the `response` field of the terminal event
///   (`response.completed`, `response.failed` or `response.incomplete`), `application/json`.
/// - An `error` event ends the answer: before any event it fails the attempt; after, it is
///   forwarded as an SSE `error` frame and the body ends with an error. Its
///   [`scope`](wsfirst_core::ErrorScope) comes from [`error_scope`].
/// - Handshake headers: [`FORWARD_HEADERS`] are forwarded by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponsesCodec {
    _private: (),
}

impl ResponsesCodec {
    /// The codec.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The fields of a request body in their order, values kept as raw JSON text.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `event: <type>\ndata: <json>\n\n`, one `data:` line per line of the JSON text.
fn sse_frame(kind: &str, json: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(kind.len() + json.len() + 16);
    frame.put_slice(b"event: ");
    frame.put_slice(kind.as_bytes());
    frame.put_u8(b'\n');
    for line in json.split('\n') {
        frame.put_slice(b"data: ");
        frame.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

impl Codec for ResponsesCodec {
    fn encode(&self, _request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError> {
        let text = std::str::from_utf8(&body)
            .map_err(|_| CodecError::new("the request body is not utf-8 json"))?;
        let Fields(fields) = serde_json::from_str(text).map_err(|error| {
            CodecError::new(format!("the request body is not a json object: {error}"))
        })?;
        let mut streaming = false;
        let mut out = String::with_capacity(text.len() + 32);
        out.push_str(r#"{"type":"response.create""#);
        for (key, value) in &fields {
            match key.as_str() {
                "stream" => streaming = value.get().trim() == "true",
                "type" => {}
                key => match unsupported::listed(key) {
                    // Not used by the WebSocket mode: refused when set, never dropped (the
                    // layer asks `unsupported` first and sends such a request over HTTP).
                    Some(field) if !unsupported::is_default(value) => {
                        return Err(CodecError::new(format!(
                            "the request's {field} field is not supported over the websocket"
                        )));
                    }
                    // Its default: leaving it out says the same.
                    Some(_) => {}
                    None => {
                        out.push(',');
                        // A `String` always serialises.
                        out.push_str(&serde_json::to_string(key).unwrap_or_default());
                        out.push(':');
                        out.push_str(value.get());
                    }
                },
            }
        }
        out.push('}');
        let content_type = if streaming {
            HeaderValue::from_static("text/event-stream")
        } else {
            HeaderValue::from_static("application/json")
        };
        Ok(Encoded::new(vec![Message::text(out)], content_type).streaming(streaming))
    }

    fn decode(&self, message: Message, exchange: &Exchange) -> Result<Decoded, CodecError> {
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Binary(_) => {
                return Err(CodecError::new(
                    "unexpected binary message from the responses api",
                ));
            }
            _ => return Ok(Decoded::Ignore),
        };
        let event: Event<'_> = serde_json::from_str(text).map_err(|error| {
            CodecError::new(format!("the upstream sent an unreadable event: {error}"))
        })?;
        let kind = &*event.kind;
        // The type becomes the SSE `event:` line: a line break in it would let the upstream
        // write lines of its own into the caller's stream.
        if kind.contains(['\r', '\n']) {
            return Err(CodecError::new(
                "the upstream sent an event type with a line break",
            ));
        }
        match kind {
            "error" => {
                let (code, message) = match event.error {
                    Some(body) => (body.code.or(event.code), body.message.or(event.message)),
                    None => (event.code, event.message),
                };
                let message = message.unwrap_or_default();
                Ok(Decoded::Error {
                    frame: exchange.is_streaming().then(|| sse_frame(kind, text)),
                    scope: error_scope(code.as_deref(), &message),
                    code,
                    message,
                })
            }
            "response.completed" | "response.failed" | "response.incomplete" => {
                if exchange.is_streaming() {
                    Ok(Decoded::End {
                        frame: Some(sse_frame(kind, text)),
                    })
                } else {
                    let response = event.response.ok_or_else(|| {
                        CodecError::new(format!("the {kind} event has no response field"))
                    })?;
                    Ok(Decoded::End {
                        frame: Some(Bytes::copy_from_slice(response.get().as_bytes())),
                    })
                }
            }
            _ if exchange.is_streaming() => Ok(Decoded::Event {
                frame: Some(sse_frame(kind, text)),
            }),
            _ => Ok(Decoded::Event { frame: None }),
        }
    }

    fn forward_headers(&self) -> &[HeaderName] {
        &FORWARD_HEADERS
    }

    fn unsupported(&self, _request: &http::request::Parts, body: &Bytes) -> Option<&'static str> {
        unsupported::find(body)
    }
}

#[cfg(test)]
mod tests {
    use wsfirst_core::ErrorScope;

    use super::*;

    fn parts() -> http::request::Parts {
        http::Request::post("/v1/responses")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn encode(body: &str) -> Result<Encoded, CodecError> {
        ResponsesCodec::new().encode(&parts(), Bytes::copy_from_slice(body.as_bytes()))
    }

    fn text(encoded: &Encoded) -> &str {
        match &encoded.messages()[0] {
            Message::Text(text) => text.as_str(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn event_types_with_line_breaks_are_codec_errors() {
        let exchange = Exchange::new(true);
        for text in [
            r#"{"type":"x\ndata: injected"}"#,
            r#"{"type":"x\r\nevent: y"}"#,
        ] {
            let error = ResponsesCodec::new()
                .decode(Message::text(text), &exchange)
                .unwrap_err();
            assert_eq!(
                error.message(),
                "the upstream sent an event type with a line break"
            );
        }
    }

    #[test]
    fn request_drops_stream_and_background_and_keeps_order() {
        let encoded = encode(
            r#"{"model":"m","background":false,"input":[{"role":"user","content":"a\"b"}],"stream":true,"store":false}"#,
        )
        .unwrap();
        assert_eq!(
            text(&encoded),
            r#"{"type":"response.create","model":"m","input":[{"role":"user","content":"a\"b"}],"store":false}"#
        );
        assert!(encoded.is_streaming());
        assert_eq!(encoded.content_type(), "text/event-stream");
    }

    #[test]
    fn request_with_background_set_is_refused_not_dropped() {
        for body in [
            r#"{"model":"m","background":true,"input":"hi"}"#,
            // Escaped, the key is missed by the substring search of `unsupported`, not here.
            r#"{"model":"m","b\u0061ckground":true}"#,
        ] {
            let error = encode(body).unwrap_err();
            assert_eq!(
                error.message(),
                "the request's background field is not supported over the websocket",
                "{body}"
            );
        }
        let encoded = encode(r#"{"model":"m","background":null}"#).unwrap();
        assert_eq!(text(&encoded), r#"{"type":"response.create","model":"m"}"#);
    }

    #[test]
    fn unsupported_names_background_only_when_set() {
        let codec = ResponsesCodec::new();
        let body = |text: &'static str| Bytes::from_static(text.as_bytes());
        assert_eq!(
            codec.unsupported(&parts(), &body(r#"{"background":true,"stream":true}"#)),
            Some("background")
        );
        assert_eq!(
            codec.unsupported(&parts(), &body(r#"{"background":false,"stream":true}"#)),
            None
        );
        assert_eq!(codec.unsupported(&parts(), &body("not json")), None);
    }

    #[test]
    fn non_streaming_request_asks_for_json() {
        for body in [
            r#"{"model":"m"}"#,
            r#"{"model":"m","stream":false}"#,
            r#"{"stream" : null,"model":"m"}"#,
        ] {
            let encoded = encode(body).unwrap();
            assert!(!encoded.is_streaming(), "{body}");
            assert_eq!(encoded.content_type(), "application/json");
            assert_eq!(text(&encoded), r#"{"type":"response.create","model":"m"}"#);
        }
    }

    #[test]
    fn escaped_keys_stay_escaped() {
        let encoded = encode(r#"{"we\"ird":1}"#).unwrap();
        assert_eq!(text(&encoded), r#"{"type":"response.create","we\"ird":1}"#);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        for body in ["", "[]", "not json", "{\"a\":", "\"s\""] {
            let error = encode(body).unwrap_err();
            assert!(error.message().contains("json"), "{body}: {error}");
        }
        let error = ResponsesCodec::new()
            .encode(&parts(), Bytes::from_static(&[0xff, 0xfe]))
            .unwrap_err();
        assert!(error.message().contains("utf-8"), "{error}");
    }

    #[test]
    fn streaming_events_become_sse_byte_for_byte() {
        let codec = ResponsesCodec::new();
        let exchange = Exchange::new(true);
        let created = r#"{"type":"response.created","response":{"id":"r1"}}"#;
        assert_eq!(
            codec.decode(Message::text(created), &exchange).unwrap(),
            Decoded::Event {
                frame: Some(Bytes::from(format!(
                    "event: response.created\ndata: {created}\n\n"
                )))
            }
        );
        let done = r#"{"type":"response.completed", "response":{"id":"r1","status":"completed"}}"#;
        assert_eq!(
            codec.decode(Message::text(done), &exchange).unwrap(),
            Decoded::End {
                frame: Some(Bytes::from(format!(
                    "event: response.completed\ndata: {done}\n\n"
                )))
            }
        );
    }

    #[test]
    fn multi_line_json_gets_one_data_line_per_line() {
        assert_eq!(
            sse_frame("x", "{\n\"a\":1\r\n}"),
            Bytes::from_static(b"event: x\ndata: {\ndata: \"a\":1\ndata: }\n\n")
        );
    }

    #[test]
    fn non_streaming_answer_is_the_raw_response_of_the_terminal_event() {
        let codec = ResponsesCodec::new();
        let exchange = Exchange::new(false);
        assert_eq!(
            codec
                .decode(
                    Message::text(r#"{"type":"response.created","response":{}}"#),
                    &exchange
                )
                .unwrap(),
            Decoded::Event { frame: None }
        );
        for kind in [
            "response.completed",
            "response.failed",
            "response.incomplete",
        ] {
            let message = format!(r#"{{"type":"{kind}","response": {{ "id" : "r1" }} }}"#);
            assert_eq!(
                codec.decode(Message::text(message), &exchange).unwrap(),
                Decoded::End {
                    frame: Some(Bytes::from_static(br#"{ "id" : "r1" }"#))
                },
                "{kind}"
            );
        }
        let error = codec
            .decode(Message::text(r#"{"type":"response.completed"}"#), &exchange)
            .unwrap_err();
        assert!(error.message().contains("no response field"), "{error}");
    }

    #[test]
    fn error_events_carry_code_and_message_in_either_shape() {
        let codec = ResponsesCodec::new();
        let nested = r#"{"type":"error","status":400,"error":{"type":"invalid_request_error","code":"previous_response_not_found","message":"gone"}}"#;
        assert_eq!(
            codec
                .decode(Message::text(nested), &Exchange::new(false))
                .unwrap(),
            Decoded::Error {
                frame: None,
                code: Some("previous_response_not_found".into()),
                message: "gone".into(),
                scope: ErrorScope::Connection,
            }
        );
        let flat = r#"{"type":"error","code":"server_error","message":"boom"}"#;
        assert_eq!(
            codec
                .decode(Message::text(flat), &Exchange::new(true))
                .unwrap(),
            Decoded::Error {
                frame: Some(Bytes::from(format!("event: error\ndata: {flat}\n\n"))),
                code: Some("server_error".into()),
                message: "boom".into(),
                scope: ErrorScope::Provider,
            }
        );
    }

    #[test]
    fn unreadable_messages_are_codec_errors() {
        let codec = ResponsesCodec::new();
        let exchange = Exchange::new(true);
        for message in [
            Message::text("not json"),
            Message::text(r#"{"no_type":1}"#),
            Message::binary(Bytes::from_static(b"{}")),
        ] {
            assert!(codec.decode(message, &exchange).is_err());
        }
        assert_eq!(
            codec
                .decode(Message::Ping(Bytes::new()), &exchange)
                .unwrap(),
            Decoded::Ignore
        );
    }
}
