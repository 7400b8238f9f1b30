//! The fault matrix: every failure kind of the WebSocket path, for each transport mode (auto,
//! under either replay setting; strict WebSocket; HTTP) and each breaker state (closed, open,
//! half-open), through the composed stack against real servers on 127.0.0.1. Each row asserts
//! the transport, what the caller got, the executions counted on the upstream side (never more
//! than one) and the breaker's state after the request. Plus the HTTP path failing after a
//! fallback, and a client that goes away mid-stream.
//!
//! Time is paused: timeouts fire as soon as the runtime has nothing else to do, and the open
//! period of a breaker ends by advancing the clock.

mod support;

use std::{fmt, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use support::{NO_STREAM, STREAM, local_table, transport_headers, until};
use tower::ServiceExt;
use wsfirst::{
    RouteOptions, RouteService, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry, BreakerState},
    core::{Route, TransportMode},
    fallback::{FallbackConfig, Replay},
    websocket::{
        WebSocketConfig,
        testing::{Answer, HttpScript, TestUpstream, WsScript},
    },
};

const CREDENTIAL: &str = "Bearer sk-matrix";
/// A bound on every wait of the test on something outside the request itself.
const WAIT: Duration = Duration::from_secs(20);

/// The breaker state a row starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Closed,
    /// Pinned by hand until unpinned.
    Open,
    /// A timed pin that ended: the next WebSocket request is the probe.
    HalfOpen,
}

/// How a fault is made.
#[derive(Clone, Debug)]
enum Setup {
    /// The WebSocket URL is a loopback port nobody listens on.
    Refused,
    /// The WebSocket URL's host does not resolve.
    Dns,
    /// `wss://` to the test upstream, which speaks plain HTTP.
    Tls,
    /// The test upstream with this WebSocket script and, if any, this answer.
    Kit(WsScript, Option<Answer>),
    /// A request served on the WebSocket first pools its connection; the upstream then closes
    /// it while idle, before the row's request is written.
    ReusedClosedIdle,
    /// A request served on the WebSocket first pools its connection; the upstream closes it
    /// with this code (1006: drops it) after receiving the row's request, before any event.
    ReusedClosedAfterWrite(u16),
}

/// What the caller got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    /// `200` and the whole answer, byte for byte, over this transport, with this reason header.
    Answer(&'static str, &'static str),
    /// `200` over this transport, then the body failed: the answer was cut short.
    Cut(&'static str),
    /// The upstream's own error answer with this status, over the WebSocket.
    Upstream(u16),
    /// wsfirst's error response with this status and reason header (the failure's kind).
    Error(u16, &'static str),
}

const WS: Got = Got::Answer("websocket", "websocket");
const FALLBACK: Got = Got::Answer("http", "fallback");
const PINNED: Got = Got::Answer("http", "pinned");
const MODE_HTTP: Got = Got::Answer("http", "mode_http");
const CUT: Got = Got::Cut("websocket");

/// What the breaker makes of the row's WebSocket attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// An answer carried to its end (an upstream's error answer included).
    Success,
    /// A failure that says nothing about the path.
    Ignore,
    /// One failure towards the threshold (2 in a row here).
    Count,
    /// The endpoint cannot work: open at once.
    Trip,
}

/// One failure kind: how it is made, and what it leads to on a closed key.
struct Fault {
    name: &'static str,
    setup: Setup,
    /// A streaming request (else a non-streaming one).
    stream: bool,
    /// What an auto route's caller gets.
    auto: Got,
    /// What a strict route's caller gets.
    strict: Got,
    /// Whether the upstream receives (so executes) the request when the WebSocket is tried.
    received: bool,
    verdict: Verdict,
}

fn kit(script: WsScript) -> Setup {
    Setup::Kit(script, None)
}

fn answer(answer: Answer) -> Setup {
    Setup::Kit(WsScript::Accept, Some(answer))
}

fn refuse(status: u16) -> Setup {
    kit(WsScript::refuse(
        StatusCode::from_u16(status).unwrap(),
        "no",
    ))
}

/// Messages over this size are refused by the stack (incoming).
const MAX_INCOMING: usize = 64 * 1024;

