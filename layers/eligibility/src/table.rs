//! The default policy: a table of (provider, API) pairs allowed on the WebSocket, with a deny
//! list, registered hosts per provider, a message size limit and an opt-in override header.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::{Route, TransportMode};
//! use wsfirst_eligibility::{EligibilityTable, Policy, RequestHead};
//!
//! let table = EligibilityTable::builder()
//!     .allow("openai", "openai-responses")
//!     .deny("openai-codex", "openai-codex-responses")
//!     .provider_host("openai", "api.openai.com")
//!     .override_header(http::HeaderName::from_static("x-wsfirst-transport"))
//!     .build()?;
//!
//! let route = |provider: &str, api: &str, ws_url: &str| {
//!     Route::builder(provider, api)
//!         .ws_url(ws_url)
//!         .http_url("https://api.openai.com/v1/responses")
//!         .build()
//! };
//! let request = http::Request::new(());
//! let head = RequestHead::new(&request);
//!
//! let ok = route("openai", "openai-responses", "wss://api.openai.com/v1/responses")?;
//! assert!(table.decide(&ok, &head).is_websocket());
//!
//! // The incident: an eligible provider whose WebSocket URL points at another host.
//! let wrong = route("openai", "openai-responses", "wss://chatgpt.com/backend-api/codex/responses")?;
//! assert_eq!(table.decide(&wrong, &head).reason_label(), "foreign_host");
//!
//! let codex = route("openai-codex", "openai-codex-responses", "wss://chatgpt.com/backend-api/codex/responses")?;
//! assert_eq!(table.decide(&codex, &head).reason_label(), "denied");
//!
//! // The override header can force HTTP, never the WebSocket.
//! let forced = http::Request::builder().header("x-wsfirst-transport", "http").body(())?;
//! assert_eq!(table.decide(&ok, &RequestHead::new(&forced)).reason_label(), "request_override");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use http::HeaderName;
use wsfirst_core::{HttpReason, Ineligible, Intent, Route, TransportMode, limits};

use crate::{ConfigError, Policy, RequestHead};

/// The default message size limit: [`limits::DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB).
const DEFAULT_MAX_MESSAGE_SIZE: u64 = limits::DEFAULT_MAX_MESSAGE_SIZE as u64;

/// The default policy: which (provider, API) pairs may try the WebSocket, and on which hosts.
///
/// Built with [`EligibilityTable::builder`]; cloning is cheap (the table is shared by `Arc`).
/// For a request it decides, in this order (the first "no" wins):
///
/// 1. the route's mode is [`TransportMode::Http`]: HTTP, [`HttpReason::ModeHttp`];
/// 2. the override header (opt-in, see [`EligibilityTableBuilder::override_header`]) has the
///    value `http` (any ASCII case, surrounding spaces ignored): HTTP,
///    [`Ineligible::RequestOverride`]. Any other value is ignored: the header can only narrow;
/// 3. the route's mode is [`TransportMode::WebSocket`] (strict): the WebSocket, without the
///    table, endpoint or size checks (the operator asked for it);
/// 4. the provider is empty: [`Ineligible::EmptyProvider`];
/// 5. the pair is on the deny list (which wins over the allow list): [`Ineligible::Denied`];
/// 6. the provider appears in no allowed pair: [`Ineligible::UnknownProvider`];
/// 7. the pair is not allowed: [`Ineligible::PairNotAllowed`];
/// 8. the route has no WebSocket URL: [`Ineligible::MissingWebSocketUrl`];
/// 9. the URL's scheme is not `ws` or `wss`: [`Ineligible::NotWebSocketScheme`];
/// 10. the provider has registered hosts and the URL's host is none of them (ASCII case
///     ignored, port not compared): [`Ineligible::ForeignHost`];
/// 11. the request's declared body size (its `Content-Length`, or the body's exact size hint)
///     exceeds the message limit: [`Ineligible::BodyTooLarge`];
///
/// and otherwise allows the WebSocket.
#[derive(Clone, Debug)]
pub struct EligibilityTable {
    inner: Arc<Table>,
}

