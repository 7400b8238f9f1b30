//! Running the Codex CLI (`@openai/codex` from npm, a native binary behind a small Node
//! launcher) from a test: finding it, giving each run a temporary `CODEX_HOME` whose
//! `config.toml` points a custom provider at the gateway, and running `codex exec` with a
//! deadline.
//!
//! The CLI is, in this order: `$WSFIRST_CODEX` (a `codex` executable), or the npm package
//! installed under the target directory (`target/tmp/codex`, as `.ci/run` does with `npm
//! install --prefix target/tmp/codex @openai/codex@<CODEX_VERSION>`), installed there by this
//! harness once when `npm` is on the `PATH`. When none can be had, the tests say so loudly and
//! check nothing, except under `WSFIRST_REQUIRE_CODEX=1` (set by CI), where they fail: a Codex
//! test must not pass in CI without running Codex.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        mpsc::{self, RecvTimeoutError},
    },
    time::Duration,
};

/// The Codex release the tests run (the one `.ci/run` installs).
pub(crate) const CODEX_VERSION: &str = "0.171.0";

/// A bound on one `codex exec` run, so that a hung run fails the test instead of hanging it.
/// Never asserted on.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// The environment variable holding the dummy API key the provider sends.
pub(crate) const KEY_ENV: &str = "WSFIRST_CODEX_TEST_KEY";

/// The dummy key.
pub(crate) const KEY: &str = "sk-codex-through-wsfirst";

/// The `codex` executable, or `None` (after saying why) when there is none and
/// `WSFIRST_REQUIRE_CODEX` is not `1`.
///
/// # Panics
///
/// Under `WSFIRST_REQUIRE_CODEX=1` when there is none.
pub(crate) fn codex() -> Option<&'static Path> {
    static CODEX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CODEX.get_or_init(find_or_install) {
        Ok(path) => Some(path),
        Err(problem) => {
            let required = std::env::var("WSFIRST_REQUIRE_CODEX").is_ok_and(|v| v == "1");
            let setup = format!(
                "install it with `npm install --prefix target/tmp/codex @openai/codex@{CODEX_VERSION}` \
                 at the repository root, or point WSFIRST_CODEX at a `codex` executable"
            );
            if required {
                panic!("WSFIRST_REQUIRE_CODEX=1 but the Codex CLI is missing: {problem}; {setup}");
            }
            eprintln!("SKIPPED: the Codex CLI tests need the Codex CLI: {problem}; {setup}");
            None
        }
    }
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(codex) = std::env::var_os("WSFIRST_CODEX") {
        let codex = PathBuf::from(codex);
        return version(&codex)
            .map(|_| codex.clone())
            .map_err(|problem| format!("WSFIRST_CODEX is set but {problem}"));
    }
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("codex");
    let installed = prefix.join("node_modules/.bin/codex");
    let found = version(&installed);
    if found
        .as_deref()
        .is_ok_and(|version| version.contains(CODEX_VERSION))
    {
        return Ok(installed);
    }
    eprintln!(
        "no Codex CLI {CODEX_VERSION} at {} ({}): installing it with npm (once)",
        installed.display(),
        found.as_deref().unwrap_or_else(|problem| problem)
    );
    let status = Command::new("npm")
        .args(["install", "--no-fund", "--no-audit", "--prefix"])
        .arg(&prefix)
        .arg(format!("@openai/codex@{CODEX_VERSION}"))
        .stdin(Stdio::null())
        .status()
        .map_err(|error| format!("`npm` could not be run: {error}"))?;
    if !status.success() {
        return Err(format!(
            "`npm install @openai/codex@{CODEX_VERSION}` failed: {status}"
        ));
    }
    version(&installed).map(|_| installed)
}

/// `codex --version`'s output, or why it could not be had.
fn version(codex: &Path) -> Result<String, String> {
    let output = Command::new(codex)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{} could not be run: {error}", codex.display()))?;
    if !output.status.success() {
        return Err(format!(
            "`{} --version` failed: {}",
            codex.display(),
            output.status
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// How Codex reaches the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `supports_websockets = true`: the Responses API's WebSocket mode (the gateway's client
    /// WebSocket), HTTP only if that fails.
    WebSocket,
    /// `supports_websockets = false`: streaming `POST`s.
    Http,
}

/// One finished `codex exec` run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A temporary directory for one run (its `CODEX_HOME`, `HOME` and working directory),
/// removed on drop.
struct RunDir(PathBuf);

impl RunDir {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("codex-run-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home")).expect("make the run's directory");
        fs::create_dir_all(dir.join("work")).expect("make the run's directory");
        RunDir(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `config.toml` of a run: a custom provider at the gateway's `/v1` speaking the
/// Responses API over `wire`, its key from [`KEY_ENV`].
fn config(gateway: &str, wire: Wire) -> String {
    format!(
        r#"model = "gpt-kit"
model_provider = "wsfirst"

[model_providers.wsfirst]
name = "wsfirst gateway"
base_url = "http://{gateway}/v1"
env_key = "{KEY_ENV}"
wire_api = "responses"
supports_websockets = {websockets}
"#,
        websockets = wire == Wire::WebSocket,
    )
}

/// Runs `codex exec --skip-git-repo-check <prompt>` against the gateway at `gateway`
/// (`host:port`) in a fresh `CODEX_HOME`, with a clean environment (`PATH` only, besides the
/// run's own variables), and waits for it (up to a generous deadline, then kills it).
pub(crate) fn exec(codex: &Path, gateway: &str, wire: Wire, name: &str, prompt: &str) -> Run {
    let dir = RunDir::new(name);
    let home = dir.0.join("home");
    fs::write(home.join("config.toml"), config(gateway, wire)).expect("write config.toml");
    let mut child = Command::new(codex)
        .args(["exec", "--skip-git-repo-check", "--color", "never", prompt])
        .current_dir(dir.0.join("work"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &dir.0)
        .env("CODEX_HOME", &home)
        .env(KEY_ENV, KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", codex.display()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // A watchdog ends a run that outlives the deadline (by its process id: only this child).
    let (finished, watch) = mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        let expired = watch.recv_timeout(RUN_DEADLINE) == Err(RecvTimeoutError::Timeout);
        if expired {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        expired
    });
    let status = child.wait().expect("wait for codex");
    let _ = finished.send(());
    if watchdog.join().unwrap_or(false) {
        let stderr = err.join().unwrap_or_default();
        panic!("codex exec ({name}) did not finish in {RUN_DEADLINE:?} ({status})\n{stderr}");
    }
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
