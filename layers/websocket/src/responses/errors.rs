//! What an error event of the Responses API is about: the codes and messages that name a
//! connection or a request rather than the provider.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::ErrorScope;
//! use wsfirst_websocket::responses::error_scope;
//!
//! assert_eq!(error_scope(Some("previous_response_not_found"), "gone"), ErrorScope::Connection);
//! assert_eq!(error_scope(Some("rate_limit_exceeded"), "slow down"), ErrorScope::Request);
//! assert_eq!(error_scope(None, "Connection too old, please reconnect"), ErrorScope::Request);
//! assert_eq!(error_scope(Some("server_error"), "boom"), ErrorScope::Provider);
//! ```

use wsfirst_core::ErrorScope;

/// Error codes that mean "this connection", not "this endpoint": before any event, the attempt
/// is retried once on a fresh connection, and the breaker does not count them.
pub const CONNECTION_SCOPED_CODES: [&str; 2] = [
    "previous_response_not_found",
    "websocket_connection_limit_reached",
];

/// Error codes about the client, not the path: the breaker does not count them.
pub const REQUEST_SCOPED_CODES: [&str; 1] = ["rate_limit_exceeded"];

/// Message fragments (lower case, matched in any case) of errors that ask the client to
/// reconnect, whatever their code: the breaker does not count them.
pub const RECONNECT_MESSAGES: [&str; 2] = ["connection too old", "please reconnect"];

/// What an error event with this code and message is about: [`ErrorScope::Connection`] for the
/// [`CONNECTION_SCOPED_CODES`], [`ErrorScope::Request`] for the [`REQUEST_SCOPED_CODES`] and for
/// messages containing one of the [`RECONNECT_MESSAGES`], and [`ErrorScope::Provider`] for
/// everything else (an unknown error counts against the path).
pub fn error_scope(code: Option<&str>, message: &str) -> ErrorScope {
    match code {
        Some(code) if CONNECTION_SCOPED_CODES.contains(&code) => ErrorScope::Connection,
        Some(code) if REQUEST_SCOPED_CODES.contains(&code) => ErrorScope::Request,
        _ => {
            let lower = message.to_ascii_lowercase();
            if RECONNECT_MESSAGES.iter().any(|m| lower.contains(m)) {
                ErrorScope::Request
            } else {
                ErrorScope::Provider
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_scoped_codes_are_about_the_connection() {
        for code in CONNECTION_SCOPED_CODES {
            assert_eq!(
                error_scope(Some(code), "boom"),
                ErrorScope::Connection,
                "{code}"
            );
        }
    }

    #[test]
    fn request_scoped_codes_are_about_the_request() {
        for code in REQUEST_SCOPED_CODES {
            assert_eq!(
                error_scope(Some(code), "boom"),
                ErrorScope::Request,
                "{code}"
            );
        }
    }

    #[test]
    fn reconnect_messages_are_about_the_request_in_any_case_and_with_any_code() {
        for fragment in RECONNECT_MESSAGES {
            let upper = format!("Upstream: {}!", fragment.to_ascii_uppercase());
            for code in [None, Some("server_error"), Some("unknown")] {
                assert_eq!(
                    error_scope(code, &upper),
                    ErrorScope::Request,
                    "{code:?} {upper}"
                );
            }
        }
    }

    #[test]
    fn a_code_wins_over_the_message() {
        assert_eq!(
            error_scope(Some("previous_response_not_found"), "please reconnect"),
            ErrorScope::Connection
        );
    }

    #[test]
    fn unknown_codes_and_messages_are_about_the_provider() {
        for code in [
            None,
            Some("server_error"),
            Some(""),
            Some("RATE_LIMIT_EXCEEDED"),
        ] {
            assert_eq!(error_scope(code, "boom"), ErrorScope::Provider, "{code:?}");
        }
        assert_eq!(error_scope(None, ""), ErrorScope::Provider);
    }
}
