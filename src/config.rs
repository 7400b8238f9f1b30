//! Route and eligibility configuration from TOML, validated, with errors that name the field.
//!
//! [`Config::from_toml_str`] (or [`Config::from_path`]) parses and validates a whole file; every
//! invalid value is reported with its path, such as
//! `routes[1].breaker.open_for: invalid duration "3x"`. Unknown fields are errors. The types are
//! plain data: fields left out are `None`, and the layers' own defaults apply to them.
//! [`RouteConfig::to_route`] builds the [`Route`] extension of a route and
//! [`EligibilityConfig::to_table`] the [`EligibilityTable`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst::config::{Config, ReplayConfig};
//!
//! let config = Config::from_toml_str(r#"
//!     listen = "127.0.0.1:8080"
//!
//!     [eligibility]
//!     websocket_pairs = [["openai", "openai-responses"]]
//!     provider_hosts = { openai = "api.openai.com" }
//!
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.openai.com/v1/responses"
//!     ws_url = "wss://api.openai.com/v1/responses"
//!
//!     [routes.breaker]
//!     consecutive_failures = 3
//!     open_for = "30s"
//! "#)?;
//! let route = &config.routes[0];
//! assert_eq!(route.breaker.open_for, Some(Duration::from_secs(30)));
//! assert_eq!(route.fallback.replay, None); // the fallback layer's default applies
//! assert!(config.eligibility.to_table().is_allowed("openai", "openai-responses"));
//! assert_eq!(route.to_route()?.provider(), "openai");
//!
//! let error = Config::from_toml_str(r#"
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.openai.com/v1/responses"
//!     [routes.breaker]
//!     open_for = "3x"
//! "#).unwrap_err();
//! assert_eq!(error.to_string(), r#"routes[0].breaker.open_for: invalid duration "3x""#);
//! # Ok::<(), wsfirst::config::ConfigError>(())
//! ```
//!
//! # Reference
//!
//! Durations are strings in human form (`"500ms"`, `"30s"`, `"10m"`, `"1h 30m"`). Byte sizes are
//! an integer number of bytes or a string with a unit: `B`, `KB`/`MB`/`GB` (powers of 1000) or
//! `KiB`/`MiB`/`GiB` (powers of 1024), such as `"16MiB"`, `"512KiB"`, `"1MB"`. "Layer default"
//! means the field may be left out and the layer's own default applies.
//!
//! | field | type | default | meaning |
//! |---|---|---|---|
//! | `listen` | socket address | none | address a gateway listens on, such as `"127.0.0.1:8080"` |
//! | `eligibility.websocket_pairs` | list of `[provider, api]` | `[]` | pairs allowed to try the WebSocket; a provider in no pair is `unknown_provider`, so with none nothing uses the WebSocket in `auto` mode |
//! | `eligibility.deny_pairs` | list of `[provider, api]` | `[]` | pairs never allowed on the WebSocket; wins over `websocket_pairs` |
//! | `eligibility.provider_hosts` | table: provider = host or list of hosts | `{}` | WebSocket hosts registered per provider (host only: no scheme, port or path); a WebSocket URL on another host goes to HTTP (`foreign_host`) |
//! | `eligibility.override_header` | header name | off | per-request header whose value `http` forces HTTP (`request_override`); any other value is ignored; it can never widen a request onto the WebSocket |
//! | `eligibility.max_message_size` | byte size, > 0 | 16 MiB | a request declaring a larger body goes to HTTP (`body_too_large`) |
//! | `routes[].path` | string starting with `/`, unique | required | the path the route is mounted on |
//! | `routes[].provider` | non-empty string | required | provider id, as in the eligibility pairs |
//! | `routes[].api` | non-empty string | required | API id, as in the eligibility pairs |
//! | `routes[].http_url` | `http://` or `https://` URL | required | the upstream's HTTP endpoint |
//! | `routes[].ws_url` | `ws://` or `wss://` URL | none | the upstream's WebSocket endpoint; required when `mode = "websocket"` |
//! | `routes[].mode` | `"auto"`, `"websocket"`, `"http"` | `"auto"` | `auto`: the WebSocket when eligible and healthy, else HTTP; `websocket`: strict, always the WebSocket, failures reach the caller; `http`: never the WebSocket |
//! | `routes[].body_limit` | byte size, > 0 | layer default (8 MiB) | largest request body buffered so it can be replayed over HTTP |
//! | `routes[].timeouts.connect` | duration, > 0 | layer default (5s) | TCP + TLS + WebSocket handshake |
//! | `routes[].timeouts.first_event` | duration, > 0 | layer default (30s) | from the request sent to the upstream's first event |
//! | `routes[].timeouts.idle` | duration, > 0 | layer default (120s) | between two events of an answer |
//! | `routes[].breaker.enabled` | bool | `true` | `false`: no circuit breaker for this route |
//! | `routes[].breaker.consecutive_failures` | integer | layer default | trip after this many WebSocket failures in a row; `0` turns this rule off |
//! | `routes[].breaker.failure_rate` | number, > 0 and <= 1 | layer default | trip when this fraction of the last `window` calls failed |
//! | `routes[].breaker.window` | integer, > 0 | layer default | number of recent calls the failure rate is computed over |
//! | `routes[].breaker.min_calls` | integer, <= `window` | layer default | calls needed in the window before the failure rate counts |
//! | `routes[].breaker.open_for` | duration, > 0 | layer default | how long a tripped key stays pinned to HTTP the first time (grows with each trip) |
//! | `routes[].breaker.max_open_for` | duration, >= `open_for` | layer default | cap of the growing pinned period |
//! | `routes[].breaker.probes` | integer, > 0 | layer default | requests allowed to probe the WebSocket when half-open |
//! | `routes[].breaker.idle_evict` | duration, > 0 | layer default | forget a closed key unused for this long |
//! | `routes[].pool.idle_timeout` | duration, > 0 | layer default | close a pooled WebSocket idle for this long |
//! | `routes[].pool.max_age` | duration, > 0 | layer default | retire a pooled WebSocket older than this (before the upstream's own limit) |
//! | `routes[].pool.max_connections` | integer, > 0 | layer default | most pooled WebSockets per key |
//! | `routes[].pool.affinity_header` | header name | none | request header whose value keeps a session on its own connection |
//! | `routes[].fallback.replay` | `"before_first_event"`, `"connect_only"` | `"before_first_event"` | which WebSocket failures are replayed over HTTP; never after the first event |
//! | `routes[].headers` | table: header name = value | `{}` | static headers added to the WebSocket handshake, such as `"OpenAI-Beta" = "responses-websocket=v1"` |

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};
use wsfirst_core::{Route, RouteError, TransportMode};
use wsfirst_eligibility::EligibilityTable;

