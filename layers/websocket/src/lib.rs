//! The WebSocket attempt layer (placeholder: being written).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

#[cfg(feature = "testing")]
pub mod testing;
