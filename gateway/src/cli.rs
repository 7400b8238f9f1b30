//! The command line: `wsfirst-gateway [CONFIG]`, `--check CONFIG`, `--version`, `--help`.
//!
//! # Example
//!
//! ```
//! use wsfirst_gateway::cli::{Command, parse};
//!
//! assert_eq!(parse(["gateway.toml"]), Ok(Command::Serve(Some("gateway.toml".into()))));
//! assert_eq!(parse(["--check", "gateway.toml"]), Ok(Command::Check("gateway.toml".into())));
//! assert_eq!(parse::<[&str; 0]>([]), Ok(Command::Serve(None)));
//! assert!(parse(["--chek", "gateway.toml"]).unwrap_err().contains("unknown option"));
//! ```

use std::{ffi::OsString, path::PathBuf};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve the routes of the file; `None`: the offline mode, over an embedded loopback upstream.
    Serve(Option<PathBuf>),
    /// Validate the file and print the effective configuration, secrets redacted.
    Check(PathBuf),
    /// Print the name and version.
    Version,
    /// Print [`USAGE`].
    Help,
}

/// The `--help` text.
pub const USAGE: &str = "\
usage: wsfirst-gateway [CONFIG.toml]
       wsfirst-gateway --check CONFIG.toml
       wsfirst-gateway --version | --help

Serves the routes that CONFIG.toml describes (the reference is in the README,
\"Configuration\"; gateway/gateway.toml is a starting point for OpenAI). Without
a file, serves an embedded configuration over a fake upstream on 127.0.0.1
(no network, no key needed).

  --check CONFIG.toml  validate the file (and the environment variables it
                       names), print the effective configuration with secrets
                       redacted; exit status 1 with a message naming what is
                       wrong
  --version            print the version
  -h, --help           print this help

RUST_LOG sets the log level (default info), such as
RUST_LOG=info,wsfirst_gateway=debug for one line per request.";

/// Reads the arguments after the program's name; an error says what is wrong, for a message
/// followed by [`USAGE`].
pub fn parse<I>(args: I) -> Result<Command, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut args = args.into_iter().map(Into::into);
    let command = match args.next() {
        None => Command::Serve(None),
        Some(arg) => match arg.to_str() {
            Some("-h" | "--help") => Command::Help,
            Some("-V" | "--version") => Command::Version,
            Some("--check") => match args.next() {
                Some(path) => Command::Check(path.into()),
                None => return Err("--check needs a configuration file".into()),
            },
            Some(option) if option.starts_with('-') && option != "-" => {
                return Err(format!("unknown option {option:?}"));
            }
            _ => Command::Serve(Some(arg.into())),
        },
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument {extra:?}")),
        None => Ok(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(parse(["-h"]), Ok(Command::Help));
        assert_eq!(parse(["--help"]), Ok(Command::Help));
        assert_eq!(parse(["--version"]), Ok(Command::Version));
        assert_eq!(parse(["-V"]), Ok(Command::Version));
        assert_eq!(parse(["a.toml"]), Ok(Command::Serve(Some("a.toml".into()))));
        assert_eq!(
            parse(["--check", "a.toml"]),
            Ok(Command::Check("a.toml".into()))
        );
    }

    #[test]
    fn wrong_forms_say_what_is_wrong() {
        assert_eq!(
            parse(["--check"]),
            Err("--check needs a configuration file".into())
        );
        assert_eq!(
            parse(["a.toml", "b.toml"]),
            Err(r#"unexpected argument "b.toml""#.into())
        );
        assert_eq!(
            parse(["--check", "a.toml", "b.toml"]),
            Err(r#"unexpected argument "b.toml""#.into())
        );
        assert_eq!(
            parse(["--verbose"]),
            Err(r#"unknown option "--verbose""#.into())
        );
    }
}
