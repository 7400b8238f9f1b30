//! Per-route configuration of the WebSocket attempt: timeouts, limits, codec and TLS. Which
//! headers the handshake carries is the [`Route`](wsfirst_core::Route)'s
//! [header policy](wsfirst_core::Route::headers), the same for both transports.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_websocket::{ResponsesCodec, WebSocketConfig};
//!
//! let config = WebSocketConfig::builder()
//!     .handshake_timeout(Duration::from_secs(3))
//!     .affinity_header("x-session-id")
//!     .codec(ResponsesCodec::new())
//!     .build()?;
//! assert_eq!(config.handshake_timeout(), Duration::from_secs(3));
//!
//! // Invalid values name the field.
//! let error = WebSocketConfig::builder().affinity_header("no spaces").build().unwrap_err();
//! assert_eq!(error.field(), "affinity_header");
//! # Ok::<(), wsfirst_websocket::ConfigError>(())
//! ```

use std::{fmt, sync::Arc, time::Duration};

use http::HeaderName;
use wsfirst_core::{
    HandshakeGates,
    limits::{DEFAULT_MAX_INCOMING_MESSAGE_SIZE, DEFAULT_MAX_MESSAGE_SIZE},
};

use crate::{Codec, ConfigError, ResponsesCodec, error::CONFIG, tls::ClientTls};

/// The configuration of one [`WebSocketLayer`](crate::WebSocketLayer) (one route in the facade).
///
/// Cheap to clone: everything is behind one `Arc`. Build it with [`WebSocketConfig::builder`].
#[derive(Clone)]
pub struct WebSocketConfig(Arc<ConfigInner>);

#[derive(Clone)]
struct ConfigInner {
    handshake_timeout: Duration,
    first_event_timeout: Duration,
    idle_timeout: Duration,
    max_message_size: usize,
    max_incoming_message_size: usize,
    affinity_header: Option<HeaderName>,
    codec: Arc<dyn Codec>,
    tls: Option<ClientTls>,
    /// Not a setting: the breaker registry in front, handed over when the stack is built.
    handshake_gates: Option<Arc<dyn HandshakeGates>>,
}

impl WebSocketConfig {
    /// Starts a configuration with the defaults.
    pub fn builder() -> WebSocketConfigBuilder {
        WebSocketConfigBuilder::default()
    }

    /// Time allowed for DNS, TCP connect, TLS and the upgrade together (default 5 s).
    pub fn handshake_timeout(&self) -> Duration {
        self.0.handshake_timeout
    }

    /// Time allowed from starting to send the request to the upstream's first event, the send
    /// included (default 30 s).
    pub fn first_event_timeout(&self) -> Duration {
        self.0.first_event_timeout
    }

    /// Time allowed between two events of one response (default 300 s, see
    /// [`WebSocketConfigBuilder::idle_timeout`]).
    pub fn idle_timeout(&self) -> Duration {
        self.0.idle_timeout
    }

    /// The largest request message sent, in bytes (default [`DEFAULT_MAX_MESSAGE_SIZE`],
    /// 16 MiB; see the [table of limits](wsfirst_core::limits)).
    pub fn max_message_size(&self) -> usize {
        self.0.max_message_size
    }

    /// The largest message received from the upstream, in bytes (default
    /// [`DEFAULT_MAX_INCOMING_MESSAGE_SIZE`], 64 MiB; see
    /// [`WebSocketConfigBuilder::max_incoming_message_size`]).
    pub fn max_incoming_message_size(&self) -> usize {
        self.0.max_incoming_message_size
    }

    /// The request header whose value pins a request to its own pooled connections.
    pub fn affinity_header(&self) -> Option<&HeaderName> {
        self.0.affinity_header.as_ref()
    }

    /// The codec that maps requests to messages and messages to the response body.
    pub fn codec(&self) -> &Arc<dyn Codec> {
        &self.0.codec
    }

    /// The TLS configuration used for `wss://`; `None`: [`ClientTls::default`] (see
    /// [`crate::tls`]).
    pub fn tls(&self) -> Option<&ClientTls> {
        self.0.tls.as_ref()
    }

