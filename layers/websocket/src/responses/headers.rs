//! The request headers forwarded to a Responses API handshake by default: the credentials and
//! the OpenAI account and beta headers.
//!
//! # Example
//!
//! ```
//! use wsfirst_websocket::{Codec, responses::{FORWARD_HEADERS, ResponsesCodec}};
//!
//! assert_eq!(ResponsesCodec::new().forward_headers(), &FORWARD_HEADERS);
//! assert!(FORWARD_HEADERS.iter().any(|name| name == "authorization"));
//! ```

use http::{HeaderName, header::AUTHORIZATION};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_reserved_for_the_websocket_handshake() {
        for name in &FORWARD_HEADERS {
            assert!(
                !wsfirst_core::headers::is_reserved_for_websocket(name),
                "{name}"
            );
        }
    }
}
