//! The shared vocabulary of wsfirst: typed `http` extensions that every layer reads and writes.
//!
//! No layer talks to another through globals. A request carries a [`Route`] (who it is for) and an
//! [`Intent`] (the transport chosen so far and why); a response carries [`Served`] (which transport
//! served it, and the fallback cause if any); a failed WebSocket attempt is a [`WsFailure`] with the
//! [`Phase`] it happened in, its [`FailureKind`] (which decides how much it counts against the
//! provider) and its [`Delivery`] (how far the request got, which decides, with the route's
//! [`Replay`] setting, whether it may be sent again: only when the upstream provably did not
//! execute it).
//!
//! Nothing here shows a secret: credentials are known by a keyed [`Fingerprint`] (see
//! [`FingerprintKey`]), URLs are shown without userinfo or query string ([`redact`]), and an
//! upgrade refused with 401 or 403 keeps no body ([`WsFailure::new`]).
//!
//! This crate does no I/O and has no async code.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::{HttpReason, Intent, Route, TransportMode};
//!
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .mode(TransportMode::Auto)
//!     .credential("Bearer sk-secret")
//!     .build()?;
//!
//! let mut request = http::Request::new(());
//! request.extensions_mut().insert(route.clone());
//! request.extensions_mut().insert(Intent::Http(HttpReason::ModeHttp));
//!
//! assert_eq!(route.provider(), "openai");
//! // The breaker key names the endpoint and a fingerprint, never the secret.
//! assert!(!format!("{:?}", route).contains("sk-secret"));
//! assert_eq!(
//!     request.extensions().get::<Intent>().unwrap().to_string(),
//!     "http because the route's mode is http",
//! );
//! # Ok::<(), wsfirst_core::RouteError>(())
//! ```
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod breaker_key;
mod config_error;
mod error;
mod failure;
mod fingerprint;
mod handshake;
pub mod headers;
mod intent;
pub mod limits;
mod macros;
pub mod redact;
mod resend;
mod route;
mod served;
mod timeouts;
mod websocket_only;

pub use breaker_key::BreakerKey;
pub use config_error::{ConfigError, ConfigErrorKind};
pub use error::MissingExtension;
pub use failure::{ErrorScope, FailureKind, Phase, WsFailure};
pub use fingerprint::{Fingerprint, FingerprintKey, FingerprintKeyError};
pub use handshake::{HandshakeGate, HandshakeGates, HandshakeObserver};
pub use intent::{HttpReason, Ineligible, Intent};
pub use resend::{Delivery, Replay};
pub use route::{Route, RouteBuilder, RouteError, TransportMode};
pub use served::{Served, Transport};
pub use timeouts::HttpTimeouts;
pub use websocket_only::{WebSocketOnly, WebSocketRequired, find_websocket_required};

/// The longest duration any wsfirst setting accepts (100 years): every timeout and pin is
/// added to an `Instant`, and far larger values would overflow it. Builders reject longer ones.
pub const MAX_DURATION: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The error type that crosses layers: every layer's error converts into it, and callers find
/// typed causes (such as [`WsFailure`]) by walking [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Finds the first [`WsFailure`] in an error's source chain, the error itself included.
///
/// ```
/// use wsfirst_core::{find_ws_failure, BoxError, FailureKind, Phase, WsFailure};
///
/// let failure = WsFailure::new(Phase::Connect, FailureKind::Dns("no such host".into()));
/// let boxed: BoxError = Box::new(failure.clone());
/// assert_eq!(find_ws_failure(&*boxed), Some(&failure));
/// ```
pub fn find_ws_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a WsFailure> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(failure) = error.downcast_ref::<WsFailure>() {
            return Some(failure);
        }
        current = error.source();
    }
    None
}
