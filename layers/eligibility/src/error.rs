//! Error types

use std::fmt;

/// An [`EligibilityTable`](crate::EligibilityTable) could not be built; the error names the
/// builder field and carries the value given.
///
/// ```
/// use wsfirst_eligibility::{ConfigError, EligibilityTable};
///
/// let error = EligibilityTable::builder().max_message_size(0).build().unwrap_err();
/// assert_eq!(error, ConfigError::Zero { field: "max_message_size" });
/// assert_eq!(error.field(), "max_message_size");
/// assert_eq!(error.to_string(), "invalid eligibility table: max_message_size must not be zero");
///
/// let error = EligibilityTable::builder()
///     .provider_host("openai", "https://api.openai.com")
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "provider_hosts");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A size that must be positive is zero.
    Zero {
        /// The builder field.
        field: &'static str,
    },
    /// A pair or a registered host names an empty provider.
    EmptyProvider {
        /// The builder field: `allow_pairs`, `deny_pairs` or `provider_hosts`.
        field: &'static str,
    },
    /// A pair names an empty API.
    EmptyApi {
        /// The builder field: `allow_pairs` or `deny_pairs`.
        field: &'static str,
        /// The pair's provider.
        provider: String,
    },
    /// A registered WebSocket host is not a bare host name or IP address (it has a scheme, a
    /// port, a path or user information, or is empty).
    InvalidHost {
        /// The builder field: `provider_hosts`.
        field: &'static str,
        /// The provider the host was registered for.
        provider: String,
        /// The host given.
        host: String,
    },
}

impl ConfigError {
    /// The name of the builder field that is wrong.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Zero { field }
            | ConfigError::EmptyProvider { field }
            | ConfigError::EmptyApi { field, .. }
            | ConfigError::InvalidHost { field, .. } => field,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid eligibility table: ")?;
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must not be zero"),
            ConfigError::EmptyProvider { field } => {
                write!(f, "{field}: the provider must not be empty")
            }
            ConfigError::EmptyApi { field, provider } => {
                write!(
                    f,
                    "{field}: the api of provider {provider:?} must not be empty"
                )
            }
            ConfigError::InvalidHost {
                field,
                provider,
                host,
            } => write!(
                f,
                "{field}: invalid host {host:?} for provider {provider:?}: expected a host name \
                 without scheme, port or path, such as \"api.openai.com\""
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
