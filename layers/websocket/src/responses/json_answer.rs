//! The non-streaming answer: of all the events, only the terminal one's `response` is the answer
//! (and an `error` event ends it), so the events before it are passed over without parsing.
//!
//! The Responses API writes each event with its `type` first, as `{"type":"<type>",...`, and a
//! serialiser that sorts keys writes it last, as `...,"type":"<type>"}`: such an event whose
//! type is neither terminal nor `error` (the deltas, which are most of an answer) is recognised
//! by that prefix or suffix alone, which only the event's top-level `type` member can be (a
//! string value of the event holds a quote only escaped). Any other event (the type between
//! other fields, white space around it, an escape or a control character in it) is parsed as a
//! whole, as the streaming answer's events are, so the order of the fields never changes what
//! an event means. What is not parsed is not checked either: a passed-over event that is not
//! valid JSON past its type is passed over all the same (the answer is the terminal event's). The terminal event is parsed once, its `response` borrowed
//! ([`RawValue`](serde_json::value::RawValue)) and copied out verbatim: the answer is
//! byte for byte the JSON the HTTP endpoint returns.
//!
//! The answer is a copy of the `response` text rather than a slice of the message: the
//! message's bytes share the connection's read buffer, and holding a slice of it while the
//! caller reads the answer would make the connection's next read allocate a new buffer.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use wsfirst_websocket::{Codec, Decoded, Exchange, Message, ResponsesCodec};
//!
//! let codec = ResponsesCodec::new();
//! let exchange = Exchange::new(false);
//! let delta = r#"{"type":"response.output_text.delta","delta":"hi","sequence_number":1}"#;
//! assert_eq!(codec.decode(Message::text(delta), &exchange)?, Decoded::Event { frame: None });
//! let done = r#"{"type":"response.completed","response":{ "id": "resp_1" }}"#;
//! assert_eq!(
//!     codec.decode(Message::text(done), &exchange)?,
//!     Decoded::End { frame: Some(Bytes::from_static(br#"{ "id": "resp_1" }"#)) },
//! );
//! # Ok::<(), wsfirst_websocket::CodecError>(())
//! ```

use bytes::Bytes;

use crate::{CodecError, Decoded};

/// The types that end an answer with its `response`.
pub(super) const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.failed",
    "response.incomplete",
];

/// What an event of a non-streaming answer is without parsing it, when its leading type says
/// it is passed over: [`Decoded::Event`] without a frame. `None`: the event must be parsed
/// (its type is not first, or is written in a way only a parser reads, or it is terminal or an
/// `error`).
#[inline]
pub(super) fn pass_over(text: &str) -> Option<Decoded> {
    let kind = leading_type(text)?;
    if kind == "error" || TERMINAL.contains(&kind) {
        return None;
    }
    Some(Decoded::Event { frame: None })
}

/// The type of an event written `{"type":"<type>",...` or `...,"type":"<type>"}` (or
/// `{"type":"<type>"}`) with no escape, quote or control character in the type, else `None`.
#[inline]
fn leading_type(text: &str) -> Option<&str> {
    first_type(text).or_else(|| last_type(text))
}

/// Whether `c` ends a plainly written type: only a quote does, the others make it unreadable
/// without a parser.
#[inline]
fn stops_type(c: char) -> bool {
    c == '"' || c == '\\' || c.is_ascii_control()
}

/// `{"type":"<type>"...`: the object's first member.
#[inline]
fn first_type(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let end = rest.find(stops_type)?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// `...,"type":"<type>"}`: the object's last member. The quote before `}` ends the object's
/// last value; the first quote before it (with no backslash between) opens that value, and the
/// key before it is the top-level `"type"` when a `,` comes before it (a quote within a string
/// is escaped, so no string holds `,"type":"`).
#[inline]
fn last_type(text: &str) -> Option<&str> {
    let rest = text.strip_suffix(r#""}"#)?;
    let start = rest.rfind(stops_type)?;
    if rest.as_bytes()[start] != b'"' {
        return None;
    }
    rest[..start]
        .ends_with(r#","type":"#)
        .then(|| &rest[start + 1..])
}

/// The answer of a terminal event of type `kind`: its `response`, verbatim.
pub(super) fn final_response(
    kind: &str,
    response: Option<&serde_json::value::RawValue>,
) -> Result<Decoded, CodecError> {
    let response = response
        .ok_or_else(|| CodecError::new(format!("the {kind} event has no response field")))?;
    Ok(Decoded::End {
        frame: Some(Bytes::copy_from_slice(response.get().as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_type_written_first_and_plainly_is_read_without_parsing() {
        let cases = [
            (
                r#"{"type":"response.output_text.delta","delta":"x"}"#,
                Some("response.output_text.delta"),
            ),
            (r#"{"type":"a"}"#, Some("a")),
            (r#"{"type":""}"#, Some("")),
            (r#"{ "type":"a"}"#, None),
            (r#"{"type" :"a"}"#, None),
            (r#"{"types":"a"}"#, None),
            (r#"{"type":"a\"b"}"#, None),
            (r#"{"type":"a\u0041"}"#, None),
            ("{\"type\":\"a\nb\"}", None),
            (r#"{"type":"unterminated"#, None),
            (r#"{"type":1}"#, None),
            // Last, as a serialiser that sorts keys writes it.
            (r#"{"delta":"x","type":"a"}"#, Some("a")),
            (r#"{"delta":"x","type":""}"#, Some("")),
            (r#"{"delta":"x", "type":"a"}"#, None),
            (r#"{"delta":"x","type": "a"}"#, None),
            (r#"{"delta":"x","xtype":"a"}"#, None),
            (r#"{"delta":"x","type":"a"b"}"#, None),
            (r#"{"delta":"x","type":"a\"}"#, None),
            (r#"{"delta":"x,"type":"a"}"}"#, None),
            (r#"{"delta":"x","type":"a"} "#, None),
            (r#"{"delta":"x","type":"a","n":1}"#, None),
        ];
        for (text, kind) in cases {
            assert_eq!(leading_type(text), kind, "{text}");
        }
    }

    #[test]
    fn terminal_and_error_events_are_parsed() {
        for kind in TERMINAL.iter().chain(&["error"]) {
            let text = format!(r#"{{"type":"{kind}","response":{{}}}}"#);
            assert_eq!(pass_over(&text), None, "{kind}");
        }
        assert_eq!(
            pass_over(r#"{"type":"response.created","response":{}}"#),
            Some(Decoded::Event { frame: None })
        );
    }
}
