//! [`RequireJsonLayer`]: a request with a body must say it is JSON.

use std::{fmt, marker::PhantomData};

use http::{Method, Request, Response, StatusCode, header};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeader};
use tower_layer::Layer;

use super::refusal;

/// Answers `415` (code `unsupported_media_type`) to a `POST`, `PUT` or `PATCH` whose
/// `Content-Type` is not `application/json` (parameters such as `charset=utf-8` are allowed;
/// a missing one is refused too), so that a web page cannot send one without a CORS preflight.
/// Other methods pass. See the [module docs](super) for an example.
///
/// `ResBody` is the body type of the wrapped service's responses (and so of the refusal):
/// axum's by default.
pub struct RequireJsonLayer<ResBody = axum::body::Body> {
    _body: PhantomData<fn() -> ResBody>,
}

impl<ResBody> RequireJsonLayer<ResBody> {
    /// The layer.
    pub fn new() -> Self {
        Self { _body: PhantomData }
    }
}

impl<ResBody> Default for RequireJsonLayer<ResBody> {
    fn default() -> Self {
        Self::new()
    }
}

impl<ResBody> Clone for RequireJsonLayer<ResBody> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<ResBody> fmt::Debug for RequireJsonLayer<ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequireJsonLayer")
    }
}

impl<S, ResBody> Layer<S> for RequireJsonLayer<ResBody> {
    type Service = ValidateRequestHeader<S, RequireJson<ResBody>>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateRequestHeader::custom(inner, RequireJson::new())
    }
}

/// The check of [`RequireJsonLayer`]; `ResBody` is the body type of the refusal (and of the
/// inner service's responses).
pub struct RequireJson<ResBody = axum::body::Body> {
    _body: PhantomData<fn() -> ResBody>,
}

impl<ResBody> RequireJson<ResBody> {
    /// The check.
    pub fn new() -> Self {
        Self { _body: PhantomData }
    }
}

impl<ResBody> Default for RequireJson<ResBody> {
    fn default() -> Self {
        Self::new()
    }
}

impl<ResBody> Clone for RequireJson<ResBody> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<ResBody> fmt::Debug for RequireJson<ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequireJson")
    }
}

/// Whether `value` is `application/json`, parameters aside.
pub(crate) fn is_json(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl<B, ResBody: From<String>> ValidateRequest<B> for RequireJson<ResBody> {
    type ResponseBody = ResBody;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<ResBody>> {
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
        let mut check = RequireJson::<String>::new();
        let mut get = Request::get("/").body(()).unwrap();
        assert!(check.validate(&mut get).is_ok());
        let mut post = Request::post("/").body(()).unwrap();
        let refused = check.validate(&mut post).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            refused.body().contains("unsupported_media_type"),
            "{}",
            refused.body()
        );
    }
}