/// A whole configuration file: the listen address, the eligibility table and the routes.
///
/// See the [module documentation](self) for the field reference.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The address a gateway listens on.
    #[serde(default, deserialize_with = "de_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// Which (provider, API) pairs may try the WebSocket.
    #[serde(default)]
    pub eligibility: EligibilityConfig,
    /// The routes, in file order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// ```
    /// use wsfirst::config::Config;
    ///
    /// let error = Config::from_toml_str("listen = 8080").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"listen: invalid type: integer `8080`, expected a socket address such as "127.0.0.1:8080""#,
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let document = toml::de::DeTable::parse(text).map_err(|error| ConfigError::Syntax {
            message: error.to_string().trim_end().to_owned(),
        })?;
        let config: Config = toml::from_str(text).map_err(|error| {
            let path = error
                .span()
                .map(|span| path_at(document.get_ref(), &span))
                .unwrap_or_default();
            ConfigError::invalid(path, error.message())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Checks what a parsed configuration must satisfy beyond its types: non-empty ids, URLs,
    /// ranges, zeros, unique route paths. [`Config::from_toml_str`] calls it; call it yourself
    /// on a configuration built or changed in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.eligibility
            .validate()
            .map_err(|error| error.prefixed("eligibility"))?;
        let mut paths: HashMap<&str, usize> = HashMap::new();
        for (index, route) in self.routes.iter().enumerate() {
            let prefix = format!("routes[{index}]");
            route.validate().map_err(|error| error.prefixed(&prefix))?;
            if let Some(first) = paths.insert(&route.path, index) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.path"),
                    format!(
                        "duplicate path {:?} (already used by routes[{first}])",
                        route.path
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The `[eligibility]` table: which (provider, API) pairs may try the WebSocket.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityConfig {
    /// Pairs allowed on the WebSocket.
    #[serde(default)]
    pub websocket_pairs: Vec<Pair>,
    /// Pairs never allowed on the WebSocket; wins over [`websocket_pairs`](Self::websocket_pairs).
    #[serde(default)]
    pub deny_pairs: Vec<Pair>,
    /// The WebSocket hosts registered per provider.
    #[serde(default, deserialize_with = "de_hosts")]
    pub provider_hosts: BTreeMap<String, Vec<String>>,
    /// The per-request override header (value `http` forces HTTP), off when `None`.
    #[serde(default, deserialize_with = "de_header_name")]
    pub override_header: Option<HeaderName>,
    /// The WebSocket message size limit in bytes; `None`: 16 MiB.
    #[serde(default, deserialize_with = "de_bytes")]
    pub max_message_size: Option<u64>,
}

impl EligibilityConfig {
    /// The eligibility table this configuration describes.
    ///
    /// ```
    /// use wsfirst::config::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [eligibility]
    ///     websocket_pairs = [["openai", "openai-responses"], ["openai-codex", "openai-codex-responses"]]
    ///     deny_pairs = [["openai-codex", "openai-codex-responses"]]
    ///     max_message_size = "1MiB"
    /// "#)?;
    /// let table = config.eligibility.to_table();
    /// assert!(table.is_allowed("openai", "openai-responses"));
    /// assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
    /// assert_eq!(table.max_message_size(), 1024 * 1024);
    /// # Ok::<(), wsfirst::config::ConfigError>(())
    /// ```
    pub fn to_table(&self) -> EligibilityTable {
        let mut builder = EligibilityTable::builder();
        for pair in &self.websocket_pairs {
            builder = builder.allow(&pair.provider, &pair.api);
        }
        for pair in &self.deny_pairs {
            builder = builder.deny(&pair.provider, &pair.api);
        }
        for (provider, hosts) in &self.provider_hosts {
            for host in hosts {
                builder = builder.provider_host(provider, host);
            }
        }
        if let Some(name) = &self.override_header {
            builder = builder.override_header(name.clone());
        }
        if let Some(bytes) = self.max_message_size {
            builder = builder.max_message_size(bytes);
        }
        builder.build()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (field, pairs) in [
            ("websocket_pairs", &self.websocket_pairs),
            ("deny_pairs", &self.deny_pairs),
        ] {
            for (index, pair) in pairs.iter().enumerate() {
                if pair.provider.is_empty() || pair.api.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{field}[{index}]"),
                        "provider and api must not be empty",
                    ));
                }
            }
        }
        for (provider, hosts) in &self.provider_hosts {
            let path = format!("provider_hosts.{}", key_segment(provider));
            if provider.is_empty() {
                return Err(ConfigError::invalid(path, "provider must not be empty"));
            }
            for host in hosts {
                if !is_bare_host(host) {
                    return Err(ConfigError::invalid(
                        path,
                        format!(
                            "invalid host {host:?}: expected a host name without scheme, port or path, such as \"api.openai.com\""
                        ),
                    ));
                }
            }
        }
        non_zero_bytes("max_message_size", self.max_message_size)
    }
}

/// A (provider, API) pair, written `["provider", "api"]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(from = "(String, String)")]
pub struct Pair {
    /// The provider id.
    pub provider: String,
    /// The API id.
    pub api: String,
}

impl Pair {
    /// The pair (`provider`, `api`).
    pub fn new(provider: impl Into<String>, api: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            api: api.into(),
        }
    }
}

