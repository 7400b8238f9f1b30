//! The gateway program (`wsfirst-gateway`) run as a child process, as people run it.
//!
//! Each test starts a scriptable upstream on `127.0.0.1` (the `testing` kit) in this process,
//! writes a TOML configuration whose routes point at it (`listen = "127.0.0.1:0"`) to a
//! temporary file, starts the `wsfirst-gateway` binary on it, reads the `listening on
//! http://ADDR` line from its stdout and talks HTTP/1.1 to it over loopback. The child's stdout
//! and stderr are captured; a guard kills the child (and removes the file) if a test fails.
//!
//! Cargo builds the binary before it runs this test (`CARGO_BIN_EXE_wsfirst-gateway`).
//!
//! Real time appears only as generous deadlines (a child process cannot run on paused time) and
//! in the graceful-shutdown test's slow upstream; no test asserts on a duration.

use std::{
    io::{BufRead, BufReader, ErrorKind, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use wsfirst::{REASON_HEADER, TRANSPORT_HEADER};
use wsfirst_gateway::{Configured, config::Config};
use wsfirst_websocket::testing::{Answer, TestUpstream, WsScript};

/// The text the upstream answers with.
const TEXT: &str = "Hello from the scripted upstream, through the gateway binary.";

/// A bound on any one wait (for the child to start, answer or exit), so that a broken gateway
/// fails the test instead of hanging it. Never asserted on.
const DEADLINE: Duration = Duration::from_secs(20);

/// A streaming Responses API request body.
const STREAM_BODY: &str = r#"{"model":"gpt-test","input":"Say hello.","stream":true}"#;

/// The gateway binary, which cargo builds before this test.
fn gateway_binary() -> PathBuf {
    env!("CARGO_BIN_EXE_wsfirst-gateway").into()
}

/// A configuration file in the temporary directory, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(text: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "wsfirst-gateway-test-{}-{}-{nanos}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The configuration of the tests: one auto route to `upstream`, pinned after two failures in
/// a row for long enough that no probe happens during a test, and the override header on.
/// The environment variable holding the admin token, and the token the tests give it.
const ADMIN_TOKEN_ENV: &str = "WSFIRST_TEST_ADMIN_TOKEN";
const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const ADMIN_AUTH: (&str, &str) = ("authorization", "Bearer test-admin-token-0123456789");

fn config_text(upstream: &TestUpstream) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"

[eligibility]
websocket_pairs = [["openai", "openai-responses"]]
override_header = "x-wsfirst-transport"

[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "{http}"
ws_url = "{ws}"
mode = "auto"

[routes.breaker]
consecutive_failures = 2
open_duration = "10m"

[admin]
listen = "127.0.0.1:0"
token_env = "{ADMIN_TOKEN_ENV}"
"#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    )
}

/// Output captured from one of the child's pipes.
type Captured = Arc<Mutex<Vec<u8>>>;

fn text_of(captured: &Captured) -> String {
    let bytes = captured.lock().unwrap_or_else(|poison| poison.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Copies a pipe into `captured` until it closes.
fn capture(mut pipe: impl Read + Send + 'static, captured: Captured) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(read @ 1..) = pipe.read(&mut buffer) {
            captured
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .extend_from_slice(&buffer[..read]);
        }
    })
}

/// Copies stdout into `captured` line by line, sending the address of the first `listening on
/// http://ADDR` line.
fn capture_stdout(
    stdout: ChildStdout,
    captured: Captured,
    listening: mpsc::Sender<SocketAddr>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while let Ok(1..) = reader.read_line(&mut line) {
            if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                if let Ok(addr) = addr.parse() {
                    let _ = listening.send(addr);
                }
            }
            captured
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .extend_from_slice(line.as_bytes());
            line.clear();
        }
    })
}

/// The gateway as a child process. Dropping it kills the child if it is still running.
struct Gateway {
    child: Child,
    stdout: Captured,
    stderr: Captured,
    /// The threads copying the pipes; they end when the child's pipes close.
    readers: Vec<JoinHandle<()>>,
    _config: Option<TempConfig>,
}

