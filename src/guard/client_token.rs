//! [`RequireClientTokenLayer`]: a route whose upstream credential the gateway holds asks the
//! client for a credential of its own.

use std::{fmt, sync::Arc};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use subtle::{Choice, ConstantTimeEq};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeader};
use tower_layer::Layer;

use super::refusal;

/// The bearer tokens clients present (`Authorization: Bearer <token>`) on a route whose
/// upstream credential the gateway holds: compared in constant time, never printed (`Debug`
/// shows only how many there are). Cloning shares them.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use wsfirst::guard::ClientTokens;
///
/// let tokens = ClientTokens::new(["team-a-0123456789abcdef", "team-b-0123456789abcdef"])?;
/// let mut headers = HeaderMap::new();
/// assert!(!tokens.allows(&headers));
/// headers.insert("authorization", HeaderValue::from_static("Bearer team-b-0123456789abcdef"));
/// assert!(tokens.allows(&headers));
/// headers.insert("authorization", HeaderValue::from_static("Bearer sk-someone-else"));
/// assert!(!tokens.allows(&headers));
/// assert_eq!(format!("{tokens:?}"), "ClientTokens { count: 2, .. }");
/// # Ok::<(), wsfirst::guard::InvalidClientTokens>(())
/// ```
#[derive(Clone)]
pub struct ClientTokens {
    tokens: Arc<[Box<[u8]>]>,
}

impl ClientTokens {
    /// The shortest token accepted: a shorter one could be guessed.
    pub const MIN_LEN: usize = 16;

    /// These tokens: at least one, each of at least [`MIN_LEN`](Self::MIN_LEN) visible ASCII
    /// characters (no spaces, no commas).
    pub fn new<I, T>(tokens: I) -> Result<Self, InvalidClientTokens>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut kept = Vec::new();
        for (index, token) in tokens.into_iter().enumerate() {
            let token = token.as_ref();
            if token.len() < Self::MIN_LEN {
                return Err(InvalidClientTokens::TooShort {
                    index,
                    len: token.len(),
                });
            }
            if !token
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b',')
            {
                return Err(InvalidClientTokens::NotVisibleAscii { index });
            }
            kept.push(Box::from(token.as_bytes()));
        }
        if kept.is_empty() {
            return Err(InvalidClientTokens::None);
        }
        Ok(Self {
            tokens: kept.into(),
        })
    }

    /// The comma-separated tokens of the environment variable `name` (spaces around each token
    /// and empty items are ignored), so that they are never written in a file. A variable that
    /// is not set, or set but holding no token, is an error naming it.
    pub fn from_env(name: &str) -> Result<Self, InvalidClientTokens> {
        let value = std::env::var(name).map_err(|error| InvalidClientTokens::Env {
            name: name.to_owned(),
            problem: match error {
                std::env::VarError::NotPresent => "is not set".to_owned(),
                std::env::VarError::NotUnicode(_) => "is not valid UTF-8".to_owned(),
            },
        })?;
        let tokens = value
            .split(',')
            .map(str::trim)
            .filter(|token| !token.is_empty());
        Self::new(tokens).map_err(|error| match error {
            InvalidClientTokens::None => InvalidClientTokens::Env {
                name: name.to_owned(),
                problem: "is set but holds no token (comma-separated tokens expected)".to_owned(),
            },
            error => InvalidClientTokens::Env {
                name: name.to_owned(),
                problem: format!("holds an invalid token: {error}"),
            },
        })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always `false`: there is at least one token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether these headers carry one `Authorization: Bearer <token>` with one of the tokens.
    /// Every token is compared, each in time that does not depend on where it differs.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(presented) = bearer(value) else {
            return false;
        };
        self.tokens
            .iter()
            .fold(Choice::from(0), |found, token| {
                found | token.as_ref().ct_eq(presented)
            })
            .into()
    }
}

/// The token of `Bearer <token>` (the scheme's case does not matter, RFC 9110 §11.1).
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let value = value.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

