//! Small request guards for routes a browser can reach: a `POST` must be JSON
//! ([`RequireJsonLayer`], `415` otherwise), the `Host` must be one of the gateway's own names
//! ([`AllowedHostsLayer`], against DNS rebinding, `421` otherwise), and a WebSocket upgrade
//! from a page of another site is refused ([`AllowedOrigins`], used by
//! [`ClientWebSocket`](crate::client_ws::ClientWebSocket)).
//!
//! Why: a gateway that holds an upstream key spends it for whoever reaches it. A web page the
//! operator opens can reach `127.0.0.1` too: with a CORS-simple `POST` (`text/plain`, no
//! preflight), a WebSocket (browsers do not apply CORS to WebSockets, they only send `Origin`),
//! or through a DNS name it controls that resolves to `127.0.0.1` (DNS rebinding, where the
//! `Host` header is the attacker's name). SDKs and command-line clients send JSON, their own
//! `Host`, and no `Origin`; they pass every guard.
//!
//! A gateway that holds the upstream credential (it sets `Authorization` or `api-key` itself)
//! spends it for whoever reaches the route, browsers aside: [`RequireClientTokenLayer`] asks
//! every client for a token of its own (`401` otherwise) and takes it off before the upstream.
//!
//! Each refusal is the usual JSON error body,
//! `{"error":{"message","type":"invalid_request_error","param":null,"code"}}`.
//!
//! The guards are plain tower layers (on tower-http's
//! [`ValidateRequestHeaderLayer`](tower_http::validate_request::ValidateRequestHeaderLayer)):
//! stack them in front of a route's services.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use wsfirst::guard::{AllowedHostsLayer, RequireJsonLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/v1/responses", post(|| async { "ok" }))
//!     .layer(RequireJsonLayer::new())
//!     .layer(AllowedHostsLayer::new(["localhost", "127.0.0.1"]));
//!
//! let json = Request::post("/v1/responses")
//!     .header("host", "localhost:8080")
//!     .header("content-type", "application/json; charset=utf-8")
//!     .body(axum::body::Body::from("{}"))
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(json).await.unwrap().status(), StatusCode::OK);
//!
//! let form = Request::post("/v1/responses")
//!     .header("host", "localhost:8080")
//!     .header("content-type", "text/plain")
//!     .body(axum::body::Body::from("{}"))
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(form).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
//!
//! let rebound = Request::post("/v1/responses")
//!     .header("host", "attacker.example")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from("{}"))
//!     .unwrap();
//! assert_eq!(app.oneshot(rebound).await.unwrap().status(), StatusCode::MISDIRECTED_REQUEST);
//! # }
//! ```

mod client_token;
mod content_type;
mod host;
mod origin;

pub(crate) use client_token::unauthorized;
pub use client_token::{
    ClientTokens, InvalidClientTokens, RequireClientToken, RequireClientTokenLayer,
};
pub use content_type::{RequireJson, RequireJsonLayer};
pub use host::{AllowedHosts, AllowedHostsLayer};
pub use origin::AllowedOrigins;

use http::{HeaderValue, Response, StatusCode, header};

/// A refusal: `status` and the usual JSON error body.
pub(crate) fn refusal(status: StatusCode, code: &str, message: &str) -> Response<axum::body::Body> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}
    });
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