impl From<(String, String)> for Pair {
    fn from((provider, api): (String, String)) -> Self {
        Self { provider, api }
    }
}

/// One `[[routes]]` entry: where a path's requests go and how.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The path the route is mounted on; starts with `/`, unique among routes.
    pub path: String,
    /// The provider id.
    pub provider: String,
    /// The API id.
    pub api: String,
    /// The upstream's HTTP endpoint (`http://` or `https://`).
    pub http_url: String,
    /// The upstream's WebSocket endpoint (`ws://` or `wss://`).
    #[serde(default)]
    pub ws_url: Option<String>,
    /// The transport mode (default `auto`).
    #[serde(default, deserialize_with = "de_mode")]
    pub mode: TransportMode,
    /// The largest request body buffered for a replay, in bytes; `None`: the fallback layer's
    /// default.
    #[serde(default, deserialize_with = "de_bytes")]
    pub body_limit: Option<u64>,
    /// The WebSocket timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// The WebSocket connection pool.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The HTTP fallback.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// Static headers added to the WebSocket handshake. Values of credential-like headers
    /// (`authorization`, names containing `key`, `token`, `secret`, `cookie`) are marked
    /// sensitive, so `Debug` does not show them.
    #[serde(default, deserialize_with = "de_headers")]
    pub headers: HeaderMap,
}

impl RouteConfig {
    /// The [`Route`] extension for this route's requests (credential read from the
    /// `Authorization` header, the core default).
    ///
    /// Errors name the field relative to the route (`ws_url: ...`); [`Config::from_toml_str`]
    /// has already checked every route of a parsed file.
    ///
    /// ```
    /// use wsfirst::config::Config;
    /// use wsfirst::core::TransportMode;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [[routes]]
    ///     path = "/codex/responses"
    ///     provider = "openai-codex"
    ///     api = "openai-codex-responses"
    ///     http_url = "https://chatgpt.com/backend-api/codex/responses"
    ///     mode = "http"
    /// "#)?;
    /// let route = config.routes[0].to_route()?;
    /// assert_eq!(route.mode(), TransportMode::Http);
    /// assert!(route.ws_url().is_none());
    /// # Ok::<(), wsfirst::config::ConfigError>(())
    /// ```
    pub fn to_route(&self) -> Result<Route, ConfigError> {
        if let Some(ws_url) = &self.ws_url {
            let scheme_ok = ws_url
                .parse::<Uri>()
                .ok()
                .and_then(|uri| uri.scheme_str().map(str::to_ascii_lowercase))
                .is_some_and(|scheme| scheme == "ws" || scheme == "wss");
            if !scheme_ok {
                return Err(ConfigError::invalid(
                    "ws_url",
                    format!("invalid url {ws_url:?}: expected an absolute ws:// or wss:// url"),
                ));
            }
        }
        let mut builder = Route::builder(&self.provider, &self.api)
            .http_url(&self.http_url)
            .mode(self.mode);
        if let Some(ws_url) = &self.ws_url {
            builder = builder.ws_url(ws_url);
        }
        builder.build().map_err(|error| match error {
            RouteError::InvalidUrl {
                field,
                value,
                expected,
            } => ConfigError::invalid(field, format!("invalid url {value:?}: expected {expected}")),
            RouteError::MissingHttpUrl => ConfigError::invalid("http_url", "missing"),
            other => ConfigError::invalid("", other.to_string()),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') {
            return Err(ConfigError::invalid(
                "path",
                format!("invalid path {:?}: must start with '/'", self.path),
            ));
        }
        if self.provider.is_empty() {
            return Err(ConfigError::invalid("provider", "must not be empty"));
        }
        if self.api.is_empty() {
            return Err(ConfigError::invalid("api", "must not be empty"));
        }
        self.to_route()?;
        if self.mode == TransportMode::WebSocket && self.ws_url.is_none() {
            return Err(ConfigError::invalid(
                "ws_url",
                "required when mode is \"websocket\"",
            ));
        }
        non_zero_bytes("body_limit", self.body_limit)?;
        self.timeouts
            .validate()
            .map_err(|error| error.prefixed("timeouts"))?;
        self.breaker
            .validate()
            .map_err(|error| error.prefixed("breaker"))?;
        self.pool.validate().map_err(|error| error.prefixed("pool"))
    }
}

/// `[routes.timeouts]`: the WebSocket attempt's timeouts; `None`: the WebSocket layer's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Connect + TLS + WebSocket handshake.
    #[serde(default, deserialize_with = "de_duration")]
    pub connect: Option<Duration>,
    /// From the request sent to the upstream's first event.
    #[serde(default, deserialize_with = "de_duration")]
    pub first_event: Option<Duration>,
    /// Between two events of an answer.
    #[serde(default, deserialize_with = "de_duration")]
    pub idle: Option<Duration>,
}

