//! The official OpenAI Python SDK in WebSocket mode (`client.responses.connect()`) against the
//! gateway built from a TOML configuration (`Configured`, which mounts the client WebSocket on
//! the route's `GET`): several responses on one connection over the upstream's WebSocket, the
//! same messages when the upstream refuses its upgrade (served over HTTP), a client error, the
//! upstream's WebSocket dying mid-session, and the SDK's lanes (`ResponsesWebSocketSession`,
//! three lanes at once, chained turns).
//!
//! Runs `tests/sdk/responses_connect.py` with Python as `tests/openai_sdk.rs` does
//! (`$WSFIRST_PYTHON`, else `.venv/bin/python`, else the harness's own virtual environment); the
//! SDK's WebSocket mode needs the `websockets` package (`pip install 'openai[realtime]'`).
//! Without a Python that has it, these tests fail and say what to install.

#[path = "sdk/python.rs"]
mod python;

use std::path::PathBuf;

use http::StatusCode;
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use wsfirst_gateway::{Configured, config::Config};
use wsfirst_websocket::testing::{Answer, TestUpstream, WsScript};

const TEXT: &str = "Hello from the scripted upstream, to the SDK's websocket.";

struct Gateway {
    upstream: TestUpstream,
    configured: Configured,
    base_url: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    python: PathBuf,
}

impl Gateway {
    async fn start() -> Self {
        let python = python::python_with("openai, websockets");
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

            [routes.client_websocket]
            idle_timeout = "5m"
            "#,
            http = upstream.http_url(),
            ws = upstream.ws_url(),
        ))
        .expect("the test configuration is valid");
        let configured = Configured::from_config(&config).expect("the stack builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(wsfirst::serve::serve(
            listener,
            configured.router(),
            Default::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            upstream,
            configured,
            base_url: format!("http://{addr}/v1"),
            stop,
            server,
            python,
        }
    }

    /// Runs the script for `count` responses on one connection; its report's responses.
    async fn run(&self, count: usize) -> Vec<Value> {
        let args = vec![
            self.base_url.clone(),
            "sk-test".to_owned(),
            count.to_string(),
        ];
        let report = python::run_script(&self.python, "responses_connect.py", args).await;
        report["responses"]
            .as_array()
            .unwrap_or_else(|| panic!("no responses in {report}"))
            .clone()
    }

    /// Runs the lanes script: three lanes of `turns` chained turns, `store` as given; its
    /// report, per lane.
    async fn run_lanes(&self, turns: usize, store: bool) -> Value {
        let args = vec![
            self.base_url.clone(),
            "sk-test".to_owned(),
            turns.to_string(),
            store.to_string(),
        ];
        let report = python::run_script(&self.python, "responses_lanes.py", args).await;
        report["lanes"].clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let mut server = self.server;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), &mut server).await;
        server.abort();
        self.configured.wsfirst.shutdown().await;
        self.upstream.shutdown().await;
    }
}

