//! Which log events may carry a credential, so that no log filter can print one.
//!
//! wsfirst itself never logs a credential at any level: breaker and pool keys hold a
//! fingerprint, and `Debug` of routes and configurations redacts secrets. Some dependencies do
//! at their most verbose level: tungstenite logs the whole WebSocket upgrade request, its
//! `Authorization` header included, at `TRACE` (target `tungstenite::handshake::client`). A
//! filter such as `RUST_LOG=trace` would print it.
//!
//! **What a service using wsfirst must do:** drop the events [`may_carry_credentials`] names,
//! in a filter that no `RUST_LOG` value can override (a per-layer filter next to the
//! `EnvFilter`, not a directive inside it), as the `wsfirst-gateway` binary does:
//!
//! ```
//! use tracing_subscriber::{EnvFilter, filter::filter_fn, prelude::*};
//!
//! let logs = tracing_subscriber::fmt::layer()
//!     .with_filter(EnvFilter::new("trace"))
//!     .with_filter(filter_fn(|event| {
//!         !wsfirst::logging::may_carry_credentials(event.target(), *event.level())
//!     }));
//! let _subscriber = tracing_subscriber::registry().with(logs);
//! ```

use tracing::Level;

/// Targets whose events at `TRACE` may print raw request bytes or headers.
const RAW_AT_TRACE: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// Whether an event of `target` at `level` may print a credential (raw request bytes or
/// headers): then drop it, whatever the log filter says.
///
/// ```
/// use tracing::Level;
/// use wsfirst::logging::may_carry_credentials;
///
/// assert!(may_carry_credentials("tungstenite::handshake::client", Level::TRACE));
/// assert!(!may_carry_credentials("tungstenite::handshake::client", Level::DEBUG));
/// assert!(!may_carry_credentials("wsfirst_breaker::registry", Level::TRACE));
/// ```
pub fn may_carry_credentials(target: &str, level: Level) -> bool {
    level == Level::TRACE
        && RAW_AT_TRACE.iter().any(|crate_name| {
            target == *crate_name
                || target
                    .strip_prefix(crate_name)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}
