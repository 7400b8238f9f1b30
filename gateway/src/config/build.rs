//! From the parsed configuration to what the layers take: the eligibility table, the breaker
//! registry, and each route's [`Route`] extension and layer settings.
//!
//! The layers' builders own every default and every rule about a value: this module only maps
//! the file's fields onto them and puts the file's path in front of their errors
//! (`routes[0].breaker.open_duration: invalid breaker config: ...`). The rules that are the file's own
//! (route paths, and two routes that share a breaker key agreeing on its settings) are here or
//! in `validate.rs`.

use http::{HeaderName, Uri};
use wsfirst_breaker::BreakerRegistry;

use super::breakers::BreakerSettings;
use wsfirst_breaker_redis::{RedisStore, RedisStoreConfig};
use wsfirst_core::{FingerprintKey, HttpTimeouts, Route, RouteError, headers::HeaderPolicy};
use wsfirst_eligibility::{EligibilityTable, EligibilityTableBuilder};
use wsfirst_fallback::{FallbackConfig, Replay};
use wsfirst_websocket::{PoolBuilder, WebSocketConfig};

use wsfirst::upstream::HttpUpstream;

use super::{
    error::{ConfigError, key_segment},
    schema::{
        BreakerStoreConfig, Config, EligibilityConfig, PoolConfig, ReplayConfig, RouteConfig,
    },
};

/// Everything the layers need, built and checked by their own builders.
#[derive(Debug)]
pub(crate) struct Layers {
    pub(crate) table: EligibilityTable,
    pub(crate) registry: BreakerRegistry,
    /// The breaker settings the registry was built with.
    pub(crate) breakers: BreakerSettings,
    pub(crate) routes: Vec<RouteLayers>,
    /// The store the registry shares its breakers through, when the file has one and the layers
    /// were built to run ([`Config::running_layers`]).
    pub(crate) store: Option<RedisStore>,
}

/// One route's extension and layer settings.
#[derive(Debug)]
pub(crate) struct RouteLayers {
    pub(crate) route: Route,
    pub(crate) breaker: bool,
    pub(crate) fallback: FallbackConfig,
    pub(crate) websocket: WebSocketConfig,
    /// The route's own pool settings, when it has any (routes with equal settings share a pool).
    pub(crate) pool: Option<PoolConfig>,
}

impl Config {
    /// The key credential fingerprints are computed with: derived from the value of the
    /// environment variable that `fingerprint_key_env` names (see
    /// [`FingerprintKey::from_secret`]), or this process's random key
    /// ([`FingerprintKey::process_default`]) without one. Errors name `fingerprint_key_env`.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let config = Config::from_toml_str("")?;
    /// assert_eq!(
    ///     config.fingerprint_key()?.fingerprint("Bearer sk-1"),
    ///     wsfirst::core::Fingerprint::of("Bearer sk-1"),
    /// );
    ///
    /// let config = Config {
    ///     fingerprint_key_env: Some("WSFIRST_SURELY_UNSET_FINGERPRINT_KEY".into()),
    ///     ..Config::default()
    /// };
    /// assert_eq!(
    ///     config.fingerprint_key().unwrap_err().to_string(),
    ///     r#"fingerprint_key_env: environment variable "WSFIRST_SURELY_UNSET_FINGERPRINT_KEY" is not set"#,
    /// );
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn fingerprint_key(&self) -> Result<FingerprintKey, ConfigError> {
        let Some(name) = &self.fingerprint_key_env else {
            return Ok(FingerprintKey::process_default().clone());
        };
        let Some(secret) = std::env::var_os(name) else {
            return Err(ConfigError::invalid(
                "fingerprint_key_env",
                format!("environment variable {name:?} is not set"),
            ));
        };
        FingerprintKey::from_secret(secret.as_encoded_bytes()).map_err(|error| {
            ConfigError::invalid(
                "fingerprint_key_env",
                format!("environment variable {name:?}: {error}"),
            )
        })
    }