#[derive(Clone, Debug, Default)]
struct Table {
    /// provider -> allowed APIs
    allowed: HashMap<Box<str>, HashSet<Box<str>>>,
    /// provider -> denied APIs
    denied: HashMap<Box<str>, HashSet<Box<str>>>,
    /// provider -> registered WebSocket hosts
    hosts: HashMap<Box<str>, Vec<Box<str>>>,
    override_header: Option<HeaderName>,
    max_message_size: u64,
}

impl EligibilityTable {
    /// An empty builder: nothing allowed, no deny list, no hosts, no override header, a
    /// [`limits::DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB) message limit.
    ///
    /// The table holds no provider's defaults: the pairs and hosts of an API (such as OpenAI's
    /// Responses API) are data that the API's module hands to
    /// [`allow_pairs`](EligibilityTableBuilder::allow_pairs),
    /// [`deny_pairs`](EligibilityTableBuilder::deny_pairs) and
    /// [`provider_hosts`](EligibilityTableBuilder::provider_hosts).
    pub fn builder() -> EligibilityTableBuilder {
        EligibilityTableBuilder {
            table: Table {
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                ..Table::default()
            },
            error: None,
        }
    }

    /// A builder holding this table's settings, to extend it.
    ///
    /// ```
    /// use wsfirst_eligibility::EligibilityTable;
    ///
    /// let table = EligibilityTable::builder().allow("openai", "openai-responses").build()?;
    /// let table = table.to_builder().allow("openai", "openai-chat").build()?;
    /// assert!(table.is_allowed("openai", "openai-chat"));
    /// assert!(table.is_allowed("openai", "openai-responses"));
    /// # Ok::<(), wsfirst_eligibility::ConfigError>(())
    /// ```
    pub fn to_builder(&self) -> EligibilityTableBuilder {
        EligibilityTableBuilder {
            table: (*self.inner).clone(),
            error: None,
        }
    }

    /// Whether the pair is allowed and not denied (endpoint and request checks aside).
    pub fn is_allowed(&self, provider: &str, api: &str) -> bool {
        contains(&self.inner.allowed, provider, api) && !contains(&self.inner.denied, provider, api)
    }

    /// The WebSocket hosts registered for `provider` (empty when any host is accepted).
    pub fn provider_hosts(&self, provider: &str) -> impl Iterator<Item = &str> {
        self.inner
            .hosts
            .get(provider)
            .into_iter()
            .flatten()
            .map(|host| &**host)
    }

    /// The override header, if enabled.
    pub fn override_header(&self) -> Option<&HeaderName> {
        self.inner.override_header.as_ref()
    }

    /// The message size limit in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.inner.max_message_size
    }

    fn table_says(&self, route: &Route, request: &RequestHead<'_>) -> Result<(), Ineligible> {
        let table = &*self.inner;
        let (provider, api) = (route.provider(), route.api());
        if provider.is_empty() {
            return Err(Ineligible::EmptyProvider);
        }
        if contains(&table.denied, provider, api) {
            return Err(Ineligible::Denied);
        }
        let Some(apis) = table.allowed.get(provider) else {
            return Err(Ineligible::UnknownProvider);
        };
        if !apis.contains(api) {
            return Err(Ineligible::PairNotAllowed);
        }
        let url = route.ws_url().ok_or(Ineligible::MissingWebSocketUrl)?;
        match url.scheme_str() {
            Some(scheme)
                if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("wss") => {}
            other => {
                return Err(Ineligible::NotWebSocketScheme {
                    scheme: other.unwrap_or_default().to_owned(),
                });
            }
        }
        if let Some(hosts) = table.hosts.get(provider) {
            let host = url.host().unwrap_or_default();
            if !hosts.iter().any(|known| known.eq_ignore_ascii_case(host)) {
                return Err(Ineligible::ForeignHost {
                    host: host.to_owned(),
                    expected: hosts.join(" or "),
                });
            }
        }
        if let Some(declared) = request.declared_body_size() {
            if declared > table.max_message_size {
                return Err(Ineligible::BodyTooLarge {
                    declared,
                    limit: table.max_message_size,
                });
            }
        }
        Ok(())
    }

    fn override_says_http(&self, request: &RequestHead<'_>) -> bool {
        let Some(name) = &self.inner.override_header else {
            return false;
        };
        request.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("http"))
        })
    }
}

