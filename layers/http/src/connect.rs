//! A connector whose one deadline covers the whole connection set-up: DNS, TCP and TLS.
//!
//! hyper-util's `HttpConnector::set_connect_timeout` bounds each TCP connect attempt only, not
//! the DNS lookup before it nor the TLS handshake after it, so a resolver or a TLS peer that
//! stalls would hang a request forever.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Uri;
use tower_service::Service;
use wsfirst_core::BoxError;

/// Wraps a connector so that each connection must be ready within `timeout`.
#[derive(Clone, Debug)]
pub(crate) struct TimeoutConnector<C> {
    pub(crate) inner: C,
    pub(crate) timeout: Duration,
}

/// The connection was not set up (DNS, TCP and TLS) within the connect timeout.
#[derive(Debug)]
pub(crate) struct ConnectTimedOut(pub(crate) Duration);

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection not set up (dns, tcp and tls) within {:?}",
            self.0
        )
    }
}

impl std::error::Error for ConnectTimedOut {}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<C> Service<Uri> for TimeoutConnector<C>
where
    C: Service<Uri> + Send,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    // Boxed: this runs once per new connection, not per request.
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut(timeout)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector that is never ready (its `poll_ready` fails) or never connects.
    #[derive(Clone, Copy)]
    enum Stuck {
        Unready,
        Silent,
    }

    impl Service<Uri> for Stuck {
        type Response = ();
        type Error = std::io::Error;
        type Future = std::future::Pending<Result<(), std::io::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            match self {
                Stuck::Unready => Poll::Ready(Err(std::io::Error::other("connector closed"))),
                Stuck::Silent => Poll::Ready(Ok(())),
            }
        }

        fn call(&mut self, _uri: Uri) -> Self::Future {
            std::future::pending()
        }
    }

    #[test]
    fn the_inner_connector_s_readiness_and_its_error_pass_through() {
        let mut connector = TimeoutConnector {
            inner: Stuck::Unready,
            timeout: Duration::from_secs(1),
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match connector.poll_ready(&mut cx) {
            Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "connector closed"),
            _ => panic!("the inner connector's failure was not passed on"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_not_set_up_in_time_fails_saying_what_took_too_long() {
        let mut connector = TimeoutConnector {
            inner: Stuck::Silent,
            timeout: Duration::from_secs(3),
        };
        let error = connector
            .call(Uri::from_static("https://api.example.com/"))
            .await
            .unwrap_err();
        assert!(error.is::<ConnectTimedOut>(), "{error}");
        assert_eq!(
            error.to_string(),
            "connection not set up (dns, tcp and tls) within 3s"
        );
    }
}