    /// Builds every layer's settings from the file, with the key of
    /// [`fingerprint_key`](Self::fingerprint_key), or names the first invalid value.
    /// A `[breaker_store]` is checked, not connected: see [`running_layers`](Self::running_layers).
    pub(crate) fn layers(&self) -> Result<Layers, ConfigError> {
        self.layers_with_key(&self.fingerprint_key()?)
    }

    /// [`layers`](Self::layers) to serve with: the registry shares its breakers through the
    /// `[breaker_store]`, if any, whose task starts on the current tokio runtime (an error
    /// without one).
    pub(crate) fn running_layers(&self) -> Result<Layers, ConfigError> {
        let store = match &self.breaker_store {
            Some(config) => Some(RedisStore::new(config.to_store_config()?).map_err(store_error)?),
            None => None,
        };
        self.layers_with(&self.fingerprint_key()?, store)
    }

    /// [`layers`](Self::layers), with routes whose fingerprints use `key`.
    pub(crate) fn layers_with_key(&self, key: &FingerprintKey) -> Result<Layers, ConfigError> {
        if let Some(config) = &self.breaker_store {
            config.to_store_config()?;
        }
        self.layers_with(key, None)
    }

    fn layers_with(
        &self,
        key: &FingerprintKey,
        store: Option<RedisStore>,
    ) -> Result<Layers, ConfigError> {
        let table = self
            .eligibility
            .to_table()
            .map_err(|error| error.prefixed("eligibility"))?;
        let mut routes = Vec::with_capacity(self.routes.len());
        for (index, config) in self.routes.iter().enumerate() {
            let prefix = format!("routes[{index}]");
            let route_layers = config
                .layers(key)
                .map_err(|error| error.prefixed(&prefix))?;
            if let Some(name) = &self.eligibility.override_header {
                config
                    .check_not_forwarded(name)
                    .map_err(|error| error.prefixed(&prefix))?;
            }
            routes.push(route_layers);
        }
        let route_keys: Vec<_> = routes
            .iter()
            .map(|layers| layers.route.breaker_key().clone())
            .collect();
        let (registry, breakers) = self.registry(key, &route_keys, store.as_ref())?;
        Ok(Layers {
            table,
            registry,
            breakers,
            routes,
            store,
        })
    }
}

impl BreakerStoreConfig {
    /// The store's settings, checked by its own builder (no connection is made); errors are
    /// under `breaker_store`.
    pub fn to_store_config(&self) -> Result<RedisStoreConfig, ConfigError> {
        let mut builder = RedisStoreConfig::builder(self.redis_url.as_str());
        if let Some(prefix) = &self.prefix {
            builder = builder.prefix(prefix.as_str());
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(window) = self.failure_window {
            builder = builder.failure_window(window);
        }
        if let Some(lease) = self.probe_lease {
            builder = builder.probe_lease(lease);
        }
        if let Some(ttl) = self.key_ttl {
            builder = builder.key_ttl(ttl);
        }
        builder.build().map_err(store_error)
    }
}

/// A store setting's error, under `breaker_store`.
fn store_error(error: wsfirst_breaker_redis::ConfigError) -> ConfigError {
    ConfigError::invalid(
        format!("breaker_store.{}", error.field()),
        error.to_string(),
    )
}

impl RouteConfig {
    fn layers(&self, key: &FingerprintKey) -> Result<RouteLayers, ConfigError> {
        let pool = &self.pool;
        let has_pool = pool.idle_timeout.is_some()
            || pool.max_age.is_some()
            || pool.max_connections_per_key.is_some()
            || pool.max_connections.is_some()
            || pool.max_idle_connections.is_some()
            || pool.write_stall_timeout.is_some()
            || pool.conversation_wait.is_some()
            || pool.min_idle.is_some();
        if has_pool {
            pool.to_builder().build().map_err(|error| {
                // The file's names are the builder's.
                ConfigError::invalid(format!("pool.{}", error.field()), error.to_string())
            })?;
        }
        Ok(RouteLayers {
            route: self.to_route_with_key(key)?,
            breaker: self.breaker.is_enabled(),
            fallback: self.fallback_config()?,
            websocket: self.websocket_config()?,
            pool: has_pool.then(|| PoolConfig {
                // The affinity header is the WebSocket layer's, not the pool's.
                affinity_header: None,
                ..pool.clone()
            }),
        })
    }