fn contains(map: &HashMap<Box<str>, HashSet<Box<str>>>, provider: &str, api: &str) -> bool {
    map.get(provider).is_some_and(|apis| apis.contains(api))
}

impl Policy for EligibilityTable {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        if route.mode() == TransportMode::Http {
            return Intent::Http(HttpReason::ModeHttp);
        }
        if self.override_says_http(request) {
            return Intent::Http(HttpReason::Ineligible(Ineligible::RequestOverride));
        }
        if route.mode() == TransportMode::WebSocket {
            return Intent::WebSocket;
        }
        match self.table_says(route, request) {
            Ok(()) => Intent::WebSocket,
            Err(why) => Intent::Http(HttpReason::Ineligible(why)),
        }
    }
}

/// Builds an [`EligibilityTable`]; see [`EligibilityTable::builder`].
///
/// Every knob checks its values; [`build`](Self::build) reports the first bad one as a
/// [`ConfigError`] naming the field (`allow_pairs`, `deny_pairs`, `provider_hosts` or
/// `max_message_size`).
///
/// ```
/// use wsfirst_eligibility::EligibilityTable;
///
/// // The data of an API's module, in plain constants.
/// const ALLOW: [(&str, &str); 1] = [("openai", "openai-responses")];
/// const DENY: &[(&str, &str)] = &[("openai-codex", "openai-codex-responses")];
/// const HOSTS: &[(&str, &str)] = &[("openai", "api.openai.com")];
///
/// let table = EligibilityTable::builder()
///     .allow_pairs(ALLOW)
///     .deny_pairs(DENY.iter().copied())
///     .provider_hosts(HOSTS.iter().copied())
///     .build()?;
/// assert!(table.is_allowed("openai", "openai-responses"));
/// assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
/// assert_eq!(table.provider_hosts("openai").collect::<Vec<_>>(), ["api.openai.com"]);
///
/// let error = EligibilityTable::builder().allow("openai", "").build().unwrap_err();
/// assert_eq!(error.field(), "allow_pairs");
/// # Ok::<(), wsfirst_eligibility::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EligibilityTableBuilder {
    table: Table,
    /// The first bad value given, reported by `build`.
    error: Option<ConfigError>,
}

impl EligibilityTableBuilder {
    /// Allows `provider`'s `api` on the WebSocket (unless also denied). Neither may be empty.
    pub fn allow(mut self, provider: impl Into<String>, api: impl Into<String>) -> Self {
        let (provider, api) = (provider.into(), api.into());
        if self.check_pair("allow_pairs", &provider, &api) {
            insert(&mut self.table.allowed, provider, api);
        }
        self
    }

    /// Allows each (provider, API) pair, as [`allow`](Self::allow) does.
    pub fn allow_pairs<P, A>(self, pairs: impl IntoIterator<Item = (P, A)>) -> Self
    where
        P: Into<String>,
        A: Into<String>,
    {
        pairs.into_iter().fold(self, |builder, (provider, api)| {
            builder.allow(provider, api)
        })
    }

    /// Denies `provider`'s `api` the WebSocket; the deny list wins over the allow list. Neither
    /// may be empty.
    pub fn deny(mut self, provider: impl Into<String>, api: impl Into<String>) -> Self {
        let (provider, api) = (provider.into(), api.into());
        if self.check_pair("deny_pairs", &provider, &api) {
            insert(&mut self.table.denied, provider, api);
        }
        self
    }

    /// Denies each (provider, API) pair, as [`deny`](Self::deny) does.
    pub fn deny_pairs<P, A>(self, pairs: impl IntoIterator<Item = (P, A)>) -> Self
    where
        P: Into<String>,
        A: Into<String>,
    {
        pairs
            .into_iter()
            .fold(self, |builder, (provider, api)| builder.deny(provider, api))
    }

