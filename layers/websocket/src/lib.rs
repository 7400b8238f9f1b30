//! A tower layer that serves requests over a pooled WebSocket (tokio-tungstenite) and passes
//! every other request to the HTTP service it wraps, with typed, phase-tagged failures.
//!
//! [`WebSocketLayer`] wraps the HTTP upstream service. A request whose
//! [`Intent`](wsfirst_core::Intent) is `WebSocket` is encoded by a [`Codec`] (by default the
//! [`ResponsesCodec`] of the OpenAI Responses API), sent on a connection from the shared
//! [`Pool`] to the route's WebSocket URL, and its answer comes back as the same response body
//! the HTTP path would have produced, stamped with [`Served`](wsfirst_core::Served). The
//! service's future resolves once the upstream's first event has arrived, so a failure before
//! it is an `Err` with a [`WsFailure`](wsfirst_core::WsFailure) that says how far the request
//! got, and one after it ends the body with a `MidStream` failure.
//!
//! # Example
//!
//! A tiny upstream on loopback answers each `response.create` with two events; the layer turns
//! them into the server-sent events the HTTP path would have returned.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use futures_util::{SinkExt, StreamExt};
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use wsfirst_core::{Intent, Route, Served, Transport};
//! use wsfirst_websocket::{Message, Pool, WebSocketConfig, WebSocketLayer};
//!
//! const CREATED: &str = r#"{"type":"response.created","response":{"id":"r1"}}"#;
//! const DONE: &str = r#"{"type":"response.completed","response":{"id":"r1","status":"completed"}}"#;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst_core::BoxError> {
//! // The upstream: one WebSocket connection, two events per request.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let ws_url = format!("ws://{}/v1/responses", listener.local_addr()?);
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await.unwrap();
//!     let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
//!     while let Some(Ok(Message::Text(_request))) = socket.next().await {
//!         socket.send(Message::text(CREATED)).await.unwrap();
//!         socket.send(Message::text(DONE)).await.unwrap();
//!     }
//! });
//!
//! // The stack: the WebSocket layer over an HTTP upstream service (a stand-in here).
//! let http_upstream = service_fn(|_request: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"over http"))))
//! });
//! let pool = Pool::new(); // share clones of it between the layers of all routes
//! let config = WebSocketConfig::default();
//! let mut service = ServiceBuilder::new()
//!     .layer(WebSocketLayer::with_pool(config, pool.clone()))
//!     .service(http_upstream);
//!
//! // A request for the route, which the eligibility layer would have marked for the WebSocket.
//! let route = Route::builder("local", "responses")
//!     .ws_url(ws_url)
//!     .http_url("http://127.0.0.1:9/v1/responses")
//!     .build()?;
//! let mut request = Request::post("/v1/responses")
//!     .header("authorization", "Bearer sk-local")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"m","input":"hi","stream":true}"#)))?;
//! request.extensions_mut().insert(route);
//! request.extensions_mut().insert(Intent::WebSocket);
//!
//! let response = service.ready().await?.call(request).await?;
//! assert_eq!(response.extensions().get::<Served>().unwrap().transport(), Transport::WebSocket);
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! let sse = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     sse,
//!     format!("event: response.created\ndata: {CREATED}\n\nevent: response.completed\ndata: {DONE}\n\n"),
//! );
//! pool.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # When a request is sent again
//!
//! The rule, for this layer and the fallback layer alike: a request is sent again (on a fresh
//! WebSocket connection here, over HTTP by the fallback layer) only when the upstream provably
//! did not execute it, at most once here, and only as far as the route's
//! [`Replay`](wsfirst_core::Replay) setting allows. The setting belongs to the fallback layer's
//! configuration, which puts it in the extensions of each WebSocket-intended request; this
//! layer reads it there (a request without it follows the default,
//! [`Replay::BeforeFirstEvent`](wsfirst_core::Replay::BeforeFirstEvent)).
//!
//! What the failure says ([`Delivery`](wsfirst_core::Delivery)) and what happens:
//!
//! | how far the request got | sent again on a fresh connection | replayed over HTTP |
//! |---|---|---|
//! | `Unsent`: connect or handshake failed, or a reused connection was found closed right before the write (checked without waiting) | a reused connection: yes, under either setting | yes, under either setting |
//! | `Incomplete`: the write failed or timed out before the message was complete | a reused connection: under `BeforeFirstEvent` | under `BeforeFirstEvent` |
//! | `Refused`: an error event of [`ErrorScope::Connection`](wsfirst_core::ErrorScope::Connection) before any event (see [`responses`], "Which errors say not executed") | under `BeforeFirstEvent` | under `BeforeFirstEvent` |
//! | `MaybeExecuted`: anything after the write (a close with any code, 1001 included, an end of stream, a first-event timeout, another error event, a broken event), and every mid-stream failure | never | never |
//!
//! A fresh connection's `Unsent` or `Incomplete` failure is the endpoint's, so it is not tried
//! on another WebSocket connection (the fallback layer may still replay it over HTTP). A request
//! is sent again here at most once, always on a newly opened connection, and each time is
//! counted in `wsfirst_ws_resends_total{reason}` (`closed_before_write`, `write_failed`,
//! `refused`); the fallback layer counts its replays in `wsfirst_fallbacks_total`. A connection
//! on which anything failed is never returned to the pool.
//!
//! # Settings that are shared
//!
//! - [`tls::ClientTls`]: one rustls configuration (webpki, platform and extra roots) built once
//!   and given to every route's [`WebSocketConfig`]; the HTTP client can take the same roots.
//! - [`Pool`]: one pool shared by the layers of all routes.
//! - The message size limit defaults to
//!   [`DEFAULT_MAX_MESSAGE_SIZE`](wsfirst_core::limits::DEFAULT_MAX_MESSAGE_SIZE), and headers
//!   are checked against [`wsfirst_core::headers`], the lists every layer uses.
//!
//! Everything specific to the OpenAI Responses API is in [`responses`]; the rest of the crate
//! asks the [`Codec`].
//!
//! # Feature flags
//!
//! - `testing`: exports [`testing`], a scriptable loopback upstream (WebSocket and HTTP/SSE on
//!   one port) for testing stacks built with this crate.
//!
//! # Metrics
//!
//! `wsfirst_ws_handshake_seconds` and `wsfirst_ws_first_event_seconds` (histograms),
//! `wsfirst_ws_pool_connections{state="idle"|"in_use"}` (gauge),
//! `wsfirst_ws_pool_warm_total{outcome}` (warm-up handshakes of
//! [`min_idle`](PoolBuilder::min_idle), `opened` or `failed`),
//! `wsfirst_ws_pool_holds_released_total{reason}` (a conversation's held connection given up,
//! see [`Pool`], "Conversations own their socket"),
//! `wsfirst_ws_failures_total{phase,kind}`, `wsfirst_ws_resends_total{reason}` (a request sent
//! again on a fresh connection, see "When a request is sent again"),
//! `wsfirst_ws_error_answers_total{answer,status}` (an upstream error event passed to the client
//! as the HTTP endpoint's answer) and
//! `wsfirst_ws_ineligible_total{provider,api,reason,field}` (counters). Each attempt runs in a
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
pub mod future;
mod gate;
mod layer;
mod metrics;
mod pool;
mod raw;
mod read;
pub mod responses;
mod service;
mod steering;
pub mod tls;

#[cfg(feature = "testing")]
pub mod testing;

pub use body::Body;
pub use codec::{Codec, Decoded, Encoded, Exchange, Message};
pub use config::{WebSocketConfig, WebSocketConfigBuilder};
pub use connector::READ_BUFFER_SIZE;
pub use error::{CodecError, PoolExhausted, RequestBodyError};
pub use layer::WebSocketLayer;
pub use pool::{Pool, PoolBuilder};
pub use raw::RawCodec;
pub use responses::ResponsesCodec;
pub use service::WebSocket;
pub use steering::{Steering, SteeringClosed};
pub use wsfirst_core::{ConfigError, ConfigErrorKind};