    /// The eligibility override header is read by the eligibility layer, never sent upstream:
    /// the route may neither forward nor set it.
    fn check_not_forwarded(&self, override_header: &HeaderName) -> Result<(), ConfigError> {
        let path = if self
            .forward_headers
            .iter()
            .any(|name| name.eq_ignore_ascii_case(override_header.as_str()))
        {
            "forward_headers"
        } else if self.headers.contains_key(override_header) {
            "headers"
        } else {
            return Ok(());
        };
        Err(ConfigError::invalid(
            path,
            format!(
                "{override_header} is the eligibility override header, which is never forwarded"
            ),
        ))
    }

    /// The route's HTTP upstream timeouts, checked by the upstream's own builder.
    fn http_timeouts(&self) -> Result<Option<HttpTimeouts>, ConfigError> {
        let timeouts = &self.timeouts;
        if timeouts.http_response.is_none() && timeouts.http_idle.is_none() {
            return Ok(None);
        }
        HttpUpstream::builder()
            .response_timeout(timeouts.http_response)
            .body_idle_timeout(timeouts.http_idle)
            .check()
            .map_err(|error| {
                let path = match error.field() {
                    "response_timeout" => "timeouts.http_response",
                    _ => "timeouts.http_idle",
                };
                ConfigError::invalid(path, error.to_string())
            })?;
        Ok(Some(HttpTimeouts {
            response: timeouts.http_response,
            idle: timeouts.http_idle,
        }))
    }

    /// The fallback layer's settings.
    fn fallback_config(&self) -> Result<FallbackConfig, ConfigError> {
        let mut builder = FallbackConfig::builder();
        if let Some(limit) = self.body_limit {
            builder = builder.body_limit(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if let Some(replay) = self.fallback.replay {
            builder = builder.replay(match replay {
                ReplayConfig::BeforeFirstEvent => Replay::BeforeFirstEvent,
                ReplayConfig::ConnectOnly => Replay::ConnectOnly,
            });
        }
        builder.build().map_err(|error| {
            let path = match error.field() {
                "body_limit" => "body_limit",
                _ => "fallback",
            };
            ConfigError::invalid(path, error.to_string())
        })
    }

    /// The WebSocket layer's settings.
    fn websocket_config(&self) -> Result<WebSocketConfig, ConfigError> {
        let mut builder = WebSocketConfig::builder();
        if let Some(connect) = self.timeouts.handshake_timeout {
            builder = builder.handshake_timeout(connect);
        }
        if let Some(first_event) = self.timeouts.first_event_timeout {
            builder = builder.first_event_timeout(first_event);
        }
        if let Some(idle) = self.timeouts.idle_timeout {
            builder = builder.idle_timeout(idle);
        }
        if let Some(header) = &self.pool.affinity_header {
            builder = builder.affinity_header(header.as_str());
        }
        builder.build().map_err(|error| {
            let path = match error.field() {
                "handshake_timeout" => "timeouts.handshake_timeout",
                "first_event_timeout" => "timeouts.first_event_timeout",
                "idle_timeout" => "timeouts.idle_timeout",
                "affinity_header" => "pool.affinity_header",
                _ => "timeouts",
            };
            ConfigError::invalid(path, error.to_string())
        })
    }

    /// The route's header policy: the Responses API's headers, then `forward_headers`, then
    /// the static `[routes.headers]`.
    fn header_policy(&self) -> Result<HeaderPolicy, ConfigError> {
        let mut builder = HeaderPolicy::responses().to_builder();
        for raw in &self.forward_headers {
            let name = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    "forward_headers",
                    format!("invalid header policy: forward_headers: {raw:?} is not a header name"),
                )
            })?;
            builder = builder.forward_header(name);
        }
        for (name, value) in &self.headers {
            builder = builder.static_header(name.clone(), value.clone());
        }
        builder.build().map_err(|error| {
            let path = match error.field() {
                "forward_headers" => "forward_headers",
                _ => "headers",
            };
            ConfigError::invalid(path, format!("invalid header policy: {error}"))
        })
    }
}

