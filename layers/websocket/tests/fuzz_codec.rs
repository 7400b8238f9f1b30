//! Property-based fuzzing (stable toolchain, proptest) of what the upstream controls: the
//! Responses codec on arbitrary and mutated messages, the encoder on arbitrary request bodies,
//! and the handling of arbitrary answers to the WebSocket upgrade request. No panic, no wrong
//! answer; regression cases are plain tests at the end.
#![cfg(feature = "testing")]

mod ws_support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use ws_support::{call, request_with, route_to, service};
use wsfirst_core::{FailureKind, Phase, find_ws_failure};
use wsfirst_websocket::{
    Codec, Decoded, Exchange, Message, Pool, ResponsesCodec, WebSocketConfig,
    testing::{Answer, TestUpstream},
};

fn parts() -> http::request::Parts {
    http::Request::post("/v1/responses")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// Checks what the codec made of `message`; panics (fails the case) on a wrong answer.
fn check_decoded(message: &Message, streaming: bool) {
    let decoded = ResponsesCodec::new().decode(message.clone(), &Exchange::new(streaming));
    let text = match message {
        Message::Text(text) => text.as_str(),
        _ => {
            assert!(!matches!(
                decoded,
                Ok(Decoded::Event { .. } | Decoded::End { .. })
            ));
            return;
        }
    };
    let json = serde_json::from_str::<Value>(text).ok();
    let kind = json
        .as_ref()
        .and_then(|json| json.get("type"))
        .and_then(Value::as_str);
    match decoded {
        // Anything the codec cannot read is its error, never a frame.
        Err(error) => assert!(!error.to_string().is_empty()),
        Ok(Decoded::Ignore) => {}
        // A non-streaming answer keeps nothing of the events before its end.
        Ok(Decoded::Event { frame }) if !streaming => assert_eq!(frame, None),
        Ok(Decoded::Event { frame } | Decoded::End { frame }) => {
            let kind = kind.expect("only an event with a type is forwarded");
            assert!(!kind.contains(['\r', '\n']), "{kind:?}");
            let frame = frame.expect("a forwarded event has a frame");
            if streaming {
                let frame = std::str::from_utf8(&frame).unwrap();
                assert!(
                    frame.starts_with(&format!("event: {kind}\ndata: ")),
                    "{frame:?}"
                );
                assert!(frame.ends_with("\n\n"), "{frame:?}");
                // One event: no blank line and no bare `\r` inside.
                assert!(!frame[..frame.len() - 2].contains("\n\n"), "{frame:?}");
                assert!(!frame.contains('\r'), "{frame:?}");
            } else {
                // A non-streaming answer is the terminal event's `response` field, verbatim.
                let response: Value = serde_json::from_slice(&frame).expect("json");
                assert_eq!(
                    Some(&response),
                    json.as_ref().and_then(|j| j.get("response"))
                );
            }
        }
        Ok(Decoded::Reject {
            status,
            headers,
            body,
        }) => {
            // Only an error event with a client-error status is the upstream's answer.
            assert_eq!(kind, Some("error"));
            assert!(status.is_client_error(), "{status}");
            assert!(headers.contains_key(http::header::CONTENT_TYPE));
            let body: Value = serde_json::from_slice(&body).expect("a json error body");
            assert!(body["error"].is_object(), "{body}");
        }
        Ok(Decoded::Error { message, .. }) => {
            assert_eq!(kind, Some("error"));
            let _ = message;
        }
        Ok(other) => panic!("unexpected {other:?}"),
    }
}

/// Texts close to what the upstream sends: the kit's answers' events, error events of every
/// shape.
fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = Answer::text("héllo\r\nworld").messages().to_vec();
    seeds.extend(Answer::rate_limited(3).messages().iter().cloned());
    seeds.extend(
        Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "boom")
            .messages()
            .iter()
            .cloned(),
    );
    seeds.extend(
        Answer::connection_limit_reached()
            .messages()
            .iter()
            .cloned(),
    );
    seeds.extend([
        r#"{"type":"error","status_code":"404","error":{"message":"m"}}"#.to_owned(),
        r#"{"type":"error","error":"flat"}"#.to_owned(),
        r#"{"type":"error","status":700,"error":{"message":"m","code":7}}"#.to_owned(),
        r#"{"type":"response.completed"}"#.to_owned(),
    ]);
    seeds
}

