//! How much a WebSocket failure counts against its breaker key.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use wsfirst_breaker::{Classify, DefaultClassifier, Verdict};
//! use wsfirst_core::{FailureKind, Phase, WsFailure};
//!
//! let not_a_websocket = WsFailure::new(
//!     Phase::Handshake,
//!     FailureKind::UpgradeStatus { status: StatusCode::NOT_FOUND, body: Default::default() },
//! );
//! assert_eq!(DefaultClassifier.classify(&not_a_websocket), Verdict::Trip);
//! ```

use std::fmt;

use http::StatusCode;
use wsfirst_core::{FailureKind, WsFailure};

/// What a failure means for its breaker key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The endpoint cannot work (it does not speak WebSocket): pin the key at once.
    Trip,
    /// Counts as one failure towards the consecutive-failure and failure-rate thresholds.
    Count,
    /// Not the path's fault (rate limits, the upstream asking for a fresh connection): no verdict.
    Ignore,
}

impl Verdict {
    /// `"trip"`, `"count"` or `"ignore"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Trip => "trip",
            Verdict::Count => "count",
            Verdict::Ignore => "ignore",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides how much a [`WsFailure`] counts against its breaker key.
///
/// Install one with [`BreakerConfigBuilder::classifier`](crate::BreakerConfigBuilder::classifier).
/// It is called on the failure path only, under the key's lock, so it should be quick.
///
/// # Example
///
/// A classifier that also ignores closes with code 1013 ("try again later") and defers to the
/// defaults for everything else:
///
/// ```
/// use wsfirst_breaker::{BreakerConfig, Classify, DefaultClassifier, Verdict};
/// use wsfirst_core::{FailureKind, Phase, WsFailure};
///
/// #[derive(Debug)]
/// struct TryAgainLater;
///
/// impl Classify for TryAgainLater {
///     fn classify(&self, failure: &WsFailure) -> Verdict {
///         match failure.kind() {
///             FailureKind::Closed { code: Some(1013), .. } => Verdict::Ignore,
///             _ => DefaultClassifier.classify(failure),
///         }
///     }
/// }
///
/// let closed = WsFailure::new(
///     Phase::BeforeFirstEvent,
///     FailureKind::Closed { code: Some(1013), reason: String::new() },
/// );
/// assert_eq!(TryAgainLater.classify(&closed), Verdict::Ignore);
/// let config = BreakerConfig::builder().classifier(TryAgainLater).build()?;
/// # drop(config);
/// # Ok::<(), wsfirst_breaker::ConfigError>(())
/// ```
pub trait Classify: fmt::Debug + Send + Sync + 'static {
    /// The verdict for `failure`.
    fn classify(&self, failure: &WsFailure) -> Verdict;
}

/// The default classification.
///
/// | Failure | Verdict |
/// |---|---|
/// | upgrade answered 404, 405, 426 or 501 (the endpoint does not speak WebSocket) | [`Verdict::Trip`] |
/// | upgrade answered 429 | [`Verdict::Ignore`] |
/// | upgrade answered 401 or 403 (a wrong credential, not a broken path; the breaker keeps no key for it) | [`Verdict::Ignore`] |
/// | upgrade answered any other status (5xx, 3xx, 400, ...) | [`Verdict::Count`] |
/// | DNS, I/O (connect refused, reset), TLS errors, timeouts | [`Verdict::Count`] |
/// | the upstream closed the connection (before the first event or mid-stream) | [`Verdict::Count`] |
/// | protocol errors | [`Verdict::Count`] |
/// | upstream error event whose codec put it in [`ErrorScope::Connection`](wsfirst_core::ErrorScope::Connection) or [`ErrorScope::Request`](wsfirst_core::ErrorScope::Request) (for the Responses API: the connection limit, reconnect requests, rate limits without a status; see the codec) | [`Verdict::Ignore`] |
/// | any other upstream error event ([`ErrorScope::Provider`](wsfirst_core::ErrorScope::Provider)) | [`Verdict::Count`] |
/// | a message over the size limit (the request's fault, not the path's) | [`Verdict::Ignore`] |
/// | a local condition ([`FailureKind::Local`]: no usable WebSocket URL, connection pool closed or exhausted, a request that cannot be encoded; not the upstream's fault) | [`Verdict::Ignore`] |
///
/// The phase does not change the verdict: a mid-stream failure counts like one before the first
/// event.
///
/// What is not a failure never reaches the classifier: the breaker records a success for every
/// answer the WebSocket carried to its end, and the upstream's error answers are such answers.
/// With the Responses API's codec:
///
/// - an error event with a client-error status (4xx, 429 included) before any output is the
///   response the client gets (that status and the HTTP error body), so a client's mistake is a
///   success for the path: a hundred invalid requests leave the breaker closed;
/// - an error event after output has started ends the stream the way the HTTP endpoint's
///   stream does (an SSE `error` event, then a clean end of the body), so it too is a success:
///   the error is the model's or the request's, and HTTP would have carried the same one. Only
///   transport failures mid-stream (a close, a timeout, an unreadable or oversized message) end
///   the body with an error, which is classified here;
/// - an error event with a 5xx status (or none) before any output is an
///   [`UpstreamError`](FailureKind::UpstreamError) classified by its scope, as in the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifier;

