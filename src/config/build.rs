//! From the parsed configuration to what the layers take: the eligibility table and each
//! route's [`Route`] extension.

use http::Uri;
use wsfirst_core::{Route, RouteError};
use wsfirst_eligibility::EligibilityTable;

use super::{
    error::ConfigError,
    schema::{EligibilityConfig, RouteConfig},
};

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
}

impl RouteConfig {
    /// The [`Route`] extension for this route's requests (credential read from the
    /// `Authorization` header, the core default).
    ///
    /// Errors name the field relative to the route (`ws_url: ...`); [`Config::from_toml_str`](crate::config::Config::from_toml_str)
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
}