fn faults() -> Vec<Fault> {
    use Verdict::*;
    let fault = |name, setup, auto, strict, received, verdict| Fault {
        name,
        setup,
        stream: true,
        auto,
        strict,
        received,
        verdict,
    };
    let upgrade = |status: u16, verdict| {
        fault(
            upgrade_name(status),
            refuse(status),
            FALLBACK,
            Got::Error(502, "upgrade_status"),
            false,
            verdict,
        )
    };
    let closed = Got::Error(502, "closed");
    let text = Answer::text("hello world");
    vec![
        fault(
            "connect refused",
            Setup::Refused,
            FALLBACK,
            Got::Error(502, "io"),
            false,
            Count,
        ),
        fault(
            "dns failure",
            Setup::Dns,
            FALLBACK,
            Got::Error(502, "dns"),
            false,
            Count,
        ),
        fault(
            "tls failure",
            Setup::Tls,
            FALLBACK,
            Got::Error(502, "tls"),
            false,
            Count,
        ),
        fault(
            "handshake timeout",
            kit(WsScript::Hang),
            FALLBACK,
            Got::Error(502, "timeout"),
            false,
            Count,
        ),
        upgrade(400, Count),
        upgrade(401, Ignore),
        upgrade(403, Ignore),
        upgrade(404, Trip),
        upgrade(426, Trip),
        upgrade(429, Ignore),
        upgrade(500, Count),
        upgrade(502, Count),
        upgrade(503, Count),
        // The upstream received the request before closing: it is not sent again.
        fault(
            "close before the first event (1011)",
            kit(WsScript::CloseBeforeFirstEvent { code: 1011 }),
            closed,
            closed,
            true,
            Count,
        ),
        fault(
            "close before the first event (1001, fresh connection)",
            kit(WsScript::CloseBeforeFirstEvent { code: 1001 }),
            closed,
            closed,
            true,
            Count,
        ),
        fault(
            "connection dropped before the first event",
            kit(WsScript::CloseBeforeFirstEvent { code: 1006 }),
            closed,
            closed,
            true,
            Count,
        ),
        fault(
            "error event 400 before output",
            answer(Answer::error(
                StatusCode::BAD_REQUEST,
                "invalid_value",
                "Invalid value.",
            )),
            Got::Upstream(400),
            Got::Upstream(400),
            true,
            Success,
        ),
        fault(
            "error event 429 before output",
            answer(Answer::rate_limited(7)),
            Got::Upstream(429),
            Got::Upstream(429),
            true,
            Success,
        ),
        fault(
            "error event 500 before output",
            answer(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "boom",
            )),
            Got::Error(502, "upstream_error"),
            Got::Error(502, "upstream_error"),
            true,
            Count,
        ),
        fault(
            "close mid-stream",
            kit(WsScript::CloseAfterEvents {
                events: 3,
                code: 1011,
            }),
            CUT,
            CUT,
            true,
            Count,
        ),
        Fault {
            stream: false,
            ..fault(
                "close mid-answer (non-streaming)",
                kit(WsScript::CloseAfterEvents {
                    events: 3,
                    code: 1011,
                }),
                closed,
                closed,
                true,
                Count,
            )
        },
        fault(
            "idle timeout mid-stream",
            kit(WsScript::Stall { after_events: 3 }),
            CUT,
            CUT,
            true,
            Count,
        ),
        fault(
            "oversized message mid-stream",
            answer(Answer::large_text(4 * MAX_INCOMING)),
            CUT,
            CUT,
            true,
            Ignore,
        ),
        fault(
            "oversized first event",
            answer(Answer::events(vec![json!({
                "type": "response.created",
                "padding": "x".repeat(2 * MAX_INCOMING),
            })])),
            Got::Error(502, "too_large"),
            Got::Error(502, "too_large"),
            true,
            Ignore,
        ),
        fault(
            "malformed first event",
            answer(Answer::raw_events(["this is not json"])),
            Got::Error(502, "protocol"),
            Got::Error(502, "protocol"),
            true,
            Count,
        ),
        fault(
            "malformed event mid-stream",
            answer(Answer::raw_events(
                text.messages()
                    .iter()
                    .take(3)
                    .cloned()
                    .chain(["{not json".to_owned()]),
            )),
            CUT,
            CUT,
            true,
            Count,
        ),
        fault(
            "reused connection closed before our write",
            Setup::ReusedClosedIdle,
            WS,
            WS,
            true,
            Success,
        ),
        fault(
            "reused connection closed after our write (1001)",
            Setup::ReusedClosedAfterWrite(1001),
            closed,
            closed,
            true,
            Count,
        ),
        fault(
            "reused connection dropped after our write",
            Setup::ReusedClosedAfterWrite(1006),
            closed,
            closed,
            true,
            Count,
        ),
    ]
}

