//! The gateway program (`wsfirst-gateway`, which cargo builds before the test) as a child
//! process on a TOML configuration whose one route points at the test kit: started on
//! `127.0.0.1:0`, its address read from its `listening on http://ADDR` line, its output kept
//! for the test's messages, killed when dropped.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use wsfirst_websocket::testing::TestUpstream;

/// A bound on the wait for the gateway to start. Never asserted on.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The gateway's configuration: the Responses API at `/v1/responses` (Codex's `base_url` is
/// `/v1`) in transport `mode` (`auto`: WebSocket first, HTTP when the upstream WebSocket
/// fails; `http`: never the WebSocket), client WebSocket connections accepted (the default).
fn config_text(upstream: &TestUpstream, mode: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"

[eligibility]
websocket_pairs = [["openai", "openai-responses"]]

[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "{http}"
ws_url = "{ws}"
mode = "{mode}"
"#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    )
}

/// The running gateway.
pub(crate) struct Gateway {
    child: Child,
    /// `host:port` it listens on.
    pub(crate) addr: String,
    output: Arc<Mutex<String>>,
    /// The threads copying its stdout and stderr; they end when it exits.
    readers: Vec<JoinHandle<()>>,
    config: PathBuf,
}

impl Gateway {
    /// Starts the gateway in front of `upstream`, its route in transport `mode`, and waits for
    /// its `listening on` line.
    pub(crate) fn start(upstream: &TestUpstream, mode: &str) -> Self {
        let config = std::env::temp_dir().join(format!(
            "wsfirst-codex-gateway-{}-{}.toml",
            std::process::id(),
            upstream.addr().port()
        ));
        std::fs::write(&config, config_text(upstream, mode)).expect("write the gateway's config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsfirst-gateway"))
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway binary");
        let output = Arc::new(Mutex::new(String::new()));
        let (listening, addr) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut readers = Vec::new();
        {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                        let _ = listening.send(addr.to_owned());
                    }
                    push(&output, &line);
                }
            }));
        }
        let mut stderr = child.stderr.take().expect("piped stderr");
        {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                    push(&output, &String::from_utf8_lossy(&buffer[..read]));
                }
            }));
        }
        let mut gateway = Gateway {
            child,
            addr: String::new(),
            output,
            readers,
            config,
        };
        match addr.recv_timeout(START_DEADLINE) {
            Ok(addr) => gateway.addr = addr,
            Err(error) => panic!(
                "the gateway printed no `listening on` line ({error})\n{}",
                gateway.output()
            ),
        }
        gateway
    }

    /// Everything it printed so far.
    pub(crate) fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Stops it and gives everything it printed.
    pub(crate) fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

fn push(output: &Mutex<String>, text: &str) {
    let mut output = output.lock().unwrap_or_else(|poison| poison.into_inner());
    output.push_str(text);
    if !text.ends_with('\n') {
        output.push('\n');
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}