/// A mutation of a seed: cut, byte replaced, text inserted, part repeated.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Replace(usize, u8),
    Insert(usize, String),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (
            any::<usize>(),
            prop_oneof![
                Just("\r".to_owned()),
                Just("\n".to_owned()),
                Just("\"".to_owned()),
                Just("\\".to_owned()),
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just(",\"type\":\"error\"".to_owned()),
                Just(",\"status\":401".to_owned()),
                Just(",\"status\":\"429\"".to_owned()),
                "\\PC{0,4}",
            ]
        )
            .prop_map(|(at, text)| Mutation::Insert(at, text)),
        (any::<usize>(), any::<usize>()).prop_map(|(at, len)| Mutation::Repeat(at, len)),
    ]
}

fn mutate(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for mutation in mutations {
        let len = bytes.len().max(1);
        match mutation {
            Mutation::Truncate(at) => bytes.truncate(at % len),
            Mutation::Replace(at, byte) => {
                if !bytes.is_empty() {
                    bytes[at % len] = *byte;
                }
            }
            Mutation::Insert(at, text) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, text.bytes());
            }
            Mutation::Repeat(at, n) => {
                let at = at % len;
                let end = (at + n % 64).min(bytes.len());
                let part = bytes[at.min(end)..end].to_vec();
                bytes.splice(end..end, part);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_messages_never_panic_and_never_mislead(
        text in "\\PC{0,64}",
        data in prop::collection::vec(any::<u8>(), 0..64),
        streaming in any::<bool>(),
    ) {
        check_decoded(&Message::text(text), streaming);
        check_decoded(&Message::binary(data), streaming);
    }

    #[test]
    fn mutated_events_never_panic_and_never_mislead(
        seed in prop::sample::select(seeds()),
        mutations in prop::collection::vec(mutation(), 1..4),
        streaming in any::<bool>(),
    ) {
        let bytes = mutate(&seed, &mutations);
        let message = match String::from_utf8(bytes) {
            Ok(text) => Message::text(text),
            Err(error) => Message::binary(error.into_bytes()),
        };
        check_decoded(&message, streaming);
    }

    #[test]
    fn arbitrary_request_bodies_encode_or_fail_cleanly(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
            "\\PC{0,64}".prop_map(Bytes::from),
            prop::collection::btree_map(
                prop_oneof![Just("stream".to_owned()), Just("type".to_owned()), Just("background".to_owned()), "[a-z_]{1,8}"],
                prop_oneof![Just(Value::Bool(true)), Just(Value::Null), "\\PC{0,8}".prop_map(Value::String), any::<i32>().prop_map(Value::from)],
                0..6,
            )
            .prop_map(|map| Bytes::from(serde_json::to_vec(&map).unwrap())),
        ],
    ) {
        match ResponsesCodec::new().encode(&parts(), body.clone()) {
            Err(error) => prop_assert!(!error.to_string().is_empty()),
            Ok(encoded) => {
                prop_assert_eq!(encoded.messages().len(), 1);
                let Message::Text(text) = &encoded.messages()[0] else {
                    panic!("a text message");
                };
                let sent: serde_json::Map<String, Value> = serde_json::from_str(text.as_str())
                    .expect("the message is a json object");
                let got: serde_json::Map<String, Value> = serde_json::from_slice(&body).unwrap();
                prop_assert_eq!(sent.get("type"), Some(&Value::from("response.create")));
                prop_assert!(!sent.contains_key("stream"));
                prop_assert_eq!(encoded.is_streaming(), got.get("stream") == Some(&Value::Bool(true)));
                // Every other field goes out as it came (JSON objects keep the last duplicate).
                for (key, value) in &got {
                    if key != "stream" && key != "type" && sent.contains_key(key) {
                        prop_assert_eq!(&sent[key], value);
                    }
                }
            }
        }
    }
}

