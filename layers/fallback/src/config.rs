//! What the fallback layer may replay, how much it buffers, and how often it warns.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_fallback::{FallbackConfig, Replay};
//!
//! let config = FallbackConfig::builder()
//!     .body_limit(1024 * 1024)
//!     .replay(Replay::ConnectOnly)
//!     // The circuit breaker is in the stack and warns once per trip.
//!     .warn_interval(None)
//!     .build()?;
//! assert_eq!(config.body_limit(), 1024 * 1024);
//! assert_eq!(FallbackConfig::default().warn_interval(), Some(Duration::from_secs(60)));
//!
//! // A bad value names its field.
//! let error = FallbackConfig::builder().body_limit(0).build().unwrap_err();
//! assert_eq!(error.field(), "body_limit");
//! # Ok::<(), wsfirst_fallback::ConfigError>(())
//! ```

use std::time::Duration;

use wsfirst_core::{Replay, limits::DEFAULT_MAX_MESSAGE_SIZE};

use crate::ConfigError;

/// The fallback layer's settings, built with [`FallbackConfig::builder`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`body_limit`](FallbackConfigBuilder::body_limit) | [`DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB) | the largest request body buffered for a replay |
/// | [`replay`](FallbackConfigBuilder::replay) | [`Replay::BeforeFirstEvent`] | which failures are sent again, over HTTP here and on a fresh WebSocket by the WebSocket layer |
/// | [`warn_interval`](FallbackConfigBuilder::warn_interval) | 60 s | at most one WARN per breaker key per interval; `None` never warns |
///
/// The body limit is one of the stack's three size limits; [`wsfirst_core::limits`] says what
/// each protects and why their defaults agree (a body that fits a WebSocket message can always
/// be replayed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackConfig {
    body_limit: usize,
    replay: Replay,
    warn_interval: Option<Duration>,
}

impl FallbackConfig {
    /// The default body limit: [`DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB), the default of every size
    /// limit in [`wsfirst_core::limits`].
    pub const DEFAULT_BODY_LIMIT: usize = DEFAULT_MAX_MESSAGE_SIZE;

    /// The default interval between two WARN logs for one key: 60 s.
    pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(60);

    const DEFAULT: Self = Self {
        body_limit: Self::DEFAULT_BODY_LIMIT,
        replay: Replay::BeforeFirstEvent,
        warn_interval: Some(Self::DEFAULT_WARN_INTERVAL),
    };

    /// A builder holding the default settings.
    pub const fn builder() -> FallbackConfigBuilder {
        FallbackConfigBuilder {
            config: Self::DEFAULT,
        }
    }

    /// A builder holding these settings, to change some of them.
    ///
    /// ```
    /// use wsfirst_fallback::FallbackConfig;
    ///
    /// let quiet = FallbackConfig::default().to_builder().warn_interval(None).build()?;
    /// assert_eq!(quiet.warn_interval(), None);
    /// assert_eq!(quiet.body_limit(), FallbackConfig::DEFAULT_BODY_LIMIT);
    /// # Ok::<(), wsfirst_fallback::ConfigError>(())
    /// ```
    pub const fn to_builder(self) -> FallbackConfigBuilder {
        FallbackConfigBuilder { config: self }
    }

    /// The largest request body, in bytes, that is buffered so that it can be replayed.
    pub const fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Which failures are replayed.
    pub const fn replay(&self) -> Replay {
        self.replay
    }

