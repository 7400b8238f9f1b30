//! Who a request is for: provider, API, upstream URLs, transport mode and breaker key, and
//! the settings both transports read from it: the header policy and the HTTP timeouts.

use std::{fmt, str::FromStr, sync::Arc};

use http::{HeaderMap, HeaderName, Uri, header::AUTHORIZATION};

use crate::{BreakerKey, Fingerprint, FingerprintKey, HttpTimeouts, headers::HeaderPolicy, redact};

/// How a route may use the WebSocket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportMode {
    /// Try the WebSocket when eligible and healthy; fall back to HTTP.
    #[default]
    Auto,
    /// Strict: always the WebSocket, failures reach the caller, no fallback.
    WebSocket,
    /// Never try the WebSocket.
    Http,
}

impl TransportMode {
    /// `"auto"`, `"websocket"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportMode::Auto => "auto",
            TransportMode::WebSocket => "websocket",
            TransportMode::Http => "http",
        }
    }
}

impl fmt::Display for TransportMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransportMode {
    type Err = RouteError;

    /// Parses `"auto"`, `"websocket"` (or `"ws"`) and `"http"`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(TransportMode::Auto),
            "websocket" | "ws" => Ok(TransportMode::WebSocket),
            "http" => Ok(TransportMode::Http),
            _ => Err(RouteError::InvalidMode(s.to_owned())),
        }
    }
}

/// Where a route's credential comes from, for its breaker key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CredentialSource {
    /// No credential: one key for the provider's endpoint.
    None,
    /// A credential fixed for the route (given to the builder, or a static header of the
    /// header policy); only its fingerprint is kept.
    Fixed(Fingerprint),
    /// Read from a request header on each request.
    Header(HeaderName),
}

impl CredentialSource {
    /// The credential the upstream actually receives: a header that the policy replaces with a
    /// static value is that value, whatever the client sent (so clients cannot steer the
    /// breaker key of a gateway that holds the key).
    fn sent_upstream(&self, headers: &HeaderPolicy, key: &FingerprintKey) -> Self {
        match self {
            CredentialSource::Header(name) => match headers.static_value(name) {
                Some(value) => CredentialSource::Fixed(key.fingerprint(value.as_bytes())),
                None => self.clone(),
            },
            other => other.clone(),
        }
    }

    fn fixed(&self) -> Option<Fingerprint> {
        match self {
            CredentialSource::Fixed(fingerprint) => Some(*fingerprint),
            CredentialSource::None | CredentialSource::Header(_) => None,
        }
    }
}

/// Who a request is for: provider, API, upstream URLs, transport mode and breaker key, and the
/// settings both transports read from it: the [header policy](Route::headers) and the
/// [HTTP timeouts](Route::http_timeouts).
///
/// Set once per route and inserted into each request's extensions (the facade's `RouteLayer`
/// does it). Cloning is cheap (one reference count).
///
/// ```
/// use wsfirst_core::{Route, TransportMode};
///
/// let route = Route::builder("openai", "openai-responses")
///     .ws_url("wss://api.openai.com/v1/responses")
///     .http_url("https://api.openai.com/v1/responses")
///     .build()?;
/// assert_eq!(route.mode(), TransportMode::Auto);
/// assert_eq!(route.ws_url().unwrap().host(), Some("api.openai.com"));
///
/// // A missing or broken URL names the field.
/// let error = Route::builder("openai", "openai-responses").http_url("not a url").build().unwrap_err();
/// assert_eq!(error.to_string(), r#"invalid http_url "not a url": expected an absolute http:// or https:// url"#);
/// # Ok::<(), wsfirst_core::RouteError>(())
/// ```
#[derive(Clone)]
pub struct Route(Arc<RouteInner>);

struct RouteInner {
    provider: Arc<str>,
    api: Arc<str>,
    ws_url: Option<Uri>,
    http_url: Uri,
    mode: TransportMode,
    /// As given to the builder.
    declared: CredentialSource,
    /// As sent upstream ([`CredentialSource::sent_upstream`]).
    credential: CredentialSource,
    fingerprint_key: FingerprintKey,
    key: BreakerKey,
    headers: HeaderPolicy,
    http_timeouts: HttpTimeouts,
}

impl Route {
    /// Starts a route for `provider`'s `api`.
    pub fn builder(provider: impl Into<String>, api: impl Into<String>) -> RouteBuilder {
        RouteBuilder {
            provider: provider.into(),
            api: api.into(),
            ws_url: None,
            http_url: None,
            mode: TransportMode::Auto,
            credential: CredentialSource::Header(AUTHORIZATION),
            secret: None,
            fingerprint_key: None,
            headers: None,
            http_timeouts: HttpTimeouts::default(),
        }
    }

