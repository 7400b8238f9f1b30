//! Error types

use std::{error::Error, fmt};

use wsfirst_core::{BoxError, WsFailure};

/// A request body of undeclared size was larger than the buffer limit, so the request could not
/// be made replayable. Nothing was sent upstream.
///
/// A body whose size is declared (size hint or `Content-Length`) and over the limit does not
/// fail: it goes over HTTP directly.
///
/// ```
/// use wsfirst_fallback::BodyTooLarge;
///
/// let error = BodyTooLarge::new(1024);
/// assert_eq!(
///     error.to_string(),
///     "request body exceeds the fallback buffer limit of 1024 bytes; \
///      declare its size (content-length) to send it over http directly",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTooLarge {
    limit: usize,
}

impl BodyTooLarge {
    /// The body was larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// The buffer limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request body exceeds the fallback buffer limit of {} bytes; \
             declare its size (content-length) to send it over http directly",
            self.limit
        )
    }
}

impl Error for BodyTooLarge {}

/// The process's [`BodyBudget`](crate::BodyBudget) of buffered request bodies had no room for
/// this one: too many large bodies are held at once. Nothing was sent upstream; the `wsfirst`
/// crate answers `503` (code `body_budget_exhausted`), and the client may retry.
///
/// ```
/// use wsfirst_fallback::BudgetExhausted;
///
/// assert_eq!(
///     BudgetExhausted::new(1024).to_string(),
///     "the process's budget of buffered request bodies (1024 bytes) is exhausted; retry later",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetExhausted {
    budget: usize,
}

impl BudgetExhausted {
    /// The budget of `budget` bytes had no room.
    pub fn new(budget: usize) -> Self {
        Self { budget }
    }

    /// The budget's size in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the process's budget of buffered request bodies ({} bytes) is exhausted; retry later",
            self.budget
        )
    }
}

impl Error for BudgetExhausted {}

/// Reading the caller's request body failed while it was buffered for a possible replay.
/// Nothing was sent upstream. The body's error is the [`source`](Error::source).
#[derive(Debug)]
pub struct ReadBodyError {
    source: BoxError,
}

impl ReadBodyError {
    pub(crate) fn new(source: BoxError) -> Self {
        Self { source }
    }

    /// The body's error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for ReadBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to read the request body: {}", self.source)
    }
}

impl Error for ReadBodyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// The WebSocket attempt failed before the first event, the request was replayed over HTTP, and
/// the HTTP attempt failed too.
///
/// The error carries both causes. Its [`source`](Error::source) chain is, in order:
///
/// 1. this error (both causes in its `Display`);
/// 2. the HTTP error, as a link whose `Display` is the HTTP error's message followed by its own
///    causes (`http fallback failed: ...`); the original error object is
///    [`http_error`](Self::http_error);
/// 3. the [`WsFailure`] (the reason the HTTP attempt was made), then the failure's own source.
///
/// So [`wsfirst_core::find_ws_failure`] finds the WebSocket failure, and a circuit breaker
/// outside the fallback layer counts it against the WebSocket path.
///
/// ```
/// use std::time::Duration;
/// use wsfirst_core::{find_ws_failure, FailureKind, Phase, WsFailure};
/// use wsfirst_fallback::HttpAfterWebSocket;
///
/// let failure = WsFailure::new(Phase::Connect, FailureKind::Timeout(Duration::from_secs(5)));
/// let error = HttpAfterWebSocket::new(failure.clone(), "connection refused".into());
/// assert_eq!(
///     error.to_string(),
///     "websocket connect failed: timed out after 5s, then the http fallback failed: connection refused",
/// );
/// assert_eq!(find_ws_failure(&error), Some(&failure));
/// assert_eq!(error.http_error().to_string(), "connection refused");
///
/// let chain: Vec<String> = std::iter::successors(
///     Some(&error as &(dyn std::error::Error + 'static)),
///     |&error| error.source(),
/// )
/// .map(ToString::to_string)
/// .collect();
/// assert_eq!(chain[1], "http fallback failed: connection refused");
/// assert_eq!(chain[2], "websocket connect failed: timed out after 5s");
/// ```
#[derive(Debug)]
pub struct HttpAfterWebSocket {
    link: HttpLink,
}

/// The second link of [`HttpAfterWebSocket`]'s chain: the HTTP error, whose source is the
/// WebSocket failure.
struct HttpLink {
    http: BoxError,
    websocket: WsFailure,
}

impl HttpAfterWebSocket {
    /// The HTTP replay after `websocket` failed with `http`.
    pub fn new(websocket: WsFailure, http: BoxError) -> Self {
        Self {
            link: HttpLink { http, websocket },
        }
    }

    /// The WebSocket failure that caused the replay.
    pub fn websocket(&self) -> &WsFailure {
        &self.link.websocket
    }

    /// The error of the HTTP attempt, as the inner service returned it.
    pub fn http_error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.link.http
    }

    /// The WebSocket failure and the HTTP error.
    pub fn into_parts(self) -> (WsFailure, BoxError) {
        (self.link.websocket, self.link.http)
    }
}

impl fmt::Display for HttpAfterWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, then the http fallback failed: {}",
            self.link.websocket, self.link.http
        )
    }
}

impl Error for HttpAfterWebSocket {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.link)
    }
}

impl fmt::Debug for HttpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLink")
            .field("http", &self.http)
            .field("websocket", &self.websocket)
            .finish()
    }
}

impl fmt::Display for HttpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HTTP error's own causes cannot be linked before the WebSocket failure, so they are
        // written out here.
        write!(f, "http fallback failed: {}", self.http)?;
        let mut cause = self.http.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl Error for HttpLink {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.websocket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsfirst_core::{FailureKind, Phase, find_ws_failure};

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn http_link_writes_out_the_http_error_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let failure = WsFailure::new(
            Phase::Handshake,
            FailureKind::Closed {
                code: None,
                reason: String::new(),
            },
        );
        let error = HttpAfterWebSocket::new(failure.clone(), Box::new(Outer(io)));
        let link = error.source().unwrap();
        assert_eq!(
            link.to_string(),
            "http fallback failed: client error: refused"
        );
        assert_eq!(
            link.source().unwrap().downcast_ref::<WsFailure>(),
            Some(&failure)
        );
        assert!(error.http_error().downcast_ref::<Outer>().is_some());
        assert_eq!(find_ws_failure(&error), Some(&failure));
        let (websocket, http) = error.into_parts();
        assert_eq!(websocket, failure);
        assert_eq!(http.to_string(), "client error");
    }

    #[test]
    fn read_body_error_names_the_cause() {
        let error = ReadBodyError::new("connection reset".into());
        assert_eq!(
            error.to_string(),
            "failed to read the request body: connection reset"
        );
        assert_eq!(error.source().unwrap().to_string(), "connection reset");
    }
}
