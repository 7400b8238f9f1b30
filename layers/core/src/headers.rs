//! The one list of headers that no layer forwards or lets configuration set.
//!
//! Hop-by-hop headers describe one connection, not the request (RFC 9110 §7.6.1), so they are
//! never copied from a client's request to an upstream request, over HTTP or WebSocket. The
//! WebSocket handshake's own headers are set by the WebSocket client and cannot be forwarded or
//! configured either. Every layer and the facade's configuration ask these functions, so they
//! cannot disagree.
//!
//! # Example
//!
//! ```
//! use http::header::{AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_PROTOCOL};
//! use wsfirst_core::headers;
//!
//! assert!(headers::is_hop_by_hop(&CONNECTION));
//! assert!(headers::is_reserved_for_websocket(&SEC_WEBSOCKET_PROTOCOL));
//! assert!(!headers::is_reserved_for_websocket(&AUTHORIZATION));
//! ```

use http::{HeaderName, header};

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus `upgrade`.
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers that the WebSocket client writes itself during the handshake (RFC 6455 §4.1), plus
/// `host` and `content-length`, which it derives from the URL and the (empty) upgrade request.
pub const WEBSOCKET_HANDSHAKE: [HeaderName; 7] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_PROTOCOL,
];

/// Whether `name` is a hop-by-hop header (see [`HOP_BY_HOP`]).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether `name` may neither be forwarded to nor configured on a WebSocket handshake: a
/// hop-by-hop header or one of the handshake's own (see [`WEBSOCKET_HANDSHAKE`]).
pub fn is_reserved_for_websocket(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || WEBSOCKET_HANDSHAKE.contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_do_not_overlap_and_hold_lower_case_names() {
        for name in HOP_BY_HOP.iter().chain(&WEBSOCKET_HANDSHAKE) {
            assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
        }
        assert!(HOP_BY_HOP.iter().all(|n| !WEBSOCKET_HANDSHAKE.contains(n)));
    }

    #[test]
    fn end_to_end_headers_are_not_reserved() {
        for name in [
            "authorization",
            "openai-beta",
            "x-session-id",
            "content-type",
        ] {
            let name = HeaderName::from_static(name);
            assert!(!is_reserved_for_websocket(&name), "{name}");
        }
    }
}
