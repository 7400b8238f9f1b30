//! The configuration file's schema: plain serde types, one per table.

use std::{collections::BTreeMap, fmt, net::SocketAddr, time::Duration};

use http::{HeaderMap, HeaderName};
use serde::Deserialize;
use wsfirst_core::{TransportMode, redact};

use super::parse::{
    MaskedHeaders, de_bytes, de_duration, de_header_name, de_headers, de_hosts, de_mode,
    de_required_socket_addr, de_socket_addr,
};

/// A whole configuration file: the listen address, the eligibility table and the routes.
///
/// See the [module documentation](crate::config) for the field reference.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address a gateway listens on.
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// Which (provider, API) pairs may try the WebSocket.
    pub eligibility: EligibilityConfig,
    /// The breaker registry that every route shares.
    pub breakers: BreakersConfig,
    /// The admin listener (breakers and metrics); `None`: no admin surface at all.
    pub admin: Option<AdminConfig>,
    /// The limits of the public listener.
    pub server: ServerLimitsConfig,
    /// The routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// The environment variable that holds the secret credential fingerprints are keyed with
    /// (at least 16 bytes; see [`Config::fingerprint_key`]); `None`: a random key for each
    /// process.
    pub fingerprint_key_env: Option<String>,
    /// The store that shares the breakers with other replicas of this gateway; `None`: each
    /// process has its own breakers.
    pub breaker_store: Option<BreakerStoreConfig>,
}

/// The `[breaker_store]` table: share breaker state with the other replicas through Redis or
/// Valkey (see [`wsfirst_breaker_redis`]); `None` fields take the store's defaults. `Debug`
/// shows the URL without its password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerStoreConfig {
    /// `redis://[:password@]host:port/db`.
    pub redis_url: String,
    /// The start of every key (replicas that share breakers use the same one).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The deadline of one command; past it the store counts as down.
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    /// The deadline of a connection attempt.
    #[serde(default, deserialize_with = "de_duration")]
    pub connect_timeout: Option<Duration>,
    /// How long the fleet's failure count of a key lasts after its last failure.
    #[serde(default, deserialize_with = "de_duration")]
    pub failure_window: Option<Duration>,
    /// How long a replica holds a half-open probe slot.
    #[serde(default, deserialize_with = "de_duration")]
    pub probe_lease: Option<Duration>,
    /// How long a key's record lives after its pin ends.
    #[serde(default, deserialize_with = "de_duration")]
    pub key_ttl: Option<Duration>,
}

/// The `[server]` table: the public listener's limits; `None`: the defaults of
/// [`ServerConfig`](wsfirst::serve::ServerConfig), of
/// [`WsfirstBuilder::body_budget`](wsfirst::WsfirstBuilder::body_budget), and no `Host` check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimitsConfig {
    /// The time a client has to send its request headers.
    #[serde(deserialize_with = "de_duration")]
    pub header_read_timeout: Option<Duration>,
    /// The time a client has to send a request's whole body.
    #[serde(deserialize_with = "de_duration")]
    pub body_read_timeout: Option<Duration>,
    /// The most connections served at once.
    pub max_connections: Option<u32>,
    /// The largest request headers.
    #[serde(deserialize_with = "de_bytes")]
    pub max_header_bytes: Option<u64>,
    /// How long requests in flight may take to finish on shutdown.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Option<Duration>,
    /// How long a connection may stay open with nothing in flight.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// How often an HTTP/2 connection is pinged.
    #[serde(deserialize_with = "de_duration")]
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may wait for its answer.
    #[serde(deserialize_with = "de_duration")]
    pub http2_keep_alive_timeout: Option<Duration>,
    /// The most requests (streams) one HTTP/2 connection runs at once.
    pub max_concurrent_streams: Option<u32>,
    /// The bytes of request bodies buffered at once by the whole gateway (bodies held for a
    /// replay, client WebSocket messages queued); past it `503`.
    #[serde(deserialize_with = "de_bytes")]
    pub body_budget: Option<u64>,
    /// The `Host` values the gateway answers to (`421` for others); `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
}

