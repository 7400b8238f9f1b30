//! A per-key circuit breaker layer that pins a failing WebSocket path to HTTP and brings it back
//! with probes.
//!
//! [`CircuitBreakerLayer`] sits between the eligibility layer (which sets the request's
//! [`Intent`](wsfirst_core::Intent)) and the fallback layer. It keeps one small state machine per
//! [`BreakerKey`](wsfirst_core::BreakerKey) (provider + WebSocket endpoint + credential
//! fingerprint):
//!
//! - **closed**: WebSocket requests go through. It trips after
//!   [`consecutive_failures`](BreakerConfigBuilder::consecutive_failures) counted failures in a
//!   row (default 3) or when the failure rate over a sliding window of the last attempts reaches
//!   [`failure_rate`](BreakerConfigBuilder::failure_rate) (default 50 % of the last 20, at least
//!   10 attempts); an upgrade answered 404/405/426/501 trips at once (see [`DefaultClassifier`]).
//! - **open**: WebSocket requests are rewritten to `Intent::Http(HttpReason::Pinned { until })`,
//!   never rejected, for 30 s doubling with each consecutive trip up to 10 min, with jitter.
//! - **half-open**: exactly [`half_open_probes`](BreakerConfigBuilder::half_open_probes) requests
//!   (default 1) try the WebSocket, everyone else stays on HTTP. Their reason is
//!   `HttpReason::Pinned { until: Some(deadline) }` with the deadline that ended the pin, which
//!   is already past (when the key reopens is unknown until the probes answer; `None` would mean
//!   pinned by hand until unpinned): `until <= now` tells a probe is deciding, and the reason
//!   displays as "pinned to http while a probe tries it". A probe that gets its first event
//!   closes the key; one that fails reopens it with the next backoff; one that ends without a
//!   verdict or is dropped gives its slot back.
//!
//! It learns from the response's [`Served`](wsfirst_core::Served) (served by WebSocket: success;
//! a fallback cause: failure), from a [`WsFailure`](wsfirst_core::WsFailure) in an error's source
//! chain, and from the response body (a WebSocket-served body that ends in an error is a
//! mid-stream failure). Each WebSocket attempt gets one verdict: a closed key records a
//! WebSocket-served response when its body ends (a success, or a mid-stream failure if the body
//! ends in an error; a body dropped unfinished records nothing), while a probe succeeds as soon as
//! the first event arrives. Errors without a `WsFailure` and failures the [`Classify`] ignores
//! record nothing, and so does a response served over HTTP with no fallback cause (a request that
//! a layer below sent to HTTP without trying the WebSocket, such as one with a field the
//! WebSocket mode does not support): a probe gives its slot back. Outcomes of requests admitted
//! before a state change are ignored, so a late success cannot close an open key and a late
//! failure cannot extend a pin.
//!
//! An upgrade answered 401 or 403 says the request's credential is wrong, not that the path is
//! down: when the classifier ignores it and the request's key remembers nothing else (closed,
//! never tripped or pinned by hand, no failure counted or recorded, an empty failure-rate
//! window), the key is removed from the registry, so that wrong credentials (a key each, with
//! per-credential keys) leave no keys behind. The key exists while such a request is in flight,
//! as for any request; the removal happens on the failure path only, under the registry's lock.
//!
//! A closed, healthy key costs three atomic loads (admission, the key's "used" mark, the verdict
//! when the body ends) and one reference-count increment and decrement per request: no lock, no
//! allocation, no clock read, and no write to memory that another thread writes. The count is
//! that of the running thread's copy of the remembered key, not of the key's state, which every
//! thread reads; a success writes nothing to the key's state unless it has failures to forget or
//! a failure-rate window to fill (a count-based window must record each outcome until then), and
//! cloning the service (as axum's `Router` does for every request) counts a copy of the registry
//! that the cloning thread owns. A request on the same route and with the same credential header
//! value as the service's previous one compares a pointer and a fast keyed hash of the header's
//! value (rapidhash with a random seed, never the value itself: the service keeps no credential)
//! instead of computing the credential's fingerprint and looking the key up (see
//! [`CircuitBreaker`]). The figures, and what the `http` extension lookups that any breaker of
//! this shape needs cost by themselves, are in `BENCHMARKS.md` at the repository root. Each key's
//! state is owned by its [`BreakerRegistry`] behind an `Arc` (services and requests in flight
//! hold it through the entry they remember); there is no global state, and evicted keys are
//! freed.
//! [`BreakerHandle`] reads and steers the keys.
//!
//! # Settings
//!
//! Settings belong to the registry, per key: a default for every key
//! ([`BreakerRegistryBuilder::config`]) and overrides for the keys of one provider and WebSocket
//! endpoint, whatever their credential ([`BreakerRegistryBuilder::config_for`]). A key gets its
//! settings when it is created, from the registry alone, so they never depend on which route
//! reaches it first. The layer carries none: **cloning a [`CircuitBreakerLayer`] shares the
//! breakers**, and layers made [`from_registry`](CircuitBreakerLayer::from_registry) with one
//! registry share them too; [`CircuitBreakerLayer::new`] is a layer with its own registry whose
//! keys all use one configuration. Callers that build routes from their own per-route settings
//! can use [`BreakerConfig::differing_field`] to refuse two routes that share a key with
//! different settings.
//!
//! # Observability
//!
//! Logs (`tracing`: transitions and evictions under the target `wsfirst_breaker::registry`, the
//! routing of single requests under `wsfirst_breaker::service`; credentials never appear: keys
//! show a keyed fingerprint of the credential, 12 hex digits (see
//! [`FingerprintKey`](wsfirst_core::FingerprintKey)), and their endpoint without userinfo or
//! query string (see [`redact`](wsfirst_core::redact)); a failure whose upgrade was refused with
//! 401 or 403 keeps no body; durations read like `30s` or `1m 30s 250ms`):
//!
//! | Event | Level | Fields |
//! |---|---|---|
//! | closed -> open (tripped by failures): the one WARN of an incident | WARN | `key`, `cause`, `pinned_for` |
//! | pinned by hand with [`BreakerHandle::pin`] | WARN | `key`, `pinned_for` (a duration, or `until unpinned`) |
//! | half-open -> open (a probe failed, the pin gets longer) | INFO | `key`, `cause`, `pinned_for` |
//! | open or half-open -> closed (a probe succeeded, or unpinned) | INFO | `key` |
//! | open -> half-open, other transitions | DEBUG | `key`, `from`, `to`, `cause` |
//! | a request routed around an open key, a probe admitted | DEBUG | `key` |
//! | an idle key evicted | DEBUG | `key` |
//! | with a [`BreakerStore`]: pinned by the fleet (its failures, or by hand on a replica) | WARN | `key`, `cause`, `pinned_for` |
//! | with a [`BreakerStore`]: unpinned by the fleet | INFO | `key` |
//!
//! Metrics (`metrics`):
//!
//! | Name | Kind | Labels | Meaning |
//! |---|---|---|---|
//! | `wsfirst_breaker_state` | gauge | `provider`, `endpoint` (+ `credential` with [`BreakerRegistryBuilder::state_gauge_per_credential`]) | state of the worst key of that provider and endpoint: 1 if any is open, else 2 if any is half-open, else 0; per key with the option (back to 0 when evicted) |
//! | `wsfirst_breaker_transitions_total` | counter | `from`, `to` | state changes |
//! | `wsfirst_breaker_pinned_requests_total` | counter | `provider` | WebSocket requests routed to HTTP by an open or half-open key |
//!
//! `wsfirst_breaker_state` has one series per provider and WebSocket endpoint by default,
//! whatever the number of credentials: its value is the state of the worst key. With
//! [`state_gauge_per_credential(true)`](BreakerRegistryBuilder::state_gauge_per_credential) each
//! key that ever changed state has a series of its own, labelled with its credential
//! fingerprint; the `metrics` facade cannot delete series, so turn it on only where the
//! credentials are few and known. The other two metrics have bounded labels (states,
//! providers).
//!
//! An optional callback sees every transition: [`BreakerRegistryBuilder::on_transition`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Empty;
//! use tower::{Layer, Service, ServiceExt, service_fn};
//! use wsfirst_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
//! use wsfirst_core::{BoxError, FailureKind, HttpReason, Intent, Phase, Route, WsFailure};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // An inner stack whose WebSocket upgrade always fails with a 500.
//! let inner = service_fn(|request: Request<()>| async move {
//!     match request.extensions().get::<Intent>() {
//!         Some(Intent::WebSocket) => Err::<Response<Empty<bytes::Bytes>>, BoxError>(Box::new(
//!             WsFailure::new(Phase::Handshake, FailureKind::UpgradeStatus {
//!                 status: StatusCode::INTERNAL_SERVER_ERROR,
//!                 body: Default::default(),
//!             }),
//!         )),
//!         _ => Ok(Response::new(Empty::new())),
//!     }
//! });
//! let layer = CircuitBreakerLayer::new(BreakerConfig::builder().consecutive_failures(2).build()?);
//! let handle = layer.handle();
//! let mut service = layer.layer(inner);
//!
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let request = || {
//!     let mut request = Request::new(());
//!     request.extensions_mut().insert(route.clone());
//!     request.extensions_mut().insert(Intent::WebSocket);
//!     request
//! };
//!
//! // Two failed handshakes trip the key...
//! for _ in 0..2 {
//!     assert!(service.ready().await?.call(request()).await.is_err());
//! }
//! let snapshot = &handle.snapshot()[0];
//! assert_eq!(snapshot.state, BreakerState::Open);
//! assert!(snapshot.until_secs.unwrap() <= 30.0);
//!
//! // ...and the next request is pinned to HTTP instead of paying for another handshake.
//! let response = service.ready().await?.call(request()).await?;
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! # Several replicas
//!
//! [`BreakerRegistryBuilder::store`] shares the breakers with the other replicas of a gateway
//! through a [`BreakerStore`] (the crate `wsfirst-breaker-redis` has one on Redis): failures
//! are counted by the fleet, pins reach every replica, half-open probes are granted across the
//! fleet. Each request is still decided by this replica's own breakers, and the closed-state
//! success path never talks to the store. See [`BreakerStore`].
//!
//! # Feature flags
//!
//! None. [`KeySnapshot`] implements `serde::Serialize` so that it can be served as JSON.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod body;
mod cache;
mod classify;
mod config;
pub mod future;
mod gate;
mod handle;
mod layer;
mod local;
mod registry;
mod service;
mod slot;
mod snapshot;
mod store;
mod transition;

#[cfg(test)]
mod tests;

pub use body::ResponseBody;
pub use classify::{Classify, DefaultClassifier, Verdict};
pub use config::{BreakerConfig, BreakerConfigBuilder, MAX_PROBES, MAX_WINDOW};
pub use handle::BreakerHandle;
pub use layer::CircuitBreakerLayer;
pub use registry::{BreakerRegistry, BreakerRegistryBuilder};
pub use service::CircuitBreaker;
pub use snapshot::Transition;
pub use snapshot::{BreakerState, KeySnapshot, LastFailure};
pub use store::{BreakerStore, Shared, StoreEvent, StoreLink};
pub use wsfirst_core::{ConfigError, ConfigErrorKind};