    /// Which request headers reach the upstream, on the WebSocket handshake and over HTTP alike
    /// (default: [`HeaderPolicy::responses`]); see [`RouteBuilder::headers`].
    pub fn headers(&self) -> &HeaderPolicy {
        &self.0.headers
    }

    /// The route's HTTP timeouts, which override the HTTP upstream's own (default: none set).
    pub fn http_timeouts(&self) -> HttpTimeouts {
        self.0.http_timeouts
    }

    /// The same route with another header policy, its breaker key following the credential the
    /// new policy sends upstream (see [`RouteBuilder::headers`]). The facade takes the
    /// eligibility override header out of a route's policy this way.
    ///
    /// ```
    /// use http::{HeaderName, HeaderValue};
    /// use wsfirst_core::Route;
    ///
    /// let route = Route::builder("p", "a").http_url("http://x").build()?;
    /// let team = HeaderName::from_static("x-team");
    /// let policy = route.headers().to_builder().forward_header(team.clone()).build()?;
    /// let with_team = route.with_headers(policy);
    /// assert!(with_team.headers().forwards_or_sets(&team));
    /// assert!(!route.headers().forwards_or_sets(&team));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_headers(&self, headers: HeaderPolicy) -> Route {
        let inner = &*self.0;
        let credential = inner
            .declared
            .sent_upstream(&headers, &inner.fingerprint_key);
        Route(Arc::new(RouteInner {
            provider: inner.provider.clone(),
            api: inner.api.clone(),
            ws_url: inner.ws_url.clone(),
            http_url: inner.http_url.clone(),
            mode: inner.mode,
            declared: inner.declared.clone(),
            key: inner.key.with_credential(credential.fixed()),
            credential,
            fingerprint_key: inner.fingerprint_key.clone(),
            headers,
            http_timeouts: inner.http_timeouts,
        }))
    }

    /// The provider id, such as `openai`.
    pub fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The API id, such as `openai-responses`.
    pub fn api(&self) -> &str {
        &self.0.api
    }

    /// The provider id, shared: a label value for `metrics` (`Arc<str>` converts into a
    /// `SharedString` without copying), so recording a metric per request does not allocate it.
    pub fn provider_shared(&self) -> Arc<str> {
        Arc::clone(&self.0.provider)
    }

    /// The API id, shared; see [`Route::provider_shared`].
    pub fn api_shared(&self) -> Arc<str> {
        Arc::clone(&self.0.api)
    }

    /// The upstream's WebSocket URL, if it has one.
    pub fn ws_url(&self) -> Option<&Uri> {
        self.0.ws_url.as_ref()
    }

    /// The upstream's HTTP URL.
    pub fn http_url(&self) -> &Uri {
        &self.0.http_url
    }

    /// The route's transport mode.
    pub fn mode(&self) -> TransportMode {
        self.0.mode
    }

    /// The key the route's credential fingerprints are computed with
    /// ([`RouteBuilder::fingerprint_key`]).
    pub fn fingerprint_key(&self) -> &FingerprintKey {
        &self.0.fingerprint_key
    }

    /// The route's breaker key, without a per-request credential.
    ///
    /// When the credential is read from a request header (the default, `Authorization`), use
    /// [`Route::breaker_key_for`]. When the route's [header policy](Route::headers) sets that
    /// header to a static value, the key holds the static value's fingerprint.
    pub fn breaker_key(&self) -> &BreakerKey {
        &self.0.key
    }

    /// The fingerprint of the request's credential, when the route reads it from a header.
    pub fn request_credential(&self, headers: &HeaderMap) -> Option<Fingerprint> {
        match &self.0.credential {
            CredentialSource::Header(name) => headers
                .get(name)
                .map(|value| self.0.fingerprint_key.fingerprint(value.as_bytes())),
            CredentialSource::None | CredentialSource::Fixed(_) => None,
        }
    }

    /// The request header the route reads its credential from (`Authorization` by default),
    /// `None` when the credential is fixed (given to the builder, or set by a static header of
    /// the policy) or not part of the key.
    ///
    /// Layers on the hot path can remember which header value they last fingerprinted (by a
    /// cheap keyed hash, not the value itself) and skip the fingerprint when the next request
    /// carries the same bytes.
    pub fn credential_header(&self) -> Option<&HeaderName> {
        match &self.0.credential {
            CredentialSource::Header(name) => Some(name),
            CredentialSource::None | CredentialSource::Fixed(_) => None,
        }
    }

    /// The fingerprint of the credential a request with these headers uses: the route's fixed
    /// credential, or the configured header's value, or `None`.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    /// use wsfirst_core::{Fingerprint, FingerprintKey, Route};
    ///
    /// let fixed = Route::builder("p", "a").http_url("http://x").credential("k1").build()?;
    /// assert_eq!(fixed.credential_for(&HeaderMap::new()), Some(Fingerprint::of("k1")));
    ///
    /// let key = FingerprintKey::random();
    /// let from_header = Route::builder("p", "a")
    ///     .http_url("http://x")
    ///     .fingerprint_key(key.clone())
    ///     .build()?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer k2"));
    /// assert_eq!(from_header.credential_for(&headers), Some(key.fingerprint("Bearer k2")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn credential_for(&self, headers: &HeaderMap) -> Option<Fingerprint> {
        match &self.0.credential {
            CredentialSource::Fixed(fingerprint) => Some(*fingerprint),
            _ => self.request_credential(headers),
        }
    }

    /// The breaker key for a request with these headers: the route's key, scoped to the request's
    /// credential when the route reads it from a header.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    /// use wsfirst_core::Route;
    ///
    /// let route = Route::builder("openai", "openai-responses")
    ///     .ws_url("wss://api.openai.com/v1/responses")
    ///     .http_url("https://api.openai.com/v1/responses")
    ///     .build()?;
    /// let mut alice = HeaderMap::new();
    /// alice.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-alice"));
    /// let mut bob = HeaderMap::new();
    /// bob.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-bob"));
    /// assert_ne!(route.breaker_key_for(&alice), route.breaker_key_for(&bob));
    /// assert!(!route.breaker_key_for(&alice).to_string().contains("sk-alice"));
    /// # Ok::<(), wsfirst_core::RouteError>(())
    /// ```
    pub fn breaker_key_for(&self, headers: &HeaderMap) -> BreakerKey {
        match self.request_credential(headers) {
            Some(fingerprint) => self.0.key.with_credential(Some(fingerprint)),
            None => self.0.key.clone(),
        }
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("provider", &self.0.provider)
            .field("api", &self.0.api)
            .field("ws_url", &self.0.ws_url.as_ref().map(redact::uri))
            .field("http_url", &redact::uri(&self.0.http_url))
            .field("mode", &self.0.mode)
            .field("credential", &self.0.credential)
            .field("key", &self.0.key)
            .field("headers", &self.0.headers)
            .field("http_timeouts", &self.0.http_timeouts)
            .finish()
    }
}

