//! Errors of the HTTP upstream service.

use std::{error::Error, fmt};

use wsfirst_core::BoxError;

use crate::connect::ConnectTimedOut;

/// What went wrong in an [`HttpUpstreamError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpUpstreamErrorKind {
    /// Connecting failed: DNS, TCP (such as a refused connection) or TLS.
    Connect,
    /// The connection was not set up (DNS, TCP and TLS together) within the connect timeout.
    ConnectTimeout,
    /// The upstream did not answer with response headers within the response timeout.
    Timeout,
    /// The response's body stopped: no data for the body idle timeout.
    BodyTimeout,
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
            HttpUpstreamErrorKind::ConnectTimeout => "connect_timeout",
            HttpUpstreamErrorKind::Timeout => "timeout",
            HttpUpstreamErrorKind::BodyTimeout => "body_timeout",
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
/// use wsfirst_http::{HttpUpstreamError, HttpUpstreamErrorKind};
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

    /// Whether connecting failed, timed out or not (nothing was sent).
    pub fn is_connect(&self) -> bool {
        matches!(
            self.kind,
            HttpUpstreamErrorKind::Connect | HttpUpstreamErrorKind::ConnectTimeout
        )
    }

    /// Whether a timeout elapsed: connect, response headers or body idle.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            HttpUpstreamErrorKind::ConnectTimeout
                | HttpUpstreamErrorKind::Timeout
                | HttpUpstreamErrorKind::BodyTimeout
        )
    }
}

impl fmt::Display for HttpUpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            HttpUpstreamErrorKind::Connect => "connect failed",
            HttpUpstreamErrorKind::ConnectTimeout => {
                "connection not set up (dns, tcp and tls) within the connect timeout"
            }
            HttpUpstreamErrorKind::Timeout => "no response within the response timeout",
            HttpUpstreamErrorKind::BodyTimeout => "no body data within the idle timeout",
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

/// Maps a client error to an [`HttpUpstreamError`].
pub(crate) fn client_error(
    error: hyper_util::client::legacy::Error,
    host: &str,
) -> HttpUpstreamError {
    let timed_out = {
        let mut source = Error::source(&error);
        std::iter::from_fn(|| {
            let current = source?;
            source = current.source();
            Some(current)
        })
        .any(|cause| cause.is::<ConnectTimedOut>())
    };
    let kind = if timed_out {
        HttpUpstreamErrorKind::ConnectTimeout
    } else if error.is_connect() {
        HttpUpstreamErrorKind::Connect
    } else {
        HttpUpstreamErrorKind::Request
    };
    HttpUpstreamError::new(kind, host, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [HttpUpstreamErrorKind; 6] = [
        HttpUpstreamErrorKind::Connect,
        HttpUpstreamErrorKind::ConnectTimeout,
        HttpUpstreamErrorKind::Timeout,
        HttpUpstreamErrorKind::BodyTimeout,
        HttpUpstreamErrorKind::Request,
        HttpUpstreamErrorKind::InvalidRequest,
    ];

    #[test]
    fn each_kind_has_its_own_stable_metric_label() {
        let labels: Vec<_> = KINDS.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(
            labels,
            [
                "connect",
                "connect_timeout",
                "timeout",
                "body_timeout",
                "request",
                "invalid_request"
            ]
        );
    }

    /// Only the connect kinds are "connect" (nothing was sent: safe to try elsewhere), and only
    /// the three timeouts are "timeout".
    #[test]
    fn connect_and_timeout_are_said_of_their_kinds_only() {
        for kind in KINDS {
            let error = HttpUpstreamError::without_source(kind, "api.example.com:443");
            let connect = matches!(
                kind,
                HttpUpstreamErrorKind::Connect | HttpUpstreamErrorKind::ConnectTimeout
            );
            let timeout = matches!(
                kind,
                HttpUpstreamErrorKind::ConnectTimeout
                    | HttpUpstreamErrorKind::Timeout
                    | HttpUpstreamErrorKind::BodyTimeout
            );
            assert_eq!(error.is_connect(), connect, "{kind:?}");
            assert_eq!(error.is_timeout(), timeout, "{kind:?}");
            assert_eq!(error.kind(), kind);
            assert_eq!(error.host(), "api.example.com:443");
            assert!(Error::source(&error).is_none(), "{kind:?}");
        }
    }

    #[test]
    fn the_message_names_the_host_and_what_went_wrong_and_keeps_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let error = HttpUpstreamError::new(HttpUpstreamErrorKind::Request, "10.0.0.1:8443", io);
        assert_eq!(
            error.to_string(),
            "http upstream 10.0.0.1:8443: request failed"
        );
        assert_eq!(Error::source(&error).unwrap().to_string(), "reset by peer");
    }
}
