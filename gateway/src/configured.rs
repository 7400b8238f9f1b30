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

use wsfirst::{RouteOptions, RouteService, Wsfirst, client_ws::ClientWsConfig};

use crate::config::{Config, ConfigError, PoolConfig};

/// A [`Wsfirst`] and the services of the routes a [`Config`] describes.
#[derive(Clone, Debug)]
pub struct Configured {
    /// The shared parts (breakers, pool, TLS, HTTP client).
    pub wsfirst: Wsfirst,
    /// Each route's path and service, in the order of the file.
    pub routes: Vec<(String, RouteService)>,
    /// Each route's client WebSocket limits (`[routes.client_websocket]`), in the order of
    /// `routes`; `None` for a route that takes no client WebSocket connections.
    pub client_websockets: Vec<Option<ClientWsConfig>>,
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
        let wsfirst = Wsfirst::builder()
            .eligibility(layers.table)
            .registry(layers.registry)
            .tls(tls)
            .build();
        // Routes with the same pool settings share a pool; routes without any share the default.
        let mut pools: HashMap<PoolConfig, Pool> = HashMap::new();
        let mut routes = Vec::with_capacity(layers.routes.len());
        let mut client_websockets = Vec::with_capacity(layers.routes.len());
        for (index, (route_config, layers)) in config.routes.iter().zip(layers.routes).enumerate() {
            let client_websocket = &route_config.client_websocket;
            client_websockets.push(match client_websocket.is_enabled() {
                true => Some(client_websocket.to_config().map_err(|error| {
                    error.prefixed(&format!("routes[{index}].client_websocket"))
                })?),
                false => None,
            });
            let mut options = RouteOptions::new()
                .fallback(layers.fallback)
                .websocket(layers.websocket);
            if !layers.breaker {
                options = options.no_breaker();
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
            routes.push((
                route_config.path.clone(),
                wsfirst.route_with(layers.route, options),
            ));
        }
        Ok(Self {
            wsfirst,
            routes,
            client_websockets,
            breaker_store,
        })
    }

    /// An axum router with each route's service on `POST <path>`, and on `GET <path>` its
    /// [client WebSocket](wsfirst::client_ws) service unless `[routes.client_websocket]` has
    /// `enabled = false`.
    ///
    /// Add the admin router (`.nest("/admin", configured.wsfirst.admin_router())`) and your own
    /// routes as you need.
    pub fn router(&self) -> Router {
        self.routes
            .iter()
            .enumerate()
            .fold(Router::new(), |router, (index, (path, service))| {
                let mut methods = post_service(service.clone());
                if let Some(config) = self.client_websockets.get(index).copied().flatten() {
                    methods = methods.get_service(self.wsfirst.client_websocket(service, config));
                }
                router.route(path, methods)
            })
    }
}