/// Builds a [`Route`]; see [`Route::builder`].
#[derive(Clone)]
pub struct RouteBuilder {
    provider: String,
    api: String,
    ws_url: Option<String>,
    http_url: Option<String>,
    mode: TransportMode,
    credential: CredentialSource,
    /// The fixed credential, until `build` fingerprints it (a builder is short-lived; the route
    /// keeps only the fingerprint).
    secret: Option<Box<[u8]>>,
    fingerprint_key: Option<FingerprintKey>,
    headers: Option<HeaderPolicy>,
    http_timeouts: HttpTimeouts,
}

impl RouteBuilder {
    /// The upstream's WebSocket URL. Its scheme and host are checked by the eligibility policy,
    /// not here, so that a wrong URL sends requests to HTTP with a reason instead of failing.
    pub fn ws_url(mut self, url: impl Into<String>) -> Self {
        self.ws_url = Some(url.into());
        self
    }

    /// The upstream's HTTP URL (required; `http://` or `https://`).
    pub fn http_url(mut self, url: impl Into<String>) -> Self {
        self.http_url = Some(url.into());
        self
    }

    /// The transport mode (default [`TransportMode::Auto`]).
    pub fn mode(mut self, mode: TransportMode) -> Self {
        self.mode = mode;
        self
    }

    /// Scopes the breaker key to a credential fixed for this route. The route keeps only its
    /// fingerprint.
    pub fn credential(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.credential = CredentialSource::None;
        self.secret = Some(secret.as_ref().into());
        self
    }

