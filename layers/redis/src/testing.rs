//! A throwaway `redis-server` on a free loopback port, for tests, examples and benchmarks
//! (feature `testing`).
//!
//! [`RedisServer::start`] runs the `redis-server` binary (or `valkey-server`, or the one the
//! `WSFIRST_REDIS_SERVER` variable names) with `--port N --save "" --appendonly no`: no data
//! outlives it. Without the binary it returns `None` and says so loudly on stderr, unless
//! `WSFIRST_REQUIRE_REDIS=1` (set by CI), where it panics: a test must not pass in CI without
//! the server it needs.
//!
//! # Example
//!
//! ```no_run
//! use wsfirst_breaker_redis::testing::RedisServer;
//!
//! let Some(mut server) = RedisServer::start() else { return };
//! println!("redis at {}", server.url());
//! server.kill();
//! server.restart();
//! ```

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `redis-server` child process on 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING` (at most 10 s,
    /// then panics). `None` when no server binary is installed (see the [module docs](self)).
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find_binary() else {
            let required = std::env::var("WSFIRST_REQUIRE_REDIS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "WSFIRST_REQUIRE_REDIS=1 but no redis-server is installed (apt-get install -y redis-server)"
            );
            eprintln!(
                "\n*** SKIPPED: no redis-server on PATH: this test did not run. \
                 Install it (apt-get install -y redis-server) or set WSFIRST_REDIS_SERVER. ***\n"
            );
            return None;
        };
        let port = free_port();
        let mut server = RedisServer {
            binary,
            port,
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (its data is lost: it saves nothing).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be thawed to die of SIGKILL promptly on every system.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open but nothing is answered, a store
    /// that is slow beyond any deadline. [`resume`](Self::resume) thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a server [`pause`](Self::pause)d.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else {
            panic!("the server is not running");
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pong(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `condition` holds, checking every 10 ms, at most 10 s; then panics naming
/// `what`. For conditions that Redis makes true in real time (tests assert no durations).
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WSFIRST_REDIS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["redis-server", "valkey-server"]
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| is_file(candidate))
    })
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
