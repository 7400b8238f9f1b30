//! The transport chosen for a request so far, and why.

use std::{borrow::Cow, fmt};

use tokio::time::Instant;

use crate::WsFailure;

/// The transport chosen for a request so far, set by the eligibility layer and rewritten by the
/// breaker (pinned) and the fallback layer (fallback after a failure).
///
/// ```
/// use wsfirst_core::{HttpReason, Ineligible, Intent};
///
/// let intent = Intent::Http(HttpReason::Ineligible(Ineligible::MissingWebSocketUrl));
/// assert!(!intent.is_websocket());
/// assert_eq!(intent.to_string(), "http because the route has no websocket url");
/// assert_eq!(intent.reason_label(), "missing_websocket_url");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Try the WebSocket.
    WebSocket,
    /// Use HTTP, for the given reason.
    Http(HttpReason),
}

impl Intent {
    /// Whether the WebSocket is to be tried.
    pub fn is_websocket(&self) -> bool {
        matches!(self, Intent::WebSocket)
    }

    /// The reason for HTTP, if HTTP was chosen.
    pub fn http_reason(&self) -> Option<&HttpReason> {
        match self {
            Intent::WebSocket => None,
            Intent::Http(reason) => Some(reason),
        }
    }

    /// `"websocket"` or `"http"`, for metric labels.
    pub fn verdict(&self) -> &'static str {
        match self {
            Intent::WebSocket => "websocket",
            Intent::Http(_) => "http",
        }
    }

    /// A short stable name of the reason (`"eligible"` for the WebSocket), for metric labels.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Intent::WebSocket => "eligible",
            Intent::Http(reason) => reason.label(),
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Intent::WebSocket => f.write_str("websocket"),
            Intent::Http(reason) => write!(f, "http because {reason}"),
        }
    }
}

/// Why a request goes over HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpReason {
    /// The eligibility policy said no.
    Ineligible(Ineligible),
    /// The route's breaker key is pinned to HTTP.
    Pinned {
        /// When the pin ends and a probe may try the WebSocket; `None` when pinned by hand until
        /// unpinned.
        until: Option<Instant>,
    },
    /// The route's mode is [`TransportMode::Http`](crate::TransportMode::Http).
    ModeHttp,
    /// The WebSocket attempt failed before anything was delivered, and the request was replayed.
    Fallback(WsFailure),
}

impl HttpReason {
    /// A short stable name, for metric labels and the `x-wsfirst-reason` header.
    pub fn label(&self) -> &'static str {
        match self {
            HttpReason::Ineligible(why) => why.label(),
            HttpReason::Pinned { .. } => "pinned",
            HttpReason::ModeHttp => "mode_http",
            HttpReason::Fallback(_) => "fallback",
        }
    }
}

impl fmt::Display for HttpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpReason::Ineligible(why) => fmt::Display::fmt(why, f),
            HttpReason::Pinned { until: Some(until) } => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Half-open: the pin has ended and probes decide whether the key closes.
                    f.write_str("the websocket path is pinned to http while a probe tries it")
                } else {
                    let secs = left.as_secs_f64().ceil();
                    write!(
                        f,
                        "the websocket path is pinned to http for another {secs}s"
                    )
                }
            }
            HttpReason::Pinned { until: None } => {
                f.write_str("the websocket path is pinned to http until unpinned")
            }
            HttpReason::ModeHttp => f.write_str("the route's mode is http"),
            HttpReason::Fallback(failure) => write!(f, "of a fallback after {failure}"),
        }
    }
}

