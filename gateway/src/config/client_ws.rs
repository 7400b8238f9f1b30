//! `[routes.client_websocket]` onto [`ClientWsConfig`]'s builder, which owns the defaults and
//! the rules; its errors get the table's path.

use wsfirst::client_ws::ClientWsConfig;

use super::{ConfigError, schema::ClientWebSocketConfig};

impl ClientWebSocketConfig {
    /// The limits of the route's client WebSocket connections, checked by
    /// [`ClientWsConfig`]'s builder; errors name the field (`max_queued`, ...), to be prefixed
    /// with the table's path.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [[routes]]
    ///     path = "/v1/responses"
    ///     provider = "openai"
    ///     api = "openai-responses"
    ///     http_url = "https://api.openai.com/v1/responses"
    ///     [routes.client_websocket]
    ///     idle_timeout = "2m"
    ///     send_buffer = "1MiB"
    ///     max_lanes = 4
    /// "#)?;
    /// let limits = config.routes[0].client_websocket.to_config()?;
    /// assert_eq!(limits.idle_timeout(), std::time::Duration::from_secs(120));
    /// assert_eq!(limits.send_buffer(), 1 << 20);
    /// assert_eq!(limits.max_lanes(), 4);
    /// # Ok::<(), wsfirst_gateway::config::ConfigError>(())
    /// ```
    pub fn to_config(&self) -> Result<ClientWsConfig, ConfigError> {
        let mut builder = ClientWsConfig::builder();
        if let Some(bytes) = self.max_message_size {
            builder = builder.max_message_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(timeout) = self.idle_timeout {
            builder = builder.idle_timeout(timeout);
        }
        if let Some(interval) = self.ping_interval {
            builder = builder.ping_interval(Some(interval));
        }
        if let Some(lifetime) = self.max_lifetime {
            builder = builder.max_lifetime(lifetime);
        }
        if let Some(bytes) = self.send_buffer {
            builder = builder.send_buffer(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(max) = self.max_queued {
            builder = builder.max_queued(max as usize);
        }
        if let Some(bytes) = self.max_queued_bytes {
            builder = builder.max_queued_bytes(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(max) = self.max_lanes {
            builder = builder.max_lanes(max as usize);
        }
        if let Some(max) = self.max_connections {
            builder = builder.max_connections(max as usize);
        }
        if let Some(grace) = self.shutdown_grace {
            builder = builder.shutdown_grace(grace);
        }
        builder
            .build()
            .map_err(|error| ConfigError::invalid(error.field(), error.to_string()))
    }
}

impl super::RouteConfig {
    /// A client message limit above the route's `body_limit` would never apply: the route's
    /// limit caps it ([`ClientWebSocket::max_message_size`](wsfirst::client_ws::ClientWebSocket::max_message_size)),
    /// so the file must not say otherwise.
    pub(super) fn check_client_message_limit(&self) -> Result<(), ConfigError> {
        let body_limit = self
            .body_limit
            .unwrap_or(wsfirst::core::limits::DEFAULT_MAX_MESSAGE_SIZE as u64);
        match self.client_websocket.max_message_size {
            Some(size) if size > body_limit => Err(ConfigError::invalid(
                "client_websocket.max_message_size",
                format!(
                    "{size} bytes is more than the route's body_limit ({body_limit} bytes), which caps it: raise body_limit or lower max_message_size"
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn client_websocket(table: &str) -> Result<wsfirst::client_ws::ClientWsConfig, String> {
        let text = format!(
            "[[routes]]\npath = \"/v1/responses\"\nprovider = \"openai\"\n\
             api = \"openai-responses\"\nhttp_url = \"https://api.openai.com/v1/responses\"\n\
             [routes.client_websocket]\n{table}"
        );
        let config = Config::from_toml_str(&text).map_err(|error| error.to_string())?;
        config.routes[0]
            .client_websocket
            .to_config()
            .map_err(|error| error.to_string())
    }

    #[test]
    fn max_lanes_is_handed_to_the_builder_which_refuses_zero() {
        assert_eq!(client_websocket("max_lanes = 3").unwrap().max_lanes(), 3);
        assert_eq!(client_websocket("").unwrap().max_lanes(), 8);
        let error = client_websocket("max_lanes = 0").unwrap_err();
        assert!(error.contains("max_lanes must not be zero"), "{error}");
    }
}
