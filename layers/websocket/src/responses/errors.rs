//! What an error event of the Responses API is about: the codes and messages that name a
//! connection or a request rather than the provider, and the statuses that make an error event
//! the upstream's answer to the request.
//!
//! In WebSocket mode an error event carries the HTTP status the HTTP endpoint would have
//! answered with: `{"type":"error","status":400,"error":{"type","code","message","param"},
//! "headers":{...}}` (OpenAI's WebSocket-mode guide,
//! <https://developers.openai.com/api/docs/guides/websocket-mode>; the Python SDK's
//! `ResponseWsError` in `src/openai/types/responses/responses_server_event.py`, whose
//! `status` is "the HTTP status code associated with a WebSocket protocol error"; OpenAI's
//! Codex client maps it the same way, `codex-rs/codex-api/src/endpoint/responses_websocket.rs`,
//! `map_wrapped_websocket_error_event`: a status becomes the HTTP error it stands for, except
//! `websocket_connection_limit_reached`, which is retried on a new connection).
//!
//! # Which errors say "not executed"
//!
//! An error of [`ErrorScope::Connection`] before any event is, for the WebSocket layer, the
//! upstream's word that it refused the request on this connection without executing it, so the
//! request may be sent again (once on a fresh connection, then over HTTP). Only two kinds of
//! error say that: the connection limit (`websocket_connection_limit_reached`: the guide says a
//! connection lives at most 60 minutes and the client must open a new one; the event comes with
//! status 400, the HTTP status of a request that was rejected, not run), and an error whose
//! message asks the client to reconnect ("connection too old", "please reconnect": the same
//! limit in other words). Every other error before any event (a 5xx, one without a status) may
//! come after the upstream started on the request: it is a failure that is not sent again.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use wsfirst_core::ErrorScope;
//! use wsfirst_websocket::responses::{error_scope, is_answer};
//!
//! assert_eq!(error_scope(Some("websocket_connection_limit_reached"), ""), ErrorScope::Connection);
//! assert_eq!(error_scope(Some("rate_limit_exceeded"), "slow down"), ErrorScope::Request);
//! assert_eq!(error_scope(None, "Connection too old, please reconnect"), ErrorScope::Connection);
//! assert_eq!(error_scope(Some("server_error"), "boom"), ErrorScope::Provider);
//!
//! // A client error is the upstream's answer, a server error a failure of the path.
//! assert!(is_answer(Some(StatusCode::BAD_REQUEST), Some("invalid_value"), "bad"));
//! assert!(is_answer(Some(StatusCode::TOO_MANY_REQUESTS), Some("rate_limit_exceeded"), "slow down"));
//! assert!(!is_answer(Some(StatusCode::INTERNAL_SERVER_ERROR), Some("server_error"), "boom"));
//! assert!(!is_answer(None, Some("invalid_value"), "bad"));
//! // The connection limit comes with status 400 but asks for another connection.
//! assert!(!is_answer(Some(StatusCode::BAD_REQUEST), Some("websocket_connection_limit_reached"), ""));
//! ```

use http::StatusCode;
use wsfirst_core::ErrorScope;

/// Error codes that mean "this connection is finished, open another", not "this endpoint", and
/// that the request was not executed: before any event, the request is sent again once on a
/// fresh connection, and the breaker does not count them.
///
/// `websocket_connection_limit_reached`: a connection lives at most 60 minutes (the guide;
/// the real event comes with status 400, type `invalid_request_error`).
/// `previous_response_not_found` is not here: a fresh connection cannot know the response
/// either, so it is the upstream's answer (status 400) like any client error.
pub const CONNECTION_SCOPED_CODES: [&str; 1] = ["websocket_connection_limit_reached"];

/// Error codes about the client, not the path: the breaker does not count them, even when they
/// come without a status (with a client-error status they are answers anyway, see
/// [`is_answer`]).
pub const REQUEST_SCOPED_CODES: [&str; 2] = ["rate_limit_exceeded", "previous_response_not_found"];

/// Message fragments (lower case, matched in any case) of errors that ask the client to
/// reconnect, whatever their status (unless their code is one of the [`REQUEST_SCOPED_CODES`]):
/// like the [`CONNECTION_SCOPED_CODES`], the request was refused on this connection, so it is
/// sent again on a fresh one (then over HTTP); the breaker does not count them, and they are
/// never passed to the client as answers.
pub const RECONNECT_MESSAGES: [&str; 2] = ["connection too old", "please reconnect"];

