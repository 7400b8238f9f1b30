//! Error types.

use std::fmt;

/// A [`BreakerConfig`](crate::BreakerConfig) could not be built; the error names the field.
///
/// ```
/// use wsfirst_breaker::BreakerConfig;
///
/// let error = BreakerConfig::builder().consecutive_failures(0).build().unwrap_err();
/// assert_eq!(error.field(), "consecutive_failures");
/// assert_eq!(error.to_string(), "invalid breaker config: consecutive_failures must not be zero");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or duration that must be positive is zero.
    Zero {
        /// The builder field.
        field: &'static str,
    },
    /// A fraction is outside `0.0..=1.0` (or not a number).
    OutOfRange {
        /// The builder field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count is larger than the breaker supports.
    TooLarge {
        /// The builder field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest value supported.
        max: u64,
    },
    /// A duration is longer than any wsfirst setting accepts
    /// ([`wsfirst_core::MAX_DURATION`], 100 years): it would overflow the clock.
    TooLong {
        /// The builder field.
        field: &'static str,
        /// The value given.
        value: std::time::Duration,
    },
    /// The maximum open duration is shorter than the base open duration.
    CapBelowBase {
        /// The base open duration.
        base: std::time::Duration,
        /// The cap.
        cap: std::time::Duration,
    },
    /// The sliding window holds fewer calls than the minimum needed to judge the failure rate.
    WindowBelowMinCalls {
        /// The window size.
        window: u32,
        /// The minimum number of calls.
        min_calls: u32,
    },
}

impl ConfigError {
    /// The name of the builder field that is wrong.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Zero { field }
            | ConfigError::OutOfRange { field, .. }
            | ConfigError::TooLarge { field, .. }
            | ConfigError::TooLong { field, .. } => field,
            ConfigError::CapBelowBase { .. } => "max_open_duration",
            ConfigError::WindowBelowMinCalls { .. } => "window",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid breaker config: ")?;
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must not be zero"),
            ConfigError::OutOfRange { field, value } => {
                write!(f, "{field} must be between 0.0 and 1.0, got {value}")
            }
            ConfigError::TooLarge { field, value, max } => {
                write!(f, "{field} must be at most {max}, got {value}")
            }
            ConfigError::TooLong { field, value } => write!(
                f,
                "{field} must be at most {:?} (100 years), got {value:?}",
                wsfirst_core::MAX_DURATION
            ),
            ConfigError::CapBelowBase { base, cap } => write!(
                f,
                "max_open_duration ({cap:?}) must not be shorter than open_duration ({base:?})"
            ),
            ConfigError::WindowBelowMinCalls { window, min_calls } => write!(
                f,
                "window ({window} calls) must not be smaller than min_calls ({min_calls})"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