impl Classify for DefaultClassifier {
    fn classify(&self, failure: &WsFailure) -> Verdict {
        match failure.kind() {
            FailureKind::UpgradeStatus { status, .. } => match *status {
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::UPGRADE_REQUIRED
                | StatusCode::NOT_IMPLEMENTED => Verdict::Trip,
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN => Verdict::Ignore,
                _ => Verdict::Count,
            },
            FailureKind::UpstreamError { scope, .. } => {
                if scope.counts_against_path() {
                    Verdict::Count
                } else {
                    Verdict::Ignore
                }
            }
            FailureKind::TooLarge { .. } | FailureKind::Local(_) => Verdict::Ignore,
            _ => Verdict::Count,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use wsfirst_core::{ErrorScope, Phase};

    fn upgrade(status: u16) -> WsFailure {
        WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: StatusCode::from_u16(status).unwrap(),
                body: Default::default(),
            },
        )
    }

    fn upstream(scope: ErrorScope) -> WsFailure {
        WsFailure::new(
            Phase::BeforeFirstEvent,
            FailureKind::UpstreamError {
                code: Some("some_code".into()),
                message: "some message".into(),
                scope,
            },
        )
    }

    #[test]
    fn upgrade_statuses() {
        for status in [404, 405, 426, 501] {
            assert_eq!(
                DefaultClassifier.classify(&upgrade(status)),
                Verdict::Trip,
                "{status}"
            );
        }
        for status in [500, 502, 503, 400] {
            assert_eq!(
                DefaultClassifier.classify(&upgrade(status)),
                Verdict::Count,
                "{status}"
            );
        }
        for status in [429, 401, 403] {
            assert_eq!(
                DefaultClassifier.classify(&upgrade(status)),
                Verdict::Ignore,
                "{status}"
            );
        }
    }

    #[test]
    fn only_provider_scoped_error_events_count() {
        for scope in [ErrorScope::Connection, ErrorScope::Request] {
            assert_eq!(
                DefaultClassifier.classify(&upstream(scope)),
                Verdict::Ignore
            );
        }
        assert_eq!(
            DefaultClassifier.classify(&upstream(ErrorScope::Provider)),
            Verdict::Count
        );
    }

    #[test]
    fn transport_errors_count() {
        let cases = [
            FailureKind::Dns("no host".into()),
            FailureKind::Tls("bad cert".into()),
            FailureKind::Timeout(Duration::from_secs(1)),
            FailureKind::Io {
                kind: std::io::ErrorKind::ConnectionRefused,
                message: "refused".into(),
            },
            FailureKind::Closed {
                code: Some(1011),
                reason: String::new(),
            },
            FailureKind::Protocol("bad frame".into()),
        ];
        for kind in cases {
            let failure = WsFailure::new(Phase::Connect, kind);
            assert_eq!(
                DefaultClassifier.classify(&failure),
                Verdict::Count,
                "{failure}"
            );
        }
        let big = WsFailure::new(Phase::Send, FailureKind::TooLarge { size: 2, limit: 1 });
        assert_eq!(DefaultClassifier.classify(&big), Verdict::Ignore);
    }

    #[test]
    fn local_conditions_are_not_the_upstreams_fault() {
        for message in [
            "no usable websocket url",
            "pool exhausted",
            "unencodable request",
        ] {
            for phase in [Phase::Connect, Phase::Send] {
                let failure = WsFailure::new(phase, FailureKind::Local(message.into()));
                assert_eq!(
                    DefaultClassifier.classify(&failure),
                    Verdict::Ignore,
                    "{failure}"
                );
            }
        }
    }

    fn _obj_safe(_: Box<dyn Classify>) {}
}
