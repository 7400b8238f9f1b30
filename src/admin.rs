//! An axum router to read and steer the breakers: snapshot, pin, unpin.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /transport` | | `{"keys": [KeySnapshot, ...]}` |
//! | `POST /transport/pin` | `{"key": "<key>", "for": "10m"}` (`for` optional: until unpinned) | the key's snapshot |
//! | `POST /transport/unpin` | `{"key": "<key>"}` | the key's snapshot |
//!
//! A key is named by its display text as the snapshot shows it (`provider endpoint` and, when the
//! key is scoped to a credential, ` credential:<fingerprint>`).
//!
//! **Never serve it on the listener your clients reach**: anyone who can call it can list every
//! key and pin every provider to HTTP. Serve it on a listener of its own, bound to loopback or a
//! private interface, and put [`require_token`] in front of it (a bearer token, compared in
//! constant time, never logged). The gateway example does both (`[admin] listen` and
//! `token_env` in its configuration).
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use wsfirst::{Wsfirst, admin::{AdminToken, require_token}};
//!
//! let wsfirst = Wsfirst::builder().build();
//! let token = AdminToken::new("s3cret-admin-token")?;
//! // Served on its own listener, such as 127.0.0.1:9091, never next to the routes.
//! let admin: Router = Router::new()
//!     .nest("/admin", wsfirst.admin_router())
//!     .layer(require_token(token));
//! # let _ = admin;
//! # Ok::<(), wsfirst::admin::InvalidAdminToken>(())
//! ```

use std::{fmt, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};
use wsfirst_breaker::BreakerHandle;

use crate::{Wsfirst, duration};

impl Wsfirst {
    /// The admin router over this stack's breakers; see the [module docs](crate::admin).
    pub fn admin_router(&self) -> Router {
        admin_router(self.breakers())
    }
}

/// The admin router over a breaker handle; see the [module docs](self).
pub fn admin_router(handle: BreakerHandle) -> Router {
    Router::new()
        .route("/transport", get(snapshot))
        .route("/transport/pin", post(pin))
        .route("/transport/unpin", post(unpin))
        .with_state(handle)
}

async fn snapshot(State(handle): State<BreakerHandle>) -> Response {
    Json(serde_json::json!({ "keys": handle.snapshot() })).into_response()
}

/// The body of a pin request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    key: String,
    #[serde(rename = "for", default)]
    duration: Option<String>,
}

/// The body of an unpin request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpinRequest {
    key: String,
}

async fn pin(State(handle): State<BreakerHandle>, Json(request): Json<PinRequest>) -> Response {
    let duration = match request.duration.as_deref().map(parse_duration).transpose() {
        Ok(duration) => duration,
        Err(message) => return bad_request(message),
    };
    let Some(key) = handle.key_named(&request.key) else {
        return unknown_key(&request.key);
    };
    handle.pin(&key, duration);
    Json(handle.get(&key)).into_response()
}

async fn unpin(State(handle): State<BreakerHandle>, Json(request): Json<UnpinRequest>) -> Response {
    let Some(key) = handle.key_named(&request.key) else {
        return unknown_key(&request.key);
    };
    handle.unpin(&key);
    Json(handle.get(&key)).into_response()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match duration::parse(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!(
            "for: invalid duration {text:?}: must be greater than zero"
        )),
        Err(message) => Err(format!("for: {message}")),
    }
}

