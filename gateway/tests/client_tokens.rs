//! A route whose `[routes.headers]` hold the upstream credential asks clients for a token of
//! their own (`client_tokens_env`) unless it says `open = true`. The gateway binary runs as a
//! child process with the tokens in its environment (as people run it); raw HTTP/1.1 and
//! WebSocket upgrades over 127.0.0.1; `--check` names what is wrong with the file or the
//! variable.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{connect_async, tungstenite::client::IntoClientRequest};
use wsfirst_websocket::testing::TestUpstream;

const TOKENS_ENV: &str = "WSFIRST_TEST_CLIENT_TOKENS";
const TOKEN: &str = "client-token-0123456789";
const HELD: &str = "Bearer sk-held-by-the-gateway";
/// A bound on any one wait, so that a broken gateway fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(20);

/// A configuration file in the temporary directory, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(text: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "wsfirst-client-tokens-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).expect("write the configuration");
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A route to `upstream` that holds the key in `[routes.headers]`, with `extra` route lines.
fn config(upstream: &TestUpstream, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"

[eligibility]
websocket_pairs = [["local", "responses"]]

[[routes]]
path = "/v1/responses"
provider = "local"
api = "responses"
http_url = "{http}"
ws_url = "{ws}"
{extra}

[routes.headers]
Authorization = "{HELD}"
"#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    )
}

/// The gateway binary as a child, killed on drop.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    _config: TempConfig,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the gateway on `text` with `tokens` in [`TOKENS_ENV`]; waits for its address.
async fn start(text: &str, tokens: &str) -> Gateway {
    let config = TempConfig::new(text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsfirst-gateway"))
        .arg(&config.0)
        .env(TOKENS_ENV, tokens)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines.by_ref().map_while(Result::ok).find_map(|line| {
            line.trim()
                .strip_prefix("listening on http://")
                .and_then(|addr| addr.parse::<SocketAddr>().ok())
        });
        // Keep reading, so that the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        addr
    });
    let addr = tokio::time::timeout(DEADLINE, addr)
        .await
        .expect("the gateway starts in time")
        .unwrap()
        .expect("a `listening on` line");
    Gateway {
        child,
        addr,
        _config: config,
    }
}

/// A raw JSON `POST` with this `Authorization` (none: no header); the whole answer.
async fn post(addr: SocketAddr, authorization: Option<&str>) -> String {
    let body = r#"{"model":"m","input":"hi"}"#;
    let authorization = authorization
        .map(|value| format!("authorization: {value}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{authorization}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status of a client WebSocket upgrade with this `Authorization`.
async fn upgrade(addr: SocketAddr, authorization: Option<&str>) -> StatusCode {
    let mut request = format!("ws://{addr}/v1/responses")
        .into_client_request()
        .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    match tokio::time::timeout(DEADLINE, connect_async(request))
        .await
        .expect("the upgrade is answered")
    {
        Ok((_, response)) => response.status(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn a_route_holding_the_key_needs_a_client_token_from_the_environment() {
    let upstream = TestUpstream::start().await;
    let gateway = start(
        &config(&upstream, &format!("client_tokens_env = \"{TOKENS_ENV}\"")),
        &format!(" other-client-token-000, {TOKEN} "),
    )
    .await;
    let addr = gateway.addr;
    for wrong in [None, Some("Bearer wrong-token-0123456789"), Some(HELD)] {
        let answer = post(addr, wrong).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{wrong:?}: {answer}");
        assert!(answer.contains("www-authenticate: Bearer"), "{answer}");
        assert!(answer.contains("invalid_api_key"), "{answer}");
        assert_eq!(upgrade(addr, wrong).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(upstream.http_requests() + upstream.ws_requests(), 0);

    let answer = post(addr, Some(&format!("Bearer {TOKEN}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let client = format!("Bearer {TOKEN}");
    assert_eq!(
        upgrade(addr, Some(&client)).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    let captured = upstream.captured();
    assert!(!captured.is_empty());
    for request in captured {
        assert_eq!(request.headers["authorization"], HELD);
        assert!(!format!("{:?}", request.headers).contains(TOKEN));
    }
    drop(gateway);
    upstream.shutdown().await;
}

#[tokio::test]
async fn an_open_route_asks_for_no_token() {
    let upstream = TestUpstream::start().await;
    let gateway = start(&config(&upstream, "open = true"), "").await;
    let answer = post(gateway.addr, None).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(upstream.captured()[0].headers["authorization"], HELD);
    drop(gateway);
    upstream.shutdown().await;
}

/// `--check` on `text` with `tokens` in [`TOKENS_ENV`] (`None`: not set): exit code, stdout,
/// stderr.
fn check(text: &str, tokens: Option<&str>) -> (Option<i32>, String, String) {
    let config = TempConfig::new(text);
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsfirst-gateway"));
    command.arg("--check").arg(&config.0).env_remove("RUST_LOG");
    match tokens {
        Some(tokens) => command.env(TOKENS_ENV, tokens),
        None => command.env_remove(TOKENS_ENV),
    };
    let output = command.output().expect("run the gateway binary");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[tokio::test]
async fn check_names_a_held_key_without_client_tokens_and_bad_variables() {
    let upstream = TestUpstream::start().await;
    let with_env = format!("client_tokens_env = \"{TOKENS_ENV}\"");
    let cases = [
        (
            config(&upstream, ""),
            Some(TOKEN),
            "routes[0].client_tokens_env: route \"/v1/responses\" holds the upstream credential in routes.headers (\"authorization\") but has no client_tokens_env and is not open = true",
        ),
        (
            config(&upstream, &with_env),
            None,
            &format!(
                "routes[0].client_tokens_env: environment variable \"{TOKENS_ENV}\" is not set"
            ),
        ),
        (
            config(&upstream, &with_env),
            Some(" , "),
            &format!(
                "routes[0].client_tokens_env: environment variable \"{TOKENS_ENV}\" is set but holds no token"
            ),
        ),
        (
            config(&upstream, &with_env),
            Some("short"),
            "client token 1 is 5 characters long: it must have at least 16",
        ),
        (
            config(&upstream, &format!("{with_env}\nopen = true")),
            Some(TOKEN),
            "routes[0].open: a route with client_tokens_env is not open",
        ),
    ];
    for (text, tokens, expected) in cases {
        let (code, stdout, stderr) = check(&text, tokens);
        assert_eq!(code, Some(1), "{expected}\n{stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
        assert!(!stderr.contains("sk-held"), "{stderr}");
    }
    let (code, stdout, stderr) = check(&config(&upstream, &with_env), Some(TOKEN));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "routes[0].client_tokens = 1 token(s) from ${TOKENS_ENV}"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN), "{stdout}");
    let (code, stdout, _) = check(&config(&upstream, "open = true"), None);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("routes[0].client_tokens = none: OPEN"),
        "{stdout}"
    );
    upstream.shutdown().await;
}
