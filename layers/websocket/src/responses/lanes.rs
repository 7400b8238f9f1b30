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
    let lane = serde_json::Value::String(lane.to_owned());
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
