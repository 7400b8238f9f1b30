//! Future types
//!
//! # Example
//!
//! [`ResponseFuture`] is what [`Eligibility`](crate::Eligibility) returns from `call`: the inner
//! service's future, or an immediate error when the request had no `Route`.
//!
//! ```
//! use tower::{Service, ServiceExt};
//! use wsfirst_core::MissingExtension;
//! use wsfirst_eligibility::{Eligibility, EligibilityTable, future::ResponseFuture};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst_core::BoxError> {
//! let inner = tower::service_fn(|_: http::Request<String>| async {
//!     Ok::<_, std::convert::Infallible>("served")
//! });
//! let table = EligibilityTable::builder().allow("openai", "openai-responses").build()?;
//! let mut service = Eligibility::new(inner, table);
//! let future: ResponseFuture<_> = service.ready().await?.call(http::Request::new(String::new()));
//! let error = future.await.unwrap_err();
//! assert_eq!(error.downcast_ref::<MissingExtension>(), Some(&MissingExtension::ROUTE));
//! # Ok(())
//! # }
//! ```

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use wsfirst_core::BoxError;

/// What a [`ResponseFuture`] polled after it completed panics with.
const POLLED_AFTER_COMPLETION: &str = "`ResponseFuture` polled after completion";

pin_project! {
    /// The response future of [`Eligibility`](crate::Eligibility): the inner service's future,
    /// or an error when the request could not be decided (it had no `Route`).
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics with "`ResponseFuture` polled after
    /// completion".
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Failed { error: Option<BoxError> },
        Inner { #[pin] future: F },
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Inner { future } => ready!(future.poll(cx)).map_err(Into::into),
            StateProj::Failed { error } => Err(error.take().expect(POLLED_AFTER_COMPLETION)),
            StateProj::Done => panic!("{POLLED_AFTER_COMPLETION}"),
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
