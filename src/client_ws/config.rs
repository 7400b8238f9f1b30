//! [`ClientWsConfig`]: the limits of client WebSocket connections, with their defaults and
//! their validation (this builder owns both; the TOML table `[routes.client_websocket]` maps
//! onto it).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst::client_ws::ClientWsConfig;
//!
//! let config = ClientWsConfig::builder()
//!     .idle_timeout(Duration::from_secs(120))
//!     .send_buffer(1 << 20)
//!     .build()?;
//! assert_eq!(config.max_lifetime(), Duration::from_secs(60 * 60));
//! assert_eq!(config.send_buffer(), 1 << 20);
//!
//! let error = ClientWsConfig::builder().max_queued(0).build().unwrap_err();
//! assert_eq!(error.field(), "max_queued");
//! assert_eq!(error.to_string(), "invalid client websocket config: max_queued must not be zero");
//! # Ok::<(), wsfirst::core::ConfigError>(())
//! ```

use std::time::Duration;

use wsfirst_core::{ConfigError, limits::DEFAULT_MAX_MESSAGE_SIZE};

/// The default [`ClientWsConfigBuilder::max_lanes`].
const DEFAULT_MAX_LANES: usize = 8;

/// The limits of the client WebSocket connections of one route.
///
/// | setting | default | what happens past it |
/// |---|---|---|
/// | [`max_message_size`](ClientWsConfigBuilder::max_message_size) | 16 MiB ([`DEFAULT_MAX_MESSAGE_SIZE`]) | a larger client message closes the connection with `1009` (message too big); never more than the route's body limit ([`ClientWebSocket::max_message_size`](super::ClientWebSocket::max_message_size)) |
/// | [`idle_timeout`](ClientWsConfigBuilder::idle_timeout) | 10 min | no message from the client and no response running for this long: closed with `1000`, reason `idle timeout` |
/// | [`ping_interval`](ClientWsConfigBuilder::ping_interval) | 30 s | a ping every interval; a client that sent nothing (not even the pong) for a whole interval after a ping is gone: closed with `1011` |
/// | [`max_lifetime`](ClientWsConfigBuilder::max_lifetime) | 60 min | after the running response, each queued `response.create` gets the `websocket_connection_limit_reached` error event (status 400, as OpenAI's API sends it), then the connection is closed with `1001` |
/// | [`send_buffer`](ClientWsConfigBuilder::send_buffer) | 8 MiB | events waiting for a client that reads slowly; past it the connection is closed with `1008` (policy violation), reason `client reads too slowly` |
/// | [`max_queued_bytes`](ClientWsConfigBuilder::max_queued_bytes) | 16 MiB | the bytes of those messages (one message always fits an empty queue); past it the client's further messages wait in TCP too. Queued bytes are also held from the process's [`BodyBudget`](wsfirst_fallback::BodyBudget): a message it has no room for gets a `503` error event (code `body_budget_exhausted`) |
/// | [`max_queued`](ClientWsConfigBuilder::max_queued) | 16 | `response.create` messages received and not yet running, all lanes together; past it the client's further messages wait in TCP until one starts |
/// | [`max_lanes`](ClientWsConfigBuilder::max_lanes) | 8 | lanes (`stream_id`, the default lane included) with a response running or queued at once; a `response.create` that would open another gets a 400 error event (code `too_many_lanes`) carrying its lane |
/// | [`max_connections`](ClientWsConfigBuilder::max_connections) | 1024 | client connections open on the route at once (an upgraded connection no longer counts against [`serve`](crate::serve::serve)'s `max_connections`); past it the upgrade is answered `503` |
/// | [`shutdown_grace`](ClientWsConfigBuilder::shutdown_grace) | 10 s | on shutdown, the running response has this long to finish; then it gets an error event (status 503, code `server_shutting_down`); the connection is closed with `1001` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientWsConfig {
    max_message_size: usize,
    idle_timeout: Duration,
    ping_interval: Option<Duration>,
    max_lifetime: Duration,
    send_buffer: usize,
    max_queued: usize,
    max_queued_bytes: usize,
    max_lanes: usize,
    max_connections: usize,
    shutdown_grace: Duration,
}