impl TimeoutsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("connect", self.connect)?;
        non_zero_duration("first_event", self.first_event)?;
        non_zero_duration("idle", self.idle)
    }
}

/// `[routes.breaker]`: the circuit breaker of the route's key; `None`: the breaker's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// `Some(false)`: no circuit breaker for this route. `None` means enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Trip after this many WebSocket failures in a row; `0` turns the rule off.
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// Trip when this fraction (> 0, <= 1) of the last [`window`](Self::window) calls failed.
    #[serde(default)]
    pub failure_rate: Option<f64>,
    /// The number of recent calls the failure rate is computed over (> 0).
    #[serde(default)]
    pub window: Option<u32>,
    /// The calls needed in the window before the failure rate counts (<= `window`).
    #[serde(default)]
    pub min_calls: Option<u32>,
    /// How long a tripped key stays pinned to HTTP the first time (> 0).
    #[serde(default, deserialize_with = "de_duration")]
    pub open_for: Option<Duration>,
    /// The cap of the pinned period, which grows with each trip (>= `open_for`).
    #[serde(default, deserialize_with = "de_duration")]
    pub max_open_for: Option<Duration>,
    /// Requests allowed to probe the WebSocket when half-open (> 0).
    #[serde(default)]
    pub probes: Option<u32>,
    /// Forget a closed key unused for this long (> 0).
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_evict: Option<Duration>,
}

impl BreakerConfig {
    /// Whether the route has a circuit breaker (`enabled` left out means yes).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rate) = self.failure_rate {
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(ConfigError::invalid(
                    "failure_rate",
                    format!("{rate} is out of range: expected more than 0 and at most 1"),
                ));
            }
        }
        non_zero("window", self.window)?;
        non_zero("probes", self.probes)?;
        if let (Some(min_calls), Some(window)) = (self.min_calls, self.window) {
            if min_calls > window {
                return Err(ConfigError::invalid(
                    "min_calls",
                    format!(
                        "{min_calls} is more than window ({window}): the rate would never count"
                    ),
                ));
            }
        }
        non_zero_duration("open_for", self.open_for)?;
        non_zero_duration("max_open_for", self.max_open_for)?;
        if let (Some(open_for), Some(max)) = (self.open_for, self.max_open_for) {
            if max < open_for {
                return Err(ConfigError::invalid(
                    "max_open_for",
                    format!(
                        "{} is less than open_for ({})",
                        humantime::format_duration(max),
                        humantime::format_duration(open_for)
                    ),
                ));
            }
        }
        non_zero_duration("idle_evict", self.idle_evict)
    }
}

/// `[routes.pool]`: the WebSocket connection pool; `None`: the WebSocket layer's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Close a pooled connection idle for this long (> 0).
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// Retire a pooled connection older than this (> 0).
    #[serde(default, deserialize_with = "de_duration")]
    pub max_age: Option<Duration>,
    /// The most pooled connections per key (> 0).
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// A request header whose value keeps a session on its own connection.
    #[serde(default, deserialize_with = "de_header_name")]
    pub affinity_header: Option<HeaderName>,
}

impl PoolConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("idle_timeout", self.idle_timeout)?;
        non_zero_duration("max_age", self.max_age)?;
        non_zero("max_connections", self.max_connections)
    }
}

/// `[routes.fallback]`: the HTTP fallback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Which failures are replayed over HTTP; `None`: [`ReplayConfig::BeforeFirstEvent`].
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
}

/// Which WebSocket failures are replayed over HTTP. Never after the first event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayConfig {
    /// Any failure before the upstream's first event (`"before_first_event"`, the default).
    #[default]
    BeforeFirstEvent,
    /// Only connect and handshake failures (`"connect_only"`).
    ConnectOnly,
}

/// A configuration could not be read, parsed or validated.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML (the message has the line and column).
    Syntax {
        /// toml's message.
        message: String,
    },
    /// A value is invalid.
    Invalid {
        /// Where, such as `routes[1].breaker.open_for` (empty for the whole document).
        path: String,
        /// What is wrong, such as `invalid duration "3x"`.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    fn prefixed(self, prefix: &str) -> Self {
        match self {
            ConfigError::Invalid { path, message } => ConfigError::Invalid {
                path: match path.as_str() {
                    "" => prefix.to_owned(),
                    _ => format!("{prefix}.{path}"),
                },
                message,
            },
            other => other,
        }
    }

    /// The path of the invalid value, such as `routes[1].breaker.open_for`, when the error is
    /// about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, source } => {
                write!(f, "cannot read config file {}: {source}", file.display())
            }
            ConfigError::Syntax { message } => write!(f, "invalid toml: {message}"),
            ConfigError::Invalid { path, message } if path.is_empty() => f.write_str(message),
            ConfigError::Invalid { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn non_zero(field: &str, value: Option<u32>) -> Result<(), ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(field, "must be greater than 0")),
        _ => Ok(()),
    }
}

