//! Error types of the WebSocket layer. Upstream failures are [`WsFailure`](wsfirst_core::WsFailure)s.

use std::fmt;

/// What the [`ConfigError`](crate::ConfigError)s of this crate's builders call the
/// configuration.
pub(crate) const CONFIG: &str = "websocket config";

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
