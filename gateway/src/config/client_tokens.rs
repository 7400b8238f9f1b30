//! A route's client credential: `client_tokens_env` onto [`ClientTokens`], and the file's rule
//! that a route holding the upstream credential (in `[routes.headers]`) asks clients for one of
//! their own unless it says `open = true`.

use http::HeaderName;
use wsfirst::guard::ClientTokens;

use super::{ConfigError, is_credential_header, schema::RouteConfig};

impl RouteConfig {
    /// The credential header the route sets itself (`[routes.headers]`), if any: the gateway
    /// holds the upstream credential and spends it for every client.
    pub fn held_credential(&self) -> Option<&HeaderName> {
        self.headers.keys().find(|name| is_credential_header(name))
    }

    /// The tokens clients must present, read from the variable named by `client_tokens_env`;
    /// `None` for an open route. Errors name the field (to be prefixed with the route's path):
    /// a route holding the upstream credential with neither `client_tokens_env` nor
    /// `open = true`, both at once, a variable not set, set but empty, or holding a weak token.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let route = r#"
    ///     [[routes]]
    ///     path = "/v1/responses"
    ///     provider = "openai"
    ///     api = "openai-responses"
    ///     http_url = "https://api.openai.com/v1/responses"
    ///     [routes.headers]
    ///     Authorization = "Bearer sk-held-by-the-gateway"
    /// "#;
    /// let error = Config::from_toml_str(route).unwrap_err();
    /// assert!(error.to_string().starts_with(
    ///     "routes[0].client_tokens_env: route \"/v1/responses\" holds the upstream credential"
    /// ));
    /// let open = Config::from_toml_str(&route.replace("[routes.headers]", "open = true\n[routes.headers]"))?;
    /// assert!(open.routes[0].client_tokens()?.is_none());
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn client_tokens(&self) -> Result<Option<ClientTokens>, ConfigError> {
        match (&self.client_tokens_env, self.open) {
            (Some(_), true) => Err(ConfigError::invalid(
                "open",
                "a route with client_tokens_env is not open: remove one of them",
            )),
            (Some(name), false) => ClientTokens::from_env(name)
                .map(Some)
                .map_err(|error| ConfigError::invalid("client_tokens_env", error.to_string())),
            (None, true) => Ok(None),
            (None, false) => match self.held_credential() {
                Some(header) => Err(ConfigError::invalid(
                    "client_tokens_env",
                    format!(
                        "route {:?} holds the upstream credential in routes.headers ({header:?}) but has no client_tokens_env and is not open = true: set client_tokens_env to the environment variable that holds the client tokens, or open = true to let anyone who reaches the route spend the credential",
                        self.path
                    ),
                )),
                None => Ok(None),
            },
        }
    }
}
