//! The store's settings: where Redis is, the key prefix, the deadlines and the lifetimes of what
//! it keeps. The builder owns every default and every rule about a value.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_breaker_redis::RedisStoreConfig;
//!
//! let config = RedisStoreConfig::builder("redis://127.0.0.1:6379/0")
//!     .prefix("gateway:breaker")
//!     .timeout(Duration::from_millis(200))
//!     .build()?;
//! assert_eq!(config.prefix(), "gateway:breaker");
//!
//! let error = RedisStoreConfig::builder("http://127.0.0.1").build().unwrap_err();
//! assert_eq!(error.field(), "redis_url");
//! # Ok::<(), wsfirst_breaker_redis::ConfigError>(())
//! ```

use std::{fmt, time::Duration};

use wsfirst_core::{ConfigError, ConfigErrorKind};

/// How a [`RedisStore`](crate::RedisStore) reaches Redis and what it keeps there. Defaults:
///
/// | Setting | Default | Meaning |
/// |---|---|---|
/// | `redis_url` | required | `redis://[:password@]host:port/db` (or `rediss://`, `redis+unix://`) |
/// | [`prefix`](RedisStoreConfigBuilder::prefix) | `wsfirst:breaker` | the start of every key |
/// | [`timeout`](RedisStoreConfigBuilder::timeout) | 250 ms | the deadline of one command; past it the store counts as down |
/// | [`connect_timeout`](RedisStoreConfigBuilder::connect_timeout) | 1 s | the deadline of a connection attempt |
/// | [`failure_window`](RedisStoreConfigBuilder::failure_window) | 10 s | the fleet's failure count of a key is forgotten this long after its last failure |
/// | [`probe_lease`](RedisStoreConfigBuilder::probe_lease) | 60 s | a half-open probe slot of a replica that died is free again after this |
/// | [`key_ttl`](RedisStoreConfigBuilder::key_ttl) | 1 h | a key's record lives this long after its pin ends (a pin until unpinned: this long after it was set, renewed while a replica holds it) |
/// | [`queue`](RedisStoreConfigBuilder::queue) | 4096 | events waiting for the store; past it failures are dropped (never a request held) |
/// | [`reconnect_max`](RedisStoreConfigBuilder::reconnect_max) | 5 s | the longest wait between two connection attempts (starting at 100 ms, doubling) |
#[derive(Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) failure_window: Duration,
    pub(crate) probe_lease: Duration,
    pub(crate) key_ttl: Duration,
    pub(crate) queue: usize,
    pub(crate) reconnect_max: Duration,
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            // The URL may hold a password.
            .field("url", &wsfirst_core::redact::url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("failure_window", &self.failure_window)
            .field("probe_lease", &self.probe_lease)
            .field("key_ttl", &self.key_ttl)
            .field("queue", &self.queue)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

impl RedisStoreConfig {
    /// Starts from the defaults (see the table above) with Redis at `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreConfigBuilder {
        RedisStoreConfigBuilder {
            config: RedisStoreConfig {
                url: url.into(),
                prefix: "wsfirst:breaker".to_owned(),
                timeout: Duration::from_millis(250),
                connect_timeout: Duration::from_secs(1),
                failure_window: Duration::from_secs(10),
                probe_lease: Duration::from_secs(60),
                key_ttl: Duration::from_secs(3600),
                queue: 4096,
                reconnect_max: Duration::from_secs(5),
            },
        }
    }

    /// The Redis URL with its password and query hidden, for logs.
    pub fn shown_url(&self) -> String {
        wsfirst_core::redact::url(&self.url).into_owned()
    }

    /// The start of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The deadline of one command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The deadline of a connection attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long the fleet's failure count of a key lasts after its last failure.
    pub fn failure_window(&self) -> Duration {
        self.failure_window
    }

    /// How long a half-open probe slot is held by a replica.
    pub fn probe_lease(&self) -> Duration {
        self.probe_lease
    }

    /// How long a key's record lives after its pin ends.
    pub fn key_ttl(&self) -> Duration {
        self.key_ttl
    }

    /// How many events may wait for the store.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// The longest wait between two connection attempts.
    pub fn reconnect_max(&self) -> Duration {
        self.reconnect_max
    }
}

/// Builds a [`RedisStoreConfig`]; see [`RedisStoreConfig::builder`].
#[derive(Clone, Debug)]
pub struct RedisStoreConfigBuilder {
    config: RedisStoreConfig,
}

