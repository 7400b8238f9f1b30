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
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde::{
    Deserialize, Serialize,
    de::{MapAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};

use super::{error_scope, is_answer, is_answer_header, json_answer, unsupported};
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
/// - An `error` event (`{"type":"error","status":N,"error":{"type","code","message","param"},
///   "headers":{...}}`; the flat `{"type":"error","code","message"}` is read too) ends the
///   answer, as the HTTP endpoint would have ended it:
///   - before any event, with a client-error status ([`is_answer`]): [`Decoded::Reject`] with
///     that status, the HTTP endpoint's error body `{"error":{"message","type","param","code"}}`
///     (`application/json`, streaming or not: the HTTP endpoint rejects a bad request before it
///     streams) and the event's [answer headers](super::is_answer_header), such as a 429's
///     `retry-after` and `x-ratelimit-*`;
///   - before any event, otherwise (5xx, no status, a [connection-scoped
///     code](super::CONNECTION_SCOPED_CODES)): [`Decoded::Error`] with the
///     [`scope`](wsfirst_core::ErrorScope) of [`error_scope`], a failure of the attempt;
///   - after output, streaming: [`Decoded::Error`] whose frame is the HTTP stream's error event,
///     `event: error\ndata: {"type":"error","code","message","param","sequence_number"}` (the
///     Python SDK's `ResponseErrorEvent`, `src/openai/types/responses/response_error_event.py`;
///     the event's own `sequence_number`, else the number of events before it), and nothing
///     else of the upstream's event (its `status` and `headers` are the upstream's internal
///     business); the body then ends cleanly;
///   - after `response.created`, non-streaming: [`Decoded::Reject`] with the event's status
///     (500 without one) and the error body, the answer the HTTP endpoint would have given.
/// - Handshake headers: a route's default header policy forwards
///   [`FORWARD_HEADERS`](super::FORWARD_HEADERS); `OpenAI-Beta` is a
///   [list header](super::LIST_HEADERS).
/// - Conversations: a request with a `previous_response_id` goes to the connection that
///   produced that response (see [`conversation`](super::conversation)).
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

/// The fields of a JSON object in their order, each value kept as its raw JSON text (a
/// [`serde_json::Map`] would sort them). Turning a body into a message and back keeps the
/// caller's order this way.
///
/// ```
/// use wsfirst_websocket::responses::fields_in_order;
///
/// let fields = fields_in_order(r#"{"model":"gpt-5","input":[1, 2],"stream":true}"#)?;
/// let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
/// assert_eq!(names, ["model", "input", "stream"]);
/// assert_eq!(fields[1].1.get(), "[1, 2]");
/// assert!(fields_in_order("[1]").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn fields_in_order(text: &str) -> Result<Vec<(String, &RawValue)>, serde_json::Error> {
    serde_json::from_str::<Fields<'_>>(text).map(|fields| fields.0)
}

/// The visitor of [`fields_in_order`].
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
}

/// An `error` event, read leniently (it is rare, and a field of an unexpected type should not
/// hide the error itself).
struct ErrorEvent {
    status: Option<StatusCode>,
    kind: Option<String>,
    code: Option<String>,
    message: String,
    param: Option<String>,
    sequence_number: Option<u64>,
    headers: HeaderMap,
}