impl Gateway {
    /// Starts the gateway with `arg` as its one argument and `RUST_LOG=<log>`, capturing its
    /// output.
    fn spawn(
        arg: &Path,
        config: Option<TempConfig>,
        log: &str,
    ) -> (Self, mpsc::Receiver<SocketAddr>) {
        let mut child = Command::new(gateway_binary())
            .arg(arg)
            .env("RUST_LOG", log)
            .env(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway binary");
        let stdout = Captured::default();
        let stderr = Captured::default();
        let (listening, addr) = mpsc::channel();
        let readers = vec![
            capture_stdout(
                child.stdout.take().expect("piped stdout"),
                Arc::clone(&stdout),
                listening,
            ),
            capture(
                child.stderr.take().expect("piped stderr"),
                Arc::clone(&stderr),
            ),
        ];
        let gateway = Gateway {
            child,
            stdout,
            stderr,
            readers,
            _config: config,
        };
        (gateway, addr)
    }

    /// Starts the gateway on `config` and waits for its `listening on` line.
    async fn start(config: &str, log: &str) -> (Self, SocketAddr) {
        let config = TempConfig::new(config);
        let path = config.0.clone();
        let (gateway, addr) = Gateway::spawn(&path, Some(config), log);
        let addr = tokio::task::spawn_blocking(move || addr.recv_timeout(DEADLINE))
            .await
            .expect("the waiting task");
        match addr {
            Ok(addr) => (gateway, addr),
            Err(error) => panic!(
                "the gateway printed no `listening on http://ADDR` line ({error})\n{}",
                gateway.output()
            ),
        }
    }

    /// The admin listener's address, from its `admin listening on http://ADDR` line (printed
    /// before the public one).
    fn admin_addr(&self) -> SocketAddr {
        text_of(&self.stdout)
            .lines()
            .find_map(|line| line.trim().strip_prefix("admin listening on http://"))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no `admin listening on` line\n{}", self.output()))
    }

    /// Everything the child printed so far.
    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            text_of(&self.stdout),
            text_of(&self.stderr)
        )
    }

    /// Sends SIGTERM to the child.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the child to exit, failing (after killing it) if it does not within the
    /// deadline.
    async fn wait(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                // Everything the child wrote is captured once its pipes are drained.
                let readers = std::mem::take(&mut self.readers);
                tokio::task::spawn_blocking(move || {
                    for reader in readers {
                        let _ = reader.join();
                    }
                })
                .await
                .expect("join the output readers");
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the gateway did not exit within {DEADLINE:?}\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Opens a new connection to `addr` and sends one HTTP/1.1 request on it.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response<Incoming> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, addr.to_string());
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
        Ok::<_, wsfirst::core::BoxError>(sender.send_request(request).await?)
    };
    match tokio::time::timeout(DEADLINE, exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => panic!("{path}: the request failed: {error}"),
        Err(_) => panic!("{path}: no response head within {DEADLINE:?}"),
    }
}

/// The whole body of `response` as text.
async fn body_text(response: Response<Incoming>) -> String {
    let body = tokio::time::timeout(DEADLINE, response.into_body().collect())
        .await
        .expect("the body ends within the deadline")
        .expect("the body arrives without error")
        .to_bytes();
    String::from_utf8(body.to_vec()).expect("the body is UTF-8")
}

/// A streaming request with `Authorization: Bearer <key>` (and `extra` headers): the status,
/// the transport and reason headers, and the body.
async fn stream_request(
    addr: SocketAddr,
    key: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, String, String, String) {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    let response = send(addr, Method::POST, "/v1/responses", &headers, STREAM_BODY).await;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("<missing>")
            .to_owned()
    };
    let transport = header(TRANSPORT_HEADER);
    let reason = header(REASON_HEADER);
    (status, transport, reason, body_text(response).await)
}