fn non_zero_bytes(field: &str, value: Option<u64>) -> Result<(), ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(field, "must be greater than 0 bytes")),
        _ => Ok(()),
    }
}

fn non_zero_duration(field: &str, value: Option<Duration>) -> Result<(), ConfigError> {
    match value {
        Some(duration) if duration.is_zero() => {
            Err(ConfigError::invalid(field, "must be longer than 0s"))
        }
        _ => Ok(()),
    }
}

/// A host name or IP address without scheme, port or path.
fn is_bare_host(host: &str) -> bool {
    let ipv6 = host.starts_with('[') && host.ends_with(']');
    !host.is_empty()
        && host.parse::<http::uri::Authority>().is_ok()
        && (ipv6 || !host.contains(':'))
        && !host.contains(['/', '@'])
}

// ----- locating an error's path from its span -----

/// The path (`routes[1].breaker.open_for`) of the smallest key or value whose span contains
/// `error`; empty when none does.
fn path_at(root: &toml::de::DeTable<'_>, error: &Range<usize>) -> String {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |span: Range<usize>, path: &str| {
        if span.start <= error.start && error.end <= span.end && span.start < span.end {
            let len = span.end - span.start;
            if best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
                best = Some((len, path.to_owned()));
            }
        }
    };
    walk_table(root, "", &mut consider);
    best.map(|(_, path)| path).unwrap_or_default()
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    consider: &mut dyn FnMut(Range<usize>, &str),
) {
    for (key, value) in table {
        let segment = key_segment(key.get_ref());
        let path = match prefix {
            "" => segment,
            _ => format!("{prefix}.{segment}"),
        };
        consider(key.span(), &path);
        walk_value(value, &path, consider);
    }
}

fn walk_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    consider: &mut dyn FnMut(Range<usize>, &str),
) {
    consider(value.span(), path);
    match value.get_ref() {
        toml::de::DeValue::Table(table) => walk_table(table, path, consider),
        toml::de::DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                walk_value(item, &format!("{path}[{index}]"), consider);
            }
        }
        _ => {}
    }
}

/// A key as written in a path: bare when it can be, quoted otherwise.
fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

// ----- field deserializers -----

/// The longest duration accepted anywhere in the file (and by the admin endpoints).
pub(crate) use wsfirst_core::MAX_DURATION;

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\" or \"10m\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V).map(Some)
}

/// Parses a duration in human form (`"30s"`, `"10m"`), at most [`MAX_DURATION`]: deadlines are
/// `Instant::now() + duration`, which would overflow past the clock's range.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|_| format!("invalid duration {text:?}"))?;
    if duration > MAX_DURATION {
        return Err(format!("invalid duration {text:?}: longer than 100 years"));
    }
    Ok(duration)
}

/// Parses a byte size: digits, then an optional unit (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`,
/// `GiB`, any ASCII case).
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit)
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte size such as 1048576, \"512KiB\", \"16MiB\" or \"1MB\"")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("invalid byte size {n}: negative")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            parse_bytes(s).ok_or_else(|| {
                E::custom(format!(
                    "invalid byte size {s:?}: expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"
                ))
            })
        }
    }
    d.deserialize_any(V).map(Some)
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<TransportMode, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = TransportMode;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"auto\", \"websocket\" or \"http\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<TransportMode, E> {
            s.parse().map_err(|error: RouteError| E::custom(error))
        }
    }
    d.deserialize_str(V)
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a socket address such as \"127.0.0.1:8080\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<SocketAddr, E> {
            s.trim().parse().map_err(|_| {
                E::custom(format!(
                    "invalid socket address {s:?}: expected ip:port such as \"127.0.0.1:8080\""
                ))
            })
        }
    }
    d.deserialize_str(V).map(Some)
}

fn header_name<E: de::Error>(name: &str) -> Result<HeaderName, E> {
    HeaderName::try_from(name).map_err(|_| E::custom(format!("invalid header name {name:?}")))
}

fn de_header_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HeaderName>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = HeaderName;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a header name such as \"x-session-id\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<HeaderName, E> {
            header_name(s)
        }
    }
    d.deserialize_str(V).map(Some)
}

/// Handshake headers that the WebSocket client sets itself.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "content-length",
];

fn is_credential_like(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "authorization"
        || name == "proxy-authorization"
        || ["key", "token", "secret", "cookie"]
            .iter()
            .any(|word| name.contains(word))
}

fn de_headers<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    let mut headers = HeaderMap::with_capacity(raw.len());
    for (name, value) in raw {
        let name = header_name(&name)?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "header {name:?} is set by the websocket handshake and cannot be configured"
            )));
        }
        // `HeaderValue` also takes non-ASCII bytes, which the WebSocket builder (it takes `&str`)
        // could only receive as an empty value.
        let mut value = HeaderValue::try_from(value)
            .ok()
            .filter(|value| value.to_str().is_ok())
            .ok_or_else(|| {
                de::Error::custom(format!("invalid value for header {:?}", name.as_str()))
            })?;
        value.set_sensitive(is_credential_like(&name));
        headers.append(name, value);
    }
    Ok(headers)
}