/// The `[admin]` table: where the admin endpoints (`/admin/transport`, `/metrics`) are served,
/// on a listener of their own, never the public one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin listener's address, such as `"127.0.0.1:9091"` (loopback or a private interface).
    #[serde(deserialize_with = "de_required_socket_addr")]
    pub listen: SocketAddr,
    /// The environment variable that holds the admin bearer token; `None`: no token (then bind
    /// `listen` to loopback only).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// The `[breakers]` table: the one breaker registry that every route shares, as
/// [`BreakerRegistryBuilder`](wsfirst::breaker::BreakerRegistryBuilder) takes it: its limits,
/// the settings of every key (`[breakers.default]`, its `config`) and those of one provider +
/// WebSocket endpoint (`[[breakers.keys]]`, its `config_for`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakersConfig {
    /// Forget a key not used for this long (the registry's default when left out)
    /// (`idle_evict` before).
    #[serde(alias = "idle_evict", deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// The most keys the registry holds (> 0); the least recently used go first.
    pub max_keys: Option<usize>,
    /// One `wsfirst_breaker_state` series per credential instead of per provider and endpoint
    /// (`gauge_per_credential` before).
    #[serde(alias = "gauge_per_credential")]
    pub state_gauge_per_credential: Option<bool>,
    /// `[breakers.default]`: the settings of every key without settings of its own; fields
    /// left out are the breaker's defaults.
    pub default: Option<BreakerConfig>,
    /// `[[breakers.keys]]`: the settings of one provider + WebSocket endpoint, for every
    /// credential.
    pub keys: Vec<BreakerKeyConfig>,
}

/// One `[[breakers.keys]]` entry: the breaker settings of every key with this provider and
/// WebSocket endpoint, whatever the credential.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerKeyConfig {
    /// The provider id, as in the routes.
    pub provider: String,
    /// The WebSocket endpoint, as in the routes' `ws_url`.
    pub ws_url: String,
    /// `[breakers.keys.config]`: the settings; fields left out are the breaker's defaults.
    #[serde(default)]
    pub config: BreakerConfig,
}

impl fmt::Debug for BreakerKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerKeyConfig")
            .field("provider", &self.provider)
            .field("ws_url", &redact::url(&self.ws_url))
            .field("config", &self.config)
            .finish()
    }
}

/// The `[eligibility]` table: which (provider, API) pairs may try the WebSocket.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EligibilityConfig {
    /// Pairs allowed on the WebSocket.
    pub websocket_pairs: Vec<Pair>,
    /// Pairs never allowed on the WebSocket; wins over [`websocket_pairs`](Self::websocket_pairs).
    pub deny_pairs: Vec<Pair>,
    /// The WebSocket hosts registered per provider.
    #[serde(deserialize_with = "de_hosts")]
    pub provider_hosts: BTreeMap<String, Vec<String>>,
    /// The per-request override header (value `http` forces HTTP), off when `None`.
    #[serde(deserialize_with = "de_header_name")]
    pub override_header: Option<HeaderName>,
    /// The WebSocket message size limit in bytes; `None`: 16 MiB.
    #[serde(deserialize_with = "de_bytes")]
    pub max_message_size: Option<u64>,
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

/// One `[[routes]]` entry: where a path's requests go and how. `Debug` shows the URLs without
/// userinfo or query string and credential header values as `Sensitive`.
#[derive(Clone, PartialEq, Deserialize)]
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
    /// Request headers forwarded to the upstream (both transports) besides the API's own
    /// (`authorization`, `openai-beta`, `openai-organization`, `openai-project`); everything
    /// not listed is dropped, `cookie` included.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Static headers set on every upstream request, on the WebSocket handshake and over HTTP
    /// alike, replacing the client's (`OpenAI-Beta` flags are added to the client's instead).
    /// Values of credential-like headers (`authorization`, names containing `key`, `token`,
    /// `secret`, `cookie`) are marked sensitive, so `Debug` does not show them.
    #[serde(default, deserialize_with = "de_headers")]
    pub headers: HeaderMap,
    /// `[routes.client_websocket]`: the client WebSocket connections of the route.
    #[serde(default)]
    pub client_websocket: ClientWebSocketConfig,
    /// The environment variable that holds the tokens clients must present
    /// (`Authorization: Bearer <token>`, comma-separated in the variable); required when
    /// [`headers`](Self::headers) sets a credential, unless [`open`](Self::open).
    #[serde(default)]
    pub client_tokens_env: Option<String>,
    /// `true`: the route sets a credential in [`headers`](Self::headers) but asks clients for
    /// none: whoever reaches it spends that credential.
    #[serde(default)]
    pub open: bool,
}

