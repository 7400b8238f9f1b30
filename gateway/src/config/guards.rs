//! The browser guards and the body budget of the file: `[server] allowed_hosts` onto
//! [`AllowedHosts`], `[routes.client_websocket] allowed_origins` onto [`AllowedOrigins`],
//! `[server] body_budget` onto [`BodyBudget`]. The guard types take any text, so the file's
//! values are checked here: a typo would otherwise refuse every request, silently.

use http::{Uri, uri::Authority};
use wsfirst::{
    fallback::BodyBudget,
    guard::{AllowedHosts, AllowedOrigins},
};

use super::{
    ConfigError,
    schema::{ClientWebSocketConfig, Config, ServerLimitsConfig},
};

impl ServerLimitsConfig {
    /// The `Host` values the gateway answers to, `None` without `allowed_hosts` (any);
    /// errors name the entry (`server.allowed_hosts[1]`).
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [server]
    ///     allowed_hosts = ["localhost", "gateway.internal:8080"]
    /// "#)?;
    /// let hosts = config.server.allowed_hosts()?.unwrap();
    /// assert!(hosts.allows("localhost:8080"));
    /// assert!(!hosts.allows("rebound.attacker.example"));
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn allowed_hosts(&self) -> Result<Option<AllowedHosts>, ConfigError> {
        let Some(hosts) = &self.allowed_hosts else {
            return Ok(None);
        };
        if hosts.is_empty() {
            return Err(ConfigError::invalid(
                "server.allowed_hosts",
                "must not be empty (leave it out to answer any Host)",
            ));
        }
        for (index, host) in hosts.iter().enumerate() {
            if !is_host(host) {
                return Err(ConfigError::invalid(
                    format!("server.allowed_hosts[{index}]"),
                    format!(
                        "invalid host {host:?}: expected a name or address with an optional port, such as \"localhost\" or \"127.0.0.1:8080\""
                    ),
                ));
            }
        }
        Ok(Some(AllowedHosts::new(hosts)))
    }

    /// The budget of buffered body bytes, `None` without `body_budget` (the process's,
    /// [`BodyBudget::DEFAULT_BYTES`]); zero is an error naming `server.body_budget`.
    pub fn body_budget(&self) -> Result<Option<BodyBudget>, ConfigError> {
        match self.body_budget {
            None => Ok(None),
            Some(0) => Err(ConfigError::invalid(
                "server.body_budget",
                "must not be zero",
            )),
            Some(bytes) => Ok(Some(BodyBudget::new(
                usize::try_from(bytes).unwrap_or(usize::MAX),
            ))),
        }
    }
}

impl Config {
    /// A `body_budget` smaller than a route's `body_limit` would refuse that route's largest
    /// bodies (`503`) even on an idle gateway.
    pub(super) fn check_body_budget(&self) -> Result<(), ConfigError> {
        let Some(budget) = self.server.body_budget()? else {
            return Ok(());
        };
        for (index, route) in self.routes.iter().enumerate() {
            let limit = route
                .body_limit
                .unwrap_or(wsfirst::core::limits::DEFAULT_MAX_MESSAGE_SIZE as u64);
            if (budget.capacity() as u64) < limit {
                return Err(ConfigError::invalid(
                    "server.body_budget",
                    format!(
                        "{} bytes is less than routes[{index}]'s body_limit ({limit} bytes): a body of that size could never be buffered; raise body_budget or lower body_limit",
                        budget.capacity()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl ClientWebSocketConfig {
    /// The origins whose pages may connect besides the gateway's own (none by default);
    /// errors name the entry (`allowed_origins[0]`), to be prefixed with the table's path.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use wsfirst_gateway::config::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [[routes]]
    ///     path = "/v1/responses"
    ///     provider = "openai"
    ///     api = "openai-responses"
    ///     http_url = "https://api.openai.com/v1/responses"
    ///     [routes.client_websocket]
    ///     allowed_origins = ["https://chat.example.com"]
    /// "#)?;
    /// let origins = config.routes[0].client_websocket.allowed_origins()?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("origin", HeaderValue::from_static("https://chat.example.com"));
    /// assert!(origins.allows(&headers));
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn allowed_origins(&self) -> Result<AllowedOrigins, ConfigError> {
        for (index, origin) in self.allowed_origins.iter().enumerate() {
            if !is_origin(origin) {
                return Err(ConfigError::invalid(
                    format!("allowed_origins[{index}]"),
                    format!(
                        "invalid origin {origin:?}: expected scheme://host[:port] such as \"https://app.example.com\""
                    ),
                ));
            }
        }
        Ok(AllowedOrigins::new(&self.allowed_origins))
    }
}

/// `host` or `host:port`, as a `Host` header carries it (no userinfo, no path).
fn is_host(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && !text.contains('@') && text.parse::<Authority>().is_ok()
}

/// `http(s)://host[:port]`, as a browser's `Origin` carries it (a trailing `/` is allowed).
fn is_origin(text: &str) -> bool {
    let Ok(uri) = text.trim().parse::<Uri>() else {
        return false;
    };
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    matches!(scheme.as_deref(), Some("http" | "https"))
        && uri
            .authority()
            .is_some_and(|authority| is_host(authority.as_str()))
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
}
