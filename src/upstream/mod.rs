//! The HTTP upstream service: the innermost service of the stack, on hyper-util's pooled client.
//!
//! [`HttpUpstream`] sends each request to its [`Route`](wsfirst_core::Route)'s HTTP URL
//! (`http://` or `https://` via rustls) with the headers its route's
//! [`HeaderPolicy`](wsfirst_core::headers::HeaderPolicy) allows (the same policy as the WebSocket
//! handshake's, carried as a request extension), and returns the
//! upstream's response as it is: any status, and a body that streams as it arrives (an SSE
//! answer frame by frame).
//!
//! # Example
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use wsfirst::core::Route;
//! use wsfirst::upstream::HttpUpstream;
//! # use wsfirst_websocket::testing::TestUpstream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let test_upstream = TestUpstream::start().await;
//! # let http_url = test_upstream.http_url();
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

mod body;
mod connect;
mod error;
pub mod future;
mod headers;
mod service;
mod timeouts;

pub use body::UpstreamBody;
pub use error::{HttpUpstreamError, HttpUpstreamErrorKind};
pub use service::{HttpUpstream, HttpUpstreamBuilder};
pub use timeouts::HttpTimeouts;