impl RedisStoreConfigBuilder {
    /// The start of every key (default `wsfirst:breaker`; not empty, no spaces). Replicas that
    /// share breakers use the same prefix; gateways that must not, different ones.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// The deadline of one command (default 250 ms, at most 10 s). A store slower than this
    /// counts as down: the replicas go on with their own breakers.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The deadline of a connection attempt (default 1 s, at most 60 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long the fleet's failure count of a key lasts after its last failure (default 10 s).
    pub fn failure_window(mut self, window: Duration) -> Self {
        self.config.failure_window = window;
        self
    }

    /// How long a replica holds a half-open probe slot (default 60 s): longer than a probe takes
    /// to get its first event (connect and first-event timeouts), so that the slot of a replica
    /// that died is free again after it.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.config.probe_lease = lease;
        self
    }

    /// How long a key's record lives after its pin ends (default 1 h).
    pub fn key_ttl(mut self, ttl: Duration) -> Self {
        self.config.key_ttl = ttl;
        self
    }

    /// How many events may wait for the store (default 4096).
    pub fn queue(mut self, queue: usize) -> Self {
        self.config.queue = queue;
        self
    }

    /// The longest wait between two connection attempts (default 5 s, at least 100 ms).
    pub fn reconnect_max(mut self, max: Duration) -> Self {
        self.config.reconnect_max = max;
        self
    }

    /// Checks the values (no connection is made) and builds the settings.
    pub fn build(self) -> Result<RedisStoreConfig, ConfigError> {
        let config = self.config;
        redis::Client::open(config.url.as_str()).map_err(|error| {
            ConfigError::invalid(
                CONFIG,
                "redis_url",
                format!(
                    "{:?} is not a redis url: {}",
                    wsfirst_core::redact::url(&config.url),
                    error
                        .detail()
                        .unwrap_or("unsupported scheme or bad address")
                ),
            )
        })?;
        if config.prefix.is_empty() || config.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                CONFIG,
                "prefix",
                format!("{:?} must be non-empty without spaces", config.prefix),
            ));
        }
        let limits = [
            ("timeout", config.timeout, Duration::from_secs(10)),
            (
                "connect_timeout",
                config.connect_timeout,
                Duration::from_secs(60),
            ),
            (
                "failure_window",
                config.failure_window,
                Duration::from_secs(86_400),
            ),
            (
                "probe_lease",
                config.probe_lease,
                Duration::from_secs(86_400),
            ),
            ("key_ttl", config.key_ttl, Duration::from_secs(30 * 86_400)),
            (
                "reconnect_max",
                config.reconnect_max,
                Duration::from_secs(3600),
            ),
        ];
        for (field, value, max) in limits {
            check_between(field, value, Duration::from_millis(1), max)?;
        }
        check_between(
            "reconnect_max",
            config.reconnect_max,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        ConfigError::check_not_zero(CONFIG, "queue", config.queue as u64)?;
        Ok(config)
    }
}

/// What [`ConfigError`]s of the store call the configuration.
pub(crate) const CONFIG: &str = "breaker store config";

fn check_between(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    let kind = if value < min {
        ConfigErrorKind::TooShort { value, min }
    } else if value > max {
        ConfigErrorKind::TooLong { value, max }
    } else {
        return Ok(());
    };
    Err(ConfigError::new(CONFIG, field, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_field() {
        let b = || RedisStoreConfig::builder("redis://127.0.0.1:6379/0");
        let cases = [
            (b().prefix(""), "prefix"),
            (b().prefix("a b"), "prefix"),
            (b().timeout(Duration::ZERO), "timeout"),
            (b().timeout(Duration::from_secs(11)), "timeout"),
            (b().connect_timeout(Duration::ZERO), "connect_timeout"),
            (b().failure_window(Duration::ZERO), "failure_window"),
            (b().probe_lease(Duration::ZERO), "probe_lease"),
            (b().key_ttl(Duration::from_secs(31 * 86_400)), "key_ttl"),
            (
                b().reconnect_max(Duration::from_millis(10)),
                "reconnect_max",
            ),
            (b().queue(0), "queue"),
            (RedisStoreConfig::builder("nonsense"), "redis_url"),
        ];
        for (builder, field) in cases {
            let error = builder.build().unwrap_err();
            assert_eq!(error.field(), field, "{error}");
        }
        let error = b().timeout(Duration::from_secs(11)).build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid breaker store config: timeout must be at most 10s, got 11s"
        );
    }

    #[test]
    fn the_password_never_shows() {
        let config = RedisStoreConfig::builder("redis://:hunter2secret@127.0.0.1:6379/0")
            .build()
            .unwrap();
        assert!(!format!("{config:?}").contains("hunter2secret"));
        assert!(!config.shown_url().contains("hunter2secret"));
        let error = RedisStoreConfig::builder("nope://:hunter2secret@x")
            .build()
            .unwrap_err();
        assert!(!error.to_string().contains("hunter2secret"), "{error}");
    }
}
