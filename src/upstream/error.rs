//! Errors of the HTTP upstream service.

use std::{error::Error, fmt};

use wsfirst_core::BoxError;

/// What went wrong in an [`HttpUpstreamError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpUpstreamErrorKind {
    /// Connecting failed: DNS, TCP (such as a refused connection), TLS, or the connect timeout.
    Connect,
    /// The upstream did not answer with response headers within the response timeout.
    Timeout,
    /// The request could not be sent or the response could not be read (for example the
    /// connection broke before the response headers arrived).
    Request,
    /// The request could not be built for the route's URL.
    InvalidRequest,
}

impl HttpUpstreamErrorKind {
    /// A short stable name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpUpstreamErrorKind::Connect => "connect",
            HttpUpstreamErrorKind::Timeout => "timeout",
            HttpUpstreamErrorKind::Request => "request",
            HttpUpstreamErrorKind::InvalidRequest => "invalid_request",
        }
    }
}

/// A request to the HTTP upstream failed before a response arrived.
///
/// `Display` names the upstream's host (and port), never credentials; the underlying error is
/// kept as [`Error::source`]. An upstream that answers, even with a `500`, is not an error: the
/// response passes through.
///
/// ```
/// use wsfirst::upstream::{HttpUpstreamError, HttpUpstreamErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let error = HttpUpstreamError::new(HttpUpstreamErrorKind::Connect, "api.example.com:443", io);
/// assert_eq!(error.to_string(), "http upstream api.example.com:443: connect failed");
/// assert!(error.is_connect());
/// assert_eq!(std::error::Error::source(&error).unwrap().to_string(), "connection refused");
/// ```
#[derive(Debug)]
pub struct HttpUpstreamError {
    kind: HttpUpstreamErrorKind,
    host: String,
    source: Option<BoxError>,
}

impl HttpUpstreamError {
    /// An error of `kind` talking to `host` (host and port), caused by `source`.
    pub fn new(
        kind: HttpUpstreamErrorKind,
        host: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            kind,
            host: host.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn without_source(kind: HttpUpstreamErrorKind, host: impl Into<String>) -> Self {
        Self {
            kind,
            host: host.into(),
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> HttpUpstreamErrorKind {
        self.kind
    }

    /// The upstream's host and port, as in `api.openai.com:443`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether connecting failed (nothing was sent).
    pub fn is_connect(&self) -> bool {
        self.kind == HttpUpstreamErrorKind::Connect
    }

    /// Whether the response timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        self.kind == HttpUpstreamErrorKind::Timeout
    }
}

impl fmt::Display for HttpUpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            HttpUpstreamErrorKind::Connect => "connect failed",
            HttpUpstreamErrorKind::Timeout => "no response within the response timeout",
            HttpUpstreamErrorKind::Request => "request failed",
            HttpUpstreamErrorKind::InvalidRequest => "could not build the request",
        };
        write!(f, "http upstream {}: {what}", self.host)
    }
}

impl Error for HttpUpstreamError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

/// The TLS configuration of an [`HttpUpstream`](super::HttpUpstream) could not be built.
#[derive(Debug)]
pub struct HttpUpstreamBuildError {
    message: String,
    source: Option<BoxError>,
}

impl HttpUpstreamBuildError {
    pub(crate) fn new(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

impl fmt::Display for HttpUpstreamBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for HttpUpstreamBuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}
