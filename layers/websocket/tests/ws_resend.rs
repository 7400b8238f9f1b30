//! When a request is sent again, against the test kit (and one upstream of its own), counted on
//! the upstream's side: a reused connection closed before our write, or whose write fails, is
//! replaced (and counted in `wsfirst_ws_resends_total`) as far as the route's `Replay` allows;
//! one closed after our write is not (and the fallback layer does not replay it over HTTP,
//! whatever its setting), nor is a fresh one closed with 1001; a refused request is sent again
//! once; a connection that failed mid-stream never goes back to the pool; a streaming
//! `response.incomplete` ends the stream.
#![cfg(feature = "testing")]

mod ws_support;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Service, ServiceExt, util::BoxCloneService};
use ws_support::*;
use wsfirst_core::{BoxError, Delivery, FailureKind, Phase, Replay, Served, Transport};
use wsfirst_fallback::{Fallback, FallbackConfig, ReplayBody};
use wsfirst_websocket::{
    Body, Pool, WebSocket, WebSocketConfig,
    testing::{Answer, TestUpstream, WsScript},
};

/// How long a test waits for an answer or a body: real time (the sockets are real), far more
/// than any of these exchanges takes, so that a stuck layer fails with a message.
const WAIT: Duration = Duration::from_secs(20);

type KitHttp = BoxCloneService<Request<ReplayBody<Full<Bytes>>>, Response<Full<Bytes>>, Infallible>;
type Stack = Fallback<WebSocket<KitHttp>>;

/// The HTTP side: the request forwarded to the kit's HTTP endpoint (so that the kit counts it),
/// the answer read in full.
fn kit_http(upstream: &TestUpstream) -> KitHttp {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = upstream.http_url();
    BoxCloneService::new(tower::service_fn(
        move |request: Request<ReplayBody<Full<Bytes>>>| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.expect("a buffered body").to_bytes();
                let mut forward = Request::post(url).body(Full::new(body)).unwrap();
                *forward.headers_mut() = parts.headers;
                let response = client.request(forward).await.expect("the kit answers");
                let (parts, body) = response.into_parts();
                let body = body.collect().await.expect("the kit's body").to_bytes();
                Ok::<_, Infallible>(Response::from_parts(parts, Full::new(body)))
            }
        },
    ))
}

/// Fallback -> WebSocket -> the kit's HTTP side, with this replay setting.
fn stack(upstream: &TestUpstream, pool: &Pool, replay: Replay) -> Stack {
    let websocket = WebSocket::with_pool(
        kit_http(upstream),
        WebSocketConfig::builder().build().unwrap(),
        pool.clone(),
    );
    let config = FallbackConfig::builder()
        .replay(replay)
        .warn_interval(None)
        .build()
        .unwrap();
    Fallback::new(websocket, config)
}

async fn call_stack(
    stack: &mut Stack,
    request: Request<Full<Bytes>>,
) -> Result<Response<Body<Full<Bytes>>>, BoxError> {
    let answer = async { stack.ready().await?.call(request).await };
    tokio::time::timeout(WAIT, answer)
        .await
        .expect("the stack answers")
}

/// The body, read to its end within [`WAIT`], as text; panics on a body error.
async fn text_of(response: Response<Body<Full<Bytes>>>) -> String {
    let (bytes, error) = tokio::time::timeout(WAIT, read_body(response.into_body()))
        .await
        .expect("the body ends");
    assert!(error.is_none(), "{error:?}");
    String::from_utf8(bytes).unwrap()
}

/// The counts of `wsfirst_ws_resends_total` by `reason` since the last call (a snapshot of
/// the debugging recorder drains its counters).
fn resends(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let reason = key.labels().find(|label| label.key() == "reason")?;
            match (key.name(), value) {
                ("wsfirst_ws_resends_total", DebugValue::Counter(count)) if count > 0 => {
                    Some((reason.value().to_owned(), count))
                }
                _ => None,
            }
        })
        .collect()
}

/// `[(reason, count)]` as the map [`resends`] returns.
fn counted(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(reason, count)| ((*reason).to_owned(), *count))
        .collect()
}

