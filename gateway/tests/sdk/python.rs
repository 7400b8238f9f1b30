//! Running the official OpenAI Python SDK from a test: finding (or making) a Python that has it,
//! and running one of the scripts in `gateway/tests/sdk/` against a gateway. Shared by
//! `gateway/tests/openai_sdk.rs` and `gateway/tests/client_ws_sdk.rs` (`#[path = "sdk/python.rs"] mod python;`).
//!
//! The Python is, in this order: `$WSFIRST_PYTHON` (which must have the SDK), the repository's
//! `.venv`, or a virtual environment this harness makes once under the target directory
//! (`target/tmp/sdk-venv`: `python3 -m venv`, then `pip install 'openai[realtime]'` from the
//! package registry). When none can be had, the test fails and says what to install: an SDK test
//! never passes without checking anything.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;

/// What the harness installs in its own virtual environment: the SDK, with `websockets` for
/// `client.responses.connect()`.
const SDK_PACKAGE: &str = "openai[realtime]";

/// The modules [`SDK_PACKAGE`] provides.
const SDK_MODULES: &str = "openai, websockets";

/// A Python that can `import <modules>` (such as `"openai"` or `"openai, websockets"`), made if
/// need be (see the module docs). Panics, saying what to install, when there is none.
pub(crate) fn python_with(modules: &str) -> PathBuf {
    let setup = format!(
        "install Python 3 with its `venv` module and access to the package registry (the \
         harness then installs `{SDK_PACKAGE}` itself), or set up `python3 -m venv .venv && \
         .venv/bin/pip install '{SDK_PACKAGE}'` at the repository root, or point WSFIRST_PYTHON \
         at a Python that has it"
    );
    if let Some(python) = std::env::var_os("WSFIRST_PYTHON") {
        let python = PathBuf::from(python);
        if let Err(problem) = can_import(&python, modules) {
            panic!("WSFIRST_PYTHON is set but {problem}; {setup}");
        }
        return python;
    }
    // The repository's root: this package is `gateway/` in it.
    let repository = venv_python(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    let Err(not_repository) = can_import(&repository, modules) else {
        return repository;
    };
    let own = own_venv().and_then(|python| {
        can_import(python, modules)?;
        Ok(python.to_owned())
    });
    match own {
        Ok(python) => python,
        Err(problem) => panic!(
            "the OpenAI SDK tests need a Python with `{SDK_PACKAGE}`: {not_repository}, and \
             {problem}; {setup}"
        ),
    }
}

/// The Python of the virtual environment this harness makes under the target directory,
/// made at most once per test binary (the tests of a binary wait for the first one to make
/// it). Test binaries that run at the same time each build their own and rename it into
/// place: the first rename wins, the others use it.
fn own_venv() -> Result<&'static Path, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(make_venv).as_deref().map_err(Clone::clone)
}

fn make_venv() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let python = venv_python(&dir);
    if can_import(&python, SDK_MODULES).is_ok() {
        return Ok(python);
    }
    let building = dir.with_file_name(format!("sdk-venv.building-{}", std::process::id()));
    eprintln!(
        "no Python with the OpenAI SDK found: making one at {} (`pip install '{SDK_PACKAGE}'`, \
         once)",
        dir.display()
    );
    let built = build_venv(&building);
    if let Err(problem) = built {
        let _ = fs::remove_dir_all(&building);
        return Err(problem);
    }
    if fs::rename(&building, &dir).is_err() {
        // Another test binary got there first, or an old environment that no longer works
        // (its Python was removed or upgraded) is in the way.
        if can_import(&python, SDK_MODULES).is_ok() {
            let _ = fs::remove_dir_all(&building);
            return Ok(python);
        }
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&building, &dir).map_err(|error| {
            format!(
                "moving the new virtual environment to {} failed: {error}",
                dir.display()
            )
        })?;
    }
    can_import(&python, SDK_MODULES)?;
    Ok(python)
}

/// `python3 -m venv <dir>`, then `pip install` the SDK into it (run through the environment's
/// Python, so the environment works after it is renamed).
fn build_venv(dir: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    let base = if cfg!(windows) { "python" } else { "python3" };
    run(Command::new(base).args(["-m", "venv"]).arg(dir))?;
    run(Command::new(venv_python(dir)).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SDK_PACKAGE,
    ]))
}

/// Runs `command`; its last line of stderr if it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            last_line(&output.stderr)
        )),
        Err(error) => Err(format!("cannot run `{shown}`: {error}")),
    }
}

/// Whether `python` runs and can `import <modules>`; what is wrong if not.
fn can_import(python: &Path, modules: &str) -> Result<(), String> {
    match Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{} cannot import {modules}: {}",
            python.display(),
            last_line(&output.stderr)
        )),
        Err(error) => Err(format!("cannot run {}: {error}", python.display())),
    }
}

fn venv_python(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts/python.exe")
    } else {
        dir.join("bin/python")
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
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
