//! Building the stack and its routes from a [`Config`].
//!
//! # Example
//!
//! ```
//! use wsfirst::{Configured, config::Config};
//!
//! let config = Config::from_toml_str(r#"
//!     [eligibility]
//!     websocket_pairs = [["openai", "openai-responses"]]
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
//! let configured = Configured::from_config(&config)?;
//! let app: axum::Router = configured.router();
//! # let _ = app;
//! # Ok::<(), wsfirst::config::ConfigError>(())
//! ```

use std::collections::HashMap;

use axum::{Router, routing::post_service};
use wsfirst_breaker::{BreakerConfig, BreakerRegistry};
use wsfirst_fallback::{FallbackConfig, Replay};
use wsfirst_websocket::{Pool, WebSocketConfig};

use crate::{
    RouteOptions, RouteService, Wsfirst,
    config::{self, Config, ConfigError, ReplayConfig, RouteConfig},
};

/// A [`Wsfirst`] and the services of the routes a [`Config`] describes.
#[derive(Clone, Debug)]
pub struct Configured {
    /// The shared parts (breakers, pool, HTTP client).
    pub wsfirst: Wsfirst,
    /// Each route's path and service, in the order of the file.
    pub routes: Vec<(String, RouteService)>,
}

impl Configured {
    /// Builds the stack and the routes. Every invalid value gives an error naming its path.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut registry = BreakerRegistry::builder();
        if let Some(idle) = config
            .routes
            .iter()
            .filter_map(|route| route.breaker.idle_evict)
            .max()
        {
            // One registry serves every route, so it keeps keys as long as the longest setting.
            registry = registry.idle_timeout(idle);
        }
        let wsfirst = Wsfirst::builder()
            .eligibility(config.eligibility.to_table())
            .registry(registry.build())
            .build();
        // Routes with the same pool settings share a pool; routes without any share the default.
        let mut pools: HashMap<config::PoolConfig, Pool> = HashMap::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        for (index, route_config) in config.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{index}].{field}");
            let route = route_config
                .to_route()
                .map_err(|error| prefixed(error, &format!("routes[{index}]")))?;
            let mut options = RouteOptions::new()
                .fallback(fallback_config(route_config))
                .websocket(websocket_config(route_config).map_err(|error| {
                    ConfigError::invalid(at(ws_field(error.field())), error.to_string())
                })?);
            options = match breaker_config(&route_config.breaker) {
                Ok(Some(breaker)) => options.breaker(breaker),
                Ok(None) => options.no_breaker(),
                Err(error) => return Err(ConfigError::invalid(at("breaker"), error.to_string())),
            };
            let pool_config = &route_config.pool;
            if pool_config.idle_timeout.is_some()
                || pool_config.max_age.is_some()
                || pool_config.max_connections.is_some()
            {
                let key = config::PoolConfig {
                    affinity_header: None,
                    ..pool_config.clone()
                };
                let pool = match pools.get(&key) {
                    Some(pool) => pool.clone(),
                    None => {
                        let pool = pool_from(&key)
                            .map_err(|error| ConfigError::invalid(at("pool"), error.to_string()))?;
                        pools.insert(key, pool.clone());
                        pool
                    }
                };
                options = options.pool(pool);
            }
            routes.push((
                route_config.path.clone(),
                wsfirst.route_with(route, options),
            ));
        }
        Ok(Self { wsfirst, routes })
    }

    /// An axum router with each route's service on `POST <path>`.
    ///
    /// Add the admin router (`.nest("/admin", configured.wsfirst.admin_router())`) and your own
    /// routes as you need.
    pub fn router(&self) -> Router {
        self.routes
            .iter()
            .fold(Router::new(), |router, (path, service)| {
                router.route(path, post_service(service.clone()))
            })
    }
}

fn prefixed(error: ConfigError, prefix: &str) -> ConfigError {
    match error {
        ConfigError::Invalid { path, message } if path.is_empty() => {
            ConfigError::invalid(prefix, message)
        }
        ConfigError::Invalid { path, message } => {
            ConfigError::invalid(format!("{prefix}.{path}"), message)
        }
        other => other,
    }
}

fn fallback_config(route: &RouteConfig) -> FallbackConfig {
    let mut config = FallbackConfig::new();
    if let Some(limit) = route.body_limit {
        config = config.body_limit(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if let Some(replay) = route.fallback.replay {
        config = config.replay(match replay {
            ReplayConfig::BeforeFirstEvent => Replay::BeforeFirstEvent,
            ReplayConfig::ConnectOnly => Replay::ConnectOnly,
        });
    }
    config
}

fn websocket_config(
    route: &RouteConfig,
) -> Result<WebSocketConfig, wsfirst_websocket::ConfigError> {
    let mut builder = WebSocketConfig::builder();
    if let Some(connect) = route.timeouts.connect {
        builder = builder.handshake_timeout(connect);
    }
    if let Some(first_event) = route.timeouts.first_event {
        builder = builder.first_event_timeout(first_event);
    }
    if let Some(idle) = route.timeouts.idle {
        builder = builder.idle_timeout(idle);
    }
    if let Some(header) = &route.pool.affinity_header {
        builder = builder.affinity_header(header.as_str());
    }
    for (name, value) in &route.headers {
        builder = builder.static_header(name.as_str(), value.to_str().unwrap_or_default());
    }
    builder.build()
}

/// Maps a WebSocket config field to its place in the file.
fn ws_field(field: &str) -> &'static str {
    match field {
        "handshake_timeout" => "timeouts.connect",
        "first_event_timeout" => "timeouts.first_event",
        "idle_timeout" => "timeouts.idle",
        "affinity_header" => "pool.affinity_header",
        _ => "headers",
    }
}

fn breaker_config(
    config: &config::BreakerConfig,
) -> Result<Option<BreakerConfig>, wsfirst_breaker::ConfigError> {
    if !config.is_enabled() {
        return Ok(None);
    }
    let mut builder = BreakerConfig::builder();
    match config.consecutive_failures {
        Some(0) => builder = builder.no_consecutive_failures(),
        Some(n) => builder = builder.consecutive_failures(n),
        None => {}
    }
    if config.failure_rate.is_some() || config.window.is_some() || config.min_calls.is_some() {
        let defaults = BreakerConfig::default();
        let (rate, window, min_calls) = defaults.failure_rate().unwrap_or((0.5, 20, 10));
        builder = builder.failure_rate(
            config.failure_rate.unwrap_or(rate),
            config.window.unwrap_or(window),
            config
                .min_calls
                .unwrap_or(min_calls.min(config.window.unwrap_or(window))),
        );
    }
    if let Some(open_for) = config.open_for {
        builder = builder.open_duration(open_for);
    }
    if let Some(max_open_for) = config.max_open_for {
        builder = builder.max_open_duration(max_open_for);
    } else if let Some(open_for) = config.open_for {
        // A base above the default cap lifts the cap with it rather than failing.
        builder =
            builder.max_open_duration(open_for.max(BreakerConfig::default().max_open_duration()));
    }
    if let Some(probes) = config.probes {
        builder = builder.half_open_probes(probes);
    }
    builder.build().map(Some)
}

fn pool_from(config: &config::PoolConfig) -> Result<Pool, wsfirst_websocket::ConfigError> {
    let mut builder = Pool::builder();
    if let Some(idle) = config.idle_timeout {
        builder = builder.idle_timeout(idle);
    }
    if let Some(max_age) = config.max_age {
        builder = builder.max_age(max_age);
    }
    if let Some(max) = config.max_connections {
        builder = builder.max_connections_per_key(max as usize);
    }
    builder.build()
}
