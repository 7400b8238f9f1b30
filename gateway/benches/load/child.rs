//! The processes the benchmark drives: the release gateway binary and the minimal proxy, each
//! started as a child that prints `listening on http://<addr>`, and what `/proc` says of them.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// A child process serving on `addr`, killed when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `command` and waits for its `listening on http://<addr>` line; the rest of its
    /// standard output is drained on a thread so that it never blocks on a full pipe.
    pub(crate) fn start(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
        let stdout = child.stdout.take().expect("a piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("{command:?} exited before saying where it listens"),
            };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.trim().parse().expect("a socket address");
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Server { addr, child }
    }

    /// The process id, for [`cpu_ticks`] and [`resident_kib`].
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names another gateway binary to measure instead of this tree's (an older build, to compare
/// side by side in one run).
pub(crate) const GATEWAY_ENV: &str = "WSFIRST_LOAD_GATEWAY";

/// The gateway binary that cargo built with this benchmark (the `bench` profile: optimised as
/// `release`), so that the figures are always those of the current source; or the binary
/// [`GATEWAY_ENV`] names.
pub(crate) fn gateway_binary() -> PathBuf {
    match std::env::var_os(GATEWAY_ENV) {
        Some(binary) => binary.into(),
        None => env!("CARGO_BIN_EXE_wsfirst-gateway").into(),
    }
}

/// CPU time (user + system) the process has used, in clock ticks of 10 ms (Linux's `USER_HZ`).
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
    field(14) + field(15)
}

/// Microseconds in one clock tick of [`cpu_ticks`].
pub(crate) const TICK_MICROS: f64 = 10_000.0;

/// The process's resident memory, in KiB.
pub(crate) fn resident_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}
