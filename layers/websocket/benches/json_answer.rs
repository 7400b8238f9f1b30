//! What assembling a non-streaming answer from its WebSocket events costs the codec: the events
//! of a realistic answer (20 events, the `response.completed` one carrying the whole output),
//! written with `type` first (the Responses API) or last (keys sorted, the test kit), decoded
//! by [`ResponsesCodec`] for a non-streaming request; and, for comparison, what parsing every
//! event costs (what the codec did before it passed over the events before the end).
//!
//! `cargo bench -p wsfirst-websocket --bench json_answer` (a few seconds).

use std::{borrow::Cow, hint::black_box};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json, value::RawValue};
use wsfirst_websocket::{Codec, Decoded, Exchange, Message, ResponsesCodec};

/// The events of an answer whose output is 16 deltas of `chunk`.
fn answer(chunk: &str, type_first: bool) -> Vec<String> {
    let text = chunk.repeat(16);
    let response = |status: &str, output: Value| {
        json!({"id": "resp_1", "object": "response", "status": status, "model": "gpt-test",
               "output": output, "usage": {"input_tokens": 12, "output_tokens": 16}})
    };
    let message = json!([{"id": "msg_1", "type": "message", "status": "completed",
        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}]);
    let mut events = vec![
        (
            "response.created",
            json!({"response": response("in_progress", json!([]))}),
        ),
        (
            "response.in_progress",
            json!({"response": response("in_progress", json!([]))}),
        ),
    ];
    for n in 0..16 {
        events.push((
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": chunk,
                   "sequence_number": n + 2}),
        ));
    }
    events.push((
        "response.output_text.done",
        json!({"item_id": "msg_1", "text": text}),
    ));
    events.push((
        "response.completed",
        json!({"response": response("completed", message)}),
    ));
    events
        .into_iter()
        .map(|(kind, rest)| {
            let rest = rest.to_string();
            let members = &rest[1..rest.len() - 1];
            if type_first {
                format!(r#"{{"type":"{kind}",{members}}}"#)
            } else {
                format!(r#"{{{members},"type":"{kind}"}}"#)
            }
        })
        .collect()
}

/// The codec's answer: the frame of the terminal event.
fn assemble(codec: &ResponsesCodec, messages: &[Message]) -> Bytes {
    let exchange = Exchange::new(false);
    for message in messages {
        if let Decoded::End { frame: Some(frame) } =
            codec.decode(message.clone(), &exchange).unwrap()
        {
            return frame;
        }
    }
    unreachable!("the answer ends")
}

/// Every event parsed, as the codec did before: the type and the borrowed `response`.
fn parse_every_event(messages: &[Message]) -> Bytes {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        response: Option<&'a RawValue>,
    }
    for message in messages {
        let Message::Text(text) = message else {
            unreachable!()
        };
        let event: Event<'_> = serde_json::from_str(text.as_str()).unwrap();
        if event.kind == "response.completed" {
            return Bytes::copy_from_slice(event.response.unwrap().get().as_bytes());
        }
    }
    unreachable!("the answer ends")
}

fn json_answer(c: &mut Criterion) {
    let codec = ResponsesCodec::new();
    let mut group = c.benchmark_group("json_answer");
    for (layout, type_first) in [("type_first", true), ("type_last", false)] {
        let messages: Vec<Message> = answer("hello, world ", type_first)
            .into_iter()
            .map(Message::text)
            .collect();
        assert_eq!(assemble(&codec, &messages), parse_every_event(&messages));
        group.bench_function(format!("codec_{layout}"), |b| {
            b.iter(|| assemble(&codec, black_box(&messages)))
        });
        group.bench_function(format!("parse_every_event_{layout}"), |b| {
            b.iter(|| parse_every_event(black_box(&messages)))
        });
    }
    group.finish();
}

criterion_group!(benches, json_answer);
criterion_main!(benches);
