//! A tower layer that decides, for every request, whether it may try the WebSocket transport or
//! goes over HTTP, and why.
//!
//! [`EligibilityLayer`] sets the request's [`Intent`](wsfirst_core::Intent) extension from a
//! [`Policy`]. The default policy is an [`EligibilityTable`]: (provider, API) pairs allowed on
//! the WebSocket, a deny list that wins, the WebSocket hosts registered per provider, a message
//! size limit (one of the stack's size limits: see the table in [`wsfirst_core::limits`]), the
//! route's [`TransportMode`](wsfirst_core::TransportMode) and an opt-in
//! per-request override header that can only force HTTP. Add rules of your own with
//! [`policy_fn`] and [`Policy::and`]. Every "no" carries an
//! [`Ineligible`](wsfirst_core::Ineligible) reason that ends up in logs, metrics and the
//! response's [`Served`](wsfirst_core::Served).
//!
//! # Example
//!
//! ```
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use wsfirst_core::{Intent, Route};
//! use wsfirst_eligibility::{EligibilityLayer, EligibilityTable};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst_core::BoxError> {
//! // OpenAI's Responses API on its own host. (The pairs and hosts of an API are data: the
//! // facade feeds the ones of the Responses API to this same builder.)
//! let table = EligibilityTable::builder()
//!     .allow("openai", "openai-responses")
//!     .provider_host("openai", "api.openai.com")
//!     .build()?;
//! let mut service = ServiceBuilder::new()
//!     .layer(EligibilityLayer::new(table))
//!     .service_fn(|request: http::Request<String>| async move {
//!         // The next layers read the decision from the request.
//!         let intent = request.extensions().get::<Intent>().cloned().unwrap();
//!         Ok::<_, std::convert::Infallible>(intent.to_string())
//!     });
//!
//! let route = |ws_url: &str| {
//!     Route::builder("openai", "openai-responses")
//!         .ws_url(ws_url)
//!         .http_url("https://api.openai.com/v1/responses")
//!         .build()
//! };
//! let mut request = http::Request::new(String::new());
//! request.extensions_mut().insert(route("wss://api.openai.com/v1/responses")?);
//! assert_eq!(service.ready().await?.call(request).await?, "websocket");
//!
//! // A WebSocket URL on another provider's host goes to HTTP, with the reason.
//! let mut request = http::Request::new(String::new());
//! request.extensions_mut().insert(route("wss://chatgpt.com/backend-api/codex/responses")?);
//! assert_eq!(
//!     service.ready().await?.call(request).await?,
//!     "http because the websocket url's host chatgpt.com is not the provider's registered host api.openai.com",
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Observability
//!
//! Each decision is a `tracing` DEBUG event and an increment of
//! `wsfirst_eligibility_decisions_total{provider, api, verdict, reason}`.
//!
//! # Feature flags
//!
//! None.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod future;
mod layer;
pub mod policy;
mod service;
pub mod table;

pub use layer::EligibilityLayer;
pub use policy::{And, Policy, PolicyFn, RequestHead, policy_fn};
pub use service::{DECISIONS_METRIC, Eligibility};
pub use table::{EligibilityTable, EligibilityTableBuilder};
pub use wsfirst_core::{ConfigError, ConfigErrorKind};

#[cfg(test)]
mod tests;
