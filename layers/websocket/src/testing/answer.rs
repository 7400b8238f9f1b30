//! The scripted answer: a sequence of Responses API events, each serialised once.

use std::{fmt, sync::Arc};

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};

/// The event types that end a Responses API answer and carry the final `response` object.
const TERMINAL_TYPES: [&str; 3] = [
    "response.completed",
    "response.failed",
    "response.incomplete",
];

/// An answer the [`TestUpstream`](super::TestUpstream) serves: a sequence of Responses API events.
///
/// Each event is serialised to JSON text **once**, when the answer is built. The WebSocket side
/// sends that text as one text message per event; the HTTP side sends, for a streaming request,
/// `event: <type>\ndata: <the same text>\n\n` per event, and for a non-streaming request the raw
/// text of the terminal event's `response` field with `content-type: application/json`. So both
/// transports carry byte-identical JSON, which is what the codec must reproduce.
///
/// Cloning is cheap (the events are shared).
///
/// ```
/// use wsfirst_websocket::testing::Answer;
///
/// let answer = Answer::text("hello world");
/// assert_eq!(answer.event_type(0), Some("response.created"));
/// assert_eq!(answer.event_type(answer.len() - 1), Some("response.completed"));
/// assert!(answer.sse().starts_with("event: response.created\ndata: {"));
/// let json: serde_json::Value = serde_json::from_str(answer.final_json().unwrap()).unwrap();
/// assert_eq!(json["output"][0]["content"][0]["text"], "hello world");
/// ```
#[derive(Clone)]
pub struct Answer(Arc<AnswerInner>);

struct AnswerInner {
    /// The JSON text of each event.
    messages: Vec<String>,
    /// The `"type"` of each event (empty when the event has none).
    types: Vec<String>,
    /// The byte range of the raw `response` field of the terminal event, as (event index, start, end).
    final_response: Option<(usize, usize, usize)>,
}

impl Answer {
    /// The id of the response in answers built by [`Answer::text`].
    pub const RESPONSE_ID: &'static str = "resp_kit_0001";
    /// The id of the output message in answers built by [`Answer::text`].
    pub const MESSAGE_ID: &'static str = "msg_kit_0001";
    /// The model name in answers built by [`Answer::text`].
    pub const MODEL: &'static str = "gpt-kit";

