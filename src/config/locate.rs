//! Reading a document: TOML syntax first, then the schema, naming the path of the value that
//! does not fit it.

use std::{ops::Range, path::Path};

use super::{
    error::{ConfigError, key_segment},
    schema::Config,
};

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// ```
    /// use wsfirst::config::Config;
    ///
    /// let error = Config::from_toml_str("listen = 8080").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"listen: invalid type: integer `8080`, expected a socket address such as "127.0.0.1:8080""#,
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let document = toml::de::DeTable::parse(text).map_err(|error| ConfigError::Syntax {
            message: error.to_string().trim_end().to_owned(),
        })?;
        let config: Config = toml::from_str(text).map_err(|error| {
            let path = error
                .span()
                .map(|span| path_at(document.get_ref(), &span))
                .unwrap_or_default();
            ConfigError::invalid(path, error.message())
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

// ----- locating an error's path from its span -----

/// The path (`routes[1].breaker.open_for`) of the smallest key or value whose span contains
/// `error`; empty when none does.
fn path_at(root: &toml::de::DeTable<'_>, error: &Range<usize>) -> String {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |span: Range<usize>, path: &str| {
        if span.start <= error.start && error.end <= span.end && span.start < span.end {
            let len = span.end - span.start;
            if best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
                best = Some((len, path.to_owned()));
            }
        }
    };
    walk_table(root, "", &mut consider);
    best.map(|(_, path)| path).unwrap_or_default()
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    consider: &mut dyn FnMut(Range<usize>, &str),
) {
    for (key, value) in table {
        let segment = key_segment(key.get_ref());
        let path = match prefix {
            "" => segment,
            _ => format!("{prefix}.{segment}"),
        };
        consider(key.span(), &path);
        walk_value(value, &path, consider);
    }
}

fn walk_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    consider: &mut dyn FnMut(Range<usize>, &str),
) {
    consider(value.span(), path);
    match value.get_ref() {
        toml::de::DeValue::Table(table) => walk_table(table, path, consider),
        toml::de::DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                walk_value(item, &format!("{path}[{index}]"), consider);
            }
        }
        _ => {}
    }
}
