//! What a parsed configuration must satisfy beyond its types: non-empty ids, URLs, ranges, zeros,
//! unique route paths.

use std::{collections::HashMap, time::Duration};

use wsfirst_core::TransportMode;

use super::{
    error::{ConfigError, key_segment},
    parse::is_bare_host,
    schema::{BreakerConfig, Config, EligibilityConfig, PoolConfig, RouteConfig, TimeoutsConfig},
};

impl Config {
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

impl EligibilityConfig {
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

impl TimeoutsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("connect", self.connect)?;
        non_zero_duration("first_event", self.first_event)?;
        non_zero_duration("idle", self.idle)
    }
}

impl BreakerConfig {
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

impl PoolConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("idle_timeout", self.idle_timeout)?;
        non_zero_duration("max_age", self.max_age)?;
        non_zero("max_connections", self.max_connections)
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
