//! Building the stack and its routes from a [`Config`].
//!
//! # Example
//!
//! ```
//! use wsfirst_gateway::{Configured, config::Config};
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
//!     open_duration = "30s"
//! "#)?;
//! let configured = Configured::from_config(&config)?;
//! let app: axum::Router = configured.router();
//! # let _ = app;
//! # Ok::<(), wsfirst_gateway::config::ConfigError>(())
//! ```

use std::collections::HashMap;

use axum::{Router, routing::post_service};
use wsfirst_websocket::{Pool, tls::ClientTls};

use wsfirst::{
    RouteOptions, RouteService, Wsfirst,
    client_ws::ClientWebSocket,
    guard::{AllowedHosts, AllowedHostsLayer},
};

use crate::config::{Config, ConfigError, PoolConfig};

/// A [`Wsfirst`] and the services of the routes a [`Config`] describes.
#[derive(Clone, Debug)]
pub struct Configured {
    /// The shared parts (breakers, pool, TLS, HTTP client).
    pub wsfirst: Wsfirst,
    /// Each route's path and service, in the order of the file.
    pub routes: Vec<(String, RouteService)>,
    /// Each route's client WebSocket service (`[routes.client_websocket]`: its limits and
    /// allowed origins), in the order of `routes`; `None` for a route that takes no client
    /// WebSocket connections.
    pub client_websockets: Vec<Option<ClientWebSocket>>,
    /// The `Host` values the routes answer to (`[server] allowed_hosts`); `None`: any.
    pub allowed_hosts: Option<AllowedHosts>,
    /// The store the breakers are shared through (`[breaker_store]`), if any.
    pub breaker_store: Option<wsfirst_breaker_redis::RedisStore>,
}

impl Configured {
    /// Builds the stack and the routes with the default TLS configuration
    /// ([`ClientTls::default`]). Every invalid value gives an error naming its path.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Self::from_config_with_tls(config, ClientTls::default())
    }

    /// Builds the stack and the routes; `tls` is shared by the HTTP client and every route's
    /// WebSocket (build one with the platform's roots with
    /// [`ClientTlsBuilder::build_async`](wsfirst_websocket::tls::ClientTlsBuilder::build_async)).
    ///
    /// With a `[breaker_store]`, call it inside a tokio runtime: the store's task starts on it
    /// (and connects in the background: a store that is down does not stop the gateway).
    pub fn from_config_with_tls(config: &Config, tls: ClientTls) -> Result<Self, ConfigError> {
        config.validate()?;
        let layers = config.running_layers()?;
        let breaker_store = layers.store;
        let mut builder = Wsfirst::builder()
            .eligibility(layers.table)
            .registry(layers.registry)
            .tls(tls);
        if let Some(budget) = config.server.body_budget()? {
            builder = builder.body_budget(budget);
        }
        let wsfirst = builder.build();
        // Routes with the same pool settings share a pool; routes without any share the default.
        let mut pools: HashMap<PoolConfig, Pool> = HashMap::new();
        let mut routes = Vec::with_capacity(layers.routes.len());
        let mut client_websockets = Vec::with_capacity(layers.routes.len());
        for (index, (route_config, layers)) in config.routes.iter().zip(layers.routes).enumerate() {
            let mut options = RouteOptions::new()
                .fallback(layers.fallback)
                .websocket(layers.websocket);
            if !layers.breaker {
                options = options.no_breaker();
            }
            if let Some(tokens) = route_config
                .client_tokens()
                .map_err(|error| error.prefixed(&format!("routes[{index}]")))?
            {
                options = options.client_tokens(tokens);
            }
            if let Some(pool_config) = layers.pool {
                let pool = match pools.get(&pool_config) {
                    Some(pool) => pool.clone(),
                    None => {
                        // `layers()` built this pool's settings once already: they are valid.
                        let pool = pool_config
                            .to_builder()
                            .build()
                            .map_err(|error| ConfigError::invalid("pool", error.to_string()))?;
                        pools.insert(pool_config, pool.clone());
                        pool
                    }
                };
                options = options.pool(pool);
            }
            let service = wsfirst.route_with(layers.route, options);
            let client_websocket = &route_config.client_websocket;
            client_websockets.push(match client_websocket.is_enabled() {
                true => {
                    let in_table = |error: ConfigError| {
                        error.prefixed(&format!("routes[{index}].client_websocket"))
                    };
                    let limits = client_websocket.to_config().map_err(in_table)?;
                    let origins = client_websocket.allowed_origins().map_err(in_table)?;
                    Some(
                        wsfirst
                            .client_websocket(&service, limits)
                            .allow_origins(origins),
                    )
                }
                false => None,
            });
            routes.push((route_config.path.clone(), service));
        }
        Ok(Self {
            wsfirst,
            routes,
            client_websockets,
            allowed_hosts: config.server.allowed_hosts()?,
            breaker_store,
        })
    }

    /// An axum router with each route's service on `POST <path>`, and on `GET <path>` its
    /// [client WebSocket](wsfirst::client_ws) service unless `[routes.client_websocket]` has
    /// `enabled = false`; behind an [`AllowedHostsLayer`] (`421` for another `Host`) when
    /// `[server]` has `allowed_hosts`.
    ///
    /// Add the admin router (`.nest("/admin", configured.wsfirst.admin_router())`) and your own
    /// routes as you need (the `Host` check covers only the routes added before it).
    pub fn router(&self) -> Router {
        let router = self.routes.iter().enumerate().fold(
            Router::new(),
            |router, (index, (path, service))| {
                let mut methods = post_service(service.clone());
                if let Some(Some(clients)) = self.client_websockets.get(index) {
                    methods = methods.get_service(clients.clone());
                }
                router.route(path, methods)
            },
        );
        match &self.allowed_hosts {
            Some(hosts) => router.layer(AllowedHostsLayer::from_hosts(hosts.clone())),
            None => router,
        }
    }
}