impl fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTokens")
            .field("count", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Client tokens were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidClientTokens {
    /// No token at all.
    None,
    /// The token at `index` (from 0) is shorter than [`ClientTokens::MIN_LEN`].
    TooShort {
        /// Its place in the list.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// The token at `index` holds a space, a comma, a control or a non-ASCII character.
    NotVisibleAscii {
        /// Its place in the list.
        index: usize,
    },
    /// The environment variable `name` does not hold valid tokens.
    Env {
        /// The variable.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for InvalidClientTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidClientTokens::None => f.write_str("no client token given"),
            InvalidClientTokens::TooShort { index, len } => write!(
                f,
                "client token {} is {len} characters long: it must have at least {}",
                index + 1,
                ClientTokens::MIN_LEN
            ),
            InvalidClientTokens::NotVisibleAscii { index } => write!(
                f,
                "client token {} must be visible ASCII characters only (no spaces, no commas)",
                index + 1
            ),
            InvalidClientTokens::Env { name, problem } => {
                write!(f, "environment variable {name:?} {problem}")
            }
        }
    }
}

impl std::error::Error for InvalidClientTokens {}

/// Answers `401` (code `invalid_api_key`, with `WWW-Authenticate: Bearer`) to a request without
/// `Authorization: Bearer <token>` for one of its [`ClientTokens`], and takes the client's
/// `Authorization` off a request it lets through: the upstream gets the credential the route
/// sets ([`RouteBuilder::headers`](wsfirst_core::RouteBuilder::headers)), never the client's
/// token. Mount it outermost on a route whose upstream credential the gateway holds;
/// [`RouteOptions::client_tokens`](crate::RouteOptions::client_tokens) does it in the preset
/// (client WebSocket upgrades included). Wraps services that answer with axum's body.
///
/// ```
/// use axum::{Router, routing::post};
/// use http::{HeaderMap, Request, StatusCode};
/// use tower::ServiceExt;
/// use wsfirst::guard::{ClientTokens, RequireClientTokenLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = ClientTokens::new(["client-token-0123456789"])?;
/// // The handler sees what the upstream would: no client token.
/// let app = Router::new()
///     .route("/v1/responses", post(|headers: HeaderMap| async move {
///         format!("{:?}", headers.get("authorization"))
///     }))
///     .layer(RequireClientTokenLayer::new(tokens));
///
/// let anonymous = Request::post("/v1/responses").body(axum::body::Body::empty())?;
/// let refused = app.clone().oneshot(anonymous).await?;
/// assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(refused.headers()["www-authenticate"], "Bearer");
///
/// let client = Request::post("/v1/responses")
///     .header("authorization", "Bearer client-token-0123456789")
///     .body(axum::body::Body::empty())?;
/// let answer = app.oneshot(client).await?;
/// assert_eq!(answer.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RequireClientTokenLayer {
    check: RequireClientToken,
}

impl RequireClientTokenLayer {
    /// A layer that lets through the holders of `tokens`.
    pub fn new(tokens: ClientTokens) -> Self {
        Self {
            check: RequireClientToken {
                tokens: Some(tokens),
            },
        }
    }
}

impl<S> Layer<S> for RequireClientTokenLayer {
    type Service = ValidateRequestHeader<S, RequireClientToken>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateRequestHeader::custom(inner, self.check.clone())
    }
}

/// The check of [`RequireClientTokenLayer`]; in the preset's stack, the route's
/// [`RouteOptions::client_tokens`](crate::RouteOptions::client_tokens), or none (an open route,
/// every request passes untouched).
#[derive(Clone, Debug, Default)]
pub struct RequireClientToken {
    tokens: Option<ClientTokens>,
}

impl RequireClientToken {
    /// The check of `tokens`; `None`: an open route.
    pub(crate) fn from_tokens(tokens: Option<ClientTokens>) -> Self {
        Self { tokens }
    }

    /// The tokens; `None`: every request passes.
    pub fn tokens(&self) -> Option<&ClientTokens> {
        self.tokens.as_ref()
    }

    /// Whether a request with these headers may proceed.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        self.tokens
            .as_ref()
            .is_none_or(|tokens| tokens.allows(headers))
    }
}

