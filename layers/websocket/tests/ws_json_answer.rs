//! A non-streaming answer over the WebSocket is byte for byte the HTTP endpoint's JSON, whatever
//! the events before the terminal one hold and however the upstream writes them (the type first,
//! last or between other fields, white space, escapes): the codec passes over most events
//! without parsing them, and that must never change the answer.
#![cfg(feature = "testing")]

mod ws_support;

use bytes::Bytes;
use http::{Request, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::Value;
use ws_support::{body, call, read_body, request_with, route, service};
use wsfirst_websocket::{
    Codec, Decoded, Exchange, Message, Pool, ResponsesCodec, WebSocketConfig,
    testing::{Answer, TestUpstream},
};

const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.failed",
    "response.incomplete",
];

/// How an event's members are written.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `{"type":..,..}`, as the Responses API writes it.
    TypeFirst,
    /// `{..,"type":..}`, as a serialiser that sorts keys writes it.
    TypeLast,
    /// `{..,"type":..,..}`.
    TypeBetween,
    /// `{ "type" : .. , .. }`.
    Spaced,
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::TypeFirst),
        Just(Layout::TypeLast),
        Just(Layout::TypeBetween),
        Just(Layout::Spaced),
    ]
}

/// An event of `kind` with these other members (raw JSON texts), written in `layout`.
fn event(kind: &str, members: &[(&str, String)], layout: Layout) -> String {
    let kind = ("type", serde_json::to_string(kind).unwrap());
    let mut all: Vec<(&str, String)> = members.to_vec();
    match layout {
        Layout::TypeFirst | Layout::Spaced => all.insert(0, kind),
        Layout::TypeLast => all.push(kind),
        Layout::TypeBetween => all.insert(all.len().min(1), kind),
    }
    let (colon, comma) = match layout {
        Layout::Spaced => (" : ", " , "),
        _ => (":", ","),
    };
    let members: Vec<String> = all
        .iter()
        .map(|(key, value)| format!("\"{key}\"{colon}{value}"))
        .collect();
    match layout {
        Layout::Spaced => format!("{{ {} }}", members.join(comma)),
        _ => format!("{{{}}}", members.join(comma)),
    }
}

/// Text a model may write: quotes, backslashes, line breaks, control characters, anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,12}",
        any::<String>(),
        Just(r#"",\"type\":\"response.completed\"}"#.to_owned()),
        Just("line\r\nbreak\u{0}\u{1f}".to_owned()),
    ]
}

/// The `response` object, written compactly or pretty (the answer keeps its exact text).
fn response() -> impl Strategy<Value = String> {
    (text(), any::<bool>(), any::<u32>()).prop_map(|(output, pretty, tokens)| {
        let value = serde_json::json!({
            "id": "resp_1",
            "object": "response",
            "status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": output}]}],
            "usage": {"output_tokens": tokens},
        });
        if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            value.to_string()
        }
    })
}

/// An answer: events before the end (deltas and others, some with a `response` of their own)
/// and a terminal event, in any layout.
fn answer() -> impl Strategy<Value = Vec<String>> {
    let before = (
        prop_oneof![
            Just("response.output_text.delta".to_owned()),
            Just("response.created".to_owned()),
            Just("response.output_item.done".to_owned()),
            "[a-z._]{0,24}",
        ],
        text(),
        layout(),
    )
        .prop_filter("not an end", |(kind, _, _)| {
            kind != "error" && !TERMINAL.contains(&kind.as_str())
        })
        .prop_map(|(kind, delta, layout)| {
            let delta = serde_json::to_string(&delta).unwrap();
            let members = [
                ("delta", delta),
                ("response", r#"{"id":"not the answer"}"#.to_owned()),
                ("sequence_number", "1".to_owned()),
            ];
            event(&kind, &members, layout)
        });
    let end = (0..TERMINAL.len(), response(), layout()).prop_map(|(kind, response, layout)| {
        let members = [("response", response), ("sequence_number", "9".to_owned())];
        event(TERMINAL[kind], &members, layout)
    });
    (prop::collection::vec(before, 0..24), end).prop_map(|(mut events, end)| {
        events.push(end);
        events
    })
}

/// The terminal event's `response`, as its exact text, by a full parse.
fn expected(end: &str) -> String {
    #[derive(serde::Deserialize)]
    struct End<'a> {
        #[serde(borrow)]
        response: &'a serde_json::value::RawValue,
    }
    serde_json::from_str::<End<'_>>(end)
        .unwrap()
        .response
        .get()
        .to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The codec alone: every event before the end is passed over, the end is the terminal
    /// event's `response` byte for byte.
    #[test]
    fn the_codec_answers_the_terminal_events_response_verbatim(events in answer()) {
        let codec = ResponsesCodec::new();
        // What the codec makes of an event before the end or of the end does not depend on the
        // number of events before it.
        let exchange = Exchange::new(false);
        let (end, before) = events.split_last().unwrap();
        for event in before {
            prop_assert_eq!(
                codec.decode(Message::text(event.clone()), &exchange).unwrap(),
                Decoded::Event { frame: None },
                "{}", event
            );
        }
        let answer = expected(end);
        prop_assert_eq!(
            codec.decode(Message::text(end.clone()), &exchange).unwrap(),
            Decoded::End { frame: Some(Bytes::from(answer)) }
        );
    }
}

/// The same request over the upstream's HTTP path.
async fn over_http(upstream: &TestUpstream) -> Bytes {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(upstream.http_url())
        .header("authorization", "Bearer sk-test")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body(false))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success());
    response.into_body().collect().await.unwrap().to_bytes()
}

/// Through the layer, against the kit's upstream answering with these exact event texts: the
/// WebSocket answer is the HTTP endpoint's, byte for byte.
#[test]
fn the_websocket_answer_is_the_http_endpoints_byte_for_byte() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(TestUpstream::start());
    let pool = Pool::new();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&answer(), |events| {
            upstream.set_answer(Answer::raw_events(events.clone()));
            let (over_ws, over_http) = runtime.block_on(async {
                let (mut service, _) = service(WebSocketConfig::default(), &pool);
                let request = request_with(&route(&upstream), body(false), &[]);
                let response = call(&mut service, request).await.unwrap();
                assert!(response.body().is_websocket());
                let (bytes, error) = read_body(response.into_body()).await;
                assert!(error.is_none(), "{error:?}");
                (Bytes::from(bytes), over_http(&upstream).await)
            });
            prop_assert_eq!(&over_ws, &over_http);
            let end = events.last().unwrap();
            prop_assert_eq!(over_ws, Bytes::from(expected(end)));
            Ok(())
        })
        .unwrap();
}

/// The kit's realistic answers (keys sorted, so `type` last), and one with the terminal event's
/// `response` holding the text of a whole delta event.
#[tokio::test]
async fn realistic_answers_are_the_http_endpoints_json() {
    let tricky = r#"{"type":"response.output_text.delta","delta":"x"}"#;
    for answer in [
        Answer::text("hello world"),
        Answer::text(tricky),
        Answer::text(""),
    ] {
        let upstream = TestUpstream::start().await;
        upstream.set_answer(answer.clone());
        let (mut service, _) = service(WebSocketConfig::default(), &Pool::new());
        let response = call(
            &mut service,
            request_with(&route(&upstream), body(false), &[]),
        )
        .await
        .unwrap();
        let (bytes, _) = read_body(response.into_body()).await;
        assert_eq!(bytes, over_http(&upstream).await);
        assert_eq!(bytes, answer.final_json().unwrap().as_bytes());
        let _: Value = serde_json::from_slice(&bytes).unwrap();
    }
}
