//! `--check`: the effective configuration of a file, as the layers will run it (every default
//! filled in by the layer that owns it), with secrets redacted: URLs without userinfo or query
//! string, credential header values as `Sensitive`, environment variables by name only.
//!
//! # Example
//!
//! ```
//! use wsfirst_gateway::{check, config::Config};
//!
//! let config = Config::from_toml_str(r#"
//!     [breaker_store]
//!     redis_url = "redis://:hunter2-password@redis.internal:6379/0"
//!
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.example/v1/responses?key=sk-in-url"
//!     open = true
//!     [routes.headers]
//!     authorization = "Bearer sk-held-by-the-gateway"
//! "#.replace("[breaker_store]", "fingerprint_key_env = \"CARGO_PKG_DESCRIPTION\"\n[breaker_store]").as_str())?;
//! let text = check::effective(&config)?;
//! assert!(text.contains("redis.internal:6379"), "{text}");
//! for secret in ["hunter2", "sk-in-url", "sk-held"] {
//!     assert!(!text.contains(secret), "{text}");
//! }
//! # Ok::<(), wsfirst_gateway::config::ConfigError>(())
//! ```

use std::fmt::Write;

use crate::config::{Config, ConfigError};

/// The effective configuration of `config` as text, or the first thing that is wrong with it
/// or with the environment variables it names (the admin token, the fingerprint key).
pub fn effective(config: &Config) -> Result<String, ConfigError> {
    config.validate()?;
    let admin_token = match &config.admin {
        Some(admin) => admin.token()?.is_some(),
        None => false,
    };
    let layers = config.layers()?;
    let server = config.server.to_server_config()?;
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    match config.listen {
        Some(listen) => line(format!("listen = {listen}")),
        None => line("listen = 127.0.0.1:8080 (default)".into()),
    }
    line(format!("server = {server:?}"));
    match config.server.body_budget()? {
        Some(budget) => line(format!("server.body_budget = {} bytes", budget.capacity())),
        None => line(format!(
            "server.body_budget = {} bytes (default)",
            wsfirst::fallback::BodyBudget::DEFAULT_BYTES
        )),
    }
    match config.server.allowed_hosts()? {
        Some(hosts) => line(format!("server.allowed_hosts = {hosts:?}")),
        None => line("server.allowed_hosts = any".into()),
    }
    match &config.admin {
        Some(admin) => line(format!(
            "admin = {} ({})",
            admin.listen,
            match (&admin.token_env, admin_token) {
                (Some(name), true) => format!("bearer token from ${name}"),
                _ => "no token: loopback only".into(),
            }
        )),
        None => line("admin = none (no admin endpoints, no /metrics)".into()),
    }
    match &config.fingerprint_key_env {
        Some(name) => line(format!("fingerprint_key_env = ${name} (set)")),
        None => line("fingerprint_key_env = none (a random key per process)".into()),
    }
    line(format!("eligibility = {:?}", layers.table));
    line(format!(
        "breakers = idle_timeout: {:?}, max_keys: {:?}, state_gauge_per_credential: {:?}",
        config.breakers.idle_timeout,
        config.breakers.max_keys,
        config.breakers.state_gauge_per_credential
    ));
    line(format!("breakers.default = {:?}", layers.breakers.default));
    for (key, breaker, from) in &layers.breakers.keys {
        line(format!("breaker key {key} (from {from}) = {breaker:?}"));
    }
    if let Some(store) = &config.breaker_store {
        line(format!("breaker_store = {:?}", store.to_store_config()?));
    }
    for (index, (route, built)) in config.routes.iter().zip(&layers.routes).enumerate() {
        let at = format!("routes[{index}]");
        line(format!("\n{at} path = {:?}", route.path));
        line(format!("{at}.route = {:?}", built.route));
        match built.breaker {
            true => line(format!(
                "{at}.breaker = key {}",
                built.route.breaker_key().with_credential(None)
            )),
            false => line(format!("{at}.breaker = off")),
        }
        line(format!("{at}.fallback = {:?}", built.fallback));
        line(format!("{at}.websocket = {:?}", built.websocket));
        if let Some(pool) = &built.pool {
            line(format!("{at}.pool = {:?}", pool.to_builder()));
        }
        match (route.client_tokens()?, route.held_credential()) {
            (Some(tokens), _) => line(format!(
                "{at}.client_tokens = {} token(s) from ${}",
                tokens.len(),
                route.client_tokens_env.as_deref().unwrap_or_default()
            )),
            (None, Some(header)) => line(format!(
                "{at}.client_tokens = none: OPEN, whoever reaches the route spends the {header} it sets"
            )),
            (None, None) => line(format!(
                "{at}.client_tokens = none (clients send their own upstream credential)"
            )),
        }
        match route.client_websocket.is_enabled() {
            true => line(format!(
                "{at}.client_websocket = {:?}, {:?}",
                route.client_websocket.to_config()?,
                route.client_websocket.allowed_origins()?
            )),
            false => line(format!("{at}.client_websocket = off")),
        }
    }
    Ok(out)
}