impl ErrorEvent {
    fn parse(text: &str) -> Result<Self, CodecError> {
        let event: Map<String, Value> = serde_json::from_str(text).map_err(|error| {
            CodecError::new(format!(
                "the upstream sent an unreadable error event: {error}"
            ))
        })?;
        let error = event.get("error").and_then(Value::as_object);
        // The nested shape wins; the flat `{"type":"error","code","message"}` is read too.
        let field = |name: &str| {
            error
                .and_then(|error| error.get(name))
                .and_then(text_of)
                .or_else(|| event.get(name).and_then(text_of))
        };
        let status = event
            .get("status")
            .or_else(|| event.get("status_code"))
            .and_then(|status| match status {
                Value::Number(number) => number.as_u64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            })
            .and_then(|status| u16::try_from(status).ok())
            .and_then(|status| StatusCode::from_u16(status).ok());
        // The Python SDK's types put the headers in `error`, OpenAI's Codex client reads them
        // at the top level: both are read, the top level last.
        let mut headers = HeaderMap::new();
        for map in [
            error.and_then(|error| error.get("headers")),
            event.get("headers"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        {
            for (name, value) in map {
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    continue;
                };
                if !is_answer_header(&name) {
                    continue;
                }
                let value = match value {
                    Value::String(text) => HeaderValue::from_str(text).ok(),
                    Value::Number(number) => HeaderValue::from_str(&number.to_string()).ok(),
                    _ => None,
                };
                if let Some(value) = value {
                    headers.insert(name, value);
                }
            }
        }
        Ok(Self {
            status,
            kind: error.and_then(|error| error.get("type")).and_then(text_of),
            code: field("code"),
            message: field("message").unwrap_or_default(),
            param: field("param"),
            sequence_number: event.get("sequence_number").and_then(Value::as_u64),
            headers,
        })
    }

    /// The answer the HTTP endpoint gives with this status: the error body, `application/json`,
    /// and the event's answer headers.
    fn reject(self, status: StatusCode) -> Decoded {
        let body = HttpErrorBody {
            error: HttpError {
                message: &self.message,
                kind: self.kind.as_deref(),
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        };
        let mut headers = self.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Decoded::Reject {
            status,
            headers,
            // Plain structs of strings always serialise.
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        }
    }

    /// The error as the HTTP endpoint's stream ends with it: an SSE `error` event.
    fn stream_frame(&self, events: usize) -> Bytes {
        let event = HttpStreamError {
            kind: "error",
            code: self.code.as_deref(),
            message: &self.message,
            param: self.param.as_deref(),
            sequence_number: self
                .sequence_number
                .unwrap_or(u64::try_from(events).unwrap_or(u64::MAX)),
        };
        sse_frame("error", &serde_json::to_string(&event).unwrap_or_default())
    }

    fn into_error(self, frame: Option<Bytes>) -> Decoded {
        Decoded::Error {
            frame,
            scope: error_scope(self.code.as_deref(), &self.message),
            code: self.code,
            message: self.message,
        }
    }
}

/// A string, or the text of a number, of a JSON value; `None` for null and the rest.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The HTTP endpoint's error body: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize)]
struct HttpErrorBody<'a> {
    error: HttpError<'a>,
}

#[derive(Serialize)]
struct HttpError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The HTTP stream's `error` event: `{"type":"error","code","message","param","sequence_number"}`.
#[derive(Serialize)]
struct HttpStreamError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: Option<&'a str>,
    message: &'a str,
    param: Option<&'a str>,
    sequence_number: u64,
}