    /// Which request headers reach the upstream, on the WebSocket handshake and over HTTP alike
    /// (default: [`HeaderPolicy::responses`], the OpenAI Responses API's `authorization`,
    /// `openai-beta`, `openai-organization` and `openai-project`). Its static headers, such as
    /// the `Authorization` of a gateway that holds the API key, replace the client's.
    ///
    /// The breaker key follows the credential sent upstream: when the policy sets the
    /// [credential header](Self::credential_header) to a static value, every request's key
    /// holds that value's fingerprint, whatever the client sent.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    /// use wsfirst_core::{Route, headers::HeaderPolicy};
    ///
    /// let gateway_key = HeaderPolicy::responses()
    ///     .to_builder()
    ///     .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-gateway"))
    ///     .build()?;
    /// let route = Route::builder("openai", "openai-responses")
    ///     .http_url("https://api.openai.com/v1/responses")
    ///     .headers(gateway_key)
    ///     .build()?;
    /// let mut alice = HeaderMap::new();
    /// alice.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-alice"));
    /// assert_eq!(&route.breaker_key_for(&alice), route.breaker_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn headers(mut self, headers: HeaderPolicy) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The route's HTTP timeouts, overriding the HTTP upstream's own (default: none set).
    pub fn http_timeouts(mut self, timeouts: HttpTimeouts) -> Self {
        self.http_timeouts = timeouts;
        self
    }

    /// The key the route's credential fingerprints (and the hidden parts of its WebSocket URL,
    /// see [`BreakerKey`]) are computed with; default [`FingerprintKey::process_default`], a
    /// random key for this process. Give every route the same key from a configured secret to
    /// keep the fingerprints, and so the breaker keys' text, the same across restarts.
    ///
    /// ```
    /// use wsfirst_core::{FingerprintKey, Route};
    ///
    /// let key = FingerprintKey::from_secret("a configured secret, 16+ bytes")?;
    /// let build = |key: &FingerprintKey| {
    ///     Route::builder("p", "a")
    ///         .http_url("http://x")
    ///         .credential("Bearer sk-1")
    ///         .fingerprint_key(key.clone())
    ///         .build()
    /// };
    /// assert_eq!(build(&key)?.breaker_key(), build(&key)?.breaker_key());
    /// assert_ne!(build(&key)?.breaker_key(), build(&FingerprintKey::random())?.breaker_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fingerprint_key(mut self, key: FingerprintKey) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// Scopes the breaker key to the credential in this request header (default:
    /// `Authorization`).
    pub fn credential_header(mut self, name: HeaderName) -> Self {
        self.credential = CredentialSource::Header(name);
        self.secret = None;
        self
    }

    /// One breaker key for all credentials.
    pub fn no_credential(mut self) -> Self {
        self.credential = CredentialSource::None;
        self.secret = None;
        self
    }

    /// Builds the route, checking that the URLs parse.
    pub fn build(self) -> Result<Route, RouteError> {
        let http_url = self.http_url.ok_or(RouteError::MissingHttpUrl)?;
        let http_url = match http_url.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some() =>
            {
                uri
            }
            _ => {
                return Err(RouteError::InvalidUrl {
                    field: "http_url",
                    value: redact::url(&http_url).into_owned(),
                    expected: "an absolute http:// or https:// url",
                });
            }
        };
        let ws_url = match self.ws_url {
            None => None,
            Some(raw) => Some(raw.parse::<Uri>().map_err(|_| RouteError::InvalidUrl {
                field: "ws_url",
                value: redact::url(&raw).into_owned(),
                expected: "a url such as wss://host/path",
            })?),
        };
        let fingerprint_key = self
            .fingerprint_key
            .unwrap_or_else(|| FingerprintKey::process_default().clone());
        let endpoint = ws_url.as_ref().map(ToString::to_string).unwrap_or_default();
        let declared = match self.secret {
            Some(secret) => CredentialSource::Fixed(fingerprint_key.fingerprint(secret)),
            None => self.credential,
        };
        let headers = self.headers.unwrap_or_else(HeaderPolicy::responses);
        let credential = declared.sent_upstream(&headers, &fingerprint_key);
        let key = BreakerKey::new_keyed(
            &fingerprint_key,
            self.provider.as_str(),
            endpoint,
            credential.fixed(),
        );
        Ok(Route(Arc::new(RouteInner {
            provider: self.provider.into(),
            api: self.api.into(),
            ws_url,
            http_url,
            mode: self.mode,
            declared,
            credential,
            fingerprint_key,
            key,
            headers,
            http_timeouts: self.http_timeouts,
        })))
    }
}

