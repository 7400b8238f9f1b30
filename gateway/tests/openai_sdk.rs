//! The official OpenAI Python SDK against the stack: the streaming Responses client gets the
//! complete event stream and the non-streaming client the final response, whether the upstream
//! served over the WebSocket, over HTTP after a refused upgrade (fallback), or over HTTP because
//! the breaker pinned the provider.
//!
//! Each test starts, in this process, a scriptable upstream on `127.0.0.1` (the `testing` kit),
//! the stack built from a TOML configuration (`Configured`) and an axum server on an ephemeral
//! port, then runs `tests/sdk/responses_client.py` with the `openai` package pointed at it
//! (`OpenAI(base_url="http://127.0.0.1:PORT/v1")`, retries off). The script prints what the SDK
//! parsed; the test compares it with the answer the upstream served (event types, text, id) and
//! checks the upstream's counters (handshakes, WebSocket requests, HTTP requests), that the
//! client's `Authorization` header reached the upstream, and the breaker's state.
//!
//! Python is `$WSFIRST_PYTHON` if set, else `.venv/bin/python` at the repository root, else a
//! virtual environment that `tests/sdk/python.rs` makes once under the target directory with
//! `pip install 'openai[realtime]'`. When it can have none, the tests fail and say what to
//! install.

#[path = "sdk/python.rs"]
mod python;

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue, StatusCode, header::AUTHORIZATION};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use wsfirst::{
    breaker::BreakerState,
    core::{Route, Transport},
};
use wsfirst_gateway::{Configured, config::Config};
use wsfirst_websocket::testing::{Answer, TestUpstream, WsScript};

/// The text the upstream answers with.
const TEXT: &str = "Hello from the scripted upstream, through wsfirst.";

/// A gateway (the stack on an axum server) in front of a scripted upstream.
struct Gateway {
    upstream: TestUpstream,
    configured: Configured,
    base_url: String,
    server: JoinHandle<std::io::Result<()>>,
    python: PathBuf,
}

/// What the upstream has counted so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    handshakes: usize,
    ws_requests: usize,
    http_requests: usize,
    captured: usize,
}

impl Gateway {
    /// Starts the upstream and the gateway (and finds or makes a Python with the SDK).
    async fn start() -> Self {
        let python = python::python_with("openai");
        let upstream = TestUpstream::start().await;
        upstream.set_answer(Answer::text(TEXT));
        let config = Config::from_toml_str(&format!(
            r#"
            [eligibility]
            websocket_pairs = [["openai", "openai-responses"]]

            [[routes]]
            path = "/v1/responses"
            provider = "openai"
            api = "openai-responses"
            http_url = "{http}"
            ws_url = "{ws}"

            [routes.headers]
            "OpenAI-Beta" = "responses-websocket=v1"

            # A turn that continues a conversation waits for its busy connection: on a loaded
            # 2-core CI machine, 8 Python threads can keep one busy past the 5 s default.
            [routes.pool]
            conversation_wait = "30s"

            # Two failures in a row pin the key, for long enough that no probe happens
            # during a test.
            [routes.breaker]
            consecutive_failures = 2
            open_duration = "10m"
            "#,
            http = upstream.http_url(),
            ws = upstream.ws_url(),
        ))
        .expect("the test configuration is valid");
        let configured = Configured::from_config(&config).expect("the stack builds");
        let app = configured
            .router()
            .nest("/admin", configured.wsfirst.admin_router());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server =
            tokio::spawn(async move { axum::serve(wsfirst::serve::nodelay(listener), app).await });
        Gateway {
            upstream,
            configured,
            base_url: format!("http://{addr}/v1"),
            server,
            python,
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            handshakes: self.upstream.handshakes(),
            ws_requests: self.upstream.ws_requests(),
            http_requests: self.upstream.http_requests(),
            captured: self.upstream.captured().len(),
        }
    }

    fn route(&self) -> &Route {
        self.configured.routes[0].1.route()
    }

