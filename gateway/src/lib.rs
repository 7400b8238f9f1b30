//! The wsfirst gateway: a standalone program on the [`wsfirst`] layers, configured by a TOML
//! file.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod config;
pub mod configured;
pub mod logging;

pub use configured::Configured;
