//! Instructions per request, repeatable on a busy machine: with [`COUNT_ENV`] set, each case
//! sends a fixed number of requests instead of holding a time window, and with [`CALLGRIND_ENV`]
//! the gateway and the minimal proxy run under `valgrind --tool=callgrind`: the counters are
//! zeroed after a warm-up and dumped after the counted requests (`callgrind_control`), so a figure
//! holds only the requests, none of the start-up.
//!
//! `WSFIRST_LOAD_COUNT=2000 WSFIRST_LOAD_CALLGRIND=/tmp/cg cargo bench -p wsfirst-gateway --bench
//! load -- gateway_websocket` prints, per case, the instructions the server process ran per
//! request; `callgrind_annotate /tmp/cg/<case>.<pid>.<n>` shows where they went.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Requests per case (all clients together) in count mode.
pub(crate) const COUNT_ENV: &str = "WSFIRST_LOAD_COUNT";
/// Clients at once in count mode (default [`COUNT_CONCURRENCY`]).
pub(crate) const COUNT_CONCURRENCY_ENV: &str = "WSFIRST_LOAD_COUNT_CONCURRENCY";
/// At most the pool's default per-key cap: the configuration needs no cap of its own, so any
/// gateway binary, old or new, takes it.
pub(crate) const COUNT_CONCURRENCY: usize = 8;
/// A directory for callgrind's output; set, the servers run under callgrind.
pub(crate) const CALLGRIND_ENV: &str = "WSFIRST_LOAD_CALLGRIND";

/// Where callgrind writes, when the servers run under it.
pub(crate) fn directory() -> Option<PathBuf> {
    std::env::var_os(CALLGRIND_ENV).map(PathBuf::from)
}

/// `binary` started under callgrind writing into `directory`, with its counters on from the
/// start (they are zeroed before each case anyway).
pub(crate) fn wrap(binary: &Path, directory: &Path) -> Command {
    std::fs::create_dir_all(directory).expect("the callgrind directory");
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}/callgrind.%p",
            directory.display()
        ))
        .arg(binary);
    command
}

/// Zeroes the counters of the callgrind process `pid`.
pub(crate) fn zero(pid: u32) {
    control(&["-z", &pid.to_string()]);
}

/// Dumps the counters of the callgrind process `pid` and returns the instructions counted since
/// the last [`zero`].
pub(crate) fn dump(pid: u32, directory: &Path) -> u64 {
    let before = dumps(directory, pid);
    control(&["-d", &pid.to_string()]);
    let after = dumps(directory, pid);
    let newest = after
        .into_iter()
        .find(|path| !before.contains(path))
        .expect("callgrind wrote a dump");
    let text = std::fs::read_to_string(&newest).expect("read the dump");
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or(line.strip_prefix("totals:"))
        })
        .and_then(|count| count.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", newest.display()))
}

fn control(args: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run callgrind_control");
    assert!(status.success(), "callgrind_control {args:?} failed");
}

/// The dump files of `pid` (`callgrind.<pid>.<n>`).
fn dumps(directory: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("callgrind.{pid}.");
    std::fs::read_dir(directory)
        .expect("the callgrind directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .collect()
}
