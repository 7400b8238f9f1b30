//! [`ConfigError`]: the one error every wsfirst builder returns for a value it rejects.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_core::{ConfigError, ConfigErrorKind, MAX_DURATION};
//!
//! let error = ConfigError::check_duration("pool config", "idle_timeout", Duration::ZERO)
//!     .unwrap_err();
//! assert_eq!(error.field(), "idle_timeout");
//! assert_eq!(error.kind(), &ConfigErrorKind::Zero);
//! assert_eq!(error.to_string(), "invalid pool config: idle_timeout must not be zero");
//!
//! let too_long = MAX_DURATION + Duration::from_secs(1);
//! let error = ConfigError::check_duration("pool config", "max_age", too_long).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "invalid pool config: max_age must be at most 3153600000s (100 years), got 3153600001s",
//! );
//! ```

use std::{fmt, time::Duration};

use crate::MAX_DURATION;

/// A builder rejected a value: which configuration, which builder field, and what is wrong
/// with it ([`kind`](Self::kind)). The `Display` names the field and the limit it broke.
///
/// ```
/// use wsfirst_core::{ConfigError, ConfigErrorKind};
///
/// let error = ConfigError::new(
///     "breaker config",
///     "window",
///     ConfigErrorKind::TooLarge { value: 70_000, max: 65_535 },
/// );
/// assert_eq!(error.config(), "breaker config");
/// assert_eq!(
///     error.to_string(),
///     "invalid breaker config: window must be at most 65535, got 70000",
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    config: &'static str,
    field: &'static str,
    kind: ConfigErrorKind,
}

/// What is wrong with a rejected value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A count, size or duration that must not be zero is.
    Zero,
    /// A number is below its minimum.
    TooSmall {
        /// The value given.
        value: u64,
        /// The smallest accepted.
        min: u64,
    },
    /// A number is above its maximum.
    TooLarge {
        /// The value given.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A duration is shorter than its minimum.
    TooShort {
        /// The value given.
        value: Duration,
        /// The shortest accepted.
        min: Duration,
    },
    /// A duration is longer than its maximum (at most [`MAX_DURATION`], past which the clock
    /// would overflow).
    TooLong {
        /// The value given.
        value: Duration,
        /// The longest accepted.
        max: Duration,
    },
    /// A fraction is outside its range (or not a number).
    OutOfRange {
        /// The value given.
        value: f64,
        /// The smallest accepted.
        min: f64,
        /// The largest accepted.
        max: f64,
    },
    /// Any other rejection (a malformed name, a conflict with another field), in words.
    Invalid(String),
}

impl ConfigError {
    /// `config` (such as `breaker config`) rejects the value of `field` for `kind`.
    pub fn new(config: &'static str, field: &'static str, kind: ConfigErrorKind) -> Self {
        Self {
            config,
            field,
            kind,
        }
    }

    /// `config` rejects the value of `field`, for the reason `message` gives.
    pub fn invalid(config: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self::new(config, field, ConfigErrorKind::Invalid(message.into()))
    }

    /// Checks a duration that must be positive and at most [`MAX_DURATION`].
    pub fn check_duration(
        config: &'static str,
        field: &'static str,
        value: Duration,
    ) -> Result<(), Self> {
        if value.is_zero() {
            return Err(Self::new(config, field, ConfigErrorKind::Zero));
        }
        Self::check_max_duration(config, field, value)
    }

    /// Checks a duration that may be zero but not longer than [`MAX_DURATION`].
    pub fn check_max_duration(
        config: &'static str,
        field: &'static str,
        value: Duration,
    ) -> Result<(), Self> {
        if value > MAX_DURATION {
            return Err(Self::new(
                config,
                field,
                ConfigErrorKind::TooLong {
                    value,
                    max: MAX_DURATION,
                },
            ));
        }
        Ok(())
    }