    /// The breaker state of the key of requests made with `api_key`.
    fn breaker_state(&self, api_key: &str) -> Option<BreakerState> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {api_key}")).expect("a header value");
        headers.insert(AUTHORIZATION, value);
        let key = self.route().breaker_key_for(&headers);
        self.configured
            .wsfirst
            .breakers()
            .get(&key)
            .map(|snapshot| snapshot.state)
    }

    /// Runs the SDK script (one streaming, then one non-streaming request) with `api_key`,
    /// returning its report.
    async fn run_client(&self, api_key: &str) -> Value {
        self.run_script("responses_client.py", api_key, &[]).await
    }

    /// Runs `tests/sdk/<name>` with the base URL, `api_key` and `args`, returning its report.
    async fn run_script(&self, name: &str, api_key: &str, args: &[&str]) -> Value {
        let mut all = vec![self.base_url.clone(), api_key.to_owned()];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        python::run_script(&self.python, name, all).await
    }

    /// Every request the upstream captured after `since`, with its transport and the
    /// `Authorization` header it carried.
    fn authorizations_since(&self, since: Counts) -> Vec<(Transport, Option<String>)> {
        self.upstream.captured()[since.captured..]
            .iter()
            .map(|request| {
                (
                    request.transport,
                    request.header("authorization").map(str::to_owned),
                )
            })
            .collect()
    }

    async fn stop(self) {
        self.server.abort();
        self.configured.wsfirst.shutdown().await;
        self.upstream.shutdown().await;
    }
}