#[tokio::test]
async fn a_reused_connection_closed_before_the_write_is_replaced_once_and_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    for replay in [Replay::BeforeFirstEvent, Replay::ConnectOnly] {
        let upstream = TestUpstream::start().await;
        let pool = Pool::new();
        let mut stack = stack(&upstream, &pool, replay);
        let route = route(&upstream);
        let response = call_stack(&mut stack, request(&route, true)).await.unwrap();
        assert_eq!(text_of(response).await, Answer::default().sse());
        assert_eq!(pool.idle_connections(), 1);

        // The upstream closes the idle connection; its close is there before the next write.
        upstream.close_ws_connections();
        until(|| upstream.open_ws_connections() == 0).await;
        // A few turns of the runtime, so that its I/O driver has seen the close arrive.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        assert_eq!(resends(&snapshotter), counted(&[]));
        let response = call_stack(&mut stack, request(&route, true)).await.unwrap();
        let served = response.extensions().get::<Served>().unwrap().clone();
        assert_eq!(text_of(response).await, Answer::default().sse());
        assert_eq!(served.transport(), Transport::WebSocket, "{replay:?}");
        assert_eq!(upstream.handshakes(), 2, "{replay:?}");
        assert_eq!(upstream.ws_requests(), 2, "each request once: {replay:?}");
        assert_eq!(upstream.http_requests(), 0, "{replay:?}");
        assert_eq!(
            resends(&snapshotter),
            counted(&[("closed_before_write", 1)]),
            "{replay:?}"
        );
    }
}

#[tokio::test]
async fn a_reused_connection_closed_after_the_write_is_not_sent_again_anywhere() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    for replay in [Replay::BeforeFirstEvent, Replay::ConnectOnly] {
        for code in [1000, 1001, 1011, 1012, 1013] {
            let upstream = TestUpstream::start().await;
            // The connection serves the first request, then goes away with the second in hand.
            upstream.set_default_ws_script(WsScript::CloseOnRequest { request: 2, code });
            let pool = Pool::new();
            let mut stack = stack(&upstream, &pool, replay);
            let route = route(&upstream);
            let response = call_stack(&mut stack, request(&route, false))
                .await
                .unwrap();
            text_of(response).await;
            assert_eq!(pool.idle_connections(), 1);

            let error = call_stack(&mut stack, request(&route, false))
                .await
                .expect_err("the upstream may have executed it: the caller gets the error");
            let failure = wsfirst_core::find_ws_failure(&*error).expect("a websocket failure");
            assert_eq!(
                failure.phase(),
                Phase::BeforeFirstEvent,
                "{replay:?} {code}"
            );
            assert_eq!(
                failure.kind(),
                &FailureKind::Closed {
                    code: Some(code),
                    reason: String::new()
                }
            );
            assert_eq!(failure.delivery(), Delivery::MaybeExecuted);
            assert!(!failure.is_replay_safe());
            assert_eq!(
                error.to_string(),
                format!(
                    "websocket failed before the first event: connection closed by the upstream with code {code}"
                )
            );
            assert_eq!(
                upstream.handshakes(),
                1,
                "{replay:?} {code}: not on a fresh one"
            );
            assert_eq!(
                upstream.ws_requests(),
                2,
                "{replay:?} {code}: each request once"
            );
            assert_eq!(
                upstream.http_requests(),
                0,
                "{replay:?} {code}: not over http"
            );
            assert_eq!(pool.connections(), 0, "the closed connection is gone");
        }
    }
    assert_eq!(resends(&snapshotter), counted(&[]));
}

#[tokio::test]
async fn a_fresh_connection_closed_going_away_before_the_first_event_is_executed_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::CloseBeforeFirstEvent { code: 1001 });
    let route = route(&upstream);
    // The WebSocket layer alone, and under the fallback layer.
    let (mut service, http_calls) = service(WebSocketConfig::default(), &Pool::new());
    let failure = failure_of(call(&mut service, request(&route, true)).await);
    assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
    assert_eq!(failure.delivery(), Delivery::MaybeExecuted);
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    assert_eq!((upstream.handshakes(), upstream.ws_requests()), (1, 1));

    let mut stack = stack(&upstream, &Pool::new(), Replay::BeforeFirstEvent);
    let error = call_stack(&mut stack, request(&route, true))
        .await
        .unwrap_err();
    let failure = wsfirst_core::find_ws_failure(&*error).unwrap();
    assert!(matches!(
        failure.kind(),
        FailureKind::Closed {
            code: Some(1001),
            ..
        }
    ));
    assert_eq!(upstream.handshakes(), 2);
    assert_eq!(upstream.ws_requests(), 2, "each request executed once");
    assert_eq!(upstream.http_requests(), 0);
    assert_eq!(resends(&snapshotter), counted(&[]));
}