    /// Registers a WebSocket host for `provider`: a host name or IP address (IPv6 in brackets)
    /// without scheme, port or path. Once a provider has a registered host, a WebSocket URL on
    /// any other host is [`Ineligible::ForeignHost`]. Call again to register more hosts.
    pub fn provider_host(mut self, provider: impl Into<String>, host: impl Into<String>) -> Self {
        let (provider, host) = (provider.into(), host.into());
        if provider.is_empty() {
            self.fail(ConfigError::invalid(
                CONFIG,
                "provider_hosts",
                "the provider must not be empty",
            ));
            return self;
        }
        if !is_bare_host(&host) {
            self.fail(ConfigError::invalid(
                CONFIG,
                "provider_hosts",
                format!(
                    "invalid host {host:?} for provider {provider:?}: expected a host name \
                     without scheme, port or path, such as \"api.openai.com\""
                ),
            ));
            return self;
        }
        let hosts = self
            .table
            .hosts
            .entry(provider.into_boxed_str())
            .or_default();
        let host = host.into_boxed_str();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
        self
    }

    /// Registers each (provider, host) pair, as [`provider_host`](Self::provider_host) does.
    pub fn provider_hosts<P, H>(self, hosts: impl IntoIterator<Item = (P, H)>) -> Self
    where
        P: Into<String>,
        H: Into<String>,
    {
        hosts.into_iter().fold(self, |builder, (provider, host)| {
            builder.provider_host(provider, host)
        })
    }

    /// Enables the per-request override header (for example `x-wsfirst-transport`). A request
    /// whose header has the value `http` (any ASCII case) goes to HTTP with
    /// [`Ineligible::RequestOverride`]; any other value is ignored (not an error), so the
    /// header can never widen a request onto the WebSocket. Off by default.
    pub fn override_header(mut self, name: HeaderName) -> Self {
        self.table.override_header = Some(name);
        self
    }

    /// The message size limit in bytes (default [`limits::DEFAULT_MAX_MESSAGE_SIZE`], 16 MiB;
    /// must not be zero): a request that declares a larger body goes to HTTP with
    /// [`Ineligible::BodyTooLarge`].
    ///
    /// It saves a WebSocket attempt that could not succeed, so keep it equal to the WebSocket
    /// layer's message size; the table in [`wsfirst_core::limits`] says what each of the stack's
    /// size limits protects.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.table.max_message_size = bytes;
        self
    }

    /// Checks the values and builds the table.
    pub fn build(self) -> Result<EligibilityTable, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        ConfigError::check_not_zero(CONFIG, "max_message_size", self.table.max_message_size)?;
        Ok(EligibilityTable {
            inner: Arc::new(self.table),
        })
    }

    /// Whether the pair is valid; records the first bad one.
    fn check_pair(&mut self, field: &'static str, provider: &str, api: &str) -> bool {
        let message = if provider.is_empty() {
            "the provider must not be empty".to_owned()
        } else if api.is_empty() {
            format!("the api of provider {provider:?} must not be empty")
        } else {
            return true;
        };
        self.fail(ConfigError::invalid(CONFIG, field, message));
        false
    }

    /// Records `error` unless an earlier one is recorded.
    fn fail(&mut self, error: ConfigError) {
        self.error.get_or_insert(error);
    }
}

/// What [`ConfigError`]s of the table's builder call the configuration.
const CONFIG: &str = "eligibility table";

fn insert(map: &mut HashMap<Box<str>, HashSet<Box<str>>>, provider: String, api: String) {
    map.entry(provider.into_boxed_str())
        .or_default()
        .insert(api.into_boxed_str());
}

/// A host name or IP address without scheme, port, path or user information.
fn is_bare_host(host: &str) -> bool {
    let ipv6 = host.starts_with('[') && host.ends_with(']');
    !host.is_empty()
        && host.parse::<http::uri::Authority>().is_ok()
        && (ipv6 || !host.contains(':'))
        && !host.contains(['/', '@'])
}
