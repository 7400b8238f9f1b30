//! The rules that are the file's own: route paths (a leading `/`, unique), non-empty ids, a
//! WebSocket URL for a strict route, an admin token off loopback, a client credential on a
//! route that holds the upstream's (`client_tokens.rs`). Every value a layer takes is checked by that layer's own
//! builder (see `build.rs`).

use std::collections::HashMap;

use wsfirst_core::TransportMode;

use super::{
    error::ConfigError,
    schema::{Config, RouteConfig},
};

impl Config {
    /// Checks what a parsed configuration must satisfy beyond its types: the file's own rules
    /// (route paths, non-empty ids, routes sharing a breaker key agreeing on its settings) and
    /// every value through the layer builders that own it. [`Config::from_toml_str`] calls it;
    /// call it yourself on a configuration built or changed in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        if self.breaker_store.is_some() && self.fingerprint_key_env.is_none() {
            // Each process's random key would give each replica other keys for one credential.
            return Err(ConfigError::invalid(
                "breaker_store",
                "replicas that share breakers must share the fingerprint key: set fingerprint_key_env",
            ));
        }
        if let Some(admin) = &self.admin {
            // Anyone who reaches the admin listener can pin providers and read every key.
            if admin.token_env.is_none() && !admin.listen.ip().is_loopback() {
                return Err(ConfigError::invalid(
                    "admin.token_env",
                    format!(
                        "required when admin.listen ({}) is not a loopback address: set token_env to the environment variable that holds the admin token",
                        admin.listen
                    ),
                ));
            }
        }
        self.server.to_server_config()?;
        self.server.allowed_hosts()?;
        self.check_body_budget()?;
        // Every value that a layer takes is checked by that layer's own builder.
        self.layers().map(drop)
    }
}

impl RouteConfig {
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
        self.client_tokens()?;
        self.check_client_message_limit()?;
        self.client_websocket
            .to_config()
            .map_err(|error| error.prefixed("client_websocket"))?;
        self.client_websocket
            .allowed_origins()
            .map_err(|error| error.prefixed("client_websocket"))?;
        if self.mode == TransportMode::WebSocket && self.ws_url.is_none() {
            return Err(ConfigError::invalid(
                "ws_url",
                "required when mode is \"websocket\"",
            ));
        }
        Ok(())
    }
}