fn upgrade_name(status: u16) -> &'static str {
    match status {
        400 => "upgrade 400",
        401 => "upgrade 401",
        403 => "upgrade 403",
        404 => "upgrade 404",
        426 => "upgrade 426",
        429 => "upgrade 429",
        500 => "upgrade 500",
        502 => "upgrade 502",
        503 => "upgrade 503",
        _ => "upgrade refused",
    }
}

/// What a row expects, from the fault's facts on a closed key, the mode and the starting state.
fn expected(fault: &Fault, mode: TransportMode, start: Start) -> Observed {
    let before = match start {
        Start::Closed => BreakerState::Closed,
        Start::Open => BreakerState::Open,
        Start::HalfOpen => BreakerState::HalfOpen,
    };
    let http = |got| Observed {
        got,
        ws_executions: 0,
        http_executions: 1,
        // Untouched; a key whose pin is over reads open until a WebSocket request looks at it.
        state: if before == BreakerState::HalfOpen {
            BreakerState::Open
        } else {
            before
        },
        consecutive: (start == Start::Closed).then_some(0),
    };
    let strict = mode == TransportMode::WebSocket;
    match (mode, start) {
        (TransportMode::Http, _) => return http(MODE_HTTP),
        (TransportMode::Auto, Start::Open) => return http(PINNED),
        _ => {}
    }
    // The WebSocket is tried.
    let got = if strict { fault.strict } else { fault.auto };
    let failed = matches!(fault.verdict, Verdict::Count | Verdict::Trip);
    let state = match (start, strict) {
        (Start::Closed, _) if fault.verdict == Verdict::Trip => BreakerState::Open,
        (Start::Closed, _) => BreakerState::Closed,
        // Strict requests are never rerouted: a failure on an open or half-open key is kept
        // without extending the pin; a success closes a half-open key (not one pinned by hand).
        (Start::Open, _) => BreakerState::Open,
        // A probe (or a strict request) that gets its first event closes the key, whatever
        // happens to the rest of its stream (which then counts on the closed key).
        (Start::HalfOpen, _) if got == CUT => BreakerState::Closed,
        (Start::HalfOpen, true) if fault.verdict == Verdict::Success => BreakerState::Closed,
        (Start::HalfOpen, true) => BreakerState::HalfOpen,
        // The probe decides.
        (Start::HalfOpen, false) if fault.verdict == Verdict::Success => BreakerState::Closed,
        (Start::HalfOpen, false) if failed => BreakerState::Open,
        (Start::HalfOpen, false) => BreakerState::HalfOpen,
    };
    Observed {
        got,
        ws_executions: usize::from(fault.received),
        http_executions: usize::from(got == FALLBACK),
        state,
        consecutive: (start == Start::Closed && state == BreakerState::Closed)
            .then_some(u32::from(fault.verdict == Verdict::Count)),
    }
}

/// What a row expects or observed.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    got: Got,
    ws_executions: usize,
    http_executions: usize,
    state: BreakerState,
    consecutive: Option<u32>,
}