impl Default for ClientWsConfig {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Duration::from_secs(10 * 60),
            ping_interval: Some(Duration::from_secs(30)),
            max_lifetime: Duration::from_secs(60 * 60),
            send_buffer: 8 << 20,
            max_queued: 16,
            max_queued_bytes: DEFAULT_MAX_MESSAGE_SIZE,
            max_lanes: DEFAULT_MAX_LANES,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ClientWsConfig {
    /// A builder holding the defaults.
    pub fn builder() -> ClientWsConfigBuilder {
        ClientWsConfigBuilder {
            config: Self::default(),
        }
    }

    /// The largest message a client may send, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// How long a connection may stay without client messages while no response runs.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The keep-alive ping interval (`None`: no pings).
    pub fn ping_interval(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// How long a connection may live.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// The most bytes of events buffered for a client that reads slowly.
    pub fn send_buffer(&self) -> usize {
        self.send_buffer
    }

    /// The most `response.create` messages waiting while one runs.
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// The most bytes of `response.create` messages waiting while one runs.
    pub fn max_queued_bytes(&self) -> usize {
        self.max_queued_bytes
    }

    /// The most lanes with a response running or queued at once on one client connection.
    pub fn max_lanes(&self) -> usize {
        self.max_lanes
    }

    /// The most client connections open on the route at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How long a running response may take to finish once shutdown began.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
}

/// Builds a [`ClientWsConfig`]; see [`ClientWsConfig::builder`].
#[derive(Clone, Copy, Debug)]
pub struct ClientWsConfigBuilder {
    config: ClientWsConfig,
}

impl ClientWsConfigBuilder {
    /// The largest message a client may send, in bytes (default 16 MiB, not zero).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// How long a connection may stay without client messages while no response runs
    /// (default 10 min).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// The keep-alive ping interval (default 30 s; `None`: no pings, a vanished client is
    /// noticed by the idle timeout only).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// How long a connection may live (default 60 min, OpenAI's own connection limit).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_lifetime = lifetime;
        self
    }

    /// The most bytes of events buffered for a client that reads slowly (default 8 MiB, not
    /// zero). One event is always accepted into an empty buffer, whatever its size.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.config.send_buffer = bytes;
        self
    }

    /// The most `response.create` messages waiting while one runs (default 16, not zero).
    pub fn max_queued(mut self, max: usize) -> Self {
        self.config.max_queued = max;
        self
    }

    /// The most bytes of `response.create` messages waiting while one runs (default 16 MiB, not
    /// zero; one message always fits an empty queue, whatever its size); past it the client's
    /// further messages wait in TCP until the running one is taken.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.config.max_queued_bytes = bytes;
        self
    }

    /// The most lanes (`stream_id` values, the default lane included) with a response running
    /// or queued at once on one client connection (default 8, as the `openai` SDK's own
    /// example of `ResponsesWebSocketLimits.max_lanes`; not zero). Each lane's responses run in
    /// order, lanes in parallel: each running lane holds one upstream connection (or HTTP
    /// request) of the route.
    pub fn max_lanes(mut self, max: usize) -> Self {
        self.config.max_lanes = max;
        self
    }

    /// The most client connections open on the route at once (default 1024, not zero); past
    /// it an upgrade is answered `503`.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// How long a running response may take to finish once shutdown began (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Checks the values and builds the configuration.
    pub fn build(self) -> Result<ClientWsConfig, ConfigError> {
        const CONFIG: &str = "client websocket config";
        let config = self.config;
        ConfigError::check_duration(CONFIG, "idle_timeout", config.idle_timeout)?;
        if let Some(interval) = config.ping_interval {
            ConfigError::check_duration(CONFIG, "ping_interval", interval)?;
        }
        ConfigError::check_duration(CONFIG, "max_lifetime", config.max_lifetime)?;
        ConfigError::check_max_duration(CONFIG, "shutdown_grace", config.shutdown_grace)?;
        for (field, value) in [
            ("max_message_size", config.max_message_size),
            ("send_buffer", config.send_buffer),
            ("max_queued", config.max_queued),
            ("max_queued_bytes", config.max_queued_bytes),
            ("max_lanes", config.max_lanes),
            ("max_connections", config.max_connections),
        ] {
            ConfigError::check_not_zero(CONFIG, field, value as u64)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_field() {
        for (builder, field) in [
            (
                ClientWsConfig::builder().idle_timeout(Duration::ZERO),
                "idle_timeout",
            ),
            (
                ClientWsConfig::builder().ping_interval(Some(Duration::ZERO)),
                "ping_interval",
            ),
            (
                ClientWsConfig::builder().max_lifetime(Duration::MAX),
                "max_lifetime",
            ),
            (
                ClientWsConfig::builder().max_message_size(0),
                "max_message_size",
            ),
            (ClientWsConfig::builder().send_buffer(0), "send_buffer"),
            (
                ClientWsConfig::builder().max_queued_bytes(0),
                "max_queued_bytes",
            ),
            (
                ClientWsConfig::builder().max_connections(0),
                "max_connections",
            ),
            (
                ClientWsConfig::builder().shutdown_grace(Duration::MAX),
                "shutdown_grace",
            ),
        ] {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
        let config = ClientWsConfig::builder()
            .ping_interval(None)
            .shutdown_grace(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(config.ping_interval(), None);
    }
}