fn de_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct Hosts(Vec<String>);
    impl<'de> Deserialize<'de> for Hosts {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<String>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a host name or a list of host names")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
                    Ok(vec![s.to_owned()])
                }
                fn visit_seq<A: de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Vec<String>, A::Error> {
                    let mut hosts = Vec::new();
                    while let Some(host) = seq.next_element::<String>()? {
                        hosts.push(host);
                    }
                    Ok(hosts)
                }
            }
            d.deserialize_any(V).map(Hosts)
        }
    }
    let raw = BTreeMap::<String, Hosts>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, Hosts(v))| (k, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsfirst_core::Intent;
    use wsfirst_eligibility::{Policy, RequestHead};

    const FULL: &str = r#"
listen = "127.0.0.1:8080"            # optional
[eligibility]
websocket_pairs = [["openai", "openai-responses"]]
deny_pairs = [["openai-codex", "openai-codex-responses"]]   # optional
provider_hosts = { openai = "api.openai.com" }               # optional
override_header = "x-wsfirst-transport"                       # optional
max_message_size = "16MiB"                                    # optional
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"                 # optional
mode = "auto"                                                 # auto | websocket | http
body_limit = "8MiB"                                           # optional
[routes.timeouts]
connect = "5s"
first_event = "30s"
idle = "120s"
[routes.breaker]
consecutive_failures = 3
failure_rate = 0.5
window = 20
min_calls = 10
open_for = "30s"
max_open_for = "10m"
probes = 1
idle_evict = "10m"
enabled = true
[routes.pool]
idle_timeout = "60s"
max_age = "55m"
max_connections = 8
affinity_header = "x-session-id"
[routes.fallback]
replay = "connect_only"
[routes.headers]
"OpenAI-Beta" = "responses-websocket=v1"
"#;

    /// A valid route, for tests that append to it.
    const ROUTE: &str = r#"
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"
"#;

    #[test]
    fn the_documented_example_parses() {
        let config = Config::from_toml_str(FULL).unwrap();
        assert_eq!(config.listen, Some("127.0.0.1:8080".parse().unwrap()));
        let eligibility = &config.eligibility;
        assert_eq!(
            eligibility.websocket_pairs,
            [Pair::new("openai", "openai-responses")]
        );
        assert_eq!(
            eligibility.deny_pairs,
            [Pair::new("openai-codex", "openai-codex-responses")]
        );
        assert_eq!(
            eligibility.provider_hosts["openai"],
            ["api.openai.com".to_owned()]
        );
        assert_eq!(
            eligibility.override_header.as_ref().map(HeaderName::as_str),
            Some("x-wsfirst-transport")
        );
        assert_eq!(eligibility.max_message_size, Some(16 << 20));

        let [route] = &config.routes[..] else {
            panic!("one route expected: {:?}", config.routes);
        };
        assert_eq!(route.path, "/v1/responses");
        assert_eq!(route.mode, TransportMode::Auto);
        assert_eq!(route.body_limit, Some(8 << 20));
        assert_eq!(
            route.timeouts,
            TimeoutsConfig {
                connect: Some(Duration::from_secs(5)),
                first_event: Some(Duration::from_secs(30)),
                idle: Some(Duration::from_secs(120)),
            }
        );
        assert_eq!(
            route.breaker,
            BreakerConfig {
                enabled: Some(true),
                consecutive_failures: Some(3),
                failure_rate: Some(0.5),
                window: Some(20),
                min_calls: Some(10),
                open_for: Some(Duration::from_secs(30)),
                max_open_for: Some(Duration::from_secs(600)),
                probes: Some(1),
                idle_evict: Some(Duration::from_secs(600)),
            }
        );
        assert_eq!(route.pool.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(route.pool.max_age, Some(Duration::from_secs(55 * 60)));
        assert_eq!(route.pool.max_connections, Some(8));
        assert_eq!(
            route.pool.affinity_header.as_ref().map(HeaderName::as_str),
            Some("x-session-id")
        );
        assert_eq!(route.fallback.replay, Some(ReplayConfig::ConnectOnly));
        assert_eq!(route.headers["openai-beta"], "responses-websocket=v1");

        let built = route.to_route().unwrap();
        assert_eq!(built.provider(), "openai");
        assert_eq!(built.api(), "openai-responses");
        assert_eq!(
            built.ws_url().map(ToString::to_string).as_deref(),
            Some("wss://api.openai.com/v1/responses")
        );

        let table = eligibility.to_table();
        let request = http::Request::builder()
            .header("x-wsfirst-transport", "http")
            .body(())
            .unwrap();
        assert_eq!(
            table
                .decide(&built, &RequestHead::new(&request))
                .reason_label(),
            "request_override"
        );
        let request = http::Request::new(());
        assert_eq!(
            table.decide(&built, &RequestHead::new(&request)),
            Intent::WebSocket
        );
    }

    #[test]
    fn the_gateway_example_parses_with_defaults_left_to_the_layers() {
        let config = Config::from_toml_str(&format!(
            "{}\n[eligibility]\nwebsocket_pairs = [[\"openai\", \"openai-responses\"]]\n{ROUTE}mode = \"auto\"\n[routes.breaker]\nconsecutive_failures = 3\nopen_for = \"30s\"\n",
            "listen = \"127.0.0.1:8080\""
        ))
        .unwrap();
        let route = &config.routes[0];
        assert_eq!(route.timeouts, TimeoutsConfig::default());
        assert_eq!(route.pool, PoolConfig::default());
        assert_eq!(route.body_limit, None);
        assert!(route.breaker.is_enabled());
        assert_eq!(config.eligibility.max_message_size, None);
        assert_eq!(
            config.eligibility.to_table().max_message_size(),
            wsfirst_eligibility::DEFAULT_MAX_MESSAGE_SIZE
        );
    }

    #[test]
    fn sizes_and_hosts_in_every_form() {
        for (text, bytes) in [
            ("1024", 1024),
            ("\"512KiB\"", 512 * 1024),
            ("\"1MB\"", 1_000_000),
            ("\"2 gib\"", 2 << 30),
            ("\"7\"", 7),
            ("\"7B\"", 7),
        ] {
            let config =
                Config::from_toml_str(&format!("[eligibility]\nmax_message_size = {text}"))
                    .unwrap();
            assert_eq!(config.eligibility.max_message_size, Some(bytes), "{text}");
        }
        let config = Config::from_toml_str(
            "[eligibility]\nprovider_hosts = { openai = [\"api.openai.com\", \"eu.api.openai.com\"], local = \"[::1]\" }",
        )
        .unwrap();
        let table = config.eligibility.to_table();
        assert_eq!(
            table.provider_hosts("openai").collect::<Vec<_>>(),
            ["api.openai.com", "eu.api.openai.com"]
        );
        assert_eq!(table.provider_hosts("local").collect::<Vec<_>>(), ["[::1]"]);
    }

    #[test]
    fn credential_headers_are_not_in_debug_output() {
        let config = Config::from_toml_str(&format!(
            "{ROUTE}[routes.headers]\nAuthorization = \"Bearer sk-secret\"\nOpenAI-Beta = \"responses-websocket=v1\"\n"
        ))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-secret"), "{debug}");
        assert!(debug.contains("responses-websocket=v1"), "{debug}");
        assert_eq!(
            config.routes[0].headers["authorization"],
            "Bearer sk-secret"
        );
    }

    #[test]
    fn bad_inputs_name_their_path() {
        let second_route = |extra: &str| {
            format!(
                "{ROUTE}\n[[routes]]\npath = \"/v1/other\"\nprovider = \"openai\"\napi = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n{extra}\n"
            )
        };
        let route_with = |extra: &str| format!("{ROUTE}{extra}\n");
        let cases: Vec<(String, &str)> = vec![
            (
                second_route("[routes.breaker]\nopen_for = \"3x\""),
                r#"routes[1].breaker.open_for: invalid duration "3x""#,
            ),
            (
                route_with("[routes.timeouts]\nconnect = \"500000000000y\""),
                r#"routes[0].timeouts.connect: invalid duration "500000000000y": longer than 100 years"#,
            ),
            (
                route_with("[routes.timeouts]\nconnect = 5"),
                r#"routes[0].timeouts.connect: invalid type: integer `5`, expected a duration such as "30s" or "10m""#,
            ),
            (
                route_with("mode = \"sometimes\""),
                r#"routes[0].mode: invalid mode "sometimes": expected "auto", "websocket" or "http""#,
            ),
            (
                route_with("[routes.fallback]\nreplay = \"always\""),
                "routes[0].fallback.replay: unknown variant `always`, expected `before_first_event` or `connect_only`",
            ),
            (
                route_with("[routes.breaker]\nfailure_rate = 1.5"),
                "routes[0].breaker.failure_rate: 1.5 is out of range: expected more than 0 and at most 1",
            ),
            (
                route_with("[routes.breaker]\nfailure_rate = 0.0"),
                "routes[0].breaker.failure_rate: 0 is out of range: expected more than 0 and at most 1",
            ),
            (
                route_with("[routes.breaker]\nfailure_rate = -0.1"),
                "routes[0].breaker.failure_rate: -0.1 is out of range: expected more than 0 and at most 1",
            ),
            (
                route_with("[routes.breaker]\nwindow = 0"),
                "routes[0].breaker.window: must be greater than 0",
            ),
            (
                route_with("[routes.breaker]\nprobes = 0"),
                "routes[0].breaker.probes: must be greater than 0",
            ),
            (
                route_with("[routes.breaker]\nwindow = 5\nmin_calls = 6"),
                "routes[0].breaker.min_calls: 6 is more than window (5): the rate would never count",
            ),
            (
                route_with("[routes.breaker]\nopen_for = \"0s\""),
                "routes[0].breaker.open_for: must be longer than 0s",
            ),
            (
                route_with("[routes.breaker]\nopen_for = \"1m\"\nmax_open_for = \"30s\""),
                "routes[0].breaker.max_open_for: 30s is less than open_for (1m)",
            ),
            (
                route_with("[routes.breaker]\nconsecutive_failures = -1"),
                "routes[0].breaker.consecutive_failures: invalid value: integer `-1`, expected u32",
            ),
            (
                route_with("[routes.breaker]\nopen_fro = \"30s\""),
                "routes[0].breaker.open_fro: unknown field `open_fro`, expected one of `enabled`, `consecutive_failures`, `failure_rate`, `window`, `min_calls`, `open_for`, `max_open_for`, `probes`, `idle_evict`",
            ),
            (
                route_with("[routes.pool]\nmax_connections = 0"),
                "routes[0].pool.max_connections: must be greater than 0",
            ),
            (
                route_with("[routes.pool]\naffinity_header = \"x session\""),
                r#"routes[0].pool.affinity_header: invalid header name "x session""#,
            ),
            (
                route_with("body_limit = 0"),
                "routes[0].body_limit: must be greater than 0 bytes",
            ),
            (
                route_with("body_limit = \"8XB\""),
                r#"routes[0].body_limit: invalid byte size "8XB": expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"#,
            ),
            (
                route_with("body_limit = -5"),
                "routes[0].body_limit: invalid byte size -5: negative",
            ),
            (
                route_with("[routes.headers]\nX-Team = \"caf\u{e9}\""),
                r#"routes[0].headers: invalid value for header "x-team""#,
            ),
            (
                route_with("[routes.headers]\nUpgrade = \"h2c\""),
                r#"routes[0].headers: header "upgrade" is set by the websocket handshake and cannot be configured"#,
            ),
            (
                second_route("").replace(
                    "http_url = \"https://api.openai.com/v1/responses\"\n\n",
                    "http_url = \"ftp://example.com/x\"\n",
                ),
                r#"routes[1].http_url: invalid url "ftp://example.com/x": expected an absolute http:// or https:// url"#,
            ),
            (
                second_route("ws_url = \"https://api.openai.com/v1/responses\""),
                r#"routes[1].ws_url: invalid url "https://api.openai.com/v1/responses": expected an absolute ws:// or wss:// url"#,
            ),
            (
                second_route("ws_url = \"wss://bad host/x\""),
                r#"routes[1].ws_url: invalid url "wss://bad host/x": expected an absolute ws:// or wss:// url"#,
            ),
            (
                second_route("mode = \"websocket\""),
                r#"routes[1].ws_url: required when mode is "websocket""#,
            ),
            (
                second_route("").replace("path = \"/v1/other\"", "path = \"/v1/responses\""),
                r#"routes[1].path: duplicate path "/v1/responses" (already used by routes[0])"#,
            ),
            (
                second_route("").replace("path = \"/v1/other\"", "path = \"v1/other\""),
                r#"routes[1].path: invalid path "v1/other": must start with '/'"#,
            ),
            (
                second_route("").replace("provider = \"openai\"\napi = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n\n", "provider = \"\"\napi = \"a\"\nhttp_url = \"https://x/\"\n"),
                "routes[1].provider: must not be empty",
            ),
            (
                second_route("").replace("api = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n\n", ""),
                "routes[1]: missing field `api`",
            ),
            (
                route_with("colour = \"blue\""),
                "routes[0].colour: unknown field `colour`, expected one of `path`, `provider`, `api`, `http_url`, `ws_url`, `mode`, `body_limit`, `timeouts`, `breaker`, `pool`, `fallback`, `headers`",
            ),
            (
                "listen = \"localhost\"".to_owned(),
                r#"listen: invalid socket address "localhost": expected ip:port such as "127.0.0.1:8080""#,
            ),
            (
                "[eligibility]\nmax_message_size = \"0MiB\"".to_owned(),
                "eligibility.max_message_size: must be greater than 0 bytes",
            ),
            (
                "[eligibility]\nwebsocket_pairs = [[\"openai\", \"openai-responses\"], [\"openai\"]]"
                    .to_owned(),
                "eligibility.websocket_pairs[1]: invalid length 1, expected a tuple of size 2",
            ),
            (
                "[eligibility]\ndeny_pairs = [[\"\", \"x\"]]".to_owned(),
                "eligibility.deny_pairs[0]: provider and api must not be empty",
            ),
            (
                "[eligibility]\nprovider_hosts = { openai = \"https://api.openai.com\" }".to_owned(),
                r#"eligibility.provider_hosts.openai: invalid host "https://api.openai.com": expected a host name without scheme, port or path, such as "api.openai.com""#,
            ),
            (
                "[eligibility]\nprovider_hosts = { openai = \"api.openai.com:443\" }".to_owned(),
                r#"eligibility.provider_hosts.openai: invalid host "api.openai.com:443": expected a host name without scheme, port or path, such as "api.openai.com""#,
            ),
            (
                "[eligibility]\noverride_header = \"\"".to_owned(),
                r#"eligibility.override_header: invalid header name """#,
            ),
            (
                "[eligibility]\nallow = []".to_owned(),
                "eligibility.allow: unknown field `allow`, expected one of `websocket_pairs`, `deny_pairs`, `provider_hosts`, `override_header`, `max_message_size`",
            ),
            (
                "lissen = \"127.0.0.1:1\"".to_owned(),
                "lissen: unknown field `lissen`, expected one of `listen`, `eligibility`, `routes`",
            ),
        ];
        let mut failures = Vec::new();
        for (text, expected) in &cases {
            match Config::from_toml_str(text) {
                Ok(config) => failures.push(format!("accepted: {expected}\n{config:?}")),
                Err(error) if error.to_string() != *expected => {
                    failures.push(format!("expected: {expected}\n     got: {error}"))
                }
                Err(_) => {}
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn syntax_errors_keep_toml_line_and_column() {
        let error = Config::from_toml_str("listen = ").unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("invalid toml: TOML parse error at line 1"),
            "{error}"
        );
        assert_eq!(error.path(), None);
    }

    #[test]
    fn from_path_reads_files_and_names_unreadable_ones() {
        let dir = std::env::temp_dir().join(format!("wsfirst-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gateway.toml");
        std::fs::write(&file, FULL).unwrap();
        assert_eq!(Config::from_path(&file).unwrap().routes.len(), 1);
        let missing = dir.join("missing.toml");
        let error = Config::from_path(&missing).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read config file {}: ", missing.display())),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn to_route_names_fields_relative_to_the_route() {
        let mut route = Config::from_toml_str(ROUTE).unwrap().routes.remove(0);
        route.ws_url = Some("ws:/nohost".to_owned());
        let error = route.to_route().unwrap_err();
        assert_eq!(error.path(), Some("ws_url"));
    }
}