/// Checks that the SDK parsed the full answer from both calls, served by `transport` for
/// `reason`.
fn assert_full_answers(report: &Value, transport: &str, reason: &str) {
    let answer = Answer::text(TEXT);
    let expected_types: Vec<&str> = (0..answer.len())
        .map(|index| answer.event_type(index).expect("every event has a type"))
        .collect();
    let stream = &report["stream"];
    let event_types: Vec<&str> = stream["event_types"]
        .as_array()
        .unwrap_or_else(|| panic!("no event types in {report}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(event_types, expected_types, "streamed events: {report}");
    assert_eq!(stream["delta_text"], TEXT, "{report}");
    assert_eq!(stream["final_output_text"], TEXT, "{report}");
    assert_eq!(stream["final_id"], Answer::RESPONSE_ID, "{report}");
    assert_eq!(stream["final_status"], "completed", "{report}");
    assert_eq!(stream["content_type"], "text/event-stream", "{report}");

    let non_stream = &report["non_stream"];
    assert_eq!(non_stream["output_text"], TEXT, "{report}");
    assert_eq!(non_stream["id"], Answer::RESPONSE_ID, "{report}");
    assert_eq!(non_stream["status"], "completed", "{report}");
    assert_eq!(non_stream["content_type"], "application/json", "{report}");

    for call in [stream, non_stream] {
        assert_eq!(call["transport"], transport, "{report}");
        assert_eq!(call["reason"], reason, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_full_answers_served_by_websocket() {
    let gateway = Gateway::start().await;
    let before = gateway.counts();

    let report = gateway.run_client("sk-test").await;

    assert_full_answers(&report, "websocket", "websocket");
    let after = gateway.counts();
    assert_eq!(after.ws_requests - before.ws_requests, 2, "{after:?}");
    assert_eq!(after.http_requests, before.http_requests, "{after:?}");
    // One handshake: the second call reuses the pooled connection.
    assert_eq!(after.handshakes - before.handshakes, 1, "{after:?}");
    assert_eq!(
        gateway.authorizations_since(before),
        vec![(Transport::WebSocket, Some("Bearer sk-test".to_owned())); 2],
    );
    assert!(
        gateway.upstream.captured()[before.captured..]
            .iter()
            .all(|request| request.header("openai-beta") == Some("responses-websocket=v1"))
    );
    assert_eq!(gateway.breaker_state("sk-test"), Some(BreakerState::Closed));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_full_answers_after_a_fallback_to_http() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    let before = gateway.counts();

    let report = gateway.run_client("sk-test").await;

    assert_full_answers(&report, "http", "fallback");
    let after = gateway.counts();
    // Each call paid one refused handshake, then was executed once, over HTTP.
    assert_eq!(after.handshakes - before.handshakes, 2, "{after:?}");
    assert_eq!(after.ws_requests, before.ws_requests, "{after:?}");
    assert_eq!(after.http_requests - before.http_requests, 2, "{after:?}");
    assert_eq!(
        gateway.authorizations_since(before),
        vec![(Transport::Http, Some("Bearer sk-test".to_owned())); 2],
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_full_answers_while_the_breaker_pins_to_http() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    // Two refused upgrades in a row trip the key.
    gateway.run_client("sk-test").await;
    assert_eq!(gateway.breaker_state("sk-test"), Some(BreakerState::Open));
    let before = gateway.counts();

    let report = gateway.run_client("sk-test").await;

    assert_full_answers(&report, "http", "pinned");
    let after = gateway.counts();
    // Pinned: no handshake at all, each call executed once over HTTP.
    assert_eq!(after.handshakes, before.handshakes, "{after:?}");
    assert_eq!(after.ws_requests, before.ws_requests, "{after:?}");
    assert_eq!(after.http_requests - before.http_requests, 2, "{after:?}");
    assert_eq!(
        gateway.authorizations_since(before),
        vec![(Transport::Http, Some("Bearer sk-test".to_owned())); 2],
    );
    gateway.stop().await;
}

/// A request the upstream rejects (an `error` event with status 400) is the SDK's
/// `BadRequestError` with status 400, streaming or not; it runs upstream once and is never
/// replayed over HTTP, and the breaker stays closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_the_upstreams_client_error_as_a_bad_request_error() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_answer(Answer::error(
        StatusCode::BAD_REQUEST,
        "invalid_value",
        "Invalid value: 'gpt-kit'.",
    ));
    let before = gateway.counts();
    let report = gateway
        .run_script("responses_signals.py", "sk-test", &["client_error"])
        .await;
    for call in ["stream", "non_stream"] {
        assert_eq!(
            report[call]["raised"], "BadRequestError",
            "{call}: {report}"
        );
        assert_eq!(report[call]["status"], 400, "{call}: {report}");
        assert_eq!(report[call]["code"], "invalid_value", "{call}: {report}");
    }
    let after = gateway.counts();
    assert_eq!(after.ws_requests - before.ws_requests, 2, "{after:?}");
    assert_eq!(
        after.http_requests, before.http_requests,
        "never replayed: {after:?}"
    );
    assert_eq!(gateway.breaker_state("sk-test"), Some(BreakerState::Closed));
    gateway.stop().await;
}

/// A `background: true` request goes over HTTP with its body unchanged (WebSocket mode does not
/// support it), and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_background_requests_go_over_http() {
    let gateway = Gateway::start().await;
    let before = gateway.counts();
    let report = gateway
        .run_script("responses_signals.py", "sk-test", &["background"])
        .await;
    assert_eq!(report["transport"], "http", "{report}");
    assert_eq!(report["reason"], "unsupported_field", "{report}");
    assert_eq!(report["output_text"], TEXT, "{report}");
    let after = gateway.counts();
    assert_eq!(after.ws_requests, before.ws_requests, "{after:?}");
    assert_eq!(after.http_requests - before.http_requests, 1, "{after:?}");
    let body: Value = serde_json::from_slice(&gateway.upstream.captured().last().unwrap().body)
        .expect("a JSON body");
    assert_eq!(
        body["background"], true,
        "the field reached the upstream: {body}"
    );
    gateway.stop().await;
}

/// Eight concurrent conversations of four turns with `store: false` all succeed: each turn
/// follows the connection that produced the response it continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_store_false_conversations_keep_their_socket() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_unique_response_ids(true);
    let before = gateway.counts();
    let report = gateway
        .run_script("responses_signals.py", "sk-test", &["conversations"])
        .await;
    let after = gateway.counts();
    assert_eq!(report["turns_ok"], 32, "{report}\n{before:?}\n{after:?}");
    let handshakes = after.handshakes - before.handshakes;
    println!("8 conversations x 4 turns (store: false): {handshakes} websocket connections");
    assert!(
        handshakes <= 10,
        "{handshakes} connections for 8 conversations"
    );
    assert_eq!(after.ws_requests - before.ws_requests, 32, "{after:?}");
    assert_eq!(after.http_requests, before.http_requests, "{after:?}");
    gateway.stop().await;
}
