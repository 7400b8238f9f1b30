//! The wsfirst gateway: a standalone program on the [`wsfirst`] layers, configured by a TOML
//! file. The binary is `wsfirst-gateway` (`cargo install --path gateway`); this library is what
//! it is made of, for its tests and for programs that want the same file format.
//!
//! - [`config`]: the file format (serde schema, validation through the layers' own builders);
//! - [`Configured`]: the routes of a [`Config`](config::Config) as axum services;
//! - [`server`]: the process (listeners, admin, metrics, signals);
//! - [`access_log`], [`logging`]: logs that never show a credential;
//! - [`check`]: `--check`'s effective configuration, secrets redacted;
//! - [`cli`], [`offline`]: the command line and the offline mode.
//!
//! # Example
//!
//! ```
//! use wsfirst_gateway::{Configured, config::Config};
//!
//! let config = Config::from_toml_str(r#"
//!     [eligibility]
//!     websocket_pairs = [["openai", "openai-responses"]]
//!
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.openai.com/v1/responses"
//!     ws_url = "wss://api.openai.com/v1/responses"
//! "#)?;
//! let app: axum::Router = Configured::from_config(&config)?.router();
//! # let _ = app;
//! # Ok::<(), wsfirst_gateway::config::ConfigError>(())
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod access_log;
pub mod check;
pub mod cli;
pub mod config;
pub mod configured;
pub mod logging;
pub mod offline;
pub mod server;

pub use configured::Configured;
