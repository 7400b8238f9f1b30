//! Reading a document: TOML syntax first, then the schema, naming the path of the value that
//! does not fit it.

use std::path::Path;

use serde_path_to_error::Segment;

use super::{
    error::{ConfigError, key_segment},
    schema::Config,
};

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// ```
    /// use wsfirst_gateway::config::Config;
    ///
    /// let error = Config::from_toml_str("listen = 8080").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"listen: invalid type: integer `8080`, expected a socket address such as "127.0.0.1:8080""#,
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let document = toml::Deserializer::parse(text).map_err(|error| ConfigError::Syntax {
            message: error.to_string().trim_end().to_owned(),
        })?;
        let config: Config = serde_path_to_error::deserialize(document).map_err(|error| {
            ConfigError::invalid(path_text(error.path()), error.inner().message())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }
}

/// A path as the errors write it: `routes[1].breaker.open_duration`, keys quoted when not bare.
fn path_text(path: &serde_path_to_error::Path) -> String {
    let mut text = String::new();
    for segment in path {
        let key = match segment {
            Segment::Seq { index } => {
                text.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } => key_segment(key),
            Segment::Unknown => "?".to_owned(),
        };
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(&key);
    }
    text
}
