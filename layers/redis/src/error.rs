//! The error of an invalid store setting.

use std::fmt;

/// An invalid setting of a [`RedisStoreConfig`](crate::RedisStoreConfig): the field and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfigError {
    field: &'static str,
    message: String,
}

impl StoreConfigError {
    pub(crate) fn new(field: &'static str, message: String) -> Self {
        StoreConfigError { field, message }
    }

    /// The field, named as the builder method (and TOML field) that sets it.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for StoreConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid breaker store config: {} {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for StoreConfigError {}
