//! `wsfirst-gateway`: an HTTP gateway in front of LLM providers, configured by a TOML file.
//!
//! ```text
//! wsfirst-gateway gateway.toml           # the routes of the file
//! wsfirst-gateway                        # offline, over its own loopback upstream
//! wsfirst-gateway --check gateway.toml   # validate, print the effective configuration
//! ```
//!
//! See [`wsfirst_gateway`] for what it serves, and the README for the configuration reference.
//! A bad file or an unusable address exits with status 1 and a message naming what is wrong.

use std::{io::IsTerminal, path::Path, process::ExitCode};

use tracing_subscriber::{EnvFilter, util::SubscriberInitExt};
use wsfirst::core::BoxError;
use wsfirst_gateway::{
    check,
    cli::{self, Command},
    config::{Config, ConfigError},
    offline, server,
};

#[tokio::main]
async fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("wsfirst-gateway: {error}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("wsfirst-gateway {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check(path) => check_file(&path),
        Command::Serve(path) => {
            init_logs();
            serve(path.as_deref()).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsfirst-gateway: {error}");
            ExitCode::from(1)
        }
    }
}

/// `--check`: the effective configuration, or what is wrong.
fn check_file(path: &Path) -> Result<(), BoxError> {
    let config = Config::from_path(path).map_err(|error| in_file(path, error))?;
    let effective = check::effective(&config).map_err(|error| in_file(path, error))?;
    println!("{}: ok\n\n{effective}", path.display());
    Ok(())
}

async fn serve(path: Option<&Path>) -> Result<(), BoxError> {
    match path {
        Some(path) => {
            let config = Config::from_path(path).map_err(|error| in_file(path, error))?;
            server::run(config, &path.display().to_string(), None).await
        }
        None => {
            let (config, upstream) = offline::start().await?;
            tracing::info!(upstream = %upstream.addr(), "no config file: using the embedded configuration and a fake upstream on loopback");
            server::run(config, "embedded configuration", Some(upstream)).await
        }
    }
}

/// A configuration error with the file name in front (a read error already names it).
fn in_file(path: &Path, error: ConfigError) -> String {
    match error {
        ConfigError::Read { .. } => error.to_string(),
        error => format!("{}: {error}", path.display()),
    }
}

/// Logs to stderr at the level of `RUST_LOG` (default `info`); no value of it can print a
/// credential (see `wsfirst_gateway::logging`).
fn init_logs() {
    let levels = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    wsfirst_gateway::logging::subscriber(levels, std::io::stderr, ansi).init();
}
