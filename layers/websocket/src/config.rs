//! Per-route configuration of the WebSocket attempt: timeouts, limits, codec, TLS, and the
//! route's header policy (which the facade applies to the HTTP request too).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_websocket::{ResponsesCodec, WebSocketConfig};
//!
//! let config = WebSocketConfig::builder()
//!     .handshake_timeout(Duration::from_secs(3))
//!     .static_header("openai-beta", "responses-websocket=v1")
//!     .affinity_header("x-session-id")
//!     .codec(ResponsesCodec::new())
//!     .build()?;
//! assert_eq!(config.handshake_timeout(), Duration::from_secs(3));
//!
//! // Invalid values name the field.
//! let error = WebSocketConfig::builder().forward_header("connection").build().unwrap_err();
//! assert_eq!(error.field(), "forward_headers");
//! # Ok::<(), wsfirst_websocket::ConfigError>(())
//! ```

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue};
use wsfirst_core::{
    headers::HeaderPolicy,
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
    headers: HeaderPolicy,
    affinity_header: Option<HeaderName>,
    codec: Arc<dyn Codec>,
    tls: Option<ClientTls>,
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

    /// The route's header policy: which request headers reach the upstream, on the handshake
    /// and (handed to the HTTP upstream by the facade) on the HTTP request alike. Built from
    /// the [forwarded](WebSocketConfigBuilder::forward_headers) and
    /// [static](WebSocketConfigBuilder::static_header) headers and the codec's
    /// [list headers](Codec::list_headers).
    pub fn headers(&self) -> &HeaderPolicy {
        &self.0.headers
    }

    /// The request headers copied to the upstream request (see [`headers`](Self::headers)).
    pub fn forward_headers(&self) -> &[HeaderName] {
        self.0.headers.forward_headers()
    }

    /// Headers set on every upstream request (see [`headers`](Self::headers)).
    pub fn static_headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.0.headers.static_headers()
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

    /// The same configuration with this header policy (the other settings are kept). The
    /// facade uses it to take the eligibility override header out of a route's policy.
    ///
    /// ```
    /// use http::HeaderName;
    /// use wsfirst_websocket::WebSocketConfig;
    ///
    /// let config = WebSocketConfig::builder().forward_header("x-team").build()?;
    /// let team = HeaderName::from_static("x-team");
    /// let config = config.clone().with_headers(config.headers().without(&team));
    /// assert!(!config.forward_headers().contains(&team));
    /// # Ok::<(), wsfirst_websocket::ConfigError>(())
    /// ```
    pub fn with_headers(self, headers: HeaderPolicy) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.headers = headers;
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
            .field("headers", &self.0.headers)
            .field("affinity_header", &self.0.affinity_header)
            .field("codec", &self.0.codec)
            .field("tls", &self.0.tls)
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
    /// The list that replaces the codec's, if any.
    forward_headers: Option<Vec<String>>,
    /// Headers added to the list (the codec's or the replacement).
    more_forward_headers: Vec<String>,
    static_headers: Vec<(String, String)>,
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
            forward_headers: None,
            more_forward_headers: Vec::new(),
            static_headers: Vec::new(),
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
            .field("forward_headers", &self.forward_headers)
            .field("more_forward_headers", &self.more_forward_headers)
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

    /// Replaces the list of request headers forwarded to the upstream, on the handshake and
    /// over HTTP alike (default: the codec's [`forward_headers`](Codec::forward_headers)), and
    /// forgets the headers added before. Hop-by-hop and handshake headers are rejected
    /// ([`is_reserved_for_websocket`](wsfirst_core::headers::is_reserved_for_websocket)).
    /// Headers not listed are never forwarded (`cookie` included), except the
    /// [body headers](wsfirst_core::headers::BODY_HEADERS), which the HTTP request always
    /// carries; see [`HeaderPolicy`].
    pub fn forward_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.forward_headers = Some(names.into_iter().map(Into::into).collect());
        self.more_forward_headers.clear();
        self
    }

    /// Adds one request header to forward to the upstream (both transports), after the codec's
    /// (or the list given to [`forward_headers`](Self::forward_headers)).
    pub fn forward_header(mut self, name: impl Into<String>) -> Self {
        self.more_forward_headers.push(name.into());
        self
    }

    /// Sets a header on every upstream request, on the handshake and over HTTP alike, such as
    /// `OpenAI-Beta: responses-websocket=v1`, or the `Authorization` of a gateway that holds
    /// the API key. It replaces a forwarded request header of the same name, except for the
    /// codec's [list headers](Codec::list_headers) (the Responses API's `OpenAI-Beta`), whose
    /// value is added to the request's own items, comma-separated and without duplicates.
    pub fn static_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.static_headers.push((name.into(), value.into()));
        self
    }

    /// Reads a session's affinity key from this request header: requests with the same value
    /// reuse the same pooled connections (default: none).
    pub fn affinity_header(mut self, name: impl Into<String>) -> Self {
        self.affinity_header = Some(name.into());
        self
    }

    /// The codec (default [`ResponsesCodec`]). Unless the list is set with
    /// [`forward_headers`](Self::forward_headers), the headers forwarded to the upstream are
    /// the codec's [`forward_headers`](Codec::forward_headers).
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
        let mut headers = HeaderPolicy::builder();
        headers = match &self.forward_headers {
            Some(names) => names.iter().try_fold(headers, |headers, raw| {
                Ok::<_, ConfigError>(headers.forward_header(header_name("forward_headers", raw)?))
            })?,
            None => headers.forward_headers(self.codec.forward_headers().iter().cloned()),
        };
        for raw in &self.more_forward_headers {
            headers = headers.forward_header(header_name("forward_headers", raw)?);
        }
        for (name, value) in &self.static_headers {
            let name = header_name("static_headers", name)?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                ConfigError::invalid(
                    CONFIG,
                    "static_headers",
                    format!("the value of {name} is not a valid header value"),
                )
            })?;
            headers = headers.static_header(name, value);
        }
        for name in self.codec.list_headers() {
            headers = headers.list_header(name.clone());
        }
        let headers = headers.build().map_err(|error| {
            ConfigError::invalid(
                CONFIG,
                error.field(),
                format!(
                    "{} is a hop-by-hop or handshake header and is never forwarded",
                    error.name()
                ),
            )
        })?;
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
            headers,
            affinity_header,
            codec: self.codec,
            tls: self.tls,
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
        let names: Vec<_> = config
            .forward_headers()
            .iter()
            .map(HeaderName::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "authorization",
                "openai-beta",
                "openai-organization",
                "openai-project"
            ]
        );
        assert!(config.affinity_header().is_none());
        assert_eq!(config.headers().forward_headers(), config.forward_headers());
        assert_eq!(
            config.headers().list_headers(),
            &crate::responses::LIST_HEADERS
        );
        assert!(config.headers().static_headers().is_empty());
    }

    #[test]
    fn the_header_policy_holds_the_forwarded_and_static_headers() {
        let config = WebSocketConfig::builder()
            .codec(crate::RawCodec::new())
            .forward_header("X-Team")
            .static_header("Authorization", "Bearer sk-route")
            .build()
            .unwrap();
        let policy = config.headers();
        assert_eq!(policy.forward_headers(), ["x-team"]);
        assert!(policy.list_headers().is_empty());
        let [(name, value)] = policy.static_headers() else {
            panic!("one static header expected: {policy:?}");
        };
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("authorization", "Bearer sk-route")
        );
        // `with_headers` replaces the policy and keeps the rest.
        let replaced = config
            .clone()
            .with_headers(wsfirst_core::headers::HeaderPolicy::default());
        assert!(replaced.forward_headers().is_empty());
        assert!(replaced.static_headers().is_empty());
        assert_eq!(replaced.handshake_timeout(), config.handshake_timeout());
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
                WebSocketConfig::builder().forward_header("Transfer-Encoding"),
                "forward_headers",
            ),
            (
                WebSocketConfig::builder().forward_header("bad header"),
                "forward_headers",
            ),
            (
                WebSocketConfig::builder().static_header("upgrade", "h2c"),
                "static_headers",
            ),
            (
                WebSocketConfig::builder().static_header("x-ok", "bad\nvalue"),
                "static_headers",
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

    #[test]
    fn forwarded_headers_come_from_the_codec_unless_listed() {
        fn names(builder: WebSocketConfigBuilder) -> Vec<String> {
            let config = builder.build().unwrap();
            config
                .forward_headers()
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect()
        }
        let responses: Vec<String> = crate::responses::FORWARD_HEADERS
            .iter()
            .map(|name| name.as_str().to_owned())
            .collect();
        assert_eq!(names(WebSocketConfig::builder()), responses);
        assert!(names(WebSocketConfig::builder().codec(crate::RawCodec::new())).is_empty());
        // Added headers come after the codec's, whichever is set first.
        assert_eq!(
            names(
                WebSocketConfig::builder()
                    .forward_header("X-Session")
                    .codec(crate::RawCodec::new())
            ),
            ["x-session"]
        );
        let mut more = responses.clone();
        more.push("x-session".into());
        assert_eq!(
            names(
                WebSocketConfig::builder()
                    .forward_header("x-session")
                    .forward_header("authorization")
            ),
            more
        );
        // A list replaces the codec's and what was added before it.
        assert_eq!(
            names(
                WebSocketConfig::builder()
                    .forward_header("x-before")
                    .forward_headers(["authorization"])
                    .forward_header("x-after")
            ),
            ["authorization", "x-after"]
        );
    }

    #[test]
    fn a_codec_asking_for_a_reserved_header_fails_the_build() {
        #[derive(Debug)]
        struct Upgrade;
        static NAMES: [HeaderName; 1] = [http::header::UPGRADE];
        impl Codec for Upgrade {
            fn encode(
                &self,
                _: &http::request::Parts,
                _: bytes::Bytes,
            ) -> Result<crate::Encoded, crate::CodecError> {
                unreachable!()
            }
            fn decode(
                &self,
                _: crate::Message,
                _: &crate::Exchange,
            ) -> Result<crate::Decoded, crate::CodecError> {
                unreachable!()
            }
            fn forward_headers(&self) -> &[HeaderName] {
                &NAMES
            }
        }
        let error = WebSocketConfig::builder()
            .codec(Upgrade)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "forward_headers");
        // A list of its own replaces the codec's.
        assert!(
            WebSocketConfig::builder()
                .codec(Upgrade)
                .forward_headers(["authorization"])
                .build()
                .is_ok()
        );
    }

    #[test]
    fn debug_hides_static_header_values() {
        let config = WebSocketConfig::builder()
            .static_header("x-api-key", "secret-value")
            .build()
            .unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("x-api-key"), "{debug}");
        assert!(!debug.contains("secret-value"), "{debug}");
    }
}
