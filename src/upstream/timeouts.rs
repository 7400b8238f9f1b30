//! Per-request overrides of the HTTP upstream's timeouts.

use std::time::Duration;

/// Timeouts of one request to the HTTP upstream, set as a request extension to override the
/// [`HttpUpstream`](super::HttpUpstream)'s own (the facade's route service sets it from the
/// route's `[routes.timeouts]`). A field left `None` keeps the upstream's setting.
///
/// ```
/// use std::time::Duration;
/// use wsfirst::upstream::HttpTimeouts;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(HttpTimeouts {
///     response: Some(Duration::from_secs(120)),
///     idle: None,
/// });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From sending the request to the response headers, connecting included.
    pub response: Option<Duration>,
    /// Between two chunks of the response body.
    pub idle: Option<Duration>,
}