/// Why the eligibility policy kept a request off the WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ineligible {
    /// The route's provider id is empty.
    EmptyProvider,
    /// The provider is not in the eligibility table at all.
    UnknownProvider,
    /// The provider is known but this (provider, API) pair is not allowed.
    PairNotAllowed,
    /// The (provider, API) pair is on the deny list, which wins over the allow list.
    Denied,
    /// The route has no WebSocket URL.
    MissingWebSocketUrl,
    /// The route's WebSocket URL is not `ws://` or `wss://`.
    NotWebSocketScheme {
        /// The scheme found instead (empty when there is none).
        scheme: String,
    },
    /// The route's WebSocket URL is on a host not registered for its provider.
    ForeignHost {
        /// The host of the WebSocket URL.
        host: String,
        /// The host registered for the provider.
        expected: String,
    },
    /// The per-request override header asked for HTTP.
    RequestOverride,
    /// The request's declared body size exceeds the WebSocket message limit.
    BodyTooLarge {
        /// The declared size in bytes.
        declared: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The request's declared body size exceeds the fallback layer's buffer limit, so a failed
    /// WebSocket attempt could not be replayed: HTTP is used directly.
    BodyNotReplayable {
        /// The declared size in bytes.
        declared: u64,
        /// The buffer limit in bytes.
        limit: u64,
    },
    /// The request sets a field that the upstream's WebSocket mode does not support (for the
    /// OpenAI Responses API: `background: true`), so it can only be served as asked over HTTP.
    /// Found by the WebSocket layer's codec once the body is read; the body goes to the HTTP
    /// endpoint unchanged.
    UnsupportedField(&'static str),
    /// A user-defined rule said no.
    Custom(Cow<'static, str>),
}

impl Ineligible {
    /// A short stable name, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Ineligible::EmptyProvider => "empty_provider",
            Ineligible::UnknownProvider => "unknown_provider",
            Ineligible::PairNotAllowed => "pair_not_allowed",
            Ineligible::Denied => "denied",
            Ineligible::MissingWebSocketUrl => "missing_websocket_url",
            Ineligible::NotWebSocketScheme { .. } => "not_websocket_scheme",
            Ineligible::ForeignHost { .. } => "foreign_host",
            Ineligible::RequestOverride => "request_override",
            Ineligible::BodyTooLarge { .. } => "body_too_large",
            Ineligible::BodyNotReplayable { .. } => "body_not_replayable",
            Ineligible::UnsupportedField(_) => "unsupported_field",
            Ineligible::Custom(_) => "custom",
        }
    }
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::EmptyProvider => f.write_str("the route's provider is empty"),
            Ineligible::UnknownProvider => {
                f.write_str("the provider is not in the eligibility table")
            }
            Ineligible::PairNotAllowed => {
                f.write_str("the provider and api pair is not allowed on the websocket")
            }
            Ineligible::Denied => f.write_str("the provider and api pair is on the deny list"),
            Ineligible::MissingWebSocketUrl => f.write_str("the route has no websocket url"),
            Ineligible::NotWebSocketScheme { scheme } if scheme.is_empty() => {
                f.write_str("the websocket url has no scheme (expected ws or wss)")
            }
            Ineligible::NotWebSocketScheme { scheme } => {
                write!(f, "the websocket url's scheme is {scheme}, not ws or wss")
            }
            Ineligible::ForeignHost { host, expected } => write!(
                f,
                "the websocket url's host {host} is not the provider's registered host {expected}"
            ),
            Ineligible::RequestOverride => f.write_str("the request asked for http"),
            Ineligible::BodyTooLarge { declared, limit } => write!(
                f,
                "the request body of {declared} bytes exceeds the websocket message limit of {limit} bytes"
            ),
            Ineligible::BodyNotReplayable { declared, limit } => write!(
                f,
                "the request body of {declared} bytes exceeds the fallback buffer limit of {limit} bytes, so it could not be replayed"
            ),
            Ineligible::UnsupportedField(field) => write!(
                f,
                "the request's {field} field is not supported over the websocket"
            ),
            Ineligible::Custom(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureKind, Phase};

    #[test]
    fn labels_are_distinct() {
        let all = [
            Ineligible::EmptyProvider,
            Ineligible::UnknownProvider,
            Ineligible::PairNotAllowed,
            Ineligible::Denied,
            Ineligible::MissingWebSocketUrl,
            Ineligible::NotWebSocketScheme {
                scheme: "http".into(),
            },
            Ineligible::ForeignHost {
                host: "a".into(),
                expected: "b".into(),
            },
            Ineligible::RequestOverride,
            Ineligible::BodyTooLarge {
                declared: 2,
                limit: 1,
            },
            Ineligible::BodyNotReplayable {
                declared: 2,
                limit: 1,
            },
            Ineligible::UnsupportedField("background"),
            Ineligible::Custom("mine".into()),
        ];
        let mut labels: Vec<_> = all.iter().map(Ineligible::label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn fallback_reason_names_the_failure() {
        let failure = WsFailure::new(
            Phase::Connect,
            FailureKind::Timeout(std::time::Duration::from_secs(5)),
        );
        let intent = Intent::Http(HttpReason::Fallback(failure));
        assert_eq!(
            intent.to_string(),
            "http because of a fallback after websocket connect failed: timed out after 5s"
        );
        assert_eq!(intent.reason_label(), "fallback");
        assert_eq!(intent.verdict(), "http");
    }

    #[test]
    fn pinned_reads_as_time_left_or_a_probe_deciding() {
        let now = Instant::now();
        let pinned = HttpReason::Pinned {
            until: Some(now + std::time::Duration::from_secs(30)),
        };
        assert_eq!(
            pinned.to_string(),
            "the websocket path is pinned to http for another 30s"
        );
        let half_open = HttpReason::Pinned { until: Some(now) };
        assert_eq!(
            half_open.to_string(),
            "the websocket path is pinned to http while a probe tries it"
        );
        let by_hand = HttpReason::Pinned { until: None };
        assert_eq!(
            by_hand.to_string(),
            "the websocket path is pinned to http until unpinned"
        );
    }

    #[test]
    fn unsupported_field_names_the_field() {
        let intent = Intent::Http(HttpReason::Ineligible(Ineligible::UnsupportedField(
            "background",
        )));
        assert_eq!(
            intent.to_string(),
            "http because the request's background field is not supported over the websocket"
        );
        assert_eq!(intent.reason_label(), "unsupported_field");
    }

    #[test]
    fn foreign_host_names_both_hosts() {
        let why = Ineligible::ForeignHost {
            host: "chatgpt.com".into(),
            expected: "api.openai.com".into(),
        };
        assert_eq!(
            why.to_string(),
            "the websocket url's host chatgpt.com is not the provider's registered host api.openai.com"
        );
    }
}