fn bad_request(message: String) -> Response {
    let body = serde_json::json!({ "error": { "code": "bad_request", "message": message } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn unknown_key(key: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": "unknown_key",
            "message": format!("no breaker key named {key:?}: GET /transport lists the keys"),
        }
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// The bearer token of the admin router: compared in constant time, never printed (`Debug`
/// shows `AdminToken(..)`).
#[derive(Clone)]
pub struct AdminToken {
    /// The whole expected header value, `Bearer <token>`.
    expected: Arc<[u8]>,
}

impl AdminToken {
    /// A token of visible ASCII characters (no spaces), at least 16 long.
    pub fn new(token: impl AsRef<str>) -> Result<Self, InvalidAdminToken> {
        let token = token.as_ref();
        if token.len() < AdminToken::MIN_LEN {
            return Err(InvalidAdminToken::TooShort { len: token.len() });
        }
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(InvalidAdminToken::NotVisibleAscii);
        }
        Ok(Self {
            expected: format!("Bearer {token}").into_bytes().into(),
        })
    }

    /// The shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// Whether `value` is `Bearer <token>`, in time that does not depend on where it differs.
    fn matches(&self, value: &HeaderValue) -> bool {
        let value = value.as_bytes();
        value.len() == self.expected.len()
            && value
                .iter()
                .zip(self.expected.iter())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// An admin token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidAdminToken {
    /// Shorter than [`AdminToken::MIN_LEN`].
    TooShort {
        /// Its length.
        len: usize,
    },
    /// It holds a space, a control character or a non-ASCII character.
    NotVisibleAscii,
}

impl fmt::Display for InvalidAdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidAdminToken::TooShort { len } => write!(
                f,
                "the admin token is {len} characters long: it must have at least {}",
                AdminToken::MIN_LEN
            ),
            InvalidAdminToken::NotVisibleAscii => {
                f.write_str("the admin token must be visible ASCII characters only (no spaces)")
            }
        }
    }
}

impl std::error::Error for InvalidAdminToken {}

impl<B> ValidateRequest<B> for AdminToken {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response> {
        match request.headers().get(header::AUTHORIZATION) {
            Some(value) if self.matches(value) => Ok(()),
            _ => {
                let body = serde_json::json!({
                    "error": {
                        "code": "unauthorized",
                        "message": "the admin endpoints need `Authorization: Bearer <admin token>`",
                    }
                });
                let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(response)
            }
        }
    }
}

/// A layer that answers `401` to every request without `Authorization: Bearer <token>`; put it
/// in front of the admin router (see the [module docs](self)).
pub fn require_token(token: AdminToken) -> ValidateRequestHeaderLayer<AdminToken> {
    ValidateRequestHeaderLayer::custom(token)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;
    use wsfirst_breaker::BreakerRegistry;
    use wsfirst_core::BreakerKey;

    use super::*;

    #[tokio::test]
    async fn pin_rejects_durations_past_the_clock_range() {
        let registry = BreakerRegistry::default();
        let handle = registry.handle();
        let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
        handle.pin(&key, Some(Duration::from_secs(60)));
        let body = serde_json::json!({ "key": key.to_string(), "for": "500000000000y" });
        let request = Request::post("/transport/pin")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = admin_router(handle.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        // The key is still usable: nothing panicked while holding its state.
        assert!(handle.unpin(&key));
    }

    #[tokio::test]
    async fn the_token_layer_lets_only_the_right_bearer_through() {
        let token = AdminToken::new("0123456789abcdef-admin").unwrap();
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
        let app = admin_router(BreakerRegistry::default().handle()).layer(require_token(token));
        for (authorization, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (
                Some("Bearer wrong-token-of-some-length"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some("Bearer 0123456789abcdef-admi"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some("bearer 0123456789abcdef-admin"),
                StatusCode::UNAUTHORIZED,
            ),
            (Some("Bearer 0123456789abcdef-admin"), StatusCode::OK),
        ] {
            let mut request = Request::get("/transport");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{authorization:?}");
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
            }
        }
    }

    #[test]
    fn weak_tokens_are_refused() {
        assert_eq!(
            AdminToken::new("short").unwrap_err(),
            InvalidAdminToken::TooShort { len: 5 }
        );
        assert_eq!(
            AdminToken::new("has a space in the token").unwrap_err(),
            InvalidAdminToken::NotVisibleAscii
        );
    }
}
