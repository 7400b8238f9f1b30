//! The official OpenAI Python SDK in WebSocket mode (`client.responses.connect()`) against the
//! gateway built from a TOML configuration (`Configured`, which mounts the client WebSocket on
//! the route's `GET`): several responses on one connection over the upstream's WebSocket, the
//! same messages when the upstream refuses its upgrade (served over HTTP), a client error, and
//! the upstream's WebSocket dying mid-session.
//!
//! Runs `tests/sdk/responses_connect.py` with Python as `tests/openai_sdk.rs` does
//! (`$WSFIRST_PYTHON`, else `.venv/bin/python`); the SDK's WebSocket mode needs the
//! `websockets` package (`pip install 'openai[realtime]'`). Without it these tests print how to
//! set it up and pass without checking anything, unless `WSFIRST_REQUIRE_SDK=1`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use http::StatusCode;
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use wsfirst::{Configured, config::Config};
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
    async fn start() -> Option<Self> {
        let python = python_with_websockets()?;
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
        Some(Self {
            upstream,
            configured,
            base_url: format!("http://{addr}/v1"),
            stop,
            server,
            python,
        })
    }

    /// Runs the script for `count` responses on one connection; its report's responses.
    async fn run(&self, count: usize) -> Vec<Value> {
        let (python, base_url) = (self.python.clone(), self.base_url.clone());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/responses_connect.py");
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&python)
                .arg(script)
                .arg(&base_url)
                .arg("sk-test")
                .arg(count.to_string())
                .env("NO_PROXY", "127.0.0.1,localhost")
                .env("no_proxy", "127.0.0.1,localhost")
                .env_remove("OPENAI_BASE_URL")
                .env_remove("OPENAI_WEBSOCKET_BASE_URL")
                .output()
        })
        .await
        .expect("the script's task")
        .expect("run the python sdk script");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the sdk script failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        let report: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|error| panic!("the sdk script printed no report ({error}): {stdout}"));
        report["responses"]
            .as_array()
            .unwrap_or_else(|| panic!("no responses in {report}"))
            .clone()
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

/// A Python that can `import openai, websockets`, as `tests/openai_sdk.rs` finds one.
fn python_with_websockets() -> Option<PathBuf> {
    let venv = if cfg!(windows) {
        ".venv/Scripts/python.exe"
    } else {
        ".venv/bin/python"
    };
    let python = std::env::var_os("WSFIRST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(venv));
    let problem = match Command::new(&python)
        .args(["-c", "import openai, websockets"])
        .output()
    {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => format!(
            "{} cannot import openai and websockets: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(error) => format!("cannot run {}: {error}", python.display()),
    };
    let setup = "set up the SDK with `python3 -m venv .venv && .venv/bin/pip install 'openai[realtime]'` \
                 at the repository root, or point WSFIRST_PYTHON at a Python that has it";
    if std::env::var("WSFIRST_REQUIRE_SDK").is_ok_and(|value| value == "1") {
        panic!(
            "WSFIRST_REQUIRE_SDK=1 but the OpenAI SDK's websocket mode is not available: {problem}; {setup}"
        );
    }
    eprintln!("skipping the OpenAI SDK websocket test, nothing was checked: {problem}; {setup}");
    None
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
    let Some(gateway) = Gateway::start().await else {
        return;
    };
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
    let Some(gateway) = Gateway::start().await else {
        return;
    };
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
    let Some(gateway) = Gateway::start().await else {
        return;
    };
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
    let Some(gateway) = Gateway::start().await else {
        return;
    };
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