    /// The same configuration with this TLS configuration, such as the one a whole stack shares
    /// (the other settings are kept, nothing is checked again).
    ///
    /// ```
    /// use wsfirst_websocket::{WebSocketConfig, tls::ClientTls};
    ///
    /// let config = WebSocketConfig::default().with_tls(ClientTls::default());
    /// assert!(config.tls().is_some());
    /// ```
    pub fn with_tls(self, tls: ClientTls) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.tls = Some(tls);
        Self(Arc::new(inner))
    }

    /// Where a request that carries no [`HandshakeGate`](wsfirst_core::HandshakeGate) finds one
    /// when it is about to open a connection; `None` (the default): such a request opens as it
    /// needs.
    pub fn handshake_gates(&self) -> Option<&Arc<dyn HandshakeGates>> {
        self.0.handshake_gates.as_ref()
    }

    /// The same configuration asking `gates` (the breaker registry of the layer in front, which
    /// the facade hands over when it builds a route) before a request without a gate of its own
    /// opens a connection, and telling them of a failed handshake at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http::HeaderMap;
    /// use wsfirst_core::{HandshakeGate, HandshakeGates, Route};
    /// use wsfirst_websocket::WebSocketConfig;
    ///
    /// /// Watches no key (a breaker registry is the real one).
    /// #[derive(Debug)]
    /// struct Nobody;
    ///
    /// impl HandshakeGates for Nobody {
    ///     fn gate(&self, _route: &Route, _headers: &HeaderMap) -> Option<HandshakeGate> {
    ///         None
    ///     }
    /// }
    ///
    /// let config = WebSocketConfig::default().with_handshake_gates(Arc::new(Nobody));
    /// assert!(config.handshake_gates().is_some());
    /// ```
    pub fn with_handshake_gates(self, gates: Arc<dyn HandshakeGates>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.handshake_gates = Some(gates);
        Self(Arc::new(inner))
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        // The defaults are valid by construction; `build` can only fail on user input.
        WebSocketConfigBuilder::default()
            .build()
            .unwrap_or_else(|error| unreachable!("default configuration is valid: {error}"))
    }
}

impl fmt::Debug for WebSocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketConfig")
            .field("handshake_timeout", &self.0.handshake_timeout)
            .field("first_event_timeout", &self.0.first_event_timeout)
            .field("idle_timeout", &self.0.idle_timeout)
            .field("max_message_size", &self.0.max_message_size)
            .field(
                "max_incoming_message_size",
                &self.0.max_incoming_message_size,
            )
            .field("affinity_header", &self.0.affinity_header)
            .field("codec", &self.0.codec)
            .field("tls", &self.0.tls)
            .field("handshake_gates", &self.0.handshake_gates)
            .finish()
    }
}

/// The default time allowed between two events of one response: 300 s (see
/// [`WebSocketConfigBuilder::idle_timeout`]).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Builds a [`WebSocketConfig`]; invalid values are reported by [`build`](Self::build) with the
/// field's name.
pub struct WebSocketConfigBuilder {
    handshake_timeout: Duration,
    first_event_timeout: Duration,
    idle_timeout: Duration,
    max_message_size: usize,
    max_incoming_message_size: usize,
    affinity_header: Option<String>,
    codec: Arc<dyn Codec>,
    tls: Option<ClientTls>,
}

impl Default for WebSocketConfigBuilder {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            first_event_timeout: Duration::from_secs(30),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_incoming_message_size: DEFAULT_MAX_INCOMING_MESSAGE_SIZE,
            affinity_header: None,
            codec: Arc::new(ResponsesCodec::new()),
            tls: None,
        }
    }
}

