//! wsfirst: tower layers that send requests to an upstream over a WebSocket when that is allowed
//! and healthy, fall back to HTTP when the WebSocket attempt fails before anything was delivered,
//! and pin a provider to HTTP (a per-key circuit breaker) when its WebSocket path keeps failing,
//! then bring it back with probes.
//!
//! This facade composes the layers into one per-route service:
//!
//! ```text
//! request -> RequireJson -> Respond -> SetRoute -> Eligibility -> CircuitBreaker -> Fallback -> WebSocket -> HTTP upstream
//! ```
//!
//! - [`guard::RequireJsonLayer`] answers `415` to a `POST` that is not JSON, which a web page
//!   could send without a CORS preflight ([`guard`] also has the `Host` and `Origin` checks);
//! - [`eligibility`] decides who may try the WebSocket (a table of provider/API pairs, endpoint
//!   checks, the route's mode, request shape) and sets the [`Intent`](core::Intent);
//! - [`breaker`] pins a failing key to HTTP and brings it back with probes;
//! - [`fallback`] replays a request over HTTP after a replay-safe WebSocket failure (never after
//!   the first event), buffering bodies within one [`BodyBudget`](fallback::BodyBudget) for the
//!   whole [`Wsfirst`];
//! - [`websocket`] serves the request over a pooled WebSocket, with per-phase timeouts and typed
//!   failures, and answers with the same bytes the HTTP path would;
//! - [`upstream::HttpUpstream`] is the HTTP service on hyper-util's client (any HTTP service
//!   will do);
//! - [`set_route::RouteLayer`] stamps the [`Route`](core::Route) (URLs, mode, breaker key,
//!   header policy, HTTP timeouts) on each request, and [`respond::RespondLayer`] turns failures
//!   into responses, so the route is an infallible service an axum router mounts.
//!
//! Each layer is its own crate, usable alone; [`core`] is the vocabulary they share.
//! [`Wsfirst::route`] is a preset over these pieces; [`Wsfirst`] also hands out each of them,
//! with the shared breakers, pool, TLS and body budget, so a [`tower::ServiceBuilder`] builds the same stack
//! with layers of your own anywhere in it (see the second example and [`stack`]).
//!
//! # Example
//!
//! A route whose upstream (a scriptable one on loopback, from the `testing` feature) refuses the
//! WebSocket upgrade: the request is served over HTTP with the same bytes, and the response says
//! why.
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst::core::BoxError> {
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use wsfirst::Wsfirst;
//! use wsfirst::core::Route;
//! use wsfirst::eligibility::EligibilityTable;
//! use wsfirst::testing::{TestUpstream, WsScript};
//!
//! let upstream = TestUpstream::start().await;
//! upstream.set_default_ws_script(WsScript::refuse(http::StatusCode::INTERNAL_SERVER_ERROR, "wrong endpoint"));
//!
//! let table = EligibilityTable::builder().allow("local", "responses").build()?;
//! let wsfirst = Wsfirst::builder().eligibility(table).build();
//! let route = Route::builder("local", "responses")
//!     .ws_url(upstream.ws_url())
//!     .http_url(upstream.http_url())
//!     .build()?;
//! let service = wsfirst.route(route);
//!
//! let request = http::Request::post("/v1/responses")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from(r#"{"model":"m","input":"hi","stream":true}"#))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.headers()["x-wsfirst-transport"], "http");
//! assert_eq!(response.headers()["x-wsfirst-reason"], "fallback");
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b"event: response.created"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```
//!
//! # Example: the same stack, built by hand
//!
//! The preset's pieces with a layer of your own (here tower's `MapRequestLayer`, adding a
//! header) between eligibility and the breaker, over the same upstream:
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst::core::BoxError> {
//! use http_body_util::BodyExt;
//! use tower::{ServiceBuilder, ServiceExt};
//! use wsfirst::{RespondLayer, Wsfirst};
//! use wsfirst::core::Route;
//! use wsfirst::eligibility::EligibilityTable;
//! use wsfirst::fallback::FallbackConfig;
//! use wsfirst::guard::RequireJsonLayer;
//! use wsfirst::testing::{TestUpstream, WsScript};
//! use wsfirst::websocket::WebSocketConfig;
//!
//! let upstream = TestUpstream::start().await;
//! upstream.set_default_ws_script(WsScript::refuse(http::StatusCode::INTERNAL_SERVER_ERROR, "wrong endpoint"));
//! let table = EligibilityTable::builder().allow("local", "responses").build()?;
//! let wsfirst = Wsfirst::builder().eligibility(table).build();
//! let route = Route::builder("local", "responses")
//!     .ws_url(upstream.ws_url())
//!     .http_url(upstream.http_url())
//!     .build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(RequireJsonLayer::new()) // first: a `POST` that is not JSON is `415`
//!     .layer(RespondLayer::new())
//!     .layer(wsfirst.route_layer(route))
//!     .layer(wsfirst.eligibility_layer())
//!     .map_request(|mut request: http::Request<axum::body::Body>| {
//!         request.headers_mut().insert("x-seen-by", http::HeaderValue::from_static("my-layer"));
//!         request
//!     })
//!     .layer(wsfirst.breaker_layer())
//!     .layer(wsfirst.fallback_layer(FallbackConfig::builder().warn_interval(None).build()?))
//!     .layer(wsfirst.websocket_layer(WebSocketConfig::default()))
//!     .service(wsfirst.http_upstream());
//!
//! let request = http::Request::post("/v1/responses")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from(r#"{"model":"m","input":"hi","stream":true}"#))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.headers()["x-wsfirst-reason"], "fallback");
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b"event: response.created"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```
//!
//! # Feature flags
//!
//! - `testing`: re-exports [`testing`], a scriptable loopback upstream (WebSocket and HTTP/SSE on
//!   one port) to test your own stacks with.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod client_ws;
pub mod future;
pub mod guard;
pub mod logging;
pub mod respond;
mod route_options;
pub mod serve;
pub mod set_route;
pub mod stack;

mod duration;

pub use respond::{REASON_HEADER, TRANSPORT_HEADER};
pub use respond::{Respond, RespondLayer};
pub use set_route::{RouteLayer, SetRoute};
pub use stack::{
    GuardedStack, RouteOptions, RouteService, UnguardedStack, Wsfirst, WsfirstBuilder,
    openai_responses_table,
};

pub use wsfirst_breaker as breaker;
pub use wsfirst_breaker_redis as breaker_store;
pub use wsfirst_core as core;
pub use wsfirst_eligibility as eligibility;
pub use wsfirst_fallback as fallback;
/// The HTTP upstream service ([`wsfirst-http`](wsfirst_http)).
pub use wsfirst_http as upstream;
pub use wsfirst_websocket as websocket;

#[cfg(feature = "testing")]
pub use wsfirst_websocket::testing;

/// The README's Rust snippets, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
