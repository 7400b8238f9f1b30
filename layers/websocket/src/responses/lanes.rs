//! Lanes of the Responses API's WebSocket mode (`stream_id`): which names are lanes, and the
//! lane put on an event.
//!
//! OpenAI's WebSocket-mode guide (<https://developers.openai.com/api/docs/guides/websocket-mode>):
//! requests with the same `stream_id` are processed FIFO, and the events of a response echo
//! it. The `openai` Python SDK accepts 1 to 256 ASCII letters, digits, `_`, `.` or `-`
//! (`openai/lib/responses_websocket/_session.py`, `_Router.register`), and its server events
//! carry `stream_id` "when the originating `response.create` event supplied" one.
//!
//! # Example
//!
//! ```
//! use wsfirst_websocket::responses::lanes;
//!
//! assert!(lanes::is_stream_id("main.2_x-y"));
//! assert!(!lanes::is_stream_id("has space") && !lanes::is_stream_id(""));
//! let event = r#"{"type":"response.created"}"#.to_owned();
//! assert_eq!(
//!     lanes::with_stream_id(event, Some("main")),
//!     r#"{"type":"response.created","stream_id":"main"}"#
//! );
//! ```

use serde_json::{Value, json};

/// The `response.steer.failed` event for the `response.steer` message `steer`, failed before
/// a steering id was allocated: the error (`code` one of the SDK's `ResponseSteerErrorCode`s,
/// such as `response_not_found`), and the input returned as it came
/// (`openai/types/responses/response_steer_failed_event.py`), on `lane`.
pub fn steer_failed(steer: &Value, code: &str, message: &str, lane: Option<&str>) -> String {
    let field = |name: &str| steer.get(name).cloned().unwrap_or(Value::Null);
    let event = json!({
        "type": "response.steer.failed",
        "sequence_number": 0,
        "error": {"type": "invalid_request_error", "code": code, "message": message},
        "steer": {
            "input": field("input"),
            "previous_response_id": field("previous_response_id"),
        },
    });
    with_stream_id(event.to_string(), lane)
}

/// Whether `name` is a lane name as the `openai` SDK accepts it: 1 to 256 ASCII letters,
/// digits, `_`, `.` or `-`.
pub fn is_stream_id(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// `event` (an event's JSON object text) with `"stream_id":<lane>` added at its end; unchanged
/// without a lane (the default lane), or when it is not a JSON object or already has a
/// `stream_id` field.
pub fn with_stream_id(event: String, lane: Option<&str>) -> String {
    let Some(lane) = lane else {
        return event;
    };
    let trimmed = event.trim_end();
    let Some(body) = trimmed.strip_suffix('}') else {
        return event;
    };
    if !body.trim_start().starts_with('{') || event.contains(r#""stream_id":"#) {
        return event;
    }
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let lane = Value::String(lane.to_owned());
    format!(r#"{body}{separator}"stream_id":{lane}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_is_added_to_objects_only() {
        let with = |event: &str| with_stream_id(event.to_owned(), Some("a\"b"));
        assert_eq!(with(r#"{"x":1}"#), r#"{"x":1,"stream_id":"a\"b"}"#);
        assert_eq!(with("{ }"), r#"{ "stream_id":"a\"b"}"#);
        assert_eq!(with("[1]"), "[1]");
        assert_eq!(with(r#"{"stream_id":"z"}"#), r#"{"stream_id":"z"}"#);
        assert_eq!(with_stream_id("{}".to_owned(), None), "{}");
    }

    #[test]
    fn lane_names_follow_the_sdk() {
        assert!(is_stream_id(&"x".repeat(256)));
        assert!(!is_stream_id(&"x".repeat(257)));
        assert!(!is_stream_id("é"));
    }
}
