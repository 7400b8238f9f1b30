//! The HTTP upstream of wsfirst: a tower service that sends each request to its
//! [`Route`](wsfirst_core::Route)'s HTTP URL over hyper-util's pooled client and streams the
//! answer back. The innermost service of a route's stack, and usable on its own.
//!
//! [`HttpUpstream`] sends each request to `route.http_url()` (`http://` or `https://` via
//! rustls) with the headers its route's [header policy](wsfirst_core::Route::headers) allows
//! (the same policy as the WebSocket handshake's), within the route's
//! [HTTP timeouts](wsfirst_core::Route::http_timeouts) or its own, and returns the upstream's
//! response as it is: any status, and a body that streams as it arrives (an SSE answer frame by
//! frame). Any other `Service<Request<_>>` can take its place under the WebSocket layer; this
//! crate depends on nothing but [`wsfirst_core`] of wsfirst.
//!
//! # Example
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use wsfirst_core::Route;
//! use wsfirst_http::HttpUpstream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let http_url = format!("http://{}/v1/responses", listener.local_addr()?);
//! # let app = axum::Router::new().route(
//! #     "/v1/responses",
//! #     axum::routing::post(|| async { ([("content-type", "text/event-stream")], "event: response.created\ndata: {}\n\n") }),
//! # );
//! # tokio::spawn(async move { axum::serve(listener, app).await });
//! // `http_url` is, for example, "https://api.openai.com/v1/responses".
//! let route = Route::builder("openai", "openai-responses").http_url(http_url).build()?;
//! let upstream = HttpUpstream::builder()
//!     .connect_timeout(std::time::Duration::from_secs(5))
//!     .build()?;
//!
//! let mut request = http::Request::post("/v1/responses")
//!     .header("authorization", "Bearer sk-example")
//!     .body(Full::new(bytes::Bytes::from(r#"{"model":"gpt-kit","input":"hi","stream":true}"#)))?;
//! request.extensions_mut().insert(route);
//!
//! let response = upstream.oneshot(request).await?;
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! let sse = response.into_body().collect().await?.to_bytes();
//! assert!(sse.starts_with(b"event: response.created\ndata: {"));
//! # Ok(())
//! # }
//! ```
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod body;
mod connect;
mod error;
pub mod future;
mod service;

pub use body::UpstreamBody;
pub use error::{HttpUpstreamError, HttpUpstreamErrorKind};
pub use service::{HttpUpstream, HttpUpstreamBuilder};
pub use wsfirst_core::ConfigError;
pub use wsfirst_core::HttpTimeouts;