    /// The interval between two WARN logs for one key, `None` when the layer never warns.
    pub const fn warn_interval(&self) -> Option<Duration> {
        self.warn_interval
    }
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Builds a [`FallbackConfig`]; see [`FallbackConfig::builder`].
#[derive(Clone, Copy, Debug)]
pub struct FallbackConfigBuilder {
    config: FallbackConfig,
}

impl FallbackConfigBuilder {
    /// The largest request body, in bytes, that is buffered so that it can be replayed (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 16 MiB; must not be zero).
    ///
    /// A body whose declared size (size hint or `Content-Length`) is larger goes over HTTP
    /// directly, with [`Ineligible::BodyNotReplayable`](wsfirst_core::Ineligible::BodyNotReplayable)
    /// as the reason. A body of unknown size that turns out larger fails with
    /// [`BodyTooLarge`](crate::BodyTooLarge) before anything is sent upstream. A body is never
    /// truncated.
    pub const fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    /// Which failures are sent again (default [`Replay::BeforeFirstEvent`]): replayed over HTTP
    /// by this layer, and sent on a fresh connection by the WebSocket layer, which finds the
    /// setting in the request's extensions (this layer puts it there). This is the one place
    /// the setting is made.
    pub const fn replay(mut self, replay: Replay) -> Self {
        self.config.replay = replay;
        self
    }

    /// At most one WARN log per breaker key per `interval` about falling back (default 60 s, at
    /// most [`MAX_DURATION`](wsfirst_core::MAX_DURATION)); `None` never warns.
    ///
    /// Set `None` when a circuit breaker is in the stack: it warns once when it pins a key, and
    /// each fallback is logged at DEBUG and counted in `wsfirst_fallbacks_total` either way.
    pub const fn warn_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.warn_interval = interval;
        self
    }

    /// Checks the values and builds the settings.
    pub fn build(self) -> Result<FallbackConfig, ConfigError> {
        const CONFIG: &str = "fallback config";
        let config = self.config;
        ConfigError::check_not_zero(CONFIG, "body_limit", config.body_limit as u64)?;
        if let Some(interval) = config.warn_interval {
            ConfigError::check_max_duration(CONFIG, "warn_interval", interval)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsfirst_core::{ConfigErrorKind, MAX_DURATION};

    #[test]
    fn defaults_agree_with_the_core_size_table() {
        let config = FallbackConfig::default();
        assert_eq!(config.body_limit(), 16 * 1024 * 1024);
        assert_eq!(config.body_limit(), DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(config.replay(), Replay::BeforeFirstEvent);
        assert_eq!(config.warn_interval(), Some(Duration::from_secs(60)));
        assert_eq!(FallbackConfig::builder().build(), Ok(config));
    }

    #[test]
    fn builder_sets_every_knob() {
        let config = FallbackConfig::builder()
            .body_limit(1)
            .replay(Replay::ConnectOnly)
            .warn_interval(Some(Duration::ZERO))
            .build()
            .unwrap();
        assert_eq!(config.body_limit(), 1);
        assert_eq!(config.replay(), Replay::ConnectOnly);
        assert_eq!(config.warn_interval(), Some(Duration::ZERO));
        let quiet = FallbackConfig::builder().warn_interval(None).build();
        assert_eq!(quiet.map(|config| config.warn_interval()), Ok(None));
    }

    #[test]
    fn bad_values_name_their_field() {
        let error = FallbackConfig::builder().body_limit(0).build().unwrap_err();
        assert_eq!(error.kind(), &ConfigErrorKind::Zero);
        assert_eq!(error.field(), "body_limit");
        assert_eq!(
            error.to_string(),
            "invalid fallback config: body_limit must not be zero"
        );

        let long = MAX_DURATION + Duration::from_secs(1);
        let error = FallbackConfig::builder()
            .warn_interval(Some(long))
            .build()
            .unwrap_err();
        assert_eq!(
            error.kind(),
            &ConfigErrorKind::TooLong {
                value: long,
                max: MAX_DURATION
            }
        );
        assert_eq!(error.field(), "warn_interval");
        assert!(
            error
                .to_string()
                .starts_with("invalid fallback config: warn_interval must be at most "),
            "{error}"
        );
        assert!(
            FallbackConfig::builder()
                .warn_interval(Some(MAX_DURATION))
                .build()
                .is_ok()
        );
    }
}