impl fmt::Debug for RouteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteBuilder")
            .field("provider", &self.provider)
            .field("api", &self.api)
            .field("ws_url", &self.ws_url.as_deref().map(redact::url))
            .field("http_url", &self.http_url.as_deref().map(redact::url))
            .field("mode", &self.mode)
            .field("credential", &self.credential)
            .field("fixed_credential", &self.secret.is_some())
            .field("fingerprint_key", &self.fingerprint_key)
            .field("headers", &self.headers)
            .field("http_timeouts", &self.http_timeouts)
            .finish_non_exhaustive()
    }
}

/// A route could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// No HTTP URL was given.
    MissingHttpUrl,
    /// A URL does not parse or has the wrong shape.
    InvalidUrl {
        /// The builder field (`http_url` or `ws_url`).
        field: &'static str,
        /// The value given, without userinfo, query string or fragment
        /// ([`redact::url`]): they may hold credentials.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A transport mode name is not `auto`, `websocket` or `http`.
    InvalidMode(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::MissingHttpUrl => f.write_str("missing http_url: every route needs one"),
            RouteError::InvalidUrl {
                field,
                value,
                expected,
            } => {
                write!(f, "invalid {field} {value:?}: expected {expected}")
            }
            RouteError::InvalidMode(mode) => {
                write!(
                    f,
                    "invalid mode {mode:?}: expected \"auto\", \"websocket\" or \"http\""
                )
            }
        }
    }
}