/// The breaker key name (as the admin endpoint shows it) of requests with `Authorization:
/// Bearer <key>` on the configuration's first route.
fn breaker_key_name(config: &str, key: &str) -> String {
    let config = Config::from_toml_str(config).expect("the test configuration is valid");
    let configured = Configured::from_config(&config).expect("the stack builds");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {key}").parse().expect("a header value"),
    );
    configured.routes[0]
        .1
        .route()
        .breaker_key_for(&headers)
        .to_string()
}

/// The state of breaker key `name` in `GET /admin/transport`, `None` if it is not listed.
async fn admin_state(addr: SocketAddr, name: &str) -> Option<String> {
    let response = send(addr, Method::GET, "/admin/transport", &[ADMIN_AUTH], "").await;
    assert_eq!(response.status(), StatusCode::OK, "GET /admin/transport");
    let body = body_text(response).await;
    let snapshot: Value = serde_json::from_str(&body).expect("the snapshot is JSON");
    snapshot["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {snapshot}"))
        .iter()
        .find(|entry| entry["key"] == name)
        .map(|entry| entry["state"].as_str().unwrap_or("<no state>").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_websocket_falls_back_pins_and_unpins() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let expected = Answer::text(TEXT).sse();
    // The test names breaker keys as the gateway does (`breaker_key_name`): both take their
    // fingerprint key from a variable that cargo sets for this process and the gateway inherits.
    // With a random key each, the two would name every credential's key differently.
    let config = format!(
        "fingerprint_key_env = \"CARGO_PKG_DESCRIPTION\"\n{}",
        config_text(&upstream)
    );
    let (gateway, addr) = Gateway::start(&config, "info").await;

    // The WebSocket serves the first key.
    let (status, transport, reason, body) = stream_request(addr, "sk-ws", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", gateway.output());
    assert_eq!(
        (transport.as_str(), reason.as_str()),
        ("websocket", "websocket")
    );
    assert_eq!(body, expected);
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);

    // Upgrades are refused from now on; a second key (no pooled connection) falls back to HTTP
    // with the same bytes, twice, then is pinned: HTTP without a handshake.
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    for attempt in 1..=2 {
        let handshakes = upstream.handshakes();
        let (status, transport, reason, body) = stream_request(addr, "sk-refused", &[]).await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: {body}");
        assert_eq!(
            (transport.as_str(), reason.as_str()),
            ("http", "fallback"),
            "attempt {attempt}"
        );
        assert_eq!(body, expected, "attempt {attempt}");
        assert_eq!(upstream.handshakes(), handshakes + 1, "attempt {attempt}");
    }
    assert_eq!(upstream.http_requests(), 2);
    let handshakes = upstream.handshakes();
    let (status, transport, reason, body) = stream_request(addr, "sk-refused", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((transport.as_str(), reason.as_str()), ("http", "pinned"));
    assert_eq!(body, expected);
    assert_eq!(
        upstream.handshakes(),
        handshakes,
        "a pinned key does not try the WebSocket"
    );
    assert_eq!(upstream.http_requests(), 3);
    assert_eq!(upstream.ws_requests(), 1, "nothing was executed twice");

    // The admin endpoint lists the pinned key as open, the other one as closed.
    let refused = breaker_key_name(&config, "sk-refused");
    let healthy = breaker_key_name(&config, "sk-ws");
    assert_ne!(refused, healthy, "keys are scoped to the credential");
    let public = addr;
    let addr = gateway.admin_addr();
    assert_eq!(admin_state(addr, &refused).await.as_deref(), Some("open"));
    assert_eq!(admin_state(addr, &healthy).await.as_deref(), Some("closed"));

    // Unpinning closes it, and with the upgrade healed the key is served by the WebSocket again.
    let unpin = serde_json::json!({ "key": refused }).to_string();
    let response = send(
        addr,
        Method::POST,
        "/admin/transport/unpin",
        &[ADMIN_AUTH],
        &unpin,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let snapshot: Value =
        serde_json::from_str(&body_text(response).await).expect("the unpin answer is JSON");
    assert_eq!(snapshot["key"], refused.as_str(), "{snapshot}");
    assert_eq!(snapshot["state"], "closed", "{snapshot}");
    assert_eq!(admin_state(addr, &refused).await.as_deref(), Some("closed"));
    upstream.set_default_ws_script(WsScript::Accept);
    let (_, transport, reason, body) = stream_request(public, "sk-refused", &[]).await;
    assert_eq!(
        (transport.as_str(), reason.as_str()),
        ("websocket", "websocket")
    );
    assert_eq!(body, expected);

    // An unknown key is a 404 that names it, not a panic.
    let unknown = serde_json::json!({ "key": "no such key" }).to_string();
    let response = send(
        addr,
        Method::POST,
        "/admin/transport/unpin",
        &[ADMIN_AUTH],
        &unknown,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(body_text(response).await.contains("no such key"));

    // The metrics saw it all.
    let response = send(addr, Method::GET, "/metrics", &[ADMIN_AUTH], "").await;
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = body_text(response).await;
    for name in [
        "wsfirst_eligibility_decisions_total",
        "wsfirst_breaker_transitions_total",
        "wsfirst_fallbacks_total",
    ] {
        assert!(metrics.contains(name), "no {name} in /metrics:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("wsfirst_breaker_transitions_total")
                && line.contains(r#"to="open""#)),
        "no transition to open in /metrics:\n{metrics}"
    );
    drop(gateway);
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_authorization_and_never_logs_it() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let expected = Answer::text(TEXT).sse();
    let config = config_text(&upstream);
    let (mut gateway, addr) = Gateway::start(&config, "trace").await;

    // Over the WebSocket, over HTTP by request, and over HTTP after a refused upgrade.
    let websocket_secret = "sk-live-SECRET-websocket-5f2a9c";
    let fallback_secret = "sk-live-SECRET-fallback-81d3e7";
    let (status, transport, _, body) = stream_request(addr, websocket_secret, &[]).await;
    assert_eq!((status, transport.as_str()), (StatusCode::OK, "websocket"));
    assert_eq!(body, expected);
    let (status, transport, reason, body) =
        stream_request(addr, websocket_secret, &[("x-wsfirst-transport", "http")]).await;
    assert_eq!(
        (status, transport.as_str(), reason.as_str()),
        (StatusCode::OK, "http", "request_override")
    );
    assert_eq!(body, expected);
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));
    let (status, transport, reason, body) = stream_request(addr, fallback_secret, &[]).await;
    assert_eq!(
        (status, transport.as_str(), reason.as_str()),
        (StatusCode::OK, "http", "fallback")
    );
    assert_eq!(body, expected);

    // Each request reached the upstream with its client's header, over the transport that
    // served it.
    let seen: Vec<(String, Option<String>)> = upstream
        .captured()
        .iter()
        .map(|request| {
            (
                request.transport.as_str().to_owned(),
                request.header("authorization").map(str::to_owned),
            )
        })
        .collect();
    let bearer = |secret: &str| Some(format!("Bearer {secret}"));
    assert_eq!(
        seen,
        vec![
            ("websocket".to_owned(), bearer(websocket_secret)),
            ("http".to_owned(), bearer(websocket_secret)),
            ("http".to_owned(), bearer(fallback_secret)),
        ]
    );

    // Stop it so that everything it would log is in the captured output.
    gateway.terminate();
    let status = gateway.wait().await;
    assert!(status.success(), "exit {status}\n{}", gateway.output());
    let output = gateway.output();
    assert!(
        output.contains("DEBUG") && output.contains("/v1/responses"),
        "RUST_LOG=debug logged no request line, so the check below would prove nothing:\n{output}"
    );
    for secret in [websocket_secret, fallback_secret] {
        assert!(
            !output.contains(secret),
            "the gateway's output contains the credential {secret:?}:\n{output}"
        );
    }
    assert!(
        !output.contains("SECRET"),
        "the gateway's output contains part of a credential:\n{output}"
    );
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_stream_in_flight_finish_then_exits_cleanly() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let answer = Answer::text(TEXT);
    let config = config_text(&upstream);
    let (mut gateway, addr) = Gateway::start(&config, "info").await;
    upstream.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(100),
    });

    let response = send(addr, Method::POST, "/v1/responses", &[], STREAM_BODY).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", gateway.output());
    assert_eq!(response.headers()[TRANSPORT_HEADER], "websocket");
    let mut body = response.into_body();
    // Read up to the first whole event, so the stream is known to be in flight.
    let mut received = Vec::new();
    while !received.windows(2).any(|window| window == b"\n\n") {
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("the first event arrives within the deadline")
            .expect("the stream has a first event")
            .expect("the stream has no error");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    let first = answer.sse_frame(0).expect("the answer has a first event");
    assert!(
        received.starts_with(first.as_bytes()),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        received.len() < answer.sse().len(),
        "the whole stream arrived before the signal: the test would not test draining"
    );

    gateway.terminate();

    // The gateway stops accepting connections (while the stream is still being drained): a
    // connection attempt is refused, or reset when it raced with the listener closing.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect(addr).await {
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) =>
            {
                break;
            }
            Err(error) => panic!("connecting after SIGTERM: unexpected error {error:?}"),
            Ok(stream) => drop(stream),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway still accepts connections {DEADLINE:?} after SIGTERM\n{}",
            gateway.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The stream in flight still completes with every event.
    let rest = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("the stream ends within the deadline")
        .expect("the stream in flight ends without error")
        .to_bytes();
    received.extend_from_slice(&rest);
    assert_eq!(String::from_utf8_lossy(&received), answer.sse());

    let status = gateway.wait().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status}\n{}",
        gateway.output()
    );
    let output = gateway.output();
    assert!(
        output.contains("requests in flight finished") && output.contains("stopped"),
        "the gateway did not drain and stop as planned:\n{output}"
    );
    assert_eq!(upstream.ws_requests(), 1);
    assert_eq!(upstream.http_requests(), 0);
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_requests_get_the_same_json_over_both_transports() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text(TEXT));
    let answer = Answer::text(TEXT);
    let expected = answer
        .final_json()
        .expect("the answer has a final response");
    let (gateway, addr) = Gateway::start(&config_text(&upstream), "info").await;
    let body = r#"{"model":"gpt-test","input":"Say hello."}"#;

    for (key, expected_transport) in [("sk-ws", "websocket"), ("sk-refused", "http")] {
        if expected_transport == "http" {
            upstream.set_default_ws_script(WsScript::refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "wrong websocket endpoint",
            ));
        }
        let bearer = format!("Bearer {key}");
        let headers = [("authorization", bearer.as_str())];
        let response = send(addr, Method::POST, "/v1/responses", &headers, body).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", gateway.output());
        assert_eq!(response.headers()[TRANSPORT_HEADER], expected_transport);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{expected_transport}"
        );
        assert_eq!(body_text(response).await, expected, "{expected_transport}");
    }
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (1, 1));
    drop(gateway);
    upstream.shutdown().await;
}

