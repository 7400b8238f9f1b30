//! The headers of the Responses API: those forwarded to a handshake by default (the
//! credentials and the OpenAI account and beta headers), the list-valued beta header, and
//! those an error event passes on to the client.
//!
//! # Example
//!
//! ```
//! use http::HeaderName;
//! use wsfirst_websocket::{Codec, responses::{FORWARD_HEADERS, LIST_HEADERS, ResponsesCodec, is_answer_header}};
//!
//! assert_eq!(ResponsesCodec::new().forward_headers(), &FORWARD_HEADERS);
//! assert!(FORWARD_HEADERS.iter().any(|name| name == "authorization"));
//! assert_eq!(ResponsesCodec::new().list_headers(), &LIST_HEADERS);
//!
//! assert!(is_answer_header(&HeaderName::from_static("retry-after")));
//! assert!(is_answer_header(&HeaderName::from_static("x-ratelimit-remaining-requests")));
//! assert!(!is_answer_header(&HeaderName::from_static("set-cookie")));
//! ```

use http::{
    HeaderName,
    header::{AUTHORIZATION, RETRY_AFTER},
};

/// The request headers that [`ResponsesCodec`](super::ResponsesCodec) forwards to the handshake
/// (its [`Codec::forward_headers`](crate::Codec::forward_headers)): `authorization`,
/// `openai-beta`, `openai-organization` and `openai-project`. A configuration that sets its own
/// list replaces them.
pub static FORWARD_HEADERS: [HeaderName; 4] = [
    AUTHORIZATION,
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
];

/// The handshake headers whose values are comma-separated lists of flags (the
/// [`Codec::list_headers`](crate::Codec::list_headers) of
/// [`ResponsesCodec`](super::ResponsesCodec)): `openai-beta`. A route's static `OpenAI-Beta`
/// value (such as `responses_websockets=2026-02-06`) is added to the client's own beta flags,
/// so a client that asks for other betas keeps them.
pub static LIST_HEADERS: [HeaderName; 1] = [HeaderName::from_static("openai-beta")];

/// The headers of an error event that reach the client with the answer: `retry-after` and
/// `retry-after-ms` (the official Python SDK waits for them before a retry, preferring the
/// millisecond one: `_calculate_retry_timeout` in `src/openai/_base_client.py`),
/// `x-should-retry` (which the SDK obeys), and `x-request-id` (for support), plus every header
/// starting with one of the [`ANSWER_HEADER_PREFIXES`]. Everything else an event carries is the
/// upstream's internal business and is dropped.
pub static ANSWER_HEADERS: [HeaderName; 4] = [
    RETRY_AFTER,
    HeaderName::from_static("retry-after-ms"),
    HeaderName::from_static("x-should-retry"),
    HeaderName::from_static("x-request-id"),
];

/// Prefixes of the rate-limit headers an error event passes on: `x-ratelimit-` (such as
/// `x-ratelimit-remaining-requests`, `x-ratelimit-reset-tokens`).
pub const ANSWER_HEADER_PREFIXES: [&str; 1] = ["x-ratelimit-"];

/// Whether an error event's header reaches the client with the answer (see [`ANSWER_HEADERS`]).
pub fn is_answer_header(name: &HeaderName) -> bool {
    ANSWER_HEADERS.contains(name)
        || ANSWER_HEADER_PREFIXES
            .iter()
            .any(|prefix| name.as_str().starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_reserved_for_the_websocket_handshake() {
        for name in FORWARD_HEADERS.iter().chain(&LIST_HEADERS) {
            assert!(
                !wsfirst_core::headers::is_reserved_for_websocket(name),
                "{name}"
            );
        }
    }

    #[test]
    fn only_rate_limit_and_retry_headers_are_answer_headers() {
        for name in [
            "retry-after",
            "retry-after-ms",
            "x-should-retry",
            "x-request-id",
            "x-ratelimit-limit-requests",
            "x-ratelimit-reset-tokens",
        ] {
            assert!(is_answer_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "set-cookie",
            "authorization",
            "openai-organization",
            "x-oai-is-update",
            "content-length",
            "x-ratelimit",
        ] {
            assert!(!is_answer_header(&HeaderName::from_static(name)), "{name}");
        }
    }
}