/// Checks that a response is the whole answer, message for message.
fn assert_full_answer(response: &Value) {
    let answer = Answer::text(TEXT);
    let raw: Vec<&str> = response["raw"]
        .as_array()
        .unwrap_or_else(|| panic!("no raw messages in {response}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(raw, answer.messages(), "{response}");
    let types: Vec<&str> = response["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: Vec<&str> = (0..answer.len())
        .map(|index| answer.event_type(index).unwrap())
        .collect();
    assert_eq!(types, expected, "the SDK parsed every event: {response}");
    assert_eq!(response["delta_text"], TEXT, "{response}");
    assert_eq!(response["final"]["id"], Answer::RESPONSE_ID, "{response}");
    assert_eq!(response["final"]["status"], "completed", "{response}");
    assert_eq!(response["final"]["output_text"], TEXT, "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_several_responses_on_one_connection_over_the_upstream_websocket() {
    let gateway = Gateway::start().await;
    let responses = gateway.run(3).await;
    assert_eq!(responses.len(), 3);
    responses.iter().for_each(assert_full_answer);
    assert_eq!(gateway.upstream.ws_requests(), 3);
    assert_eq!(gateway.upstream.http_requests(), 0);
    assert_eq!(gateway.upstream.handshakes(), 1);
    assert!(
        gateway
            .upstream
            .captured()
            .iter()
            .all(|request| request.header("authorization") == Some("Bearer sk-test"))
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_the_same_messages_when_the_upstream_refuses_its_upgrade() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    let responses = gateway.run(3).await;
    responses.iter().for_each(assert_full_answer);
    assert_eq!(gateway.upstream.ws_requests(), 0);
    assert_eq!(gateway.upstream.http_requests(), 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gets_a_client_error_as_an_error_event_and_the_next_response() {
    let gateway = Gateway::start().await;
    gateway.upstream.push_answer(Answer::error(
        StatusCode::BAD_REQUEST,
        "invalid_value",
        "Invalid value: 'gpt-kit'.",
    ));
    let responses = gateway.run(2).await;
    let error = &responses[0]["final"];
    assert_eq!(error["error_status"], 400, "{error}");
    assert_eq!(error["error_code"], "invalid_value", "{error}");
    assert_eq!(error["error_type"], "invalid_request_error", "{error}");
    assert_full_answer(&responses[1]);
    // Executed once, never replayed over HTTP.
    assert_eq!(gateway.upstream.ws_requests(), 2);
    assert_eq!(gateway.upstream.http_requests(), 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_session_survives_the_upstream_websocket_dying_mid_response() {
    let gateway = Gateway::start().await;
    gateway.upstream.push_ws_script(WsScript::CloseAfterEvents {
        events: 4,
        code: 1011,
    });
    let responses = gateway.run(2).await;
    let broken = &responses[0];
    assert_eq!(broken["types"].as_array().unwrap().len(), 5, "{broken}");
    assert_eq!(broken["final"]["error_status"], 502, "{broken}");
    assert_eq!(
        broken["final"]["error_code"], "websocket_failed_mid_stream",
        "{broken}"
    );
    assert_eq!(broken["final"]["sequence_number"], 4, "{broken}");
    assert_full_answer(&responses[1]);
    assert_eq!(gateway.upstream.handshakes(), 2);
    assert_eq!(gateway.upstream.http_requests(), 0);
    gateway.stop().await;
}

/// Checks the lanes script's report: every lane got `turns` completed responses, each
/// continuing the previous (the upstream found every `previous_response_id`).
fn assert_lanes_completed(report: &Value, turns: usize) {
    for lane in ["alpha", "beta", "gamma"] {
        let responses = report[lane]
            .as_array()
            .unwrap_or_else(|| panic!("no lane {lane} in {report}"));
        assert_eq!(responses.len(), turns, "{report}");
        for response in responses {
            assert_eq!(response["status"], "completed", "{lane}: {report}");
            assert_eq!(response["output_text"], TEXT, "{lane}: {report}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_lanes_run_chained_store_false_turns_over_the_upstream_websocket() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_unique_response_ids(true);
    let report = gateway.run_lanes(3, false).await;
    assert_lanes_completed(&report, 3);
    assert_eq!(gateway.upstream.ws_requests(), 9);
    assert_eq!(gateway.upstream.http_requests(), 0);
    // The upstream never saw a lane, and every turn after the first continued its lane's
    // previous response.
    let captured = gateway.upstream.captured();
    assert!(
        captured
            .iter()
            .all(|request| request.json().unwrap().get("stream_id").is_none())
    );
    let chained = captured
        .iter()
        .filter(|request| {
            request
                .json()
                .unwrap()
                .get("previous_response_id")
                .is_some()
        })
        .count();
    assert_eq!(chained, 6);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_lanes_run_chained_stored_turns_over_http_when_the_upstream_refuses_its_upgrade() {
    let gateway = Gateway::start().await;
    gateway.upstream.set_unique_response_ids(true);
    gateway.upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    let report = gateway.run_lanes(2, true).await;
    assert_lanes_completed(&report, 2);
    assert_eq!(gateway.upstream.ws_requests(), 0);
    // Over HTTP, which refuses `stream_id` as an unknown parameter: the gateway removed it.
    assert_eq!(gateway.upstream.http_requests(), 6);
    gateway.stop().await;
}