impl PoolConfig {
    /// A pool builder with this table's settings.
    pub(crate) fn to_builder(&self) -> PoolBuilder {
        let mut builder = wsfirst_websocket::Pool::builder();
        if let Some(idle) = self.idle_timeout {
            builder = builder.idle_timeout(idle);
        }
        if let Some(max_age) = self.max_age {
            builder = builder.max_age(max_age);
        }
        if let Some(max) = self.max_connections_per_key {
            builder = builder.max_connections_per_key(max as usize);
        }
        if let Some(wait) = self.conversation_wait {
            builder = builder.conversation_wait(wait);
        }
        if let Some(max) = self.max_connections {
            builder = builder.max_connections(max as usize);
        }
        if let Some(max) = self.max_idle_connections {
            builder = builder.max_idle_connections(max as usize);
        }
        if let Some(timeout) = self.write_stall_timeout {
            builder = builder.write_stall_timeout(timeout);
        }
        if let Some(min) = self.min_idle {
            builder = builder.min_idle(min as usize);
        }
        builder
    }
}

impl EligibilityConfig {
    /// The eligibility table this configuration describes.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [eligibility]
    ///     websocket_pairs = [["openai", "openai-responses"], ["openai-codex", "openai-codex-responses"]]
    ///     deny_pairs = [["openai-codex", "openai-codex-responses"]]
    ///     max_message_size = "1MiB"
    /// "#)?;
    /// let table = config.eligibility.to_table()?;
    /// assert!(table.is_allowed("openai", "openai-responses"));
    /// assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
    /// assert_eq!(table.max_message_size(), 1024 * 1024);
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    ///
    /// Invalid values are named by their place under `[eligibility]`, with the table builder's
    /// own message (`websocket_pairs[0]: invalid eligibility table: ...`).
    pub fn to_table(&self) -> Result<EligibilityTable, ConfigError> {
        let mut builder = EligibilityTable::builder();
        for (index, pair) in self.websocket_pairs.iter().enumerate() {
            let add = |b: EligibilityTableBuilder| b.allow(&pair.provider, &pair.api);
            check(add, || format!("websocket_pairs[{index}]"))?;
            builder = add(builder);
        }
        for (index, pair) in self.deny_pairs.iter().enumerate() {
            let add = |b: EligibilityTableBuilder| b.deny(&pair.provider, &pair.api);
            check(add, || format!("deny_pairs[{index}]"))?;
            builder = add(builder);
        }
        for (provider, hosts) in &self.provider_hosts {
            for host in hosts {
                let add = |b: EligibilityTableBuilder| b.provider_host(provider, host);
                check(add, || format!("provider_hosts.{}", key_segment(provider)))?;
                builder = add(builder);
            }
        }
        if let Some(name) = &self.override_header {
            builder = builder.override_header(name.clone());
        }
        if let Some(bytes) = self.max_message_size {
            builder = builder.max_message_size(bytes);
        }
        builder
            .build()
            .map_err(|error| ConfigError::invalid(error.field(), error.to_string()))
    }
}

