//! An axum router to read and steer the breakers: snapshot, pin, unpin.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /transport` | | `{"keys": [KeySnapshot, ...]}` |
//! | `POST /transport/pin` | `{"key": "<key>", "for": "10m"}` (`for` optional: until unpinned) | the key's snapshot |
//! | `POST /transport/unpin` | `{"key": "<key>"}` | the key's snapshot |
//!
//! A key is named by its display text as the snapshot shows it (`provider endpoint` and, when the
//! key is scoped to a credential, ` credential:<fingerprint>`). Mount it under a prefix of your
//! choice, and protect it as you protect any admin endpoint.
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use wsfirst::Wsfirst;
//!
//! let wsfirst = Wsfirst::builder().build();
//! let app: Router = Router::new().nest("/admin", wsfirst.admin_router());
//! # let _ = app;
//! ```

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
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
}