fn stack(ws_url: &str, kit: &TestUpstream, mode: TransportMode) -> (Wsfirst, Route) {
    let wsfirst = Wsfirst::builder()
        .eligibility(local_table())
        .registry(
            BreakerRegistry::builder()
                .config(
                    BreakerConfig::builder()
                        .consecutive_failures(2)
                        .open_duration(Duration::from_secs(30))
                        .jitter(0.0)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build();
    let route = Route::builder("local", "responses")
        .ws_url(ws_url)
        .http_url(kit.http_url())
        .mode(mode)
        .build()
        .unwrap();
    (wsfirst, route)
}

fn options(replay: Replay) -> RouteOptions {
    RouteOptions::new()
        .fallback(FallbackConfig::builder().replay(replay).build().unwrap())
        .websocket(
            WebSocketConfig::builder()
                .handshake_timeout(Duration::from_secs(5))
                .first_event_timeout(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(5))
                .max_incoming_message_size(MAX_INCOMING)
                .build()
                .unwrap(),
        )
}

fn request(body: &str) -> Request<Body> {
    Request::post("/v1/responses")
        .header("authorization", CREDENTIAL)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Sends `body` and reads the whole answer: what the caller got, and the body on success.
async fn call(service: &RouteService, body: &str) -> (Got, Option<Bytes>) {
    let response = tokio::time::timeout(WAIT, service.clone().oneshot(request(body)))
        .await
        .expect("the stack answers")
        .unwrap();
    let status = response.status();
    let (transport, reason) = transport_headers(&response);
    let read = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("the body ends");
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(_) if status == StatusCode::OK => return (Got::Cut(leak(transport)), None),
        Err(error) => panic!("an error answer's body failed: {error}"),
    };
    let got = if status == StatusCode::OK {
        Got::Answer(leak(transport), leak(reason))
    } else if transport == "websocket" {
        Got::Upstream(status.as_u16())
    } else {
        Got::Error(status.as_u16(), leak(reason))
    };
    (got, Some(bytes))
}

/// A header's text as the `&'static str` of the row types (the set of values is small).
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static(CREDENTIAL));
    headers
}

/// Runs one row: the fault on a fresh stack and fresh upstreams, from `start`, in `mode`.
async fn run(fault: &Fault, mode: TransportMode, replay: Replay, start: Start) -> Observed {
    let kit = &TestUpstream::start().await;
    let ws_url = match &fault.setup {
        Setup::Refused => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("ws://{addr}/v1/responses")
        }
        Setup::Dns => "ws://wsfirst-fault-matrix.invalid/v1/responses".to_owned(),
        Setup::Tls => format!("wss://{}/v1/responses", kit.addr()),
        Setup::Kit(..) | Setup::ReusedClosedIdle | Setup::ReusedClosedAfterWrite(_) => kit.ws_url(),
    };
    let (wsfirst, route) = stack(&ws_url, kit, mode);
    let service = wsfirst.route_with(route.clone(), options(replay));

    if let Setup::ReusedClosedAfterWrite(code) = fault.setup {
        kit.set_default_ws_script(WsScript::CloseOnRequest { request: 2, code });
    }
    // A reused connection: one request served on the WebSocket first (on an auto route of the
    // same key), while the key is closed.
    if matches!(
        fault.setup,
        Setup::ReusedClosedIdle | Setup::ReusedClosedAfterWrite(_)
    ) {
        let warm = {
            let route = Route::builder("local", "responses")
                .ws_url(&ws_url)
                .http_url(kit.http_url())
                .build()
                .unwrap();
            wsfirst.route_with(route, options(Replay::default()))
        };
        let (got, _) = call(&warm, STREAM).await;
        assert_eq!(got, WS, "{}: the warm-up request", fault.name);
        assert_eq!(wsfirst.pool().idle_connections(), 1);
    }
    if let Setup::Kit(script, answer) = &fault.setup {
        kit.set_default_ws_script(script.clone());
        if let Some(answer) = answer {
            kit.set_answer(answer.clone());
        }
    }
    if let Setup::ReusedClosedIdle = fault.setup {
        kit.close_ws_connections();
        until("the upstream closed its connections", || {
            kit.open_ws_connections() == 0
        })
        .await;
    }

    let key = route.breaker_key_for(&headers());
    match start {
        Start::Closed => {}
        Start::Open => wsfirst.breakers().pin(&key, None),
        Start::HalfOpen => {
            wsfirst.breakers().pin(&key, Some(Duration::from_secs(30)));
            tokio::time::advance(Duration::from_secs(31)).await;
        }
    }
    let state_of = || wsfirst.breakers().get(&key);
    match start {
        Start::Closed => {}
        Start::Open => assert_eq!(state_of().map(|key| key.state), Some(BreakerState::Open)),
        // The key turns half-open when the next request looks at it: its pin is over.
        Start::HalfOpen => {
            let until = state_of().and_then(|key| key.until).expect("a timed pin");
            assert!(until <= tokio::time::Instant::now());
        }
    }

    let (ws_before, http_before) = (kit.ws_requests(), kit.http_requests());
    let (got, body) = call(&service, if fault.stream { STREAM } else { NO_STREAM }).await;
    // A whole answer is the kit's answer, byte for byte, whichever transport carried it.
    if let (Got::Answer(..), Some(body)) = (got, &body) {
        let served = match &fault.setup {
            Setup::Kit(_, Some(answer)) => answer.clone(),
            _ => Answer::text("hello world"),
        };
        let whole = if fault.stream {
            served.sse()
        } else {
            served.final_json().unwrap().to_owned()
        };
        assert_eq!(body, &whole, "{}: the answer", fault.name);
    }
    // A mid-stream failure reaches the breaker when the body ends, already read here; a cut
    // connection may take a moment to be counted by the upstream.
    tokio::task::yield_now().await;
    let snapshot = state_of();
    Observed {
        got,
        ws_executions: kit.ws_requests() - ws_before,
        http_executions: kit.http_requests() - http_before,
        state: snapshot
            .as_ref()
            .map_or(BreakerState::Closed, |key| key.state),
        consecutive: (start == Start::Closed
            && snapshot
                .as_ref()
                .is_none_or(|key| key.state == BreakerState::Closed))
        .then(|| snapshot.map_or(0, |key| key.consecutive_failures)),
    }
}