/// Runs the gateway on `arg`, expecting it to fail at start-up: its exit status and output.
async fn failed_start(arg: &Path, config: Option<TempConfig>) -> (ExitStatus, String, String) {
    let (mut gateway, _addr) = Gateway::spawn(arg, config, "info");
    let status = gateway.wait().await;
    let stdout = text_of(&gateway.stdout);
    let stderr = text_of(&gateway.stderr);
    (status, stdout, stderr)
}

fn assert_clean_failure(status: ExitStatus, stdout: &str, stderr: &str, expected: &[&str]) {
    assert_eq!(
        status.code(),
        Some(1),
        "exit {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("listening on"), "it started: {stdout}");
    assert!(
        !stderr.contains("panicked"),
        "a panic instead of an error message:\n{stderr}"
    );
    for part in expected {
        assert!(
            stderr.contains(part),
            "the error does not name {part:?}:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn a_missing_config_file_is_an_error_naming_it() {
    let missing = std::env::temp_dir().join(format!(
        "wsfirst-gateway-test-{}-missing.toml",
        std::process::id()
    ));
    let (status, stdout, stderr) = failed_start(&missing, None).await;
    let name = missing.display().to_string();
    assert_clean_failure(status, &stdout, &stderr, &[name.as_str()]);
}

#[tokio::test]
async fn an_invalid_config_is_an_error_naming_the_field() {
    let config = TempConfig::new(
        r#"
listen = "127.0.0.1:0"

[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "http://127.0.0.1:9/v1/responses"

[routes.breaker]
open_duration = "3x"
"#,
    );
    let path = config.0.clone();
    let (status, stdout, stderr) = failed_start(&path, Some(config)).await;
    let name = path.display().to_string();
    assert_clean_failure(
        status,
        &stdout,
        &stderr,
        &[name.as_str(), "routes[0].breaker.open_duration", "\"3x\""],
    );
}

#[tokio::test]
async fn a_config_that_is_not_toml_is_an_error_naming_the_line() {
    let config = TempConfig::new("listen = \"127.0.0.1:0\"\n[[routes]\npath = \"/v1\"\n");
    let path = config.0.clone();
    let (status, stdout, stderr) = failed_start(&path, Some(config)).await;
    let name = path.display().to_string();
    assert_clean_failure(status, &stdout, &stderr, &[name.as_str(), "line 2"]);
}

/// The admin surface is private: not on the public listener at all, and on its own listener only
/// with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_metrics_are_on_their_own_listener_behind_the_token() {
    let upstream = TestUpstream::start().await;
    let (gateway, public) = Gateway::start(&config_text(&upstream), "info").await;
    let admin = gateway.admin_addr();
    assert_ne!(admin, public);
    for path in ["/admin/transport", "/metrics"] {
        let response = send(public, Method::GET, path, &[ADMIN_AUTH], "").await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} on the public listener"
        );
        for headers in [
            &[][..],
            &[("authorization", "Bearer not-the-admin-token-at-all")][..],
        ] {
            let response = send(admin, Method::GET, path, headers, "").await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {headers:?}"
            );
        }
        let response = send(admin, Method::GET, path, &[ADMIN_AUTH], "").await;
        assert_eq!(response.status(), StatusCode::OK, "{path} with the token");
    }
    let pin = serde_json::json!({ "key": "anything", "for": "1m" }).to_string();
    let response = send(admin, Method::POST, "/admin/transport/pin", &[], &pin).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !gateway.output().contains(ADMIN_TOKEN),
        "the admin token was printed:\n{}",
        gateway.output()
    );
    drop(gateway);
    upstream.shutdown().await;
}

