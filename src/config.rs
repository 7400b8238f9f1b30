//! Route configuration from TOML (placeholder: being written).
