//! wsfirst: tower layers that send requests over a WebSocket when allowed and healthy, fall back to
//! HTTP, and pin failing providers to HTTP until probes show they are healthy again.
//!
//! (Crate docs are written when the composed stack lands.)

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod config;
pub mod upstream;

pub use wsfirst_breaker as breaker;
pub use wsfirst_core as core;
pub use wsfirst_eligibility as eligibility;
pub use wsfirst_fallback as fallback;
pub use wsfirst_websocket as websocket;