/// An answer to the upgrade request, made of parts that may or may not be well-formed.
#[derive(Clone, Debug)]
struct Upgrade {
    /// `None`: a garbage status line.
    status: Option<u16>,
    garbage: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    content_length: bool,
    /// Cut the answer to this many bytes.
    cut: Option<usize>,
}

impl Upgrade {
    fn bytes(&self) -> Vec<u8> {
        let mut out = match self.status {
            Some(status) => format!("HTTP/1.1 {status} Whatever\r\n").into_bytes(),
            None => {
                let mut line = self.garbage.clone();
                line.extend_from_slice(b"\r\n");
                line
            }
        };
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.content_length {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        if let Some(cut) = self.cut {
            out.truncate(cut % (out.len() + 1));
        }
        out
    }

    /// A complete answer with a real status other than 101 and a body of the stated length.
    fn is_plain_refusal(&self) -> bool {
        self.status
            .is_some_and(|status| (200..=599).contains(&status))
            && self.content_length
            && self.cut.is_none()
            && self.headers.iter().all(|(name, _)| {
                !name.eq_ignore_ascii_case("content-length")
                    && !name.eq_ignore_ascii_case("transfer-encoding")
            })
    }
}

fn upgrade() -> impl Strategy<Value = Upgrade> {
    let header = prop_oneof![
        Just(("upgrade".to_owned(), "websocket".to_owned())),
        Just(("connection".to_owned(), "Upgrade".to_owned())),
        Just((
            "sec-websocket-accept".to_owned(),
            "bm90IHRoZSByaWdodCBrZXk=".to_owned()
        )),
        Just(("transfer-encoding".to_owned(), "chunked".to_owned())),
        Just(("content-length".to_owned(), "99999".to_owned())),
        ("[a-z-]{1,12}", "[ -~]{0,24}"),
    ];
    (
        prop_oneof![
            Just(Some(101)),
            (100u16..600).prop_map(Some),
            Just(Some(401)),
            Just(Some(426)),
            Just(None),
        ],
        prop::collection::vec(any::<u8>(), 0..24),
        prop::collection::vec(header, 0..5),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        prop::option::weighted(0.2, any::<usize>()),
    )
        .prop_map(
            |(status, garbage, headers, body, content_length, cut)| Upgrade {
                status,
                garbage,
                headers,
                body,
                content_length,
                cut,
            },
        )
}

/// Serves `answer` to the next upgrade request on `listener`, then closes.
async fn answer_once(listener: &TcpListener, answer: Vec<u8>) {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = socket.write_all(&answer).await;
    let _ = socket.shutdown().await;
    // Read until the client goes away, so that closing does not reset the connection.
    while let Ok(n) = socket.read(&mut buffer).await {
        if n == 0 {
            break;
        }
    }
}

/// The attempt's outcome for `answer`: checked, never a panic, never an HTTP call.
async fn check_upgrade(listener: &TcpListener, case: &Upgrade) {
    let url = format!("ws://{}/v1/responses", listener.local_addr().unwrap());
    let config = WebSocketConfig::builder()
        .handshake_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (mut service, http_calls) = service(config, &Pool::new());
    let route = route_to(&url);
    let body = r#"{"model":"m","input":"hi","stream":true}"#.to_owned();
    let server = answer_once(listener, case.bytes());
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        call(&mut service, request_with(&route, body, &[])),
    );
    let (result, ()) = tokio::join!(client, server);
    let result = result.expect("the attempt ends");
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let error = result.expect_err("no fuzzed answer is a valid upgrade");
    let failure = find_ws_failure(&*error).unwrap_or_else(|| panic!("no WsFailure in {error}"));
    assert!(
        matches!(failure.phase(), Phase::Connect | Phase::Handshake),
        "{failure:?}"
    );
    assert!(failure.to_string().starts_with("websocket "), "{failure}");
    if case.is_plain_refusal() && case.status != Some(101) {
        let status = StatusCode::from_u16(case.status.unwrap()).unwrap();
        match failure.kind() {
            FailureKind::UpgradeStatus { status: got, body } => {
                assert_eq!(*got, status);
                if matches!(status.as_u16(), 401 | 403) {
                    assert!(body.is_empty(), "a refused credential's body is not kept");
                }
            }
            other => panic!("{case:?}: {other:?}"),
        }
    }
}

