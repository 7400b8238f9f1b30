//! The breaker registry from `[breakers]` (its limits, `[breakers.default]`,
//! `[[breakers.keys]]`) and the routes' own `[routes.breaker]` tables: one setting per provider
//! + WebSocket endpoint, set in one place.

use std::{collections::HashMap, sync::Arc};

use wsfirst_breaker::{BreakerConfig, BreakerRegistry};
use wsfirst_breaker_redis::RedisStore;
use wsfirst_core::{BreakerKey, FingerprintKey};

use super::{
    error::ConfigError,
    schema::{self, Config, RouteConfig},
};

/// The breaker settings a registry was built with (for `--check`).
#[derive(Debug)]
pub(crate) struct BreakerSettings {
    /// The settings of every key without its own.
    pub(crate) default: BreakerConfig,
    /// The settings of each provider + endpoint that has its own, and where they were set.
    pub(crate) keys: Vec<(BreakerKey, BreakerConfig, String)>,
}

/// Where each provider + endpoint got its settings: the path of the table, and the settings.
type Owners = HashMap<(String, String), (String, BreakerConfig)>;

impl Config {
    /// The registry every route shares, with the store if any; errors name the table.
    pub(super) fn registry(
        &self,
        key: &FingerprintKey,
        route_keys: &[BreakerKey],
        store: Option<&RedisStore>,
    ) -> Result<(BreakerRegistry, BreakerSettings), ConfigError> {
        let breakers = &self.breakers;
        let mut registry = BreakerRegistry::builder();
        if let Some(idle) = breakers.idle_timeout {
            registry = registry.idle_timeout(idle);
        }
        if let Some(max) = breakers.max_keys {
            registry = registry.max_keys(max);
        }
        if let Some(per_credential) = breakers.state_gauge_per_credential {
            registry = registry.state_gauge_per_credential(per_credential);
        }
        if let Some(store) = store {
            registry = registry.store(Arc::new(store.clone()));
        }
        let tables = breakers
            .default
            .iter()
            .map(|table| ("breakers.default".to_owned(), table));
        let keyed = breakers.keys.iter().enumerate();
        let keyed =
            keyed.map(|(index, entry)| (format!("breakers.keys[{index}].config"), &entry.config));
        if let Some((path, _)) = tables
            .chain(keyed)
            .find(|(_, table)| table.enabled.is_some())
        {
            return Err(ConfigError::invalid(
                format!("{path}.enabled"),
                "only a route's breaker can be turned off ([routes.breaker] enabled = false)",
            ));
        }
        let default = match &breakers.default {
            Some(table) => table
                .to_config()
                .map_err(|e| e.prefixed("breakers.default"))?,
            None => BreakerConfig::default(),
        };
        registry = registry.config(default.clone());

        let mut owners = Owners::new();
        let mut keys = Vec::new();
        for (index, entry) in breakers.keys.iter().enumerate() {
            let path = format!("breakers.keys[{index}]");
            let config = entry
                .config
                .to_config()
                .map_err(|error| error.prefixed(&format!("{path}.config")))?;
            let breaker_key =
                BreakerKey::new_keyed(key, entry.provider.as_str(), &entry.ws_url, None);
            let scope = scope(&breaker_key);
            if let Some((first, _)) = owners.get(&scope) {
                return Err(ConfigError::invalid(
                    path,
                    format!("the same provider and endpoint as {first}: set a key's settings once"),
                ));
            }
            owners.insert(scope, (path.clone(), config.clone()));
            keys.push((breaker_key, config, path));
        }
        for (index, (config, route_key)) in self.routes.iter().zip(route_keys).enumerate() {
            let prefix = format!("routes[{index}]");
            let Some(breaker) = config
                .breaker_config()
                .map_err(|error| error.prefixed(&prefix))?
            else {
                continue;
            };
            let breaker_key = route_key.with_credential(None);
            let scope = scope(&breaker_key);
            match owners.get(&scope) {
                Some((first, _)) if first.starts_with("breakers.") => {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.breaker"),
                        format!(
                            "{first} sets the settings of this provider and endpoint ({:?}, {:?}): set them in one place",
                            scope.0, scope.1
                        ),
                    ));
                }
                Some((first, settled)) => {
                    if let Some(field) = settled.differing_field(&breaker) {
                        return Err(ConfigError::invalid(
                            format!("{prefix}.breaker.{}", field_path(field)),
                            format!(
                                "differs from {first}, which reaches the same breaker key (provider {:?}, endpoint {:?}): routes that share a key must have the same breaker settings (or set them once, in [[breakers.keys]])",
                                scope.0, scope.1
                            ),
                        ));
                    }
                }
                None => {
                    let first = format!("routes[{index}] (path {:?})", config.path);
                    owners.insert(scope, (first.clone(), breaker.clone()));
                    keys.push((breaker_key, breaker, first));
                }
            }
        }
        for (breaker_key, config, _) in &keys {
            registry = registry.config_for(breaker_key, config.clone());
        }
        let registry = registry.try_build().map_err(|error| {
            ConfigError::invalid(format!("breakers.{}", error.field()), error.to_string())
        })?;
        Ok((registry, BreakerSettings { default, keys }))
    }
}