impl super::ServerLimitsConfig {
    /// The public listener's limits, checked by [`ServerConfig`](wsfirst::serve::ServerConfig)'s
    /// builder; errors name the field under `[server]`.
    pub fn to_server_config(&self) -> Result<wsfirst::serve::ServerConfig, ConfigError> {
        let mut builder = wsfirst::serve::ServerConfig::builder();
        if let Some(timeout) = self.header_read_timeout {
            builder = builder.header_read_timeout(timeout);
        }
        if let Some(timeout) = self.body_read_timeout {
            builder = builder.body_read_timeout(timeout);
        }
        if let Some(max) = self.max_connections {
            builder = builder.max_connections(max as usize);
        }
        if let Some(bytes) = self.max_header_bytes {
            builder = builder.max_header_bytes(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(grace) = self.shutdown_grace {
            builder = builder.shutdown_grace(grace);
        }
        if let Some(timeout) = self.idle_timeout {
            builder = builder.idle_timeout(timeout);
        }
        if let Some(interval) = self.http2_keep_alive_interval {
            builder = builder.http2_keep_alive_interval(interval);
        }
        if let Some(timeout) = self.http2_keep_alive_timeout {
            builder = builder.http2_keep_alive_timeout(timeout);
        }
        if let Some(max) = self.max_concurrent_streams {
            builder = builder.max_concurrent_streams(max);
        }
        builder.build().map_err(|error| {
            ConfigError::invalid(format!("server.{}", error.field()), error.to_string())
        })
    }
}

impl super::AdminConfig {
    /// The admin bearer token from the environment variable named by `token_env` (`None` when
    /// there is none), or an error naming `admin.token_env` and the variable.
    pub fn token(&self) -> Result<Option<wsfirst::admin::AdminToken>, ConfigError> {
        let Some(name) = &self.token_env else {
            return Ok(None);
        };
        let value = std::env::var(name).map_err(|error| {
            ConfigError::invalid(
                "admin.token_env",
                format!("environment variable {name:?} is not set to a token: {error}"),
            )
        })?;
        wsfirst::admin::AdminToken::new(value)
            .map(Some)
            .map_err(|error| {
                ConfigError::invalid(
                    "admin.token_env",
                    format!("environment variable {name:?}: {error}"),
                )
            })
    }
}

/// Asks the table builder whether one entry is valid, so that its error names the entry's place.
fn check(
    add: impl FnOnce(EligibilityTableBuilder) -> EligibilityTableBuilder,
    path: impl FnOnce() -> String,
) -> Result<(), ConfigError> {
    add(EligibilityTable::builder())
        .build()
        .map(drop)
        .map_err(|error| ConfigError::invalid(path(), error.to_string()))
}

impl RouteConfig {
    /// The [`Route`] extension for this route's requests (credential read from the
    /// `Authorization` header, the core default), its fingerprints keyed with this process's
    /// random key; see [`RouteConfig::to_route_with_key`].
    ///
    /// Errors name the field relative to the route (`ws_url: ...`); [`Config::from_toml_str`](crate::config::Config::from_toml_str)
    /// has already checked every route of a parsed file.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
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
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn to_route(&self) -> Result<Route, ConfigError> {
        self.to_route_with_key(FingerprintKey::process_default())
    }

    /// [`RouteConfig::to_route`], with credential fingerprints keyed with `key` (such as
    /// [`Config::fingerprint_key`]).
    pub fn to_route_with_key(&self, key: &FingerprintKey) -> Result<Route, ConfigError> {
        if let Some(ws_url) = &self.ws_url {
            let scheme_ok = ws_url
                .parse::<Uri>()
                .ok()
                .and_then(|uri| uri.scheme_str().map(str::to_ascii_lowercase))
                .is_some_and(|scheme| scheme == "ws" || scheme == "wss");
            if !scheme_ok {
                return Err(ConfigError::invalid(
                    "ws_url",
                    format!(
                        "invalid url {:?}: expected an absolute ws:// or wss:// url",
                        wsfirst_core::redact::url(ws_url)
                    ),
                ));
            }
        }
        let mut builder = Route::builder(&self.provider, &self.api)
            .http_url(&self.http_url)
            .mode(self.mode)
            .fingerprint_key(key.clone())
            .headers(self.header_policy()?)
            .http_timeouts(self.http_timeouts()?.unwrap_or_default());
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
}
