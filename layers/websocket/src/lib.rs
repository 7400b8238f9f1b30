//! A tower layer that serves requests over a pooled WebSocket (tokio-tungstenite) and passes
//! every other request to the HTTP service it wraps, with typed, phase-tagged failures.
//!
//! [`WebSocketLayer`] wraps the HTTP upstream service. A request whose
//! [`Intent`](wsfirst_core::Intent) is `WebSocket` is encoded by a [`Codec`] (by default the
//! [`ResponsesCodec`] of the OpenAI Responses API), sent on a connection from the shared
//! [`Pool`] to the route's WebSocket URL, and its answer comes back as the same response body
//! the HTTP path would have produced, stamped with [`Served`](wsfirst_core::Served). The
//! service's future resolves once the upstream's first event has arrived, so a failure before
//! it is an `Err` with a replay-safe [`WsFailure`](wsfirst_core::WsFailure), and one after it
//! ends the body with a `MidStream` failure.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use wsfirst_core::{Intent, Route};
//! use wsfirst_websocket::{Pool, WebSocketConfig, WebSocketLayer};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), wsfirst_core::BoxError> {
//! let http_upstream = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"over http"))))
//! });
//! let pool = Pool::new();
//! let config = WebSocketConfig::builder()
//!     .static_header("openai-beta", "responses-websocket=v1")
//!     .build()?;
//! let mut service = ServiceBuilder::new()
//!     .layer(WebSocketLayer::new(config).with_pool(pool.clone()))
//!     .service(http_upstream);
//!
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let mut request = Request::post("/v1/responses")
//!     .header("authorization", "Bearer sk-...")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"gpt-5","input":"hi","stream":true}"#)))?;
//! request.extensions_mut().insert(route);
//! request.extensions_mut().insert(Intent::WebSocket);
//!
//! let response = service.ready().await?.call(request).await?;
//! let sse = response.into_body().collect().await?.to_bytes();
//! println!("{}", String::from_utf8_lossy(&sse));
//! pool.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `testing`: exports [`testing`], a scriptable loopback upstream (WebSocket and HTTP/SSE on
//!   one port) for testing stacks built with this crate.
//!
//! # Metrics
//!
//! `wsfirst_ws_handshake_seconds` and `wsfirst_ws_first_event_seconds` (histograms),
//! `wsfirst_ws_pool_connections{state="idle"|"in_use"}` (gauge) and
//! `wsfirst_ws_failures_total{phase,kind}` (counter). Each attempt runs in a
//! `websocket_attempt` tracing span.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod attempt;
mod body;
mod codec;
mod config;
mod connector;
mod error;
mod future;
mod layer;
mod pool;
mod raw;
mod responses;
mod service;

#[cfg(feature = "testing")]
pub mod testing;

pub use body::Body;
pub use codec::{Codec, Decoded, Encoded, Exchange, Message};
pub use config::{DEFAULT_FORWARD_HEADERS, WebSocketConfig, WebSocketConfigBuilder};
pub use error::{CodecError, ConfigError, PoolExhausted, RequestBodyError};
pub use future::ResponseFuture;
pub use layer::WebSocketLayer;
pub use pool::{Pool, PoolBuilder};
pub use raw::RawCodec;
pub use responses::ResponsesCodec;
pub use service::WebSocket;
