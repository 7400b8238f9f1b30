//! Error types of the WebSocket layer. Upstream failures are [`WsFailure`](wsfirst_core::WsFailure)s.

use std::fmt;

/// A configuration value is invalid; [`field`](Self::field) names the builder field, and the
/// variant carries the value.
///
/// ```
/// use std::time::Duration;
/// use wsfirst_websocket::{ConfigError, WebSocketConfig};
///
/// let error = WebSocketConfig::builder().idle_timeout(Duration::ZERO).build().unwrap_err();
/// assert_eq!(error, ConfigError::Zero { field: "idle_timeout" });
/// assert_eq!(error.to_string(), "invalid websocket config: idle_timeout must not be zero");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration, size or count that must not be zero is.
    Zero {
        /// The builder field.
        field: &'static str,
    },
    /// A duration is longer than [`MAX_DURATION`](wsfirst_core::MAX_DURATION).
    TooLong {
        /// The builder field.
        field: &'static str,
        /// The value given.
        value: std::time::Duration,
    },
    /// A header name does not parse.
    InvalidHeaderName {
        /// The builder field.
        field: &'static str,
        /// The text given.
        name: String,
    },
    /// A hop-by-hop or handshake header, which only the WebSocket client writes
    /// ([`is_reserved_for_websocket`](wsfirst_core::headers::is_reserved_for_websocket)).
    ReservedHeader {
        /// The builder field.
        field: &'static str,
        /// The header.
        name: http::HeaderName,
    },
    /// A header value is not valid for its header.
    InvalidHeaderValue {
        /// The builder field.
        field: &'static str,
        /// The header whose value is invalid.
        name: http::HeaderName,
    },
    /// The TLS configuration cannot be built (a rejected root, no root at all, the platform's
    /// roots unreadable).
    Tls {
        /// The builder field (`extra_root`, `roots`, `native_roots`, `tls`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The name of the invalid builder field, such as `handshake_timeout`.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Zero { field }
            | ConfigError::TooLong { field, .. }
            | ConfigError::InvalidHeaderName { field, .. }
            | ConfigError::ReservedHeader { field, .. }
            | ConfigError::InvalidHeaderValue { field, .. }
            | ConfigError::Tls { field, .. } => field,
        }
    }

    /// Checks a duration setting: neither zero nor longer than
    /// [`MAX_DURATION`](wsfirst_core::MAX_DURATION).
    pub(crate) fn check_duration(
        field: &'static str,
        value: std::time::Duration,
    ) -> Result<(), ConfigError> {
        if value.is_zero() {
            Err(ConfigError::Zero { field })
        } else if value > wsfirst_core::MAX_DURATION {
            Err(ConfigError::TooLong { field, value })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid websocket config: ")?;
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must not be zero"),
            ConfigError::TooLong { field, value } => write!(
                f,
                "{field} must be at most {:?} (100 years), got {value:?}",
                wsfirst_core::MAX_DURATION
            ),
            ConfigError::InvalidHeaderName { field, name } => {
                write!(f, "{field}: {name:?} is not a header name")
            }
            ConfigError::ReservedHeader { field, name } => write!(
                f,
                "{field}: {name} is a hop-by-hop or handshake header and is never forwarded"
            ),
            ConfigError::InvalidHeaderValue { field, name } => {
                write!(
                    f,
                    "{field}: the value of {name} is not a valid header value"
                )
            }
            ConfigError::Tls { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A codec could not encode a request or read a message; the layer turns it into a
/// [`WsFailure`](wsfirst_core::WsFailure) with kind `Protocol`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(String);

impl CodecError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// The pool has reached its maximum number of connections for a key and none came free within
/// the handshake timeout. It is the source of a replay-safe `Connect` failure of kind
/// [`FailureKind::Local`](wsfirst_core::FailureKind::Local).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolExhausted {
    pub(crate) max: usize,
}

impl fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} websocket connections for this key are busy",
            self.max
        )
    }
}

impl std::error::Error for PoolExhausted {}

/// Reading the caller's request body failed (not an upstream failure: never replayed).
#[derive(Debug)]
pub struct RequestBodyError(pub(crate) wsfirst_core::BoxError);

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to read the request body: {}", self.0)
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