impl RouteConfig {
    /// The breaker settings of this route's own `[routes.breaker]` table, `None` when the
    /// route has no breaker or its table sets nothing (then the key takes `[breakers]`'s).
    pub(crate) fn breaker_config(&self) -> Result<Option<BreakerConfig>, ConfigError> {
        if !self.breaker.is_enabled() || !self.breaker.has_settings() {
            return Ok(None);
        }
        self.breaker
            .to_config()
            .map(Some)
            .map_err(|error| error.prefixed("breaker"))
    }
}

/// The provider and endpoint of a key, the part its settings go by.
fn scope(key: &BreakerKey) -> (String, String) {
    (key.provider().to_owned(), key.endpoint().to_owned())
}

impl schema::BreakerConfig {
    /// The settings, checked by the breaker's own builder; errors name the field as the file
    /// does. `enabled` is a route's only: an error here.
    pub(super) fn to_config(self) -> Result<BreakerConfig, ConfigError> {
        let mut builder = BreakerConfig::builder();
        match self.consecutive_failures {
            // `0` in the file turns the rule off.
            Some(0) => builder = builder.no_consecutive_failures(),
            Some(n) => builder = builder.consecutive_failures(n),
            None => {}
        }
        if let Some(rate) = self.failure_rate_threshold {
            builder = builder.failure_rate_threshold(rate);
        }
        if let Some(window) = self.failure_rate_window {
            builder = builder.failure_rate_window(window);
        }
        if let Some(min_calls) = self.failure_rate_min_calls {
            builder = builder.failure_rate_min_calls(min_calls);
        }
        if let Some(open_for) = self.open_duration {
            builder = builder.open_duration(open_for);
        }
        if let Some(max_open_for) = self.max_open_duration {
            builder = builder.max_open_duration(max_open_for);
        }
        if let Some(probes) = self.half_open_probes {
            builder = builder.half_open_probes(probes);
        }
        builder
            .build()
            .map_err(|error| ConfigError::invalid(field_path(error.field()), error.to_string()))
    }
}

/// The file's name of a breaker builder field.
fn field_path(field: &str) -> &'static str {
    match field {
        "consecutive_failures" => "consecutive_failures",
        "failure_rate" => "failure_rate_threshold",
        "window" => "failure_rate_window",
        "min_calls" => "failure_rate_min_calls",
        "open_duration" => "open_duration",
        "max_open_duration" => "max_open_duration",
        "half_open_probes" => "half_open_probes",
        // Knobs the file does not set (jitter, decay, seed, classifier) cannot be wrong in it.
        _ => "enabled",
    }
}
