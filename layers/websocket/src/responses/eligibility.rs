//! The default eligibility data for the Responses API: which (provider, API) pairs try the
//! WebSocket, which never do, and on which hosts. Plain constants: the facade feeds them to
//! the eligibility table's builder, so this crate does not depend on the eligibility layer.
//!
//! # Example
//!
//! How a table builder takes them (the facade does this with `EligibilityTable::builder()`):
//!
//! ```
//! use wsfirst_websocket::responses::{DENIED_PAIRS, PROVIDER_HOSTS, WEBSOCKET_PAIRS};
//!
//! let mut allowed = Vec::new();
//! let mut denied = Vec::new();
//! let mut hosts = Vec::new();
//! for &(provider, api) in WEBSOCKET_PAIRS {
//!     allowed.push((provider, api)); // builder.allow(provider, api)
//! }
//! for &(provider, api) in DENIED_PAIRS {
//!     denied.push((provider, api)); // builder.deny(provider, api)
//! }
//! for &(provider, host) in PROVIDER_HOSTS {
//!     hosts.push((provider, host)); // builder.provider_host(provider, host)
//! }
//! assert_eq!(allowed, [("openai", "openai-responses")]);
//! assert_eq!(denied, [("openai-codex", "openai-codex-responses")]);
//! assert_eq!(hosts, [("openai", "api.openai.com")]);
//! ```

/// The (provider, API) pairs allowed to try the WebSocket: OpenAI's public Responses API.
pub const WEBSOCKET_PAIRS: &[(&str, &str)] = &[("openai", "openai-responses")];

/// The (provider, API) pairs that never try the WebSocket, even if allowed elsewhere (the deny
/// list wins).
///
/// `openai-codex` / `openai-codex-responses` is the incident pair: a gateway marked it
/// WebSocket-eligible, but its WebSocket endpoint was the wrong one, so every request got
/// status 500 during the upgrade and fell back to HTTP, paying a failed handshake and logging a
/// warning each time. Denying the pair is the incident's one-line fix.
pub const DENIED_PAIRS: &[(&str, &str)] = &[("openai-codex", "openai-codex-responses")];

/// The registered WebSocket hosts per provider, as (provider, host): an allowed pair whose
/// WebSocket URL points at another host (another provider's endpoint, as in the incident) stays
/// on HTTP.
pub const PROVIDER_HOSTS: &[(&str, &str)] = &[("openai", "api.openai.com")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pair_is_both_allowed_and_denied_and_every_allowed_provider_has_a_host() {
        for pair in WEBSOCKET_PAIRS {
            assert!(!DENIED_PAIRS.contains(pair), "{pair:?}");
            assert!(
                PROVIDER_HOSTS
                    .iter()
                    .any(|(provider, _)| *provider == pair.0),
                "{pair:?}"
            );
        }
    }
}