impl std::error::Error for RouteError {}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn route() -> RouteBuilder {
        Route::builder("openai", "openai-responses")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/responses")
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let route = route().credential("Bearer sk-very-secret").build().unwrap();
        let debug = format!("{route:?} {:?}", route.breaker_key());
        assert!(!debug.contains("sk-very-secret"), "{debug}");
        assert!(route.breaker_key().credential().is_some());
    }

    #[test]
    fn fingerprints_use_the_route_key() {
        let one = FingerprintKey::from_secret("the first secret key").unwrap();
        let two = FingerprintKey::from_secret("the second secret key").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
        let keyed = |key: &FingerprintKey| route().fingerprint_key(key.clone()).build().unwrap();
        // Same key, same fingerprint and breaker key; another key, other ones.
        assert_eq!(
            keyed(&one).breaker_key_for(&headers),
            keyed(&one).breaker_key_for(&headers)
        );
        assert_ne!(
            keyed(&one).breaker_key_for(&headers),
            keyed(&two).breaker_key_for(&headers)
        );
        assert_eq!(
            keyed(&one).request_credential(&headers),
            Some(Fingerprint::of_keyed(&one, "Bearer sk-1"))
        );
        // A fixed credential too, wherever `credential` and `fingerprint_key` are called.
        let fixed = route()
            .credential("Bearer sk-2")
            .fingerprint_key(two.clone())
            .build()
            .unwrap();
        assert_eq!(
            fixed.breaker_key().credential(),
            Some(two.fingerprint("Bearer sk-2"))
        );
        // Without a key, the process's.
        assert_eq!(
            route().build().unwrap().request_credential(&headers),
            Some(Fingerprint::of("Bearer sk-1"))
        );
    }

    #[test]
    fn urls_are_shown_without_userinfo_or_query() {
        let key = FingerprintKey::from_secret("0123456789abcdef").unwrap();
        let build = |ws: &str| {
            Route::builder("live", "live-api")
                .ws_url(ws)
                .http_url("https://user:hunter2@live.example/v1?key=sk-http")
                .credential("Bearer sk-fixed")
                .fingerprint_key(key.clone())
                .build()
                .unwrap()
        };
        let route = build("wss://user:hunter2@live.example/v1/ws?key=sk-ws");
        let key_text = route.breaker_key().to_string();
        let shown = format!(
            "{key_text} {:?} {route:?} {:?}",
            route.breaker_key().endpoint(),
            route.breaker_key()
        );
        for secret in ["hunter2", "user", "sk-"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let fingerprint = key.fingerprint("wss://user:hunter2@live.example/v1/ws?key=sk-ws");
        assert_eq!(
            route.breaker_key().endpoint(),
            format!("wss://live.example/v1/ws?redacted:{fingerprint}")
        );
        // The key still tells the hidden parts apart, and the same URL gives the same key.
        let other = build("wss://user:hunter2@live.example/v1/ws?key=sk-other");
        assert_ne!(route.breaker_key(), other.breaker_key());
        assert_ne!(key_text, other.breaker_key().to_string());
        assert_eq!(
            route.breaker_key(),
            build("wss://user:hunter2@live.example/v1/ws?key=sk-ws").breaker_key()
        );
        // The URLs themselves are untouched: they are what the layers connect to.
        assert_eq!(route.ws_url().unwrap().query(), Some("key=sk-ws"));
        // The builder's Debug too.
        let builder = Route::builder("p", "a")
            .ws_url("wss://u:hunter2@x/ws?key=sk-b")
            .http_url("https://u:hunter2@x/?key=sk-b")
            .credential("sk-c");
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("sk-"),
            "{debug}"
        );
    }

    #[test]
    fn url_errors_do_not_show_userinfo_or_query() {
        let error = Route::builder("p", "a")
            .http_url("ftp://user:hunter2@x/y?key=sk-1")
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid http_url "ftp://x/y": expected an absolute http:// or https:// url"#
        );
        let error = Route::builder("p", "a")
            .http_url("http://x")
            .ws_url("wss://user:hunter2@bad host/?key=sk-1")
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid ws_url "wss://bad host/": expected a url such as wss://host/path"#
        );
    }

    /// Issue 23: a static `Authorization` replaces the client's, so the client's value must not
    /// choose the breaker key; without one, each client's credential has its own key.
    #[test]
    fn a_static_credential_header_fixes_the_breaker_key() {
        let client = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        let gateway = HeaderPolicy::responses()
            .to_builder()
            .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-gateway"))
            .build()
            .unwrap();
        let held = route().headers(gateway.clone()).build().unwrap();
        assert_eq!(
            held.breaker_key_for(&client("Bearer sk-alice")),
            held.breaker_key_for(&client("Bearer sk-bob"))
        );
        assert_eq!(
            held.breaker_key().credential(),
            Some(held.fingerprint_key().fingerprint("Bearer sk-gateway"))
        );
        assert!(held.credential_header().is_none());
        let passed = route().build().unwrap();
        assert_ne!(
            passed.breaker_key_for(&client("Bearer sk-alice")),
            passed.breaker_key_for(&client("Bearer sk-bob"))
        );
        // `with_headers` follows the new policy both ways.
        let held_later = passed.with_headers(gateway);
        assert_eq!(held_later.breaker_key(), held.breaker_key());
        let passed_again = held_later.with_headers(HeaderPolicy::responses());
        assert_eq!(passed_again.credential_header(), Some(&AUTHORIZATION));
        assert_eq!(passed_again.breaker_key(), passed.breaker_key());
    }

    #[test]
    fn fixed_credential_ignores_request_headers() {
        let route = route().credential("Bearer sk-1").build().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-2"));
        assert_eq!(&route.breaker_key_for(&headers), route.breaker_key());
    }

    #[test]
    fn routes_to_the_same_upstream_share_a_key() {
        let a = route().build().unwrap();
        let b = Route::builder("openai", "another-api")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/other")
            .build()
            .unwrap();
        assert_eq!(a.breaker_key(), b.breaker_key());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
        assert_eq!(a.breaker_key_for(&headers), b.breaker_key_for(&headers));
    }

    #[test]
    fn errors_name_the_field() {
        let missing = Route::builder("p", "a").build().unwrap_err();
        assert_eq!(
            missing.to_string(),
            "missing http_url: every route needs one"
        );
        let ftp = Route::builder("p", "a")
            .http_url("ftp://x/y")
            .build()
            .unwrap_err();
        assert!(
            ftp.to_string()
                .starts_with("invalid http_url \"ftp://x/y\""),
            "{ftp}"
        );
        let ws = Route::builder("p", "a")
            .http_url("http://x")
            .ws_url("wss://bad host")
            .build()
            .unwrap_err();
        assert!(
            ws.to_string()
                .starts_with("invalid ws_url \"wss://bad host\""),
            "{ws}"
        );
    }

    #[test]
    fn ws_scheme_is_left_to_eligibility() {
        let route = Route::builder("p", "a")
            .http_url("http://x")
            .ws_url("http://x/ws")
            .build()
            .unwrap();
        assert_eq!(route.ws_url().unwrap().scheme_str(), Some("http"));
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "AUTO".parse::<TransportMode>().unwrap(),
            TransportMode::Auto
        );
        assert_eq!(
            "websocket".parse::<TransportMode>().unwrap(),
            TransportMode::WebSocket
        );
        assert_eq!(
            "http".parse::<TransportMode>().unwrap(),
            TransportMode::Http
        );
        assert_eq!(
            "sometimes"
                .parse::<TransportMode>()
                .unwrap_err()
                .to_string(),
            r#"invalid mode "sometimes": expected "auto", "websocket" or "http""#
        );
    }
}
