//! The [`Policy`] trait that decides a request's [`Intent`], closures as policies, and combinators.
//!
//! # Example
//!
//! A rule of your own, added to the default table with [`Policy::and`]: the first "no" wins and
//! keeps its reason.
//!
//! ```
//! use wsfirst_core::{HttpReason, Ineligible, Intent, Route};
//! use wsfirst_eligibility::{policy_fn, EligibilityTable, Policy, RequestHead};
//!
//! // Only streaming requests (marked by the caller with an `x-stream: 1` header) try the WebSocket.
//! let streaming_only = policy_fn(|_route: &Route, head: &RequestHead<'_>| {
//!     if head.headers().get("x-stream").is_some_and(|v| v == "1") {
//!         Intent::WebSocket
//!     } else {
//!         Intent::Http(HttpReason::Ineligible(Ineligible::Custom("not streaming".into())))
//!     }
//! });
//! let table = EligibilityTable::builder()
//!     .allow("openai", "openai-responses")
//!     .provider_host("openai", "api.openai.com")
//!     .build()?;
//! let policy = table.and(streaming_only);
//!
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//!
//! let request = http::Request::builder().header("x-stream", "1").body(())?;
//! assert_eq!(policy.decide(&route, &RequestHead::new(&request)), Intent::WebSocket);
//!
//! let request = http::Request::new(());
//! assert_eq!(
//!     policy.decide(&route, &RequestHead::new(&request)).to_string(),
//!     "http because not streaming",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{fmt, sync::Arc};

use http::{Extensions, HeaderMap, Method, Uri, header::CONTENT_LENGTH, request::Parts};
use wsfirst_core::{Intent, Route};

/// Decides whether a request may try the WebSocket, and if not, why.
///
/// The trait is object-safe (`Box<dyn Policy + Send + Sync>` works), and is implemented for
/// references, `Box` and `Arc` of policies, so a policy can be shared.
///
/// A policy sees every request of its route; the layer itself guarantees only that a route
/// whose mode is [`TransportMode::Http`](wsfirst_core::TransportMode::Http) goes to HTTP
/// without asking the policy. Everything else (strict mode, the per-request override, the table)
/// is the policy's business; [`EligibilityTable`](crate::EligibilityTable) handles all of it.
///
/// # Example implementation
///
/// ```
/// use wsfirst_core::{HttpReason, Ineligible, Intent, Route};
/// use wsfirst_eligibility::{Policy, RequestHead};
///
/// /// Keeps `POST`-less requests off the WebSocket.
/// struct PostOnly;
///
/// impl Policy for PostOnly {
///     fn decide(&self, _route: &Route, request: &RequestHead<'_>) -> Intent {
///         if request.method() == http::Method::POST {
///             Intent::WebSocket
///         } else {
///             Intent::Http(HttpReason::Ineligible(Ineligible::Custom("only POST requests".into())))
///         }
///     }
/// }
///
/// let route = Route::builder("p", "a").http_url("https://example.com/").build()?;
/// let get = http::Request::get("/").body(())?;
/// assert!(!PostOnly.decide(&route, &RequestHead::new(&get)).is_websocket());
/// let post = http::Request::post("/").body(())?;
/// assert!(PostOnly.decide(&route, &RequestHead::new(&post)).is_websocket());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Policy {
    /// The transport for this request of `route`: [`Intent::WebSocket`], or
    /// [`Intent::Http`] with the reason.
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent;

    /// Both policies must allow the WebSocket. The first "no" wins and its reason is kept;
    /// `other` is not asked when `self` already said no.
    ///
    /// ```
    /// use wsfirst_core::{HttpReason, Ineligible, Intent, Route};
    /// use wsfirst_eligibility::{policy_fn, Policy, RequestHead};
    ///
    /// let yes = policy_fn(|_: &Route, _: &RequestHead<'_>| Intent::WebSocket);
    /// let no = |why: &'static str| {
    ///     policy_fn(move |_: &Route, _: &RequestHead<'_>| {
    ///         Intent::Http(HttpReason::Ineligible(Ineligible::Custom(why.into())))
    ///     })
    /// };
    /// let route = Route::builder("p", "a").http_url("https://example.com/").build()?;
    /// let request = http::Request::new(());
    /// let head = RequestHead::new(&request);
    ///
    /// assert!(yes.clone().and(yes.clone()).decide(&route, &head).is_websocket());
    /// assert_eq!(yes.and(no("second")).decide(&route, &head).to_string(), "http because second");
    /// assert_eq!(no("first").and(no("second")).decide(&route, &head).to_string(), "http because first");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn and<P>(self, other: P) -> And<Self, P>
    where
        Self: Sized,
        P: Policy,
    {
        And {
            first: self,
            second: other,
        }
    }
}

impl<T: Policy + ?Sized> Policy for &T {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        (**self).decide(route, request)
    }
}

impl<T: Policy + ?Sized> Policy for Box<T> {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        (**self).decide(route, request)
    }
}

impl<T: Policy + ?Sized> Policy for Arc<T> {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        (**self).decide(route, request)
    }
}

