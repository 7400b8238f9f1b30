//! [`ConfigError`] and how it writes the path of the value it is about.

use std::{fmt, path::PathBuf};

/// A configuration could not be read, parsed or validated.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML (the message has the line and column).
    Syntax {
        /// toml's message.
        message: String,
    },
    /// A value is invalid.
    Invalid {
        /// Where, such as `routes[1].breaker.open_duration` (empty for the whole document).
        path: String,
        /// What is wrong, such as `invalid duration "3x"`.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix` in front of its path (`breaker.open_duration` under `routes[1]`
    /// becomes `routes[1].breaker.open_duration`); other errors unchanged.
    pub(crate) fn prefixed(self, prefix: &str) -> Self {
        match self {
            ConfigError::Invalid { path, message } => ConfigError::Invalid {
                path: match path.as_str() {
                    "" => prefix.to_owned(),
                    _ => format!("{prefix}.{path}"),
                },
                message,
            },
            other => other,
        }
    }

    /// The path of the invalid value, such as `routes[1].breaker.open_duration`, when the error is
    /// about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, source } => {
                write!(f, "cannot read config file {}: {source}", file.display())
            }
            ConfigError::Syntax { message } => write!(f, "invalid toml: {message}"),
            ConfigError::Invalid { path, message } if path.is_empty() => f.write_str(message),
            ConfigError::Invalid { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A key as written in a path: bare when it can be, quoted otherwise.
pub(super) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
