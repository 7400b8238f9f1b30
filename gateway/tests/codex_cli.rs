//! The Codex CLI end to end through the gateway binary: the test kit as the upstream on
//! 127.0.0.1, the `wsfirst-gateway` program in front of it, and several `codex exec` runs at
//! once with a custom provider pointed at the gateway, in Codex's WebSocket mode (the
//! gateway's client WebSocket), over HTTP, and in WebSocket mode with the upstream's WebSocket
//! refusing every upgrade (the gateway then serves over HTTP).
//!
//! Each run must exit 0 having printed the kit's answer, and the kit must have executed
//! exactly the requests the runs needed: no request failed and none was sent again (Codex
//! retries failed requests, and would then be seen sending more). The headers the kit saw are
//! checked against the header policy: the session headers Codex sends reach an HTTP upstream
//! and never a pooled WebSocket's handshake.
//!
//! The Codex CLI comes from npm (see `codex/cli.rs`); without it the tests check nothing and
//! say so, except under `WSFIRST_REQUIRE_CODEX=1` (CI), where they fail. The runs are real
//! processes on real time: no assertion is on a duration.

#[path = "codex/cli.rs"]
mod cli;
#[path = "codex/gateway.rs"]
mod gateway;

use std::collections::BTreeSet;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use wsfirst_websocket::testing::{Answer, CapturedRequest, TestUpstream, Transport, WsScript};

use cli::Wire;
use gateway::Gateway;

/// How many `codex exec` runs go at once.
const SESSIONS: usize = 4;

/// What the kit answers every turn with (a message that ends the turn).
const ANSWER: &str = "The wsfirst test kit answers: all good.";

/// The prompt of every run.
const PROMPT: &str = "Say hello to the test kit.";

/// The tests run one at a time: each starts several Codex processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// What the kit executed, split into Codex's warm-ups (`generate: false`) and turns.
struct Executed {
    warmups: Vec<CapturedRequest>,
    turns: Vec<CapturedRequest>,
    /// The WebSocket handshakes the kit accepted, with their headers (captured as requests
    /// with no body).
    handshakes: usize,
}

impl std::fmt::Debug for Executed {
    /// One line per request: transport, kind, the response it continues.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} handshakes", self.handshakes)?;
        for (kind, requests) in [("warm-up", &self.warmups), ("turn", &self.turns)] {
            for request in requests {
                let previous = request
                    .json()
                    .and_then(|body| body["previous_response_id"].as_str().map(str::to_owned));
                writeln!(f, "{:?} {kind} previous={previous:?}", request.transport)?;
            }
        }
        Ok(())
    }
}

fn executed(upstream: &TestUpstream) -> Executed {
    let (mut warmups, mut turns) = (Vec::new(), Vec::new());
    for request in upstream.captured() {
        let Some(body) = request.json() else {
            continue;
        };
        if body.get("generate") == Some(&Value::Bool(false)) {
            warmups.push(request);
        } else {
            turns.push(request);
        }
    }
    Executed {
        warmups,
        turns,
        handshakes: upstream.handshakes(),
    }
}

/// Starts the kit (answering [`ANSWER`], handing out a routing token and the model in its
/// answers' headers, as the API does for Codex) and the gateway (its route in transport
/// `mode`), then runs [`SESSIONS`]
/// `codex exec` at once over `wire`; asserts that each exits 0 with the answer, and returns
/// what the kit executed.
async fn run_sessions(
    wire: Wire,
    mode: &str,
    upstream: &TestUpstream,
    name: &str,
) -> Option<Executed> {
    let codex = cli::codex()?;
    upstream.set_answer(Answer::text(ANSWER));
    upstream.set_unique_response_ids(true);
    upstream.set_capture_limit(1_000);
    let mut answer = HeaderMap::new();
    answer.insert(
        "x-codex-turn-state",
        HeaderValue::from_static("ts-from-the-kit"),
    );
    answer.insert("openai-model", HeaderValue::from_static("gpt-kit"));
    upstream.set_response_headers(answer);
    let gateway = Gateway::start(upstream, mode);
    let runs: Vec<_> = (0..SESSIONS)
        .map(|index| {
            let addr = gateway.addr.clone();
            let name = format!("{name}-{index}");
            tokio::task::spawn_blocking(move || cli::exec(codex, &addr, wire, &name, PROMPT))
        })
        .collect();
    for (index, run) in runs.into_iter().enumerate() {
        let run = run.await.expect("the run's task");
        assert!(
            run.status.success() && run.stdout.contains(ANSWER),
            "codex exec {name}-{index} over {wire:?}: {}\n--- stdout\n{}\n--- stderr\n{}\n--- gateway\n{}",
            run.status,
            run.stdout,
            run.stderr,
            gateway.output()
        );
    }
    let executed = executed(upstream);
    eprintln!(
        "{name}: {} warm-ups, {} turns, {} handshakes at the kit; ws requests {}, http requests {}",
        executed.warmups.len(),
        executed.turns.len(),
        executed.handshakes,
        upstream.ws_requests(),
        upstream.http_requests(),
    );
    let log = gateway.finish();
    assert!(!log.contains("panicked"), "{log}");
    Some(executed)
}

/// The names of the headers a request carried.
fn names(request: &CapturedRequest) -> BTreeSet<String> {
    request
        .headers
        .keys()
        .map(|name| name.to_string())
        .collect()
}

