//! The SSE writer of the Responses codec against an independent SSE parser (the WHATWG
//! "event stream interpretation"): every event the codec turns into a frame is read back with
//! its type, and with its data equal to the upstream's JSON text, whatever line breaks that text
//! holds between its tokens (`\n`, `\r\n` or a lone `\r`; SSE turns each into `\n`, which JSON
//! reads as the same whitespace).

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use wsfirst_websocket::{Codec, Decoded, Exchange, Message, ResponsesCodec};

/// One dispatched event of an SSE stream.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    kind: String,
    data: String,
}

/// Parses an SSE stream as a browser does: lines end with `\r\n`, `\n` or `\r`; a blank line
/// dispatches the event; `:` starts a comment; a field's value loses one leading space; `data`
/// lines are joined with `\n`; an event without data is not dispatched; an unterminated last
/// event is dropped.
fn parse_sse(stream: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut kind, mut data, mut has_data) = (String::new(), String::new(), false);
    let mut rest = stream;
    while !rest.is_empty() {
        let end = rest.find(['\r', '\n']);
        let Some(end) = end else {
            // An unterminated line: the stream ended mid-event.
            break;
        };
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if has_data {
                data.pop();
                events.push(Event {
                    kind: if kind.is_empty() {
                        "message".to_owned()
                    } else {
                        std::mem::take(&mut kind)
                    },
                    data: std::mem::take(&mut data),
                });
            }
            kind.clear();
            data.clear();
            has_data = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
                has_data = true;
            }
            _ => {}
        }
    }
    events
}

/// `text` with every line break (`\r\n`, `\r`, `\n`) made `\n`: what SSE can carry.
fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The frame the codec writes for `text` in a streaming exchange, if it writes one.
fn frame_of(text: &str) -> Option<Bytes> {
    match ResponsesCodec::new().decode(Message::text(text), &Exchange::new(true)) {
        Ok(Decoded::Event { frame } | Decoded::End { frame }) => frame,
        _ => None,
    }
}

/// A JSON value with strings that hold line breaks and other awkward characters.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z \r\n\t\"\\\\:é€\u{2028}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// JSON whitespace to put between tokens, line breaks of every kind included.
fn whitespace() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(""),
            Just(" "),
            Just("\t"),
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
        ],
        0..3,
    )
    .prop_map(|pieces| pieces.concat())
}

/// `value` as JSON text with `gaps` inserted after every `{`, `[`, `,` and `:` outside strings.
fn spaced(value: &Value, gaps: &[String]) -> String {
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len() * 2);
    let (mut in_string, mut escaped, mut gap) = (false, false, 0);
    for c in compact.chars() {
        out.push(c);
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' | ',' | ':' if !gaps.is_empty() => {
                out.push_str(&gaps[gap % gaps.len()]);
                gap += 1;
            }
            _ => {}
        }
    }
    out
}

/// The event types the codec streams: deltas, lifecycle and terminal events, and unknown ones.
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("response.output_text.delta".to_owned()),
        Just("response.created".to_owned()),
        Just("response.completed".to_owned()),
        Just("response.failed".to_owned()),
        Just("response.incomplete".to_owned()),
        "response\\.[a-z_.]{1,20}",
        "[a-z]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_is_read_back_exactly(
        kind in event_type(),
        fields in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..5),
        gaps in prop::collection::vec(whitespace(), 0..6),
        lead in whitespace(),
        trail in whitespace(),
    ) {
        let mut event: Map<String, Value> = fields.into_iter().collect();
        event.insert("type".into(), json!(kind));
        if kind.starts_with("response.") {
            event.insert("response".into(), json!({"id": "resp_1", "status": "completed"}));
        }
        let value = Value::Object(event);
        let text = format!("{lead}{}{trail}", spaced(&value, &gaps));
        let frame = frame_of(&text).expect("a streamed event has a frame");
        let frame = std::str::from_utf8(&frame).expect("frames are utf-8");
        let events = parse_sse(frame);
        prop_assert_eq!(events.len(), 1, "one frame, one event: {:?}", frame);
        prop_assert_eq!(&events[0].kind, &kind);
        prop_assert_eq!(&events[0].data, &normalized(&text), "frame {:?}", frame);
        let read: Value = serde_json::from_str(&events[0].data).unwrap();
        prop_assert_eq!(read, value);
    }

    /// Frames written one after another read back as as many events, in order.
    #[test]
    fn a_stream_of_frames_reads_back_in_order(
        texts in prop::collection::vec((event_type(), whitespace()), 1..6),
    ) {
        let mut stream = String::new();
        let mut sent = Vec::new();
        for (kind, gap) in &texts {
            let text = format!("{{{gap}\"type\":{gap}{}{gap}}}", json!(kind));
            let frame = frame_of(&text).expect("a frame");
            stream.push_str(std::str::from_utf8(&frame).unwrap());
            sent.push(Event { kind: kind.clone(), data: normalized(&text) });
        }
        prop_assert_eq!(parse_sse(&stream), sent);
    }
}

/// Regression cases: each line break kind between tokens, and in the last position.
#[test]
fn line_breaks_of_every_kind_are_read_back() {
    for text in [
        "{\"type\":\"response.output_text.delta\",\n\"delta\":\"a\"}",
        "{\"type\":\"response.output_text.delta\",\r\n\"delta\":\"a\"}",
        "{\"type\":\"response.output_text.delta\",\r\"delta\":\"a\"}",
        "{\"type\":\"response.output_text.delta\",\r\r\n\n\"delta\":\"a\"}\r",
        "\r{\"type\":\"x\"}\n",
    ] {
        let frame = frame_of(text).unwrap();
        let events = parse_sse(std::str::from_utf8(&frame).unwrap());
        assert_eq!(events.len(), 1, "{text:?} -> {frame:?}");
        assert_eq!(events[0].data, normalized(text), "{text:?} -> {frame:?}");
    }
}

#[test]
fn the_parser_follows_the_spec() {
    let stream = "event: a\r\ndata: 1\rdata:2\n: comment\n\ndata: x\n\nevent: b\nid\n\ndata: cut";
    assert_eq!(
        parse_sse(stream),
        [
            Event {
                kind: "a".into(),
                data: "1\n2".into()
            },
            Event {
                kind: "message".into(),
                data: "x".into()
            },
        ]
    );
}