impl fmt::Debug for WebSocketConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketConfigBuilder")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("first_event_timeout", &self.first_event_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_incoming_message_size", &self.max_incoming_message_size)
            .field("affinity_header", &self.affinity_header)
            .field("codec", &self.codec)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl WebSocketConfigBuilder {
    /// Time allowed for DNS, TCP connect, TLS and the upgrade together (default 5 s). A dead
    /// endpoint costs at most this long.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Time allowed from starting to send the request to the first event, the send included
    /// (default 30 s).
    pub fn first_event_timeout(mut self, timeout: Duration) -> Self {
        self.first_event_timeout = timeout;
        self
    }

    /// Time allowed between two events of one response (default 300 s). Reasoning models can
    /// think for minutes between two events; OpenAI's own Rust client, Codex, waits 300 s for
    /// activity on a stream (`DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000` in
    /// `codex-rs/core/src/model_provider_info.rs`, used as the `idle_timeout` of its Responses
    /// WebSocket connection in `codex-rs/codex-api/src/endpoint/responses_websocket.rs`).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The largest request message sent, in bytes (default [`DEFAULT_MAX_MESSAGE_SIZE`],
    /// 16 MiB): a larger request is a `TooLarge` failure in the send phase, replayed over HTTP.
    /// The [table of limits](wsfirst_core::limits) says how it relates to the eligibility and
    /// fallback limits.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The largest message received from the upstream, in bytes (default
    /// [`DEFAULT_MAX_INCOMING_MESSAGE_SIZE`], 64 MiB). A Responses API answer's terminal event
    /// (`response.completed`) repeats the whole output, generated images (base64) and encrypted
    /// reasoning included, so it can be far larger than any request. A message over the limit
    /// is a `TooLarge` failure naming its size and the limit, never sent again (the upstream
    /// executed the request): the attempt's error before the first event, the body's after it.
    pub fn max_incoming_message_size(mut self, bytes: usize) -> Self {
        self.max_incoming_message_size = bytes;
        self
    }

    /// Reads a session's affinity key from this request header: requests with the same value
    /// reuse the same pooled connections (default: none).
    pub fn affinity_header(mut self, name: impl Into<String>) -> Self {
        self.affinity_header = Some(name.into());
        self
    }

    /// The codec (default [`ResponsesCodec`]).
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// The TLS configuration for `wss://`, built once and shared by every route (default: the
    /// process-wide default of webpki and platform roots, built at the first `wss://`
    /// connection; see [`crate::tls`]).
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the values and builds the configuration.
    pub fn build(self) -> Result<WebSocketConfig, ConfigError> {
        for (field, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("first_event_timeout", self.first_event_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            ConfigError::check_duration(CONFIG, field, value)?;
        }
        for (field, value) in [
            ("max_message_size", self.max_message_size),
            ("max_incoming_message_size", self.max_incoming_message_size),
        ] {
            ConfigError::check_not_zero(CONFIG, field, value as u64)?;
        }
        let affinity_header = match &self.affinity_header {
            Some(raw) => Some(header_name("affinity_header", raw)?),
            None => None,
        };
        Ok(WebSocketConfig(Arc::new(ConfigInner {
            handshake_timeout: self.handshake_timeout,
            first_event_timeout: self.first_event_timeout,
            idle_timeout: self.idle_timeout,
            max_message_size: self.max_message_size,
            max_incoming_message_size: self.max_incoming_message_size,
            affinity_header,
            codec: self.codec,
            tls: self.tls,
            handshake_gates: None,
        })))
    }
}

/// Parses a header name given to `field` (the [`HeaderPolicy`] rejects the reserved ones).
fn header_name(field: &'static str, raw: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(raw.as_bytes())
        .map_err(|_| ConfigError::invalid(CONFIG, field, format!("{raw:?} is not a header name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let config = WebSocketConfig::default();
        assert_eq!(config.handshake_timeout(), Duration::from_secs(5));
        assert_eq!(config.first_event_timeout(), Duration::from_secs(30));
        assert_eq!(config.idle_timeout(), Duration::from_secs(300));
        assert_eq!(config.max_message_size(), 16 * 1024 * 1024);
        assert_eq!(config.max_incoming_message_size(), 64 * 1024 * 1024);
        assert!(config.tls().is_none());
        assert!(config.affinity_header().is_none());
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases = [
            (
                WebSocketConfig::builder().handshake_timeout(Duration::ZERO),
                "handshake_timeout",
            ),
            (
                WebSocketConfig::builder().idle_timeout(Duration::ZERO),
                "idle_timeout",
            ),
            (
                WebSocketConfig::builder().first_event_timeout(Duration::MAX),
                "first_event_timeout",
            ),
            (
                WebSocketConfig::builder().max_message_size(0),
                "max_message_size",
            ),
            (
                WebSocketConfig::builder().max_incoming_message_size(0),
                "max_incoming_message_size",
            ),
            (
                WebSocketConfig::builder().affinity_header("no spaces"),
                "affinity_header",
            ),
        ];
        for (builder, field) in cases {
            let error = builder.build().unwrap_err();
            assert_eq!(error.field(), field, "{error}");
            assert!(error.to_string().contains(field), "{error}");
        }
    }
}