/// `event: <type>\ndata: <json>\n\n`, one `data:` line per line of the JSON text. A line ends
/// with `\r\n`, `\n` or a lone `\r`, as SSE reads it: a `\r` left in a `data:` line would end
/// that line for the client, and the rest of the JSON would be read as a field of its own.
fn sse_frame(kind: &str, json: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(kind.len() + json.len() + 16);
    frame.put_slice(b"event: ");
    frame.put_slice(kind.as_bytes());
    frame.put_u8(b'\n');
    let mut rest = json;
    loop {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        frame.put_slice(b"data: ");
        frame.put_slice(&rest.as_bytes()[..end]);
        frame.put_u8(b'\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

impl Codec for ResponsesCodec {
    fn encode(&self, _request: &http::request::Parts, body: Bytes) -> Result<Encoded, CodecError> {
        let text = std::str::from_utf8(&body)
            .map_err(|_| CodecError::new("the request body is not utf-8 json"))?;
        let fields = fields_in_order(text).map_err(|error| {
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
        // A non-streaming answer keeps only its end: the events before it are not parsed.
        if !exchange.is_streaming() {
            if let Some(decoded) = json_answer::pass_over(text) {
                return Ok(decoded);
            }
        }
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
                let error = ErrorEvent::parse(text)?;
                let before_output = exchange.events() == 0;
                Ok(if before_output {
                    match error.status {
                        Some(status)
                            if is_answer(Some(status), error.code.as_deref(), &error.message) =>
                        {
                            error.reject(status)
                        }
                        _ => error.into_error(None),
                    }
                } else if exchange.is_streaming() {
                    let frame = error.stream_frame(exchange.events());
                    error.into_error(Some(frame))
                } else {
                    // Nothing was sent to the client yet: it gets the HTTP endpoint's answer.
                    let status = error
                        .status
                        .filter(|status| status.is_client_error() || status.is_server_error())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    error.reject(status)
                })
            }
            "response.completed" | "response.failed" | "response.incomplete" => {
                if exchange.is_streaming() {
                    Ok(Decoded::End {
                        frame: Some(sse_frame(kind, text)),
                    })
                } else {
                    json_answer::final_response(kind, event.response)
                }
            }
            _ if exchange.is_streaming() => Ok(Decoded::Event {
                frame: Some(sse_frame(kind, text)),
            }),
            _ => Ok(Decoded::Event { frame: None }),
        }
    }

    fn continues(&self, _request: &http::request::Parts, body: &Bytes) -> Option<String> {
        super::conversation::previous_response_id(body)
    }

    fn holds(&self, _request: &http::request::Parts, body: &Bytes) -> bool {
        super::conversation::unstored(body)
    }

    fn response_id(&self, message: &Message) -> Option<String> {
        super::conversation::response_id(message)
    }

    fn unsupported(&self, _request: &http::request::Parts, body: &Bytes) -> Option<&'static str> {
        unsupported::find(body)
    }

    fn extends_answer(&self, message: &Message) -> bool {
        let Message::Text(text) = message else {
            return false;
        };
        // Most events are not about steering: a search is cheaper than parsing them.
        text.contains("response.steer.accepted")
            && serde_json::from_str::<Value>(text.as_str())
                .is_ok_and(|event| event["type"] == "response.steer.accepted")
    }

    fn websocket_only(
        &self,
        _request: &http::request::Parts,
        body: &Bytes,
    ) -> Option<&'static str> {
        super::websocket_only::find(body)
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
    fn a_streaming_answer_ends_on_each_terminal_event_with_its_frame() {
        let codec = ResponsesCodec::new();
        let exchange = after(true, 1);
        for kind in [
            "response.completed",
            "response.failed",
            "response.incomplete",
        ] {
            let message = format!(r#"{{"type":"{kind}","response":{{"id":"r1"}}}}"#);
            assert_eq!(
                codec
                    .decode(Message::text(message.clone()), &exchange)
                    .unwrap(),
                Decoded::End {
                    frame: Some(Bytes::from(format!("event: {kind}\ndata: {message}\n\n")))
                },
                "{kind}"
            );
        }
    }

    /// An exchange that has seen `events` events.
    fn after(streaming: bool, events: usize) -> Exchange {
        let mut exchange = Exchange::new(streaming);
        for _ in 0..events {
            exchange.record_event();
        }
        exchange
    }

    fn decode_error(event: &str, exchange: &Exchange) -> Decoded {
        ResponsesCodec::new()
            .decode(Message::text(event), exchange)
            .unwrap()
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
    }

    #[test]
    fn client_errors_before_output_are_the_http_endpoints_answer_streaming_or_not() {
        let event = r#"{"type":"error","status":400,"error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value: 'x'.","param":"input"}}"#;
        let expected = Decoded::Reject {
            status: StatusCode::BAD_REQUEST,
            headers: json_headers(),
            body: Bytes::from_static(
                br#"{"error":{"message":"Invalid value: 'x'.","type":"invalid_request_error","param":"input","code":"invalid_value"}}"#,
            ),
        };
        for streaming in [true, false] {
            assert_eq!(
                decode_error(event, &Exchange::new(streaming)),
                expected,
                "{streaming}"
            );
        }
        for (status, code) in [
            (401, "invalid_api_key"),
            (403, "unsupported_country_region_territory"),
            (404, "model_not_found"),
            (400, "previous_response_not_found"),
        ] {
            let event = format!(
                r#"{{"type":"error","status":{status},"error":{{"type":"invalid_request_error","code":"{code}","message":"m"}}}}"#
            );
            match decode_error(&event, &Exchange::new(true)) {
                Decoded::Reject { status: got, .. } => assert_eq!(got.as_u16(), status),
                other => panic!("{code}: {other:?}"),
            }
        }
        // `status_code` (OpenAI's Codex client reads it too) and a status given as text.
        for event in [
            r#"{"type":"error","status_code":404,"error":{"message":"m"}}"#,
            r#"{"type":"error","status":"404","error":{"message":"m"}}"#,
        ] {
            match decode_error(event, &Exchange::new(true)) {
                Decoded::Reject { status, .. } => assert_eq!(status, StatusCode::NOT_FOUND),
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_rate_limit_passes_its_rate_limit_headers_and_nothing_else() {
        let event = r#"{"type":"error","status":429,"error":{"type":"requests","code":"rate_limit_exceeded","message":"slow down","param":null,"headers":{"x-ratelimit-limit-requests":"500","set-cookie":"a=b"}},"headers":{"retry-after":"7","retry-after-ms":7000,"x-ratelimit-remaining-requests":"0","x-ratelimit-reset-requests":"7s","x-request-id":"req_1","x-should-retry":"false","openai-organization":"org-secret","x-oai-is-update":"nonce","bad header":"x","x-ratelimit-reset-tokens":{"nested":1}}}"#;
        let Decoded::Reject {
            status,
            headers,
            body,
        } = decode_error(event, &Exchange::new(false))
        else {
            panic!("a 429 is an answer")
        };
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "retry-after",
                "retry-after-ms",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-request-id",
                "x-should-retry",
            ]
        );
        assert_eq!(headers["retry-after"], "7");
        assert_eq!(headers["retry-after-ms"], "7000");
        assert_eq!(
            &body[..],
            br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
        );
    }

    #[test]
    fn server_errors_and_errors_without_status_before_output_are_failures() {
        let codec = ResponsesCodec::new();
        for (event, code, scope) in [
            (
                r#"{"type":"error","status":500,"error":{"type":"server_error","code":"server_error","message":"boom"}}"#,
                Some("server_error"),
                ErrorScope::Provider,
            ),
            (
                r#"{"type":"error","status":503,"error":{"message":"boom"}}"#,
                None,
                ErrorScope::Provider,
            ),
            (
                r#"{"type":"error","error":{"code":"server_error","message":"boom"}}"#,
                Some("server_error"),
                ErrorScope::Provider,
            ),
            // The flat shape.
            (
                r#"{"type":"error","code":"server_error","message":"boom"}"#,
                Some("server_error"),
                ErrorScope::Provider,
            ),
            (
                r#"{"type":"error","code":"rate_limit_exceeded","message":"boom"}"#,
                Some("rate_limit_exceeded"),
                ErrorScope::Request,
            ),
        ] {
            for streaming in [true, false] {
                assert_eq!(
                    codec
                        .decode(Message::text(event), &Exchange::new(streaming))
                        .unwrap(),
                    Decoded::Error {
                        frame: None,
                        code: code.map(str::to_owned),
                        message: "boom".into(),
                        scope,
                    },
                    "{event}"
                );
            }
        }
    }

    #[test]
    fn the_connection_limit_asks_for_another_connection_despite_its_status_400() {
        let event = r#"{"type":"error","status":400,"error":{"type":"invalid_request_error","code":"websocket_connection_limit_reached","message":"Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue."}}"#;
        match decode_error(event, &Exchange::new(true)) {
            Decoded::Error {
                frame: None,
                code,
                scope: ErrorScope::Connection,
                ..
            } => assert_eq!(code.as_deref(), Some("websocket_connection_limit_reached")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_after_output_ends_the_stream_with_the_http_streams_error_event() {
        let event = r#"{"type":"error","status":500,"sequence_number":5,"error":{"type":"server_error","code":"server_error","message":"lost","param":null,"headers":{"x-internal":"1"}},"headers":{"retry-after":"1"}}"#;
        assert_eq!(
            decode_error(event, &after(true, 5)),
            Decoded::Error {
                frame: Some(Bytes::from_static(
                    b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"lost\",\"param\":null,\"sequence_number\":5}\n\n"
                )),
                code: Some("server_error".into()),
                message: "lost".into(),
                scope: ErrorScope::Provider,
            }
        );
        // Without a sequence number, the next one of the stream; a client error after output is
        // no answer any more either.
        let event = r#"{"type":"error","status":400,"error":{"code":"invalid_value","message":"late","param":"x"}}"#;
        match decode_error(event, &after(true, 3)) {
            Decoded::Error {
                frame: Some(frame),
                scope: ErrorScope::Provider,
                ..
            } => assert_eq!(
                &frame[..],
                b"event: error\ndata: {\"type\":\"error\",\"code\":\"invalid_value\",\"message\":\"late\",\"param\":\"x\",\"sequence_number\":3}\n\n"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_after_a_non_streaming_answers_first_event_is_the_http_endpoints_answer() {
        let event = r#"{"type":"error","status":502,"error":{"type":"server_error","code":"server_error","message":"lost"}}"#;
        assert_eq!(
            decode_error(event, &after(false, 2)),
            Decoded::Reject {
                status: StatusCode::BAD_GATEWAY,
                headers: json_headers(),
                body: Bytes::from_static(
                    br#"{"error":{"message":"lost","type":"server_error","param":null,"code":"server_error"}}"#
                ),
            }
        );
        let event = r#"{"type":"error","error":{"message":"lost"}}"#;
        match decode_error(event, &after(false, 2)) {
            Decoded::Reject { status, body, .. } => {
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
                assert_eq!(
                    &body[..],
                    br#"{"error":{"message":"lost","type":null,"param":null,"code":null}}"#
                );
            }
            other => panic!("{other:?}"),
        }
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

    #[test]
    fn numeric_codes_and_params_of_an_error_are_read_as_text() {
        let event = r#"{"type":"error","status":400,"error":{"type":"invalid_request_error","code":1234,"message":"m","param":5}}"#;
        match decode_error(event, &after(true, 0)) {
            Decoded::Reject { status, body, .. } => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert_eq!(
                    &body[..],
                    br#"{"error":{"message":"m","type":"invalid_request_error","param":"5","code":"1234"}}"#
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_saying_what_was_expected() {
        for body in ["[1, 2]", "\"text\"", "7"] {
            let error = encode(body).unwrap_err().to_string();
            assert!(error.contains("expected a JSON object"), "{body}: {error}");
        }
    }

    #[test]
    fn a_request_continues_the_response_its_body_names() {
        let codec = ResponsesCodec::new();
        let body =
            Bytes::from_static(br#"{"model":"m","previous_response_id":"resp_1","input":"hi"}"#);
        assert_eq!(codec.continues(&parts(), &body).as_deref(), Some("resp_1"));
        let body = Bytes::from_static(br#"{"model":"m","input":"hi"}"#);
        assert_eq!(codec.continues(&parts(), &body), None);
    }

    #[test]
    fn a_response_event_names_the_response_it_belongs_to() {
        let codec = ResponsesCodec::new();
        let event = Message::text(
            r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress"}}"#,
        );
        assert_eq!(codec.response_id(&event).as_deref(), Some("resp_1"));
        let delta = Message::text(r#"{"type":"response.output_text.delta","delta":"hi"}"#);
        assert_eq!(codec.response_id(&delta), None);
    }
}
