//! The WebSocket mode's messages and the HTTP shapes of the stack, both ways: a client's
//! `response.create` message becomes the body of a streaming `POST`, the answer's server-sent
//! events become one text message each, and an answer that is an error (a status and the HTTP
//! endpoint's error body, or the HTTP stream's `error` event) becomes the WebSocket mode's
//! `error` event with its `status`.
//!
//! The shapes are OpenAI's: the HTTP error body `{"error":{"message","type","param","code"}}`,
//! the HTTP stream's error event `{"type":"error","code","message","param","sequence_number"}`,
//! and the WebSocket mode's `{"type":"error","status":N,"error":{"type","code","message",
//! "param"},"headers":{...}}` (the Python SDK's `ResponseWsError`,
//! `src/openai/types/responses/responses_server_event.py`).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use wsfirst_websocket::responses::{fields_in_order, is_answer_header, lanes};

use super::held::Held;

/// What a client's text message asks for.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A `response.create`.
    Create(Create),
    /// A `response.steer` (the message, parsed).
    Steer(Value),
    /// A `response.processed`: an acknowledgement that needs no answer.
    Processed,
    /// Anything else: the error event that answers it.
    Refused(String),
}

/// A lane of a client connection: its `stream_id`, `None` for the default lane.
pub(crate) type Lane = Option<String>;

/// A `response.create` message, read.
#[derive(Debug)]
pub(crate) struct Create {
    /// The body of the equivalent streaming `POST` (without `type`, `stream_id` and `stream`).
    pub(crate) body: Bytes,
    /// Its lane.
    pub(crate) lane: Lane,
    /// Whether it says `"generate": false` (a warm-up: state prepared, no output).
    pub(crate) warm_up: bool,
    /// The bytes it holds while it waits (see [`Inbox`](super::inbox::Inbox)).
    pub(crate) held: Held,
}

