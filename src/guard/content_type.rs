//! [`RequireJsonLayer`]: a request with a body must say it is JSON.

use http::{Method, Request, Response, StatusCode, header};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeader};
use tower_layer::Layer;

use super::refusal;

/// Answers `415` (code `unsupported_media_type`) to a `POST`, `PUT` or `PATCH` whose
/// `Content-Type` is not `application/json` (parameters such as `charset=utf-8` are allowed;
/// a missing one is refused too), so that a web page cannot send one without a CORS preflight.
/// Other methods pass. Wraps services that answer with axum's body. See the
/// [module docs](super) for an example.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequireJsonLayer;

impl RequireJsonLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for RequireJsonLayer {
    type Service = ValidateRequestHeader<S, RequireJson>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateRequestHeader::custom(inner, RequireJson)
    }
}

/// The check of [`RequireJsonLayer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RequireJson;

/// Whether `value` is `application/json`, parameters aside.
fn is_json(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl<B> ValidateRequest<B> for RequireJson {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<axum::body::Body>> {
        if !matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH
        ) {
            return Ok(());
        }
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| is_json(value.as_bytes()));
        if json {
            return Ok(());
        }
        Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_parameters_passes_and_lookalikes_do_not() {
        for value in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;x=1",
        ] {
            assert!(is_json(value.as_bytes()), "{value}");
        }
        for value in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
            "multipart/form-data; boundary=application/json",
        ] {
            assert!(!is_json(value.as_bytes()), "{value}");
        }
    }

    #[test]
    fn only_methods_with_a_body_are_checked() {
        let mut get = Request::get("/").body(()).unwrap();
        assert!(RequireJson.validate(&mut get).is_ok());
        let mut post = Request::post("/").body(()).unwrap();
        let refused = RequireJson.validate(&mut post).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