#[tokio::test]
async fn a_refused_request_is_sent_again_once_and_then_replayed_only_before_the_first_event() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    for (replay, resent, over_http) in [
        (Replay::BeforeFirstEvent, 1, 1),
        (Replay::ConnectOnly, 0, 0),
    ] {
        let upstream = TestUpstream::start().await;
        upstream.set_answer(Answer::connection_limit_reached());
        let mut stack = stack(&upstream, &Pool::new(), replay);
        let result = call_stack(&mut stack, request(&route(&upstream), false)).await;
        assert_eq!(upstream.ws_requests(), 1 + resent, "{replay:?}");
        assert_eq!(upstream.http_requests(), over_http, "{replay:?}");
        let expected = if resent == 1 {
            counted(&[("refused", 1)])
        } else {
            counted(&[])
        };
        assert_eq!(resends(&snapshotter), expected, "{replay:?}");
        match replay {
            Replay::ConnectOnly => {
                let failure = wsfirst_core::find_ws_failure(&*result.unwrap_err())
                    .unwrap()
                    .clone();
                assert_eq!(failure.delivery(), Delivery::Refused);
            }
            _ => {
                let response = result.unwrap();
                let served = response.extensions().get::<Served>().unwrap();
                assert_eq!(served.transport(), Transport::Http);
            }
        }
    }
}

/// An answer broken by a message that is not an event, followed by the rest of the answer.
fn broken_answer() -> Answer {
    Answer::raw_events([
        r#"{"type":"response.created","response":{"id":"resp_broken","status":"in_progress"}}"#
            .to_owned(),
        "not an event".to_owned(),
        r#"{"type":"response.output_text.delta","delta":"rest of the broken answer"}"#.to_owned(),
        r#"{"type":"response.completed","response":{"id":"resp_broken","status":"completed"}}"#
            .to_owned(),
    ])
}

#[tokio::test]
async fn a_connection_that_failed_mid_stream_never_goes_back_to_the_pool() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    for stream in [true, false] {
        let upstream = TestUpstream::start().await;
        upstream.push_answer(broken_answer());
        let pool = Pool::new();
        let (mut service, _) = service(WebSocketConfig::default(), &pool);
        let route = route(&upstream);
        let failure = match call(&mut service, request(&route, stream)).await {
            // Streaming: the response came with the first event, the body breaks.
            Ok(response) => {
                let (_, error) = tokio::time::timeout(WAIT, read_body(response.into_body()))
                    .await
                    .expect("the body ends");
                wsfirst_core::find_ws_failure(&*error.expect("the body breaks"))
                    .unwrap()
                    .clone()
            }
            // Non-streaming: the answer breaks before the response.
            Err(error) => wsfirst_core::find_ws_failure(&*error).unwrap().clone(),
        };
        assert_eq!(failure.phase(), Phase::MidStream, "stream: {stream}");
        assert!(matches!(failure.kind(), FailureKind::Protocol(_)));
        // The rest of the broken answer is still coming on that connection: it is not pooled.
        assert_eq!(pool.idle_connections(), 0, "stream: {stream}");
        assert_eq!(pool.connections(), 0, "stream: {stream}");

        // The next request reads its own answer, on a connection of its own.
        let response = call(&mut service, request(&route, stream)).await.unwrap();
        let (bytes, error) = read_body(response.into_body()).await;
        assert!(error.is_none(), "{error:?}");
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("broken"), "{text}");
        let expected = if stream {
            Answer::default().sse()
        } else {
            Answer::default().final_json().unwrap().to_owned()
        };
        assert_eq!(text, expected);
        assert_eq!(upstream.handshakes(), 2, "stream: {stream}");
    }
    assert_eq!(
        resends(&snapshotter),
        counted(&[]),
        "no connection was found broken"
    );
}