struct Row<'a> {
    fault: &'a Fault,
    mode: TransportMode,
    replay: Replay,
    start: Start,
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fault, mode, replay) = (self.fault.name, self.mode, self.replay.as_str());
        write!(f, "{fault} / {mode} (replay {replay}) / {:?}", self.start)
    }
}

#[tokio::test(start_paused = true)]
async fn every_failure_kind_in_every_mode_and_breaker_state() {
    let mut failures = Vec::new();
    let mut rows = 0;
    for fault in &faults() {
        // The replay setting changes none of these rows: what the upstream may have executed is
        // never sent again under either, and what was never sent is sent again under both.
        for (mode, replay) in [
            (TransportMode::Auto, Replay::BeforeFirstEvent),
            (TransportMode::Auto, Replay::ConnectOnly),
            (TransportMode::WebSocket, Replay::BeforeFirstEvent),
            (TransportMode::Http, Replay::BeforeFirstEvent),
        ] {
            for start in [Start::Closed, Start::Open, Start::HalfOpen] {
                let row = Row {
                    fault,
                    mode,
                    replay,
                    start,
                };
                let observed = run(fault, mode, replay, start).await;
                let expected = expected(fault, mode, start);
                rows += 1;
                // Never more than one execution, whatever the row expects.
                if observed.ws_executions + observed.http_executions > 1 {
                    failures.push(format!("{row}: executed twice: {observed:?}"));
                    continue;
                }
                if observed != expected {
                    failures.push(format!(
                        "{row}:\n    expected {expected:?}\n    observed {observed:?}"
                    ));
                }
            }
        }
    }
    assert!(rows >= 29 * 12, "{rows} rows");
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The HTTP path fails after a fallback: the caller gets the HTTP side's answer or error, and
/// the request was executed at most once (over HTTP).
#[tokio::test(start_paused = true)]
async fn the_http_path_failing_after_a_fallback() {
    for (name, script, http_dead, expected) in [
        (
            "http answers 503",
            Some(HttpScript::status(StatusCode::SERVICE_UNAVAILABLE)),
            false,
            (Some(503), 1),
        ),
        (
            "http aborts mid-stream",
            Some(HttpScript::AbortAfterEvents { events: 3 }),
            false,
            (None, 1),
        ),
        ("http refused", None, true, (Some(502), 0)),
    ] {
        let kit = TestUpstream::start().await;
        kit.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "no"));
        if let Some(script) = script {
            kit.set_default_http_script(script);
        }
        let http_url = if http_dead {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("http://{addr}/v1/responses")
        } else {
            kit.http_url()
        };
        let (wsfirst, _) = stack(&kit.ws_url(), &kit, TransportMode::Auto);
        let route = Route::builder("local", "responses")
            .ws_url(kit.ws_url())
            .http_url(http_url)
            .build()
            .unwrap();
        let service = wsfirst.route_with(route, options(Replay::default()));
        let (got, _) = call(&service, STREAM).await;
        let (status, executions) = expected;
        match (status, got) {
            (Some(status), Got::Error(got, _)) => assert_eq!(got, status, "{name}"),
            (None, Got::Cut("http")) => {}
            (_, got) => panic!("{name}: got {got:?}"),
        }
        assert_eq!(kit.ws_requests(), 0, "{name}");
        assert_eq!(kit.http_requests(), executions, "{name}");
        assert_eq!(kit.handshakes(), 1, "{name}");
    }
}