/// Reads a client's text message: a `{"type":"response.create",...}` becomes the `POST` body
/// with the same fields in the same order, without `type` and `stream_id` and with
/// `"stream":true` (the WebSocket mode always streams; a `stream` field of the message is
/// replaced); its `stream_id` (1 to 256 of `[A-Za-z0-9_.-]`, the `openai` SDK's rule in
/// `openai/lib/responses_websocket/_session.py`) is its lane. A `response.steer` and a
/// `response.processed` are read as such. A message that is not JSON, has another type, or a
/// `stream_id` of another shape is refused with a 400 error event.
pub(crate) fn read_message(text: &str) -> Incoming {
    let fields = match fields_in_order(text) {
        Ok(fields) => fields,
        Err(error) => {
            return Incoming::Refused(client_error(
                "invalid_json",
                &format!("the message is not a JSON object: {error}"),
                None,
            ));
        }
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    };
    let kind = field("type").and_then(|value| serde_json::from_str::<String>(value.get()).ok());
    match kind.as_deref() {
        Some("response.create") => {}
        Some("response.steer") => {
            return match serde_json::from_str(text) {
                Ok(steer) => Incoming::Steer(steer),
                Err(_) => Incoming::Refused(client_error("invalid_json", "unreadable", None)),
            };
        }
        Some("response.processed") => return Incoming::Processed,
        Some(other) => {
            return Incoming::Refused(client_error(
                "unsupported_event_type",
                // Named up to 64 characters: the answer must not grow with the client's input.
                &format!(
                    "this gateway serves response.create, response.steer and response.processed \
                     messages, not {:?}{}",
                    other.chars().take(64).collect::<String>(),
                    if other.chars().nth(64).is_some() {
                        "..."
                    } else {
                        ""
                    }
                ),
                Some("type"),
            ));
        }
        None => {
            return Incoming::Refused(client_error(
                "missing_required_parameter",
                "the message has no \"type\"",
                Some("type"),
            ));
        }
    }
    let lane = match field("stream_id").map(|value| serde_json::from_str::<Value>(value.get())) {
        None | Some(Ok(Value::Null)) => None,
        Some(Ok(Value::String(lane))) if lanes::is_stream_id(&lane) => Some(lane),
        Some(_) => {
            return Incoming::Refused(client_error(
                "invalid_value",
                "stream_id must be 1 to 256 ASCII letters, digits, underscores, hyphens or periods",
                Some("stream_id"),
            ));
        }
    };
    let warm_up = field("generate").is_some_and(|value| value.get() == "false");
    let mut body = String::with_capacity(text.len() + 16);
    body.push('{');
    for (key, value) in fields
        .iter()
        .filter(|(key, _)| key != "type" && key != "stream" && key != "stream_id")
    {
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(&Value::String(key.clone()).to_string());
        body.push(':');
        body.push_str(value.get());
    }
    if body.len() > 1 {
        body.push(',');
    }
    body.push_str(r#""stream":true}"#);
    Incoming::Create(Create {
        body: Bytes::from(body),
        lane,
        warm_up,
        held: Held::default(),
    })
}

/// `event` (a JSON object's text) with `"stream_id":<lane>` added at its end: every event and
/// error of a lane carries it (the SDK's `ResponsesServerEvent`s: "present when the
/// originating `response.create` event supplied a `stream_id`"). Unchanged on the default
/// lane, or when it is not an object or already carries a `stream_id`.
pub(crate) fn with_lane(event: String, lane: &Lane) -> String {
    lanes::with_stream_id(event, lane.as_deref())
}

/// The `response.steer.failed` event for `steer`, with the `openai` SDK's error `code` and the
/// input returned as it came ([`lanes::steer_failed`]).
pub(crate) fn steer_failed(steer: &Value, code: &str, message: &str, lane: &Lane) -> String {
    lanes::steer_failed(steer, code, message, lane.as_deref())
}

/// A 400 error event of the gateway's own, about the client's message.
pub(crate) fn client_error(code: &str, message: &str, param: Option<&str>) -> String {
    error_event(
        Some(StatusCode::BAD_REQUEST),
        &json!({"type": "invalid_request_error", "code": code, "message": message, "param": param}),
        None,
        None,
    )
}

/// The WebSocket mode's error event: `type`, `status` (when known), the `error` object (its
/// `type`, `code`, `message` and `param` first, in that order, then any other field it has,
/// then `headers`), `sequence_number` (after output) and `headers` (when any: `headers`, else
/// those of the `error` object) again at the top level.
pub(crate) fn error_event(
    status: Option<StatusCode>,
    error: &Value,
    sequence_number: Option<u64>,
    headers: Option<&Map<String, Value>>,
) -> String {
    let mut text = String::from(r#"{"type":"error""#);
    if let Some(status) = status {
        text.push_str(&format!(r#","status":{}"#, status.as_u16()));
    }
    text.push_str(r#","error":{"#);
    let empty = Map::new();
    let object = error.as_object().unwrap_or(&empty);
    let first = ["type", "code", "message", "param"];
    let mut written = 0;
    for name in first {
        let value = object.get(name).unwrap_or(&Value::Null);
        push_field(&mut text, &mut written, name, value);
    }
    for (name, value) in object
        .iter()
        .filter(|(name, _)| !first.contains(&name.as_str()) && name.as_str() != "headers")
    {
        push_field(&mut text, &mut written, name, value);
    }
    // The headers go inside `error` (where the SDK's `ResponseWsErrorError.headers` reads
    // them) and at the top level (where Codex reads them).
    let headers = headers.filter(|headers| !headers.is_empty()).or_else(|| {
        object
            .get("headers")
            .and_then(Value::as_object)
            .filter(|headers| !headers.is_empty())
    });
    if let Some(headers) = headers {
        push_field(
            &mut text,
            &mut written,
            "headers",
            &Value::Object(headers.clone()),
        );
    }
    text.push('}');
    if let Some(sequence_number) = sequence_number {
        text.push_str(&format!(r#","sequence_number":{sequence_number}"#));
    }
    if let Some(headers) = headers {
        text.push_str(r#","headers":"#);
        text.push_str(&Value::Object(headers.clone()).to_string());
    }
    text.push('}');
    text
}

fn push_field(text: &mut String, written: &mut usize, name: &str, value: &Value) {
    if *written > 0 {
        text.push(',');
    }
    text.push_str(&Value::String(name.to_owned()).to_string());
    text.push(':');
    text.push_str(&value.to_string());
    *written += 1;
}

/// The error event for an answer that is not a stream of events: its `status`, the `error`
/// object of its body (`{"error":{...}}`; a body of another shape becomes the message), and the
/// answer headers a rate limit carries (`retry-after`, `x-ratelimit-*`, ...).
pub(crate) fn error_from_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> String {
    let error = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut object)) => match object.remove("error") {
            Some(error @ Value::Object(_)) => error,
            _ => json!({"message": Value::Object(object).to_string()}),
        },
        _ => json!({
            "type": "server_error",
            "message": String::from_utf8_lossy(body).trim(),
        }),
    };
    let answer_headers: Map<String, Value> = headers
        .iter()
        .filter(|(name, _)| is_answer_header(name))
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    error_event(Some(status), &error, None, Some(&answer_headers))
}

/// An event of the answer as the client gets it: the event's JSON text unchanged, except an
/// `error` event in the HTTP stream's flat shape (`{"type":"error","code","message","param",
/// "sequence_number"}`, which carries no status), which becomes the WebSocket mode's shape
/// with status 500 and type `server_error` where the event has none.
pub(crate) fn event_message(data: String) -> String {
    if !data.contains(r#""error""#) {
        return data;
    }
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(&data) else {
        return data;
    };
    if event.get("type").and_then(Value::as_str) != Some("error") {
        return data;
    }
    if event.get("error").is_some_and(Value::is_object) && event.contains_key("status") {
        return data;
    }
    let mut error = match event.get("error") {
        Some(Value::Object(error)) => error.clone(),
        _ => Map::new(),
    };
    for name in ["code", "message", "param"] {
        if let Some(value) = event.get(name) {
            error.entry(name).or_insert_with(|| value.clone());
        }
    }
    error
        .entry("type")
        .or_insert_with(|| Value::String("server_error".into()));
    let status = event
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|status| u16::try_from(status).ok())
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let sequence_number = event.get("sequence_number").and_then(Value::as_u64);
    error_event(Some(status), &Value::Object(error), sequence_number, None)
}

/// Splits a server-sent event stream into the `data` of each event (its `data:` lines joined
/// with `\n`); `event:`, `id:`, `retry:` and comment lines are ignored, as are events without
/// data.
#[derive(Debug, Default)]
pub(crate) struct SseEvents {
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no line end (a long line comes in many chunks).
    searched: usize,
    data: Option<String>,
}

impl SseEvents {
    /// Adds a chunk of the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event's data, if the stream so far holds one.
    pub(crate) fn next_event(&mut self) -> Option<String> {
        loop {
            let Some(end) = self.buffer[self.searched..]
                .iter()
                .position(|byte| *byte == b'\n')
            else {
                self.searched = self.buffer.len();
                return None;
            };
            let line = self.buffer.split_to(self.searched + end + 1);
            self.searched = 0;
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    return Some(data);
                }
                continue;
            }
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                let value = String::from_utf8_lossy(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                }
            }
        }
    }

    /// The data of an event the stream ended without its blank line.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if !self.buffer.is_empty() {
            self.buffer.extend_from_slice(b"\n\n");
            return self.next_event();
        }
        self.data.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(text: &str) -> String {
        match read_message(text) {
            Incoming::Create(create) => String::from_utf8(create.body.to_vec()).unwrap(),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str) -> Value {
        match read_message(text) {
            Incoming::Refused(error) => serde_json::from_str(&error).unwrap(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn a_create_message_becomes_the_streaming_post_body_in_order() {
        assert_eq!(
            create(
                r#"{"type":"response.create","model":"m","input":[{"a":"b\"c"}],"store":false}"#
            ),
            r#"{"model":"m","input":[{"a":"b\"c"}],"store":false,"stream":true}"#
        );
        assert_eq!(
            create(r#"{"model":"m","stream":false,"type":"response.create"}"#),
            r#"{"model":"m","stream":true}"#
        );
        assert_eq!(
            create(r#"{"type":"response.create"}"#),
            r#"{"stream":true}"#
        );
        assert_eq!(
            create(r#"{"type":"response.create","stream_id":null}"#),
            r#"{"stream":true}"#
        );
    }

    #[test]
    fn a_create_message_has_its_lane_and_warm_up() {
        let Incoming::Create(create) = read_message(
            r#"{"type":"response.create","stream_id":"main.2_x-y","generate":false,"input":"x"}"#,
        ) else {
            panic!("not a create");
        };
        assert_eq!(create.lane.as_deref(), Some("main.2_x-y"));
        assert!(create.warm_up);
        assert_eq!(
            &create.body[..],
            br#"{"generate":false,"input":"x","stream":true}"#
        );
        assert!(matches!(
            read_message(r#"{"type":"response.processed","response_id":"r"}"#),
            Incoming::Processed
        ));
        assert!(matches!(
            read_message(r#"{"type":"response.steer","previous_response_id":"r","input":"x"}"#),
            Incoming::Steer(_)
        ));
    }

    #[test]
    fn events_get_their_lane() {
        let lane = Some("a".to_owned());
        assert_eq!(
            with_lane(r#"{"type":"x"}"#.to_owned(), &lane),
            r#"{"type":"x","stream_id":"a"}"#
        );
        assert_eq!(
            with_lane(r#"{"type":"x"}"#.to_owned(), &None),
            r#"{"type":"x"}"#
        );
        let echoed = r#"{"type":"x","stream_id":"a"}"#;
        assert_eq!(with_lane(echoed.to_owned(), &lane), echoed);
        let failed: Value = serde_json::from_str(&steer_failed(
            &json!({"previous_response_id": "r", "input": [1]}),
            "response_not_found",
            "m",
            &lane,
        ))
        .unwrap();
        assert_eq!(
            failed["steer"],
            json!({"input": [1], "previous_response_id": "r"})
        );
        assert_eq!(failed["stream_id"], "a");
    }

    #[test]
    fn other_messages_are_refused_with_a_400_error_event() {
        for (text, code, param) in [
            ("not json", "invalid_json", Value::Null),
            ("[1]", "invalid_json", Value::Null),
            (
                r#"{"model":"m"}"#,
                "missing_required_parameter",
                json!("type"),
            ),
            (
                r#"{"type":"session.update"}"#,
                "unsupported_event_type",
                json!("type"),
            ),
            (
                r#"{"type":"response.create","stream_id":"lane 1"}"#,
                "invalid_value",
                json!("stream_id"),
            ),
            (
                r#"{"type":"response.create","stream_id":7}"#,
                "invalid_value",
                json!("stream_id"),
            ),
        ] {
            let event = refused(text);
            assert_eq!(event["type"], "error", "{text}");
            assert_eq!(event["status"], 400, "{text}");
            assert_eq!(event["error"]["type"], "invalid_request_error", "{text}");
            assert_eq!(event["error"]["code"], code, "{text}");
            assert_eq!(event["error"]["param"], param, "{text}");
        }
    }

    #[test]
    fn an_error_answer_becomes_the_websocket_modes_error_event() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        headers.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        headers.insert("set-cookie", "a=b".parse().unwrap());
        let body = br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            error_from_answer(StatusCode::TOO_MANY_REQUESTS, &headers, body),
            r#"{"type":"error","status":429,"error":{"type":"requests","code":"rate_limit_exceeded","message":"slow down","param":null,"headers":{"retry-after":"7","x-ratelimit-remaining-requests":"0"}},"headers":{"retry-after":"7","x-ratelimit-remaining-requests":"0"}}"#
        );
        let event: Value = serde_json::from_str(&error_from_answer(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"plain text",
        ))
        .unwrap();
        assert_eq!(event["status"], 502);
        assert_eq!(event["error"]["message"], "plain text");
        assert!(event.get("headers").is_none());
    }

    #[test]
    fn events_pass_unchanged_and_the_http_streams_error_event_gets_the_websocket_shape() {
        let delta = r#"{"type":"response.output_text.delta","delta":"error"}"#;
        assert_eq!(event_message(delta.to_owned()), delta);
        let ws = r#"{"type":"error","status":400,"error":{"type":"invalid_request_error","code":"x","message":"m","param":null}}"#;
        assert_eq!(event_message(ws.to_owned()), ws);
        assert_eq!(
            event_message(
                r#"{"type":"error","code":"server_error","message":"lost","param":null,"sequence_number":5}"#
                    .to_owned()
            ),
            r#"{"type":"error","status":500,"error":{"type":"server_error","code":"server_error","message":"lost","param":null},"sequence_number":5}"#
        );
    }

    #[test]
    fn sse_is_split_into_the_data_of_each_event() {
        let mut events = SseEvents::default();
        events.push(b"event: a\ndata: {\"x\":1}\n\n: comment\nevent: b\r\ndata: {\r\n");
        assert_eq!(events.next_event().as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(events.next_event(), None);
        events.push(b"data:\"y\":2}\r\n\r\nevent: c\n\ndata: last");
        assert_eq!(events.next_event().as_deref(), Some("{\n\"y\":2}"));
        assert_eq!(events.next_event(), None);
        assert_eq!(events.finish().as_deref(), Some("last"));
        assert_eq!(events.finish(), None);
    }

    #[test]
    fn a_long_event_in_many_chunks_is_read_once_whole() {
        let mut events = SseEvents::default();
        events.push(b"event: big\ndata: ");
        for _ in 0..1000 {
            events.push(b"abcd");
            assert_eq!(events.next_event(), None);
        }
        events.push(b"\n\n");
        assert_eq!(events.next_event(), Some("abcd".repeat(1000)));
    }
}