/// Runs the binary with `args` to its end: exit status, stdout, stderr.
fn run_to_end(args: &[&std::ffi::OsStr]) -> (ExitStatus, String, String) {
    let output = Command::new(gateway_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the gateway binary");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status, text(output.stdout), text(output.stderr))
}

#[test]
fn check_prints_the_effective_configuration_with_secrets_redacted() {
    let config = TempConfig::new(
        r#"
fingerprint_key_env = "CARGO_PKG_DESCRIPTION"

[breaker_store]
redis_url = "redis://:hunter2-redis-password@redis.internal:6379/0"

[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "https://api.example/v1/responses?key=sk-in-the-query"
ws_url = "wss://api.example/v1/responses"
open = true

[routes.headers]
Authorization = "Bearer sk-held-by-the-gateway"

[routes.breaker]
consecutive_failures = 3
"#,
    );
    let (status, stdout, stderr) = run_to_end(&["--check".as_ref(), config.0.as_os_str()]);
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    // Every default is filled in by the layer that owns it.
    for shown in [
        ": ok",
        "routes[0].breaker = key openai wss://api.example/v1/responses",
        "(from routes[0] (path \"/v1/responses\")) = BreakerConfig",
        "consecutive: Some(3)",
        "handshake_timeout: 5s",
        "redis.internal:6379",
        "https://api.example/v1/responses",
        "header_read_timeout: 10s",
    ] {
        assert!(stdout.contains(shown), "{shown:?} not in:\n{stdout}");
    }
    for secret in ["hunter2", "sk-in-the-query", "sk-held-by-the-gateway"] {
        assert!(!stdout.contains(secret), "{secret} in:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} in:\n{stderr}");
    }
    assert!(!stdout.contains("listening on"), "it served: {stdout}");
}

#[test]
fn check_names_what_is_wrong_and_exits_with_1() {
    let cases = [
        (
            "[[routes]]\npath = \"/v1\"\nprovider = \"p\"\napi = \"a\"\nhttp_url = \"http://127.0.0.1:9/\"\n[routes.breaker]\nopen_duration = \"3x\"\n",
            "routes[0].breaker.open_duration",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:9091\"\n",
            "admin.token_env: required when admin.listen (0.0.0.0:9091) is not a loopback address",
        ),
        (
            "[admin]\nlisten = \"127.0.0.1:9091\"\ntoken_env = \"WSFIRST_SURELY_UNSET_ADMIN_TOKEN\"\n",
            "admin.token_env: environment variable \"WSFIRST_SURELY_UNSET_ADMIN_TOKEN\"",
        ),
    ];
    for (text, expected) in cases {
        let config = TempConfig::new(text);
        let (status, stdout, stderr) = run_to_end(&["--check".as_ref(), config.0.as_os_str()]);
        assert_eq!(status.code(), Some(1), "{text}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains(&config.0.display().to_string()) && stderr.contains(expected),
            "{expected:?} not in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn an_admin_listener_off_loopback_without_a_token_does_not_start() {
    let config = TempConfig::new("listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"0.0.0.0:0\"\n");
    let path = config.0.clone();
    let (status, stdout, stderr) = failed_start(&path, Some(config)).await;
    assert_clean_failure(
        status,
        &stdout,
        &stderr,
        &["admin.token_env", "not a loopback address"],
    );
}

#[test]
fn version_help_and_wrong_arguments() {
    let (status, stdout, _) = run_to_end(&["--version".as_ref()]);
    assert!(status.success());
    assert_eq!(
        stdout.trim(),
        format!("wsfirst-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let (status, stdout, _) = run_to_end(&["--help".as_ref()]);
    assert!(status.success());
    assert!(stdout.contains("--check CONFIG.toml"), "{stdout}");
    let (status, stdout, stderr) = run_to_end(&["--chek".as_ref(), "x.toml".as_ref()]);
    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("unknown option \"--chek\""), "{stderr}");
    assert!(stderr.contains("usage: wsfirst-gateway"), "{stderr}");
}

#[tokio::test]
async fn the_admin_listener_has_the_public_listener_s_limits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // One connection at a time and one second to send the headers, on both listeners.
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\
         [server]\nheader_read_timeout = \"1s\"\nmax_connections = 1\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{ADMIN_TOKEN_ENV}\"\n"
    );
    let (gateway, _public) = Gateway::start(&config, "info").await;
    let admin = gateway.admin_addr();

    // A client that never finishes its headers holds the one connection...
    let mut silent = TcpStream::connect(admin).await.unwrap();
    silent
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\n")
        .await
        .unwrap();
    // ...so a full request waits in the backlog until the header timeout closes the first.
    let mut full = TcpStream::connect(admin).await.unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nhost: admin\r\nauthorization: {}\r\nconnection: close\r\n\r\n",
        ADMIN_AUTH.1
    );
    full.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0_u8; 1];
    let first = tokio::time::timeout(DEADLINE, async {
        tokio::select! {
            closed = silent.read(&mut byte) => ("silent closed", closed.map(drop).is_ok()),
            read = full.read_to_end(&mut answer) => ("full answered", read.is_ok()),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("neither connection moved\n{}", gateway.output()));
    assert_eq!(first.0, "silent closed", "{}", gateway.output());
    tokio::time::timeout(DEADLINE, full.read_to_end(&mut answer))
        .await
        .expect("the full request is answered once the slot is free")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