/// A client that goes away mid-stream: the upstream connection is closed, never pooled again,
/// and the next request opens a new one.
#[tokio::test(start_paused = true)]
async fn a_client_that_disconnects_mid_stream_closes_the_upstream_connection() {
    let kit = TestUpstream::start().await;
    kit.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(100),
    });
    let (wsfirst, route) = stack(&kit.ws_url(), &kit, TransportMode::Auto);
    let service = wsfirst.route_with(route, options(Replay::default()));
    let response = tokio::time::timeout(WAIT, service.clone().oneshot(request(STREAM)))
        .await
        .expect("the stack answers")
        .unwrap();
    assert_eq!(response.headers()["x-wsfirst-transport"], "websocket");
    let mut body = response.into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("a first frame")
        .expect("the body has a frame")
        .unwrap();
    assert!(first.is_data());
    assert_eq!(wsfirst.pool().connections(), 1);
    drop(body);

    until("the pool forgot the connection", || {
        wsfirst.pool().connections() == 0
    })
    .await;
    assert_eq!(wsfirst.pool().idle_connections(), 0);
    until("the upstream saw the connection close", || {
        kit.open_ws_connections() == 0
    })
    .await;

    kit.set_default_ws_script(WsScript::Accept);
    let (got, _) = call(&service, STREAM).await;
    assert_eq!(got, WS);
    assert_eq!(kit.handshakes(), 2, "a new connection, not the cut one");
    assert_eq!((kit.ws_requests(), kit.http_requests()), (2, 0));
    // The breaker does not blame the provider for the client's leaving.
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(snapshot[0].state, BreakerState::Closed);
    assert_eq!(snapshot[0].consecutive_failures, 0);
}

/// One refused handshake that several requests waited for (coalesced) is one failure of the
/// path: it must not count once per waiting request, or a single refused handshake under load
/// pins a provider whose threshold is several failures in a row.
/// (Found by the chaos test: the pool handed each waiter a copy of the failure, and the breaker
/// counted each; waiters now get it marked [`WsFailure::shared`](wsfirst::core::WsFailure::shared).)
#[tokio::test]
async fn one_failed_coalesced_handshake_counts_once() {
    let kit = TestUpstream::start().await;
    kit.push_ws_script(WsScript::refuse(StatusCode::SERVICE_UNAVAILABLE, "once"));
    let (wsfirst, route) = stack(&kit.ws_url(), &kit, TransportMode::Auto);
    let service = wsfirst.route_with(route, options(Replay::default()));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let service = service.clone();
        calls.spawn(async move { call(&service, STREAM).await.0 });
    }
    let mut got = Vec::new();
    while let Some(done) = calls.join_next().await {
        got.push(done.unwrap());
    }
    assert!(
        got.iter().all(|got| matches!(got, Got::Answer(..))),
        "{got:?}"
    );
    assert_eq!(kit.http_requests() + kit.ws_requests(), 8);
    let handshakes = kit.handshakes();
    let snapshot = wsfirst.breakers().snapshot();
    assert_eq!(
        (snapshot[0].state, snapshot[0].consecutive_failures.min(1)),
        (BreakerState::Closed, 1),
        "{handshakes} handshakes, one refused: {:?}",
        snapshot[0]
    );
}
