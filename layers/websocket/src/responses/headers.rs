//! The headers of the Responses API: those forwarded to a handshake by default (the
//! credentials and the OpenAI account and beta headers), the list-valued beta header, and
//! those an error event passes on to the client.
//!
//! # Example
//!
//! ```
//! use http::HeaderName;
//! use wsfirst_websocket::responses::{FORWARD_HEADERS, LIST_HEADERS, is_answer_header};
//!
//! assert!(FORWARD_HEADERS.iter().any(|name| name == "authorization"));
//! assert_eq!(LIST_HEADERS[0], "openai-beta");
//!
//! assert!(is_answer_header(&HeaderName::from_static("retry-after")));
//! assert!(is_answer_header(&HeaderName::from_static("x-ratelimit-remaining-requests")));
//! assert!(!is_answer_header(&HeaderName::from_static("set-cookie")));
//! ```

use http::{HeaderName, header::RETRY_AFTER};

/// The request headers this API reads, forwarded by a route's default header policy
/// ([`HeaderPolicy::responses`](wsfirst_core::headers::HeaderPolicy::responses)): core's
/// [`RESPONSES_FORWARD_HEADERS`](wsfirst_core::headers::RESPONSES_FORWARD_HEADERS).
pub use wsfirst_core::headers::RESPONSES_FORWARD_HEADERS as FORWARD_HEADERS;

/// The API's list-valued headers (`openai-beta`): core's
/// [`RESPONSES_LIST_HEADERS`](wsfirst_core::headers::RESPONSES_LIST_HEADERS).
pub use wsfirst_core::headers::RESPONSES_LIST_HEADERS as LIST_HEADERS;

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
