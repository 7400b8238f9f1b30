//! Running the official OpenAI Python SDK from a test: finding a Python that has it, and
//! running one of the scripts in `tests/sdk/` against a gateway. Shared by `tests/openai_sdk.rs`
//! and `tests/client_ws_sdk.rs` (`#[path = "sdk/python.rs"] mod python;`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// A Python that can `import <modules>` (such as `"openai"` or `"openai, websockets"`):
/// `$WSFIRST_PYTHON`, else the repository's `.venv`. `None` (with a note on stderr saying how to
/// set it up with `pip install <package>`) when there is none, unless `WSFIRST_REQUIRE_SDK=1`,
/// which turns that into a failure.
pub(crate) fn python_with(modules: &str, package: &str) -> Option<PathBuf> {
    let venv = if cfg!(windows) {
        ".venv/Scripts/python.exe"
    } else {
        ".venv/bin/python"
    };
    let python = std::env::var_os("WSFIRST_PYTHON")
        .map(PathBuf::from)
        // The repository's root: this package is `gateway/` in it.
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(venv));
    let problem = match Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => format!(
            "{} cannot import {modules}: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(error) => format!("cannot run {}: {error}", python.display()),
    };
    let setup = format!(
        "set up the SDK with `python3 -m venv .venv && .venv/bin/pip install '{package}'` at the \
         repository root, or point WSFIRST_PYTHON at a Python that has it"
    );
    if std::env::var("WSFIRST_REQUIRE_SDK").is_ok_and(|value| value == "1") {
        panic!("WSFIRST_REQUIRE_SDK=1 but the OpenAI SDK is not available: {problem}; {setup}");
    }
    eprintln!("skipping the OpenAI SDK test, nothing was checked: {problem}; {setup}");
    None
}

/// Runs `tests/sdk/<script>` with `python` and `args` (the gateway's base URL first), loopback
/// kept off any proxy and the SDK's own base-URL variables removed; the JSON report it prints.
pub(crate) async fn run_script(python: &Path, script: &str, args: Vec<String>) -> Value {
    let python = python.to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .args(&args)
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
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("the sdk script printed no report ({error}): {stdout}"))
}