#[tokio::test]
async fn a_streaming_response_incomplete_ends_the_stream() {
    let upstream = TestUpstream::start().await;
    let incomplete = Answer::raw_events([
        r#"{"type":"response.created","response":{"id":"resp_short","status":"in_progress"}}"#
            .to_owned(),
        r#"{"type":"response.output_text.delta","delta":"cut"}"#.to_owned(),
        r#"{"type":"response.incomplete","response":{"id":"resp_short","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}"#.to_owned(),
    ]);
    upstream.set_answer(incomplete.clone());
    let pool = Pool::new();
    // The idle timeout is far beyond the test's bound: only the terminal event ends the body.
    let (mut service, _) = service(WebSocketConfig::default(), &pool);
    let response = call(&mut service, request(&route(&upstream), true))
        .await
        .unwrap();
    let (bytes, error) = tokio::time::timeout(WAIT, read_body(response.into_body()))
        .await
        .expect("response.incomplete ends the stream");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(String::from_utf8(bytes).unwrap(), incomplete.sse());
    // A complete answer: the connection serves the next request.
    assert_eq!(pool.idle_connections(), 1);
    assert_eq!(upstream.open_ws_connections(), 1);
}

/// An upstream on 127.0.0.1 that answers every request with `answer`, except that its first
/// connection takes messages of at most 1 MiB: a larger one is refused at its frame's header
/// and the connection is dropped unread, so the client's write fails before the message is
/// complete. Returns the URL, the connections accepted and the requests received in full.
async fn resetting_upstream(answer: Answer) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig as Limits};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/responses", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let (accepted_by_server, received_by_server) = (accepted.clone(), received.clone());
    spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let number = accepted_by_server.fetch_add(1, Ordering::SeqCst) + 1;
            let limit = if number == 1 { 1 << 20 } else { 64 << 20 };
            let limits = Limits::default()
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let (answer, received) = (answer.clone(), received_by_server.clone());
            spawn(async move {
                let accepted = tokio_tungstenite::accept_async_with_config(tcp, Some(limits));
                let Ok(mut socket) = accepted.await else {
                    return;
                };
                // An error (the message over the limit) drops the socket with data unread.
                while let Some(Ok(message)) = socket.next().await {
                    if !message.is_text() {
                        continue;
                    }
                    received.fetch_add(1, Ordering::SeqCst);
                    for event in answer.messages() {
                        if socket.send(Message::text(event.clone())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted, received)
}

#[tokio::test]
async fn a_reused_connection_whose_write_fails_is_replaced_once_only_before_the_first_event() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    // Larger than the socket buffers of both ends: the write is still under way when the
    // upstream drops the connection.
    let input = "x".repeat(40 << 20);
    let large = format!(r#"{{"model":"gpt-kit","input":"{input}","stream":false}}"#);
    for (replay, resent) in [
        (Replay::BeforeFirstEvent, true),
        (Replay::ConnectOnly, false),
    ] {
        let answer = Answer::text("hello world");
        let (url, accepted, received) = resetting_upstream(answer.clone()).await;
        let config = WebSocketConfig::builder()
            .max_message_size(64 << 20)
            .build()
            .unwrap();
        let (mut service, http_calls) = service(config, &Pool::new());
        let route = route_to(&url);
        let response = call(&mut service, request(&route, false)).await.unwrap();
        let (_, error) = read_body(response.into_body()).await;
        assert!(error.is_none(), "{error:?}");

        let mut large = request_with(&route, large.clone(), &[]);
        large.extensions_mut().insert(replay);
        let result = tokio::time::timeout(WAIT, call(&mut service, large))
            .await
            .expect("the attempt ends");
        if resent {
            let response = result.expect("sent again on a fresh connection");
            let (bytes, error) = read_body(response.into_body()).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                answer.final_json().unwrap()
            );
            assert_eq!(resends(&snapshotter), counted(&[("write_failed", 1)]));
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        } else {
            let failure = failure_of(result);
            assert_eq!(failure.phase(), Phase::Send, "{failure:?}");
            assert_eq!(failure.delivery(), Delivery::Incomplete);
            assert_eq!(resends(&snapshotter), counted(&[]));
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
        // The first connection never had the large request in full.
        assert_eq!(received.load(Ordering::SeqCst), 1 + usize::from(resent));
        assert_eq!(http_calls.load(Ordering::SeqCst), 0);
    }
}