/// Codex's session headers that the policy forwards over HTTP, as Codex 0.171 sends them.
const CODEX_SESSION_HEADERS: [&str; 7] = [
    "session-id",
    "thread-id",
    "x-client-request-id",
    "originator",
    "x-codex-turn-metadata",
    "x-codex-window-id",
    "x-codex-beta-features",
];

/// Asserts that an HTTP request carried Codex's key and session headers, and nothing the
/// policy does not forward.
fn assert_http_headers(request: &CapturedRequest) {
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {}", cli::KEY).as_str())
    );
    for name in CODEX_SESSION_HEADERS {
        assert!(
            request.header(name).is_some(),
            "{name}: {:?}",
            request.headers
        );
    }
    assert_eq!(request.header("originator"), Some("codex_exec"));
    assert_eq!(request.header("session-id"), request.header("thread-id"));
    for never in ["user-agent", "accept-encoding"] {
        assert!(request.header(never).is_none(), "{never} was forwarded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_sessions_over_the_gateway_s_websocket() {
    let _one = ONE_AT_A_TIME.lock().await;
    let upstream = TestUpstream::start().await;
    let Some(executed) = run_sessions(Wire::WebSocket, "auto", &upstream, "websocket").await else {
        return;
    };
    // Each session: one warm-up and one turn, nothing failed or sent again, all over the
    // upstream WebSocket.
    assert_eq!(executed.warmups.len(), SESSIONS, "{executed:?}");
    assert_eq!(executed.turns.len(), SESSIONS, "{executed:?}");
    assert_eq!(upstream.http_requests(), 0);
    assert_eq!(upstream.ws_requests(), 2 * SESSIONS);
    // Each turn continues its own session's warm-up.
    let warmup_ids: BTreeSet<String> = (1..=SESSIONS)
        .map(|n| format!("resp_kit_warmup_{n:04}"))
        .collect();
    let continued: BTreeSet<String> = executed
        .turns
        .iter()
        .filter_map(|turn| {
            turn.json()?["previous_response_id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(continued, warmup_ids);
    assert_handshake_headers(&executed, true);
    upstream.shutdown().await;
}

/// Asserts that the pooled handshakes the kit saw carried the key (and the WebSocket beta
/// flag, when Codex sent it: on its own WebSocket upgrade, not over HTTP), and none of a
/// session's headers.
fn assert_handshake_headers(executed: &Executed, beta: bool) {
    for request in executed.turns.iter().chain(&executed.warmups) {
        assert_eq!(request.transport, Transport::WebSocket);
        let headers = names(request);
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {}", cli::KEY).as_str())
        );
        assert_eq!(
            request
                .header("openai-beta")
                .is_some_and(|flags| flags.contains("responses_websockets=2026-02-06")),
            beta,
            "{headers:?}"
        );
        for name in CODEX_SESSION_HEADERS {
            assert!(!headers.contains(name), "{name} on a pooled handshake");
        }
    }
}

/// Codex over HTTP, the gateway WebSocket first: each session's one turn (Codex warms nothing
/// up over HTTP) goes over a pooled upstream WebSocket, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_sessions_over_http() {
    let _one = ONE_AT_A_TIME.lock().await;
    let upstream = TestUpstream::start().await;
    let Some(executed) = run_sessions(Wire::Http, "auto", &upstream, "http").await else {
        return;
    };
    assert_eq!(executed.warmups.len(), 0, "{executed:?}");
    assert_eq!(executed.turns.len(), SESSIONS, "{executed:?}");
    assert_eq!(upstream.ws_requests(), SESSIONS);
    assert_eq!(upstream.http_requests(), 0);
    assert_handshake_headers(&executed, false);
    upstream.shutdown().await;
}

/// Codex over HTTP, the route pinned to HTTP: each session's turn reaches the HTTP upstream
/// once, with Codex's session headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_sessions_over_http_to_an_http_route() {
    let _one = ONE_AT_A_TIME.lock().await;
    let upstream = TestUpstream::start().await;
    let Some(executed) = run_sessions(Wire::Http, "http", &upstream, "http-route").await else {
        return;
    };
    assert_eq!(executed.warmups.len(), 0, "{executed:?}");
    assert_eq!(executed.turns.len(), SESSIONS, "{executed:?}");
    assert_eq!((upstream.ws_requests(), upstream.handshakes()), (0, 0));
    assert_eq!(upstream.http_requests(), SESSIONS);
    let sessions: BTreeSet<&str> = executed
        .turns
        .iter()
        .filter_map(|turn| turn.header("session-id"))
        .collect();
    assert_eq!(sessions.len(), SESSIONS);
    for turn in &executed.turns {
        assert_http_headers(turn);
    }
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_sessions_over_the_gateway_s_websocket_with_the_upstream_websocket_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::FORBIDDEN,
        "websockets are not enabled for this key",
    ));
    let Some(executed) = run_sessions(Wire::WebSocket, "auto", &upstream, "refused").await else {
        return;
    };
    // Every request was served over HTTP, once; a warm-up never reaches HTTP.
    assert_eq!(upstream.ws_requests(), 0);
    assert_eq!(executed.warmups.len(), 0, "{executed:?}");
    assert_eq!(executed.turns.len(), SESSIONS, "{executed:?}");
    assert_eq!(upstream.http_requests(), SESSIONS);
    // Codex's session headers, sent on its WebSocket upgrade to the gateway, reach the HTTP
    // upstream with each of the session's requests.
    for turn in &executed.turns {
        assert_eq!(turn.transport, Transport::Http);
        assert_http_headers(turn);
    }
    upstream.shutdown().await;
}