    /// A realistic Responses API answer whose output is `text`.
    ///
    /// The events, in order: `response.created`, `response.in_progress`,
    /// `response.output_item.added`, `response.content_part.added`, three
    /// `response.output_text.delta` events (fewer when the text is shorter than three
    /// characters, one with an empty delta when it is empty), `response.output_text.done`,
    /// `response.content_part.done`, `response.output_item.done` and `response.completed` with
    /// the full `response` object (id, object, status, model, output with the text, usage).
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        let chunks = split_chars(&text, 3);
        Self::from_chunks(&text, &chunks)
    }

    /// A large answer of about `bytes` bytes of output text (ASCII, deterministic), streamed in
    /// deltas of 16 KiB. `Answer::large_text(1 << 20)` is the 1 MiB answer of the tests; note
    /// that its `response.completed` event carries the whole text again.
    pub fn large_text(bytes: usize) -> Self {
        const LINE: &str = "The quick brown fox jumps over the lazy dog; 0123456789.\n";
        let mut text = String::with_capacity(bytes + LINE.len());
        while text.len() < bytes {
            text.push_str(LINE);
        }
        text.truncate(bytes);
        let chunks: Vec<&str> = text
            .as_bytes()
            .chunks(16 * 1024)
            .map(|chunk| std::str::from_utf8(chunk).expect("the text is ASCII"))
            .collect();
        Self::from_chunks(&text, &chunks)
    }

    /// An answer made of these events, in order, each serialised once with `serde_json`.
    ///
    /// The terminal event for non-streaming HTTP requests is the last event whose `"type"` is
    /// `response.completed`, `response.failed` or `response.incomplete` and that has a
    /// `response` field.
    pub fn events(events: Vec<Value>) -> Self {
        Self::from_messages(events.iter().map(Value::to_string).collect())
    }

    /// An answer made of these exact JSON texts (one per event), for byte-level tests.
    ///
    /// Texts that are not JSON objects are sent as they are; they have no event type.
    pub fn raw_events<I, S>(texts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_messages(texts.into_iter().map(Into::into).collect())
    }

    /// An answer that is one `error` event, the way the Responses API's WebSocket mode rejects
    /// or fails a request:
    /// `{"type":"error","status":<status>,"error":{"type":<type>,"code":<code>,"message":<message>,"param":null}}`.
    ///
    /// The error's type follows the status: `requests` for 429, `server_error` for 5xx,
    /// `invalid_request_error` for the rest. Served over the WebSocket, the event is the whole
    /// answer; [`error_status`](Self::error_status) and
    /// [`http_error_body`](Self::http_error_body) give what the HTTP endpoint answers instead.
    ///
    /// ```
    /// use http::StatusCode;
    /// use wsfirst_websocket::testing::Answer;
    ///
    /// let answer = Answer::error(StatusCode::BAD_REQUEST, "invalid_value", "Invalid value: 'x'.");
    /// let event: serde_json::Value = serde_json::from_str(&answer.messages()[0]).unwrap();
    /// assert_eq!(event["type"], "error");
    /// assert_eq!(event["status"], 400);
    /// assert_eq!(event["error"]["code"], "invalid_value");
    /// assert_eq!(answer.error_status(), Some(StatusCode::BAD_REQUEST));
    /// let body: serde_json::Value = serde_json::from_str(&answer.http_error_body().unwrap()).unwrap();
    /// assert_eq!(body["error"]["type"], "invalid_request_error");
    /// ```
    pub fn error(status: StatusCode, code: &str, message: &str) -> Self {
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            "requests"
        } else if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        Self::error_event(
            Some(status),
            json!({"type": kind, "code": code, "message": message, "param": null}),
            &[],
        )
    }

    /// An answer that is one `error` event built from its parts: the `status` (left out when
    /// `None`, as older upstreams do), the `error` object, and the `headers` (left out when
    /// empty), which the real API sends with a rate limit: inside `error` (where the `openai`
    /// SDK's `ResponseWsErrorError.headers` reads them) and at the top level (where Codex reads
    /// them).
    pub fn error_event(status: Option<StatusCode>, error: Value, headers: &[(&str, &str)]) -> Self {
        let mut event = Map::new();
        event.insert("type".into(), json!("error"));
        if let Some(status) = status {
            event.insert("status".into(), json!(status.as_u16()));
        }
        let mut error = error;
        if !headers.is_empty() {
            let headers: Map<String, Value> = headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), json!(value)))
                .collect();
            if let Value::Object(error) = &mut error {
                error.insert("headers".into(), Value::Object(headers.clone()));
            }
            event.insert("error".into(), error);
            event.insert("headers".into(), Value::Object(headers));
        } else {
            event.insert("error".into(), error);
        }
        Self::events(vec![Value::Object(event)])
    }

    /// A rate limit as the real API sends it: status 429, code `rate_limit_exceeded`, and the
    /// headers `retry-after` (`retry_after` seconds), `x-ratelimit-limit-requests`,
    /// `x-ratelimit-remaining-requests` (`0`) and `x-ratelimit-reset-requests`.
    pub fn rate_limited(retry_after: u64) -> Self {
        let retry = retry_after.to_string();
        let reset = format!("{retry_after}s");
        Self::error_event(
            Some(StatusCode::TOO_MANY_REQUESTS),
            json!({
                "type": "requests",
                "code": "rate_limit_exceeded",
                "message": "Rate limit reached for requests. Please try again later.",
                "param": null,
            }),
            &[
                ("retry-after", &retry),
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", &reset),
            ],
        )
    }

    /// The error of a `previous_response_id` the connection does not know (with `store: false`
    /// a response lives only in the memory of the connection that produced it): status 400,
    /// code `previous_response_not_found`, param `previous_response_id`.
    pub fn previous_response_not_found(id: &str) -> Self {
        Self::error_event(
            Some(StatusCode::BAD_REQUEST),
            json!({
                "type": "invalid_request_error",
                "code": "previous_response_not_found",
                "message": format!("Previous response with id '{id}' not found."),
                "param": "previous_response_id",
            }),
            &[],
        )
    }

    /// The error of a connection over its 60 minutes, as the real API sends it (status 400,
    /// type `invalid_request_error`, code `websocket_connection_limit_reached`).
    pub fn connection_limit_reached() -> Self {
        Self::error_event(
            Some(StatusCode::BAD_REQUEST),
            json!({
                "type": "invalid_request_error",
                "code": "websocket_connection_limit_reached",
                "message": "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue.",
                "param": null,
            }),
            &[],
        )
    }

    /// The first `events` events of this answer, then the events of `error` (an error after
    /// output has started); an error event without a `sequence_number` gets `events`, the next
    /// number of the stream.
    ///
    /// ```
    /// use http::StatusCode;
    /// use wsfirst_websocket::testing::Answer;
    ///
    /// let failed = Answer::text("hello world")
    ///     .interrupted(3, &Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "boom"));
    /// assert_eq!(failed.len(), 4);
    /// assert_eq!(failed.event_type(3), Some("error"));
    /// assert!(failed.messages()[3].contains(r#""sequence_number":3"#));
    /// ```
    pub fn interrupted(&self, events: usize, error: &Answer) -> Self {
        let mut messages: Vec<String> = self.0.messages.iter().take(events).cloned().collect();
        for message in error.messages() {
            let message = match serde_json::from_str::<Value>(message) {
                Ok(Value::Object(mut event)) => {
                    event
                        .entry("sequence_number")
                        .or_insert_with(|| json!(messages.len()));
                    Value::Object(event).to_string()
                }
                _ => message.clone(),
            };
            messages.push(message);
        }
        Self::from_messages(messages)
    }

    /// The status of an answer whose first event is an `error` event with one: the status the
    /// HTTP endpoint answers such a request with.
    pub fn error_status(&self) -> Option<StatusCode> {
        let event = self.first_error()?;
        let status = u16::try_from(event.get("status")?.as_u64()?).ok()?;
        StatusCode::from_u16(status).ok()
    }

    /// The body the HTTP endpoint answers with when this answer's first event is an `error`
    /// event: `{"error":{"message","type","param","code"}}` from the event's `error` object
    /// (its `headers` left out).
    pub fn http_error_body(&self) -> Option<String> {
        let event = self.first_error()?;
        let error = event.get("error")?.as_object()?;
        let field = |name: &str| error.get(name).cloned().unwrap_or(Value::Null);
        Some(
            json!({"error": {
                "message": field("message"),
                "type": field("type"),
                "param": field("param"),
                "code": field("code"),
            }})
            .to_string(),
        )
    }

    fn first_error(&self) -> Option<Map<String, Value>> {
        if self.event_type(0)? != "error" {
            return None;
        }
        match serde_json::from_str(&self.0.messages[0]).ok()? {
            Value::Object(event) => Some(event),
            _ => None,
        }
    }

    fn from_chunks(text: &str, chunks: &[&str]) -> Self {
        let id = Self::RESPONSE_ID;
        let item_id = Self::MESSAGE_ID;
        let created_at = 1_700_000_000_u64;
        let base = |status: &str, output: Value, usage: Value| {
            json!({
                "id": id,
                "object": "response",
                "created_at": created_at,
                "status": status,
                "model": Self::MODEL,
                "output": output,
                "usage": usage,
            })
        };
        let in_progress = base("in_progress", json!([]), Value::Null);
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
        let item = |status: &str, content: Value| {
            json!({
                "id": item_id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": content,
            })
        };
        let mut events = vec![
            json!({"type": "response.created", "response": in_progress}),
            json!({"type": "response.in_progress", "response": in_progress}),
            json!({
                "type": "response.output_item.added",
                "output_index": 0,
                "item": item("in_progress", json!([])),
            }),
            json!({
                "type": "response.content_part.added",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": part(""),
            }),
        ];
        for chunk in chunks {
            events.push(json!({
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": chunk,
            }));
        }
        let output_tokens = text.split_whitespace().count().max(1);
        let done_item = item("completed", json!([part(text)]));
        events.extend([
            json!({
                "type": "response.output_text.done",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
            }),
            json!({
                "type": "response.content_part.done",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": part(text),
            }),
            json!({
                "type": "response.output_item.done",
                "output_index": 0,
                "item": done_item,
            }),
            json!({
                "type": "response.completed",
                "response": base(
                    "completed",
                    json!([done_item]),
                    json!({
                        "input_tokens": 8,
                        "output_tokens": output_tokens,
                        "total_tokens": 8 + output_tokens,
                    }),
                ),
            }),
        ]);
        for (number, event) in events.iter_mut().enumerate() {
            event["sequence_number"] = json!(number);
        }
        Self::events(events)
    }

    fn from_messages(messages: Vec<String>) -> Self {
        #[derive(Deserialize)]
        struct Peek<'a> {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default, borrow)]
            response: Option<&'a RawValue>,
        }
        let mut types = Vec::with_capacity(messages.len());
        let mut final_response = None;
        for (index, message) in messages.iter().enumerate() {
            let peek = serde_json::from_str::<Peek<'_>>(message).ok();
            let kind = peek
                .as_ref()
                .and_then(|peek| peek.kind.clone())
                .unwrap_or_default();
            let raw = peek.and_then(|peek| peek.response);
            if let Some(raw) = raw.filter(|_| TERMINAL_TYPES.contains(&kind.as_str())) {
                // `raw` borrows from `message`: its offset inside it is a pointer difference.
                let start = raw.get().as_ptr() as usize - message.as_ptr() as usize;
                final_response = Some((index, start, start + raw.get().len()));
            }
            types.push(kind);
        }
        Answer(Arc::new(AnswerInner {
            messages,
            types,
            final_response,
        }))
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.0.messages.len()
    }

    /// Whether the answer has no events.
    pub fn is_empty(&self) -> bool {
        self.0.messages.is_empty()
    }

    /// The JSON text of each event, exactly as the WebSocket side sends it.
    pub fn messages(&self) -> &[String] {
        &self.0.messages
    }

    /// The `"type"` of event `index` (`Some("")` when the event has none, `None` past the end).
    pub fn event_type(&self, index: usize) -> Option<&str> {
        self.0.types.get(index).map(String::as_str)
    }

    /// The SSE frame of event `index`: `event: <type>\ndata: <json>\n\n` (without the
    /// `event:` line when the event has no type).
    pub fn sse_frame(&self, index: usize) -> Option<String> {
        let message = self.0.messages.get(index)?;
        let kind = &self.0.types[index];
        Some(if kind.is_empty() {
            format!("data: {message}\n\n")
        } else {
            format!("event: {kind}\ndata: {message}\n\n")
        })
    }

    /// The whole SSE body the HTTP side sends to a streaming request: every frame, in order.
    pub fn sse(&self) -> String {
        (0..self.len()).filter_map(|i| self.sse_frame(i)).collect()
    }

    /// The exact raw JSON text of the terminal event's `response` field, which the HTTP side
    /// sends to a non-streaming request; `None` when the answer has no terminal event.
    pub fn final_json(&self) -> Option<&str> {
        self.0
            .final_response
            .map(|(index, start, end)| &self.0.messages[index][start..end])
    }
}