    /// Checks that a count or size is not zero.
    pub fn check_not_zero(
        config: &'static str,
        field: &'static str,
        value: u64,
    ) -> Result<(), Self> {
        match value {
            0 => Err(Self::new(config, field, ConfigErrorKind::Zero)),
            _ => Ok(()),
        }
    }

    /// The configuration being built, such as `breaker config`.
    pub fn config(&self) -> &'static str {
        self.config
    }

    /// The builder field whose value is rejected, such as `idle_timeout`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with the value.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            config,
            field,
            kind,
        } = self;
        write!(f, "invalid {config}: {field}")?;
        match kind {
            ConfigErrorKind::Zero => f.write_str(" must not be zero"),
            ConfigErrorKind::TooSmall { value, min } => {
                write!(f, " must be at least {min}, got {value}")
            }
            ConfigErrorKind::TooLarge { value, max } => {
                write!(f, " must be at most {max}, got {value}")
            }
            ConfigErrorKind::TooShort { value, min } => {
                write!(f, " must be at least {min:?}, got {value:?}")
            }
            ConfigErrorKind::TooLong { value, max } if *max == MAX_DURATION => {
                write!(f, " must be at most {max:?} (100 years), got {value:?}")
            }
            ConfigErrorKind::TooLong { value, max } => {
                write!(f, " must be at most {max:?}, got {value:?}")
            }
            ConfigErrorKind::OutOfRange { value, min, max } => {
                write!(f, " must be between {min:?} and {max:?}, got {value}")
            }
            ConfigErrorKind::Invalid(message) => write!(f, ": {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(kind: ConfigErrorKind) -> String {
        ConfigError::new("test config", "field", kind).to_string()
    }

    #[test]
    fn every_kind_names_the_field_and_the_limit() {
        let cases = [
            (ConfigErrorKind::Zero, "field must not be zero"),
            (
                ConfigErrorKind::TooSmall { value: 3, min: 8 },
                "field must be at least 8, got 3",
            ),
            (
                ConfigErrorKind::TooLarge { value: 9, max: 8 },
                "field must be at most 8, got 9",
            ),
            (
                ConfigErrorKind::TooShort {
                    value: Duration::ZERO,
                    min: Duration::from_millis(1),
                },
                "field must be at least 1ms, got 0ns",
            ),
            (
                ConfigErrorKind::TooLong {
                    value: Duration::from_secs(11),
                    max: Duration::from_secs(10),
                },
                "field must be at most 10s, got 11s",
            ),
            (
                ConfigErrorKind::OutOfRange {
                    value: 1.5,
                    min: 0.0,
                    max: 1.0,
                },
                "field must be between 0.0 and 1.0, got 1.5",
            ),
            (
                ConfigErrorKind::Invalid("\"X Team\" is not a header name".into()),
                "field: \"X Team\" is not a header name",
            ),
        ];
        for (kind, expected) in cases {
            assert_eq!(shown(kind), format!("invalid test config: {expected}"));
        }
    }

    #[test]
    fn checks_accept_the_limits_and_reject_past_them() {
        assert!(ConfigError::check_duration("c", "f", Duration::from_nanos(1)).is_ok());
        assert!(ConfigError::check_duration("c", "f", MAX_DURATION).is_ok());
        assert_eq!(
            ConfigError::check_duration("c", "f", Duration::ZERO)
                .unwrap_err()
                .kind(),
            &ConfigErrorKind::Zero
        );
        assert!(ConfigError::check_max_duration("c", "f", Duration::ZERO).is_ok());
        let past = MAX_DURATION + Duration::from_nanos(1);
        assert_eq!(
            ConfigError::check_max_duration("c", "f", past)
                .unwrap_err()
                .kind(),
            &ConfigErrorKind::TooLong {
                value: past,
                max: MAX_DURATION
            }
        );
        assert!(ConfigError::check_not_zero("c", "f", 1).is_ok());
        assert_eq!(
            ConfigError::check_not_zero("c", "f", 0)
                .unwrap_err()
                .field(),
            "f"
        );
    }
}