/// `[routes.client_websocket]`: whether the route accepts client WebSocket connections (the
/// Responses API's WebSocket mode) on its path, and their limits; each field left out is
/// [`ClientWsConfig`](wsfirst::client_ws::ClientWsConfig)'s default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientWebSocketConfig {
    /// `false`: the route's `GET` is not mounted (default `true`).
    pub enabled: Option<bool>,
    /// The largest message a client may send.
    #[serde(deserialize_with = "de_bytes")]
    pub max_message_size: Option<u64>,
    /// How long a connection may stay without client messages while no response runs.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// The keep-alive ping interval.
    #[serde(deserialize_with = "de_duration")]
    pub ping_interval: Option<Duration>,
    /// How long a connection may live.
    #[serde(deserialize_with = "de_duration")]
    pub max_lifetime: Option<Duration>,
    /// The most bytes of events buffered for a client that reads slowly.
    #[serde(deserialize_with = "de_bytes")]
    pub send_buffer: Option<u64>,
    /// The most `response.create` messages waiting while one runs.
    pub max_queued: Option<u32>,
    /// The most bytes of those waiting messages.
    #[serde(deserialize_with = "de_bytes")]
    pub max_queued_bytes: Option<u64>,
    /// The most lanes (`stream_id`) with work at once on one client connection.
    pub max_lanes: Option<u32>,
    /// The most client connections open on the route at once.
    pub max_connections: Option<u32>,
    /// How long a running response may take to finish once shutdown began.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Option<Duration>,
    /// The origins (`https://app.example.com`) of the web pages that may connect besides the
    /// gateway's own; an upgrade with another `Origin` is `403`. Clients without `Origin`
    /// (SDKs) always may.
    pub allowed_origins: Vec<String>,
}

impl fmt::Debug for BreakerStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerStoreConfig")
            // `redis://:password@host`: the password never shows.
            .field("redis_url", &redact::url(&self.redis_url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("failure_window", &self.failure_window)
            .field("probe_lease", &self.probe_lease)
            .field("key_ttl", &self.key_ttl)
            .finish()
    }
}

impl fmt::Debug for RouteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteConfig")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("api", &self.api)
            // A query string (`?key=...`) or userinfo may hold a credential.
            .field("http_url", &redact::url(&self.http_url))
            .field("ws_url", &self.ws_url.as_deref().map(redact::url))
            .field("mode", &self.mode)
            .field("body_limit", &self.body_limit)
            .field("timeouts", &self.timeouts)
            .field("breaker", &self.breaker)
            .field("pool", &self.pool)
            .field("fallback", &self.fallback)
            .field("forward_headers", &self.forward_headers)
            .field(
                "headers",
                &MaskedHeaders {
                    headers: &self.headers,
                    also: |_: &HeaderName| false,
                },
            )
            .field("client_websocket", &self.client_websocket)
            .field("client_tokens_env", &self.client_tokens_env)
            .field("open", &self.open)
            .finish()
    }
}

impl ClientWebSocketConfig {
    /// Whether the route accepts client WebSocket connections.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// `[routes.timeouts]`: the WebSocket attempt's timeouts; `None`: the WebSocket layer's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Connect + TLS + WebSocket handshake (`connect` before).
    #[serde(alias = "connect", deserialize_with = "de_duration")]
    pub handshake_timeout: Option<Duration>,
    /// From the request sent to the upstream's first event (`first_event` before).
    #[serde(alias = "first_event", deserialize_with = "de_duration")]
    pub first_event_timeout: Option<Duration>,
    /// Between two events of an answer (`idle` before).
    #[serde(alias = "idle", deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// HTTP: from sending the request to the response headers, connecting included.
    #[serde(deserialize_with = "de_duration")]
    pub http_response: Option<Duration>,
    /// HTTP: between two chunks of the response body.
    #[serde(deserialize_with = "de_duration")]
    pub http_idle: Option<Duration>,
}

