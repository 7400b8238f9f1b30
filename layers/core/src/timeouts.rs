//! A route's HTTP timeouts, read by the HTTP upstream from the request's [`Route`](crate::Route).

use std::time::Duration;

/// A route's timeouts for its requests to the HTTP upstream, overriding the upstream's own
/// (set with [`RouteBuilder::http_timeouts`](crate::RouteBuilder::http_timeouts); the gateway
/// sets it from the route's `[routes.timeouts]`). A field left `None` keeps the upstream's
/// setting.
///
/// ```
/// use std::time::Duration;
/// use wsfirst_core::{HttpTimeouts, Route};
///
/// let route = Route::builder("openai", "openai-responses")
///     .http_url("https://api.openai.com/v1/responses")
///     .http_timeouts(HttpTimeouts {
///         response: Some(Duration::from_secs(120)),
///         idle: None,
///     })
///     .build()?;
/// assert_eq!(route.http_timeouts().response, Some(Duration::from_secs(120)));
/// # Ok::<(), wsfirst_core::RouteError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From sending the request to the response headers, connecting included.
    pub response: Option<Duration>,
    /// Between two chunks of the response body.
    pub idle: Option<Duration>,
}