/// The `401` of a request without a valid client token.
pub(crate) fn unauthorized() -> Response<axum::body::Body> {
    let mut response = refusal(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "this route needs a client token: send `Authorization: Bearer <token>`",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl<B> ValidateRequest<B> for RequireClientToken {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<axum::body::Body>> {
        if self.tokens.is_none() {
            return Ok(());
        }
        if !self.allows(request.headers()) {
            return Err(unauthorized());
        }
        request.headers_mut().remove(header::AUTHORIZATION);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_one_bearer_of_a_listed_token_passes() {
        let tokens =
            ClientTokens::new(["first-token-0123456789", "second-token-0123456789"]).unwrap();
        assert!(tokens.allows(&headers(&["Bearer first-token-0123456789"])));
        assert!(tokens.allows(&headers(&["bearer second-token-0123456789 "])));
        assert!(!tokens.allows(&headers(&[])));
        assert!(!tokens.allows(&headers(&["first-token-0123456789"])));
        assert!(!tokens.allows(&headers(&["Basic first-token-0123456789"])));
        assert!(!tokens.allows(&headers(&["Bearer first-token-012345678"])));
        assert!(!tokens.allows(&headers(&["Bearer first-token-01234567890"])));
        assert!(!tokens.allows(&headers(&["Bearer "])));
        assert!(!tokens.allows(&headers(&["Bearer"])));
        assert!(!tokens.allows(&headers(&[
            "Bearer first-token-0123456789",
            "Bearer first-token-0123456789"
        ])));
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_answers_401_or_passes_the_request_without_the_token() {
        use tower::ServiceExt;
        use tower_test::mock;

        let tokens = ClientTokens::new(["client-token-0123456789"]).unwrap();
        let (service, mut handle) = mock::pair::<Request<()>, Response<axum::body::Body>>();
        let service = RequireClientTokenLayer::new(tokens).layer(service);
        handle.allow(1);

        let anonymous = Request::post("/").body(()).unwrap();
        // Bounded: a check that let it through would wait for the mock's answer forever.
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            service.clone().oneshot(anonymous),
        )
        .await
        .expect("refused at once, without the inner service")
        .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer");

        let client = Request::post("/")
            .header(header::AUTHORIZATION, "Bearer client-token-0123456789")
            .header("x-other", "kept")
            .body(())
            .unwrap();
        let answer = tokio::spawn(service.oneshot(client));
        let (passed, reply) = handle.next_request().await.expect("the request passed");
        assert!(passed.headers().get(header::AUTHORIZATION).is_none());
        assert_eq!(passed.headers()["x-other"], "kept");
        reply.send_response(Response::new(axum::body::Body::empty()));
        assert_eq!(answer.await.unwrap().unwrap().status(), StatusCode::OK);
        // The refused request never reached the inner service (every service is gone now).
        assert!(handle.next_request().await.is_none());
    }

    #[test]
    fn an_open_check_passes_everything_untouched() {
        let mut open = RequireClientToken::default();
        let mut request = Request::post("/")
            .header(header::AUTHORIZATION, "Bearer sk-client-own-key")
            .body(())
            .unwrap();
        assert!(open.tokens().is_none());
        assert!(open.validate(&mut request).is_ok());
        assert_eq!(
            request.headers()[header::AUTHORIZATION],
            "Bearer sk-client-own-key"
        );
    }

    #[test]
    fn a_token_listed_twice_still_passes_and_debug_shows_only_the_count() {
        let twice =
            ClientTokens::new(["first-token-0123456789", "first-token-0123456789"]).unwrap();
        assert_eq!(twice.len(), 2);
        assert!(!twice.is_empty());
        assert!(twice.allows(&headers(&["Bearer first-token-0123456789"])));
        assert_eq!(format!("{twice:?}"), "ClientTokens { count: 2, .. }");
        let check = RequireClientToken::from_tokens(Some(twice));
        assert_eq!(check.tokens().map(ClientTokens::len), Some(2));
    }

    #[test]
    fn weak_tokens_are_refused() {
        assert_eq!(
            ClientTokens::new(Vec::<String>::new()).unwrap_err(),
            InvalidClientTokens::None
        );
        assert_eq!(
            ClientTokens::new(["long-enough-token-0123", "short"]).unwrap_err(),
            InvalidClientTokens::TooShort { index: 1, len: 5 }
        );
        assert_eq!(
            ClientTokens::new(["a token with spaces in it"]).unwrap_err(),
            InvalidClientTokens::NotVisibleAscii { index: 0 }
        );
        assert_eq!(ClientTokens::new(["0123456789abcdef"]).unwrap().len(), 1);
    }

    #[test]
    fn tokens_come_from_the_environment() {
        let name = "WSFIRST_TEST_CLIENT_TOKENS_UNIT";
        let missing = ClientTokens::from_env(&format!("{name}_UNSET")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!("environment variable \"{name}_UNSET\" is not set")
        );
        // `CARGO_PKG_NAME` is set for every test by cargo (setting one here would need
        // `unsafe`); a set variable without a token is the gateway binary's test.
        assert_eq!(
            ClientTokens::from_env("CARGO_PKG_NAME")
                .unwrap_err()
                .to_string(),
            "environment variable \"CARGO_PKG_NAME\" holds an invalid token: client token 1 is 7 characters long: it must have at least 16"
        );
    }
}