#[test]
fn arbitrary_upgrade_answers_fail_cleanly_in_the_handshake() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(96));
    runner
        .run(&upgrade(), |case| {
            runtime.block_on(check_upgrade(&listener, &case));
            Ok(())
        })
        .unwrap();
}

/// A mutated answer served over a real WebSocket, through the layer: whatever the events, the
/// attempt fails with a typed failure or answers; a streamed body is well-formed SSE up to its
/// end or its mid-stream error, and nothing is sent to HTTP.
async fn check_served(upstream: &TestUpstream, messages: Vec<String>, stream: bool) {
    upstream.set_answer(Answer::raw_events(messages));
    let config = WebSocketConfig::builder()
        .first_event_timeout(Duration::from_secs(2))
        .idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (mut service, http_calls) = service(config, &Pool::new());
    let route = route_to(&upstream.ws_url());
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        call(
            &mut service,
            request_with(&route, ws_support::body(stream), &[]),
        ),
    )
    .await
    .expect("the attempt ends");
    assert_eq!(http_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let response = match attempt {
        Ok(response) => response,
        Err(error) => {
            let failure =
                find_ws_failure(&*error).unwrap_or_else(|| panic!("no WsFailure in {error}"));
            assert!(failure.to_string().starts_with("websocket "), "{failure}");
            return;
        }
    };
    let status = response.status();
    let (bytes, error) = tokio::time::timeout(
        Duration::from_secs(10),
        ws_support::read_body(response.into_body()),
    )
    .await
    .expect("the body ends");
    if let Some(error) = error {
        let failure = find_ws_failure(&*error).unwrap_or_else(|| panic!("no WsFailure in {error}"));
        assert_eq!(failure.phase(), Phase::MidStream, "{failure}");
    }
    if stream && status == StatusCode::OK {
        let text = std::str::from_utf8(&bytes).expect("utf-8 frames");
        assert!(!text.contains('\r'), "{text:?}");
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        for frame in text.split_terminator("\n\n") {
            assert!(frame.starts_with("event: "), "{frame:?}");
            assert!(
                frame.lines().skip(1).all(|line| line.starts_with("data: ")),
                "{frame:?}"
            );
        }
    }
}

#[test]
fn mutated_answers_through_the_layer_fail_cleanly_or_stream_well_formed_sse() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(TestUpstream::start());
    let messages = Answer::text("héllo\r\nworld").messages().to_vec();
    let strategy = (
        prop::collection::vec(
            (0..messages.len(), prop::collection::vec(mutation(), 0..3)),
            1..4,
        ),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&strategy, |(changes, stream)| {
            let mut answer = messages.clone();
            for (index, mutations) in &changes {
                let bytes = mutate(&answer[*index], mutations);
                answer[*index] = String::from_utf8_lossy(&bytes).into_owned();
            }
            runtime.block_on(check_served(&upstream, answer, stream));
            Ok(())
        })
        .unwrap();
}

/// Regression cases.
#[test]
fn regression_messages() {
    for (text, streaming) in [
        // A lone `\r` between tokens of a streamed event (the SSE writer cut the event there).
        ("{\"type\":\"response.created\",\r\"response\":{}}", true),
        // A status outside the HTTP range, and one given as text.
        (
            r#"{"type":"error","status":700,"error":{"message":"m"}}"#,
            true,
        ),
        (
            r#"{"type":"error","status":"401","error":{"message":"m"}}"#,
            false,
        ),
        // A terminal event without a response, non-streaming.
        (r#"{"type":"response.completed"}"#, false),
        ("", true),
        ("null", false),
    ] {
        check_decoded(&Message::text(text), streaming);
    }
}