/// What a [`Policy`] may look at: the request's method, URI, headers, extensions and declared
/// body size, borrowed (the body itself is never read).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
    declared_body_size: Option<u64>,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`; the declared body size is its `Content-Length` header, if it has a
    /// valid one.
    pub fn new<B>(request: &'a http::Request<B>) -> Self {
        Self::from_fields(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        )
    }

    /// The head of a request split into [`Parts`]; the declared body size is its
    /// `Content-Length` header, if it has a valid one.
    pub fn from_parts(parts: &'a Parts) -> Self {
        Self::from_fields(&parts.method, &parts.uri, &parts.headers, &parts.extensions)
    }

    fn from_fields(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        extensions: &'a Extensions,
    ) -> Self {
        let declared_body_size = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        Self {
            method,
            uri,
            headers,
            extensions,
            declared_body_size,
        }
    }

    /// Replaces the declared body size (the layer uses the body's exact size hint when there is
    /// no `Content-Length` header).
    pub fn with_declared_body_size(mut self, size: Option<u64>) -> Self {
        self.declared_body_size = size;
        self
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }

    /// The body size the request declared, in bytes, if known in advance.
    pub fn declared_body_size(&self) -> Option<u64> {
        self.declared_body_size
    }
}

/// A closure as a [`Policy`]; see [`policy_fn`].
#[derive(Clone, Copy)]
pub struct PolicyFn<F> {
    f: F,
}

/// Makes a [`Policy`] of a closure `Fn(&Route, &RequestHead<'_>) -> Intent`.
///
/// ```
/// use wsfirst_core::{HttpReason, Ineligible, Intent, Route};
/// use wsfirst_eligibility::{policy_fn, Policy, RequestHead};
///
/// let no_test_provider = policy_fn(|route: &Route, _: &RequestHead<'_>| {
///     if route.provider() == "test" {
///         Intent::Http(HttpReason::Ineligible(Ineligible::Custom("test provider".into())))
///     } else {
///         Intent::WebSocket
///     }
/// });
/// let route = Route::builder("test", "a").http_url("https://example.com/").build()?;
/// let request = http::Request::new(());
/// assert_eq!(no_test_provider.decide(&route, &RequestHead::new(&request)).reason_label(), "custom");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn policy_fn<F>(f: F) -> PolicyFn<F>
where
    F: Fn(&Route, &RequestHead<'_>) -> Intent,
{
    PolicyFn { f }
}

impl<F> Policy for PolicyFn<F>
where
    F: Fn(&Route, &RequestHead<'_>) -> Intent,
{
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        (self.f)(route, request)
    }
}

impl<F> fmt::Debug for PolicyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFn")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

/// Two policies that must both allow the WebSocket; see [`Policy::and`].
#[derive(Clone, Copy, Debug)]
pub struct And<A, B> {
    first: A,
    second: B,
}

impl<A, B> And<A, B> {
    /// The first policy.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The second policy.
    pub fn second(&self) -> &B {
        &self.second
    }
}

impl<A: Policy, B: Policy> Policy for And<A, B> {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        match self.first.decide(route, request) {
            Intent::WebSocket => self.second.decide(route, request),
            no => no,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use wsfirst_core::{HttpReason, Ineligible};

    fn _obj_safe(_: Box<dyn Policy + Send + Sync>) {}

    fn route() -> Route {
        Route::builder("p", "a")
            .http_url("https://example.com/")
            .build()
            .unwrap()
    }

    fn custom(why: &'static str) -> Intent {
        Intent::Http(HttpReason::Ineligible(Ineligible::Custom(why.into())))
    }

    #[test]
    fn and_does_not_ask_the_second_after_a_no() {
        let asked = AtomicUsize::new(0);
        let second = policy_fn(|_: &Route, _: &RequestHead<'_>| {
            asked.fetch_add(1, Ordering::SeqCst);
            Intent::WebSocket
        });
        let first = policy_fn(|_: &Route, _: &RequestHead<'_>| custom("first"));
        let request = http::Request::new(());
        let intent = first
            .and(&second)
            .decide(&route(), &RequestHead::new(&request));
        assert_eq!(intent, custom("first"));
        assert_eq!(asked.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn boxed_and_shared_policies_decide() {
        let boxed: Box<dyn Policy + Send + Sync> =
            Box::new(policy_fn(|_: &Route, _: &RequestHead<'_>| custom("boxed")));
        let shared: Arc<dyn Policy + Send + Sync> =
            Arc::new(policy_fn(|_: &Route, _: &RequestHead<'_>| {
                Intent::WebSocket
            }));
        let request = http::Request::new(());
        let head = RequestHead::new(&request);
        assert_eq!(shared.and(boxed).decide(&route(), &head), custom("boxed"));
    }

    #[test]
    fn declared_body_size_reads_content_length() {
        let request = http::Request::builder()
            .header(CONTENT_LENGTH, " 42 ")
            .body(())
            .unwrap();
        assert_eq!(RequestHead::new(&request).declared_body_size(), Some(42));
        let bad = http::Request::builder()
            .header(CONTENT_LENGTH, "lots")
            .body(())
            .unwrap();
        assert_eq!(RequestHead::new(&bad).declared_body_size(), None);
        let (parts, ()) = request.into_parts();
        assert_eq!(
            RequestHead::from_parts(&parts).declared_body_size(),
            Some(42)
        );
    }

    #[test]
    fn policy_fn_debug_names_the_closure_type() {
        let policy = policy_fn(|_: &Route, _: &RequestHead<'_>| Intent::WebSocket);
        assert!(format!("{policy:?}").starts_with("PolicyFn { f: \""));
    }
}