/// Circuit breaker settings, as [`BreakerConfigBuilder`](wsfirst::breaker::BreakerConfigBuilder)
/// names them: `[routes.breaker]` (the settings of the route's key; routes that reach the same
/// provider + WebSocket endpoint must agree on them), `[breakers.default]` and
/// `[breakers.keys.config]`; `None`: the breaker's defaults. `enabled` is a route's only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// `Some(false)`: no circuit breaker for this route. `None` means enabled.
    pub enabled: Option<bool>,
    /// Trip after this many WebSocket failures in a row; `0` turns the rule off.
    pub consecutive_failures: Option<u32>,
    /// Trip when this fraction (0 to 1) of the last [`failure_rate_window`](Self::failure_rate_window) calls failed
    /// (`failure_rate` before).
    #[serde(alias = "failure_rate")]
    pub failure_rate_threshold: Option<f64>,
    /// The number of recent calls the failure rate is computed over (> 0)
    /// (`window` before).
    #[serde(alias = "window")]
    pub failure_rate_window: Option<u32>,
    /// The calls needed in the window before the failure rate counts
    /// (`min_calls` before).
    #[serde(alias = "min_calls")]
    pub failure_rate_min_calls: Option<u32>,
    /// How long a tripped key stays pinned to HTTP the first time (`open_for` before).
    #[serde(alias = "open_for", deserialize_with = "de_duration")]
    pub open_duration: Option<Duration>,
    /// The cap of the pinned period, which grows with each trip
    /// (`max_open_for` before).
    #[serde(alias = "max_open_for", deserialize_with = "de_duration")]
    pub max_open_duration: Option<Duration>,
    /// Requests allowed to probe the WebSocket when half-open (`probes` before).
    #[serde(alias = "probes")]
    pub half_open_probes: Option<u32>,
}

impl BreakerConfig {
    /// Whether the route has a circuit breaker (`enabled` left out means yes).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Whether the table sets any breaker setting (`enabled` is not one).
    pub fn has_settings(&self) -> bool {
        *self
            != Self {
                enabled: self.enabled,
                ..Self::default()
            }
    }
}

/// `[routes.pool]`: the WebSocket connection pool; `None`: the WebSocket layer's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Close a pooled connection idle for this long (> 0).
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// Retire a pooled connection older than this (> 0).
    #[serde(deserialize_with = "de_duration")]
    pub max_age: Option<Duration>,
    /// The most pooled connections per key (> 0).
    pub max_connections_per_key: Option<u32>,
    /// The most connections of the route's pool in total, across keys (> 0)
    /// (`max_total_connections` before).
    #[serde(alias = "max_total_connections")]
    pub max_connections: Option<u32>,
    /// The most idle connections of the route's pool in total, across keys (> 0).
    pub max_idle_connections: Option<u32>,
    /// Close a streaming answer's connection when its reader stops reading for this long.
    #[serde(deserialize_with = "de_duration")]
    pub write_stall_timeout: Option<Duration>,
    /// How long a request that continues a conversation waits for its busy connection.
    #[serde(deserialize_with = "de_duration")]
    pub conversation_wait: Option<Duration>,
    /// Idle connections kept open per known key, ahead of requests (<= `max_connections_per_key`).
    pub min_idle: Option<u32>,
    /// A request header whose value keeps a session on its own connection.
    #[serde(deserialize_with = "de_header_name")]
    pub affinity_header: Option<HeaderName>,
}

/// `[routes.fallback]`: the HTTP fallback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// Which failures are replayed over HTTP; `None`: [`ReplayConfig::BeforeFirstEvent`].
    pub replay: Option<ReplayConfig>,
}

/// Which WebSocket failures are sent again (over HTTP, or once on a fresh WebSocket); never
/// one the upstream may have executed ([`Replay`](wsfirst::core::Replay)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayConfig {
    /// Any failure the upstream provably did not execute: nothing written, a failed write, a
    /// refusal (`"before_first_event"`, the default).
    #[default]
    BeforeFirstEvent,
    /// Only failures where nothing was written: connect and handshake failures, and a reused
    /// connection found closed before the write (`"connect_only"`).
    ConnectOnly,
}