impl Default for Answer {
    /// `Answer::text("hello world")`.
    fn default() -> Self {
        Answer::text("hello world")
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("types", &self.0.types)
            .field(
                "bytes",
                &self.0.messages.iter().map(String::len).sum::<usize>(),
            )
            .finish()
    }
}

/// Splits `text` into at most `parts` pieces of about equal numbers of characters (one empty
/// piece for an empty text).
fn split_chars(text: &str, parts: usize) -> Vec<&str> {
    let count = text.chars().count();
    if count == 0 {
        return vec![""];
    }
    let per = count.div_ceil(parts);
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(per)
            .map_or(rest.len(), |(index, _)| index);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_answer_has_the_realistic_sequence() {
        let answer = Answer::text("hello world");
        let types: Vec<_> = (0..answer.len())
            .map(|i| answer.event_type(i).unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let deltas: String = answer
            .messages()
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap())
            .filter(|v| v["type"] == "response.output_text.delta")
            .map(|v| v["delta"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(deltas, "hello world");
        let completed: Value = serde_json::from_str(&answer.messages()[10]).unwrap();
        assert_eq!(completed["response"]["status"], "completed");
        assert_eq!(completed["response"]["usage"]["total_tokens"], 10);
        assert_eq!(
            serde_json::from_str::<Value>(answer.final_json().unwrap()).unwrap(),
            completed["response"]
        );
    }

    #[test]
    fn final_json_is_the_raw_text_of_the_terminal_response() {
        let answer = Answer::raw_events([
            r#"{"type":"response.created","response":{"id":"r"}}"#,
            r#"{"type":"response.failed", "response" :  {"id" : "r",  "status":"failed"} }"#,
        ]);
        assert_eq!(
            answer.final_json(),
            Some(r#"{"id" : "r",  "status":"failed"}"#)
        );
        assert_eq!(
            answer.sse_frame(0).unwrap(),
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n"
        );
    }

    #[test]
    fn answers_without_terminal_event_have_no_final_json() {
        let answer = Answer::events(vec![json!({"type": "response.created"}), json!([1])]);
        assert_eq!(answer.final_json(), None);
        assert_eq!(answer.event_type(1), Some(""));
        assert_eq!(answer.sse_frame(1).unwrap(), "data: [1]\n\n");
    }

    #[test]
    fn large_text_has_the_requested_size() {
        let answer = Answer::large_text(1 << 20);
        let json: Value = serde_json::from_str(answer.final_json().unwrap()).unwrap();
        let text = json["output"][0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.len(), 1 << 20);
        assert_eq!(answer.len(), 8 + 64);
    }

    #[test]
    fn split_respects_char_boundaries() {
        assert_eq!(split_chars("héllo", 3), ["hé", "ll", "o"]);
        assert_eq!(split_chars("ab", 3), ["a", "b"]);
        assert_eq!(split_chars("", 3), [""]);
    }

    #[test]
    fn error_answers_are_what_the_real_api_sends() {
        let limited = Answer::rate_limited(7);
        assert_eq!(limited.len(), 1);
        let event: Value = serde_json::from_str(&limited.messages()[0]).unwrap();
        assert_eq!(event["status"], 429);
        assert_eq!(event["error"]["code"], "rate_limit_exceeded");
        assert_eq!(event["headers"]["retry-after"], "7");
        assert_eq!(event["error"]["headers"]["retry-after"], "7");
        assert_eq!(event["headers"]["x-ratelimit-reset-requests"], "7s");
        assert_eq!(limited.error_status(), Some(StatusCode::TOO_MANY_REQUESTS));
        let body: Value = serde_json::from_str(&limited.http_error_body().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"error": {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": null,
                "code": "rate_limit_exceeded",
            }})
        );

        let missing = Answer::previous_response_not_found("resp_1");
        let event: Value = serde_json::from_str(&missing.messages()[0]).unwrap();
        assert_eq!(event["error"]["param"], "previous_response_id");
        assert_eq!(missing.error_status(), Some(StatusCode::BAD_REQUEST));

        let limit = Answer::connection_limit_reached();
        let event: Value = serde_json::from_str(&limit.messages()[0]).unwrap();
        assert_eq!(event["status"], 400);
        assert_eq!(event["error"]["code"], "websocket_connection_limit_reached");

        let bare = Answer::error_event(None, json!({"code": "x", "message": "y"}), &[]);
        let event: Value = serde_json::from_str(&bare.messages()[0]).unwrap();
        assert!(event.get("status").is_none() && event.get("headers").is_none());
        assert_eq!(bare.error_status(), None);
        assert_eq!(Answer::text("hi").error_status(), None);
        assert_eq!(Answer::text("hi").http_error_body(), None);
    }

    #[test]
    fn interrupted_answers_keep_their_first_events_and_number_the_error() {
        let text = Answer::text("hello world");
        let error = Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "boom");
        let failed = text.interrupted(2, &error);
        assert_eq!(&failed.messages()[..2], &text.messages()[..2]);
        let event: Value = serde_json::from_str(&failed.messages()[2]).unwrap();
        assert_eq!(event["sequence_number"], 2);
        assert_eq!(event["error"]["type"], "server_error");
        assert_eq!(failed.final_json(), None);
    }
}
