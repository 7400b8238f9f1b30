//! A tower layer that replays a request over HTTP when its WebSocket attempt fails in a way the
//! upstream provably did not execute it (before the first event, and before or without the
//! upstream acting on it).
//!
//! [`FallbackLayer`] sits between the circuit breaker and the WebSocket layer of a wsfirst stack
//! (`Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP`). For a request whose
//! [`Intent`](wsfirst_core::Intent) is `WebSocket` and whose route's mode is `auto`, it buffers
//! the body (so that the request can be sent twice), lets the inner stack try the WebSocket, and
//! when that fails with a [`WsFailure`](wsfirst_core::WsFailure) that the [`Replay`] setting
//! replays (the upstream provably did not execute the request), calls the inner
//! stack again with the identical request and `Intent::Http(HttpReason::Fallback(failure))`. The
//! response then carries [`Served::fallback`](wsfirst_core::Served::fallback).
//!
//! - A request is replayed only when the upstream provably did not execute it: the
//!   [`WsFailure`](wsfirst_core::WsFailure)'s [`Delivery`](wsfirst_core::Delivery) says how far
//!   it got, and the [`Replay`] setting which of those are replayed:
//!   [`Replay::BeforeFirstEvent`] (the default) replays a request that was not sent, not sent in
//!   full, or refused by the upstream; [`Replay::ConnectOnly`] only one of which nothing was
//!   written. A failure after the request was written (a close, a first-event timeout, an error
//!   event that does not say "refused") and anything after the inner future answered is never
//!   replayed: the request is executed upstream at most once.
//! - The setting has one owner, this layer's [`FallbackConfig`]: the layer puts it in the
//!   extensions of every WebSocket-intended request it passes on, where the WebSocket layer reads
//!   it to decide whether it may send the request again on a fresh connection.
//! - `Http` intents pass through, body untouched. Strict `websocket` mode is never replayed
//!   (failures reach the caller), but its body is read here like a candidate's, within the body
//!   limit and the [`BodyBudget`] (its WebSocket message is the whole body in memory); a body
//!   declared larger than the limit fails with [`BodyTooLarge`] at once.
//! - A body is never truncated. It is read with [`http_body_util::Limited`] and
//!   [`BodyExt::collect`](http_body_util::BodyExt::collect). A body declared larger than
//!   [`FallbackConfig::body_limit`] (16 MiB by default, like every size limit: see the table in
//!   [`wsfirst_core::limits`]) goes over HTTP at once (it could not be replayed); a body of unknown
//!   size that turns out larger fails with [`BodyTooLarge`] before anything is sent upstream.
//! - A request marked [`WebSocketOnly`](wsfirst_core::WebSocketOnly) (a warm-up,
//!   `"generate": false`), or whose attempt failed with a
//!   [`WebSocketRequired`](wsfirst_core::WebSocketRequired) (the WebSocket layer found the field
//!   in the body), is never replayed: it fails with `WebSocketRequired`, whose source is the
//!   attempt's failure (so a breaker above still counts it).
//! - If the replay fails too, the error is [`HttpAfterWebSocket`], with both causes in its
//!   source chain.
//!
//! The inner service sees request bodies of type [`ReplayBody<B>`].
//!
//! # Observability
//!
//! Each fallback is logged at DEBUG (provider, api, phase, cause) and counted in
//! `wsfirst_fallbacks_total{provider, cause, phase}` (`cause` is
//! [`FailureKind::as_str`](wsfirst_core::FailureKind::as_str), `phase` is
//! [`Phase::as_str`](wsfirst_core::Phase::as_str)). There is no WARN per fallback: with the
//! default [`warn_interval`](FallbackConfigBuilder::warn_interval) there is at most one WARN per
//! route breaker key per 60 s (saying how many fallbacks went unlogged since the last one). In a
//! stack with a circuit breaker, which warns when it pins a key, set the interval to `None`.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use wsfirst_core::{BoxError, FailureKind, Intent, Phase, Route, Served, WsFailure};
//! use wsfirst_fallback::{FallbackConfig, FallbackLayer, ReplayBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Stands in for the WebSocket layer and the HTTP upstream: the WebSocket upgrade is answered
//! // with 500, HTTP echoes the body.
//! let upstream = tower::service_fn(|request: Request<ReplayBody<Full<Bytes>>>| async move {
//!     if request.extensions().get::<Intent>() == Some(&Intent::WebSocket) {
//!         return Err::<Response<Bytes>, BoxError>(Box::new(WsFailure::new(
//!             Phase::Handshake,
//!             FailureKind::UpgradeStatus { status: StatusCode::INTERNAL_SERVER_ERROR, body: Bytes::new() },
//!         )));
//!     }
//!     let body = request.into_body().collect().await?.to_bytes();
//!     Ok(Response::new(body))
//! });
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(FallbackConfig::builder().warn_interval(None).build()?))
//!     .service(upstream);
//!
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let mut request = Request::new(Full::new(Bytes::from_static(br#"{"stream":true}"#)));
//! request.extensions_mut().insert(route);
//! request.extensions_mut().insert(Intent::WebSocket);
//!
//! let response = service.ready().await?.call(request).await?;
//! let served = response.extensions().get::<Served>().unwrap();
//! assert_eq!(served.fallback_cause().map(|failure| failure.phase()), Some(Phase::Handshake));
//! assert_eq!(response.body(), &Bytes::from_static(br#"{"stream":true}"#));
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! None.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod body;
mod budget;
mod config;
mod error;
pub mod future;
mod layer;
mod service;
mod warn;

pub use body::ReplayBody;
pub use budget::{BodyBudget, BudgetPermit};
pub use config::{FallbackConfig, FallbackConfigBuilder};
pub use error::{BodyTooLarge, BudgetExhausted, HttpAfterWebSocket, ReadBodyError};
pub use layer::FallbackLayer;
pub use service::Fallback;
/// Which failures are sent again; defined in `wsfirst-core` so that the WebSocket layer reads the
/// same setting (see [`FallbackConfigBuilder::replay`]).
pub use wsfirst_core::Replay;
pub use wsfirst_core::{ConfigError, ConfigErrorKind};

#[cfg(test)]
mod tests;