/// What an error event with this code and message is about: [`ErrorScope::Connection`] for the
/// [`CONNECTION_SCOPED_CODES`] and for messages containing one of the [`RECONNECT_MESSAGES`],
/// [`ErrorScope::Request`] for the [`REQUEST_SCOPED_CODES`], and [`ErrorScope::Provider`] for
/// everything else (an unknown error counts against the path).
pub fn error_scope(code: Option<&str>, message: &str) -> ErrorScope {
    match code {
        Some(code) if CONNECTION_SCOPED_CODES.contains(&code) => ErrorScope::Connection,
        Some(code) if REQUEST_SCOPED_CODES.contains(&code) => ErrorScope::Request,
        _ if asks_to_reconnect(message) => ErrorScope::Connection,
        _ => ErrorScope::Provider,
    }
}

/// Whether an error event seen before any output is the upstream's answer to the request,
/// which the client gets as it is (the status, the HTTP error body, the rate-limit headers),
/// rather than a failure of the WebSocket path: a client-error status (4xx, 429 included),
/// unless the code is one of the [`CONNECTION_SCOPED_CODES`] or the message one of the
/// [`RECONNECT_MESSAGES`]. A server error (5xx) or an event without a status is a failure,
/// counted against the provider unless [`error_scope`] says otherwise, and not sent again
/// (the upstream may have started on the request).
pub fn is_answer(status: Option<StatusCode>, code: Option<&str>, message: &str) -> bool {
    status.is_some_and(|status| status.is_client_error())
        && error_scope(code, message) != ErrorScope::Connection
        && !asks_to_reconnect(message)
}

fn asks_to_reconnect(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    RECONNECT_MESSAGES.iter().any(|m| lower.contains(m))
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
    fn reconnect_messages_are_about_the_connection_in_any_case_and_with_any_other_code() {
        for fragment in RECONNECT_MESSAGES {
            let upper = format!("Upstream: {}!", fragment.to_ascii_uppercase());
            assert_eq!(
                error_scope(Some("rate_limit_exceeded"), &upper),
                ErrorScope::Request
            );
            for code in [None, Some("server_error"), Some("unknown")] {
                assert_eq!(
                    error_scope(code, &upper),
                    ErrorScope::Connection,
                    "{code:?} {upper}"
                );
            }
        }
    }

    #[test]
    fn a_code_wins_over_the_message() {
        assert_eq!(
            error_scope(
                Some("websocket_connection_limit_reached"),
                "please reconnect"
            ),
            ErrorScope::Connection
        );
    }

    #[test]
    fn a_missing_previous_response_is_the_requests_business_not_the_connections() {
        assert_eq!(
            error_scope(Some("previous_response_not_found"), "gone"),
            ErrorScope::Request
        );
        assert!(is_answer(
            Some(StatusCode::BAD_REQUEST),
            Some("previous_response_not_found"),
            "gone"
        ));
    }

    #[test]
    fn client_errors_are_answers_server_errors_and_missing_statuses_are_not() {
        for status in [400, 401, 403, 404, 409, 422, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                is_answer(Some(status), Some("invalid_value"), "bad"),
                "{status}"
            );
            assert!(is_answer(Some(status), None, ""), "{status}");
        }
        for status in [500, 502, 503, 200, 302] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                !is_answer(Some(status), Some("server_error"), "boom"),
                "{status}"
            );
        }
        assert!(!is_answer(None, Some("invalid_value"), "bad"));
    }

    #[test]
    fn connection_limits_and_reconnect_requests_are_never_answers() {
        for code in CONNECTION_SCOPED_CODES {
            assert!(
                !is_answer(Some(StatusCode::BAD_REQUEST), Some(code), "x"),
                "{code}"
            );
        }
        assert!(!is_answer(
            Some(StatusCode::BAD_REQUEST),
            None,
            "Connection too old, please reconnect"
        ));
    }

    #[test]
    fn reconnect_requests_with_a_request_scoped_code_are_not_answers_either() {
        // The code makes the scope the request's, but the message still asks for another
        // connection: the request is sent again there, not passed to the client.
        for code in REQUEST_SCOPED_CODES {
            for fragment in RECONNECT_MESSAGES {
                let message = format!("Upstream: {fragment}");
                for status in [StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS] {
                    assert!(
                        !is_answer(Some(status), Some(code), &message),
                        "{status} {code} {message}"
                    );
                }
            }
        }
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
