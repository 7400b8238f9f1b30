//! One served connection, bounded in time: its first request must arrive within the header
//! timeout (protocol detection included), and it is closed once it has had nothing in flight for
//! the idle timeout, whatever its protocol.
//!
//! hyper-util's protocol detection has no timeout of its own, and hyper's HTTP/2 server none
//! for a connection that opens no stream: both would let a client that sends nothing hold a
//! `max_connections` slot forever. The connection's task watches it from the outside instead,
//! through [`Activity`], which the [`Tracked`] service updates as requests start and their
//! responses (streams included) end.

use std::{
    fmt,
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::{
    sync::watch,
    time::{Instant, sleep_until},
};
use tower::Service;

/// What the connection's task reads to decide whether the connection may stay open.
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Requests started; the first one ends the header timeout's watch.
    started: AtomicU64,
    /// When the last response ended, in milliseconds since `accepted`.
    last_end_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_end_ms: AtomicU64::new(0),
        })
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// When the connection became idle (nothing in flight), `None` while something is.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = self.last_end_ms.load(Ordering::Acquire);
        Some(self.accepted + Duration::from_millis(ms))
    }
}

/// A request in flight on the connection, from the service call until its response body is
/// dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_end_ms.fetch_max(ms, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The time limits of one connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// The first request's headers must be in within this, from the accept on.
    pub(super) first_request: Duration,
    /// Closed (gracefully) after this long with nothing in flight.
    pub(super) idle: Duration,
    /// How long a graceful close may take before the connection is dropped.
    pub(super) close_grace: Duration,
}

/// Drives `connection` until it ends, the server shuts down (graceful; the caller bounds the
/// wait), it sent no request within the header timeout (dropped), or it stays idle (graceful,
/// then dropped after `close_grace`).
pub(super) async fn drive<C>(
    connection: C,
    activity: Arc<Activity>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    C: GracefulConnection,
    C::Error: fmt::Display,
{
    let mut connection = pin!(connection);
    let first_deadline = activity.accepted + limits.first_request;
    // Set once a graceful close began: the connection is dropped past it.
    let mut closing: Option<Instant> = None;
    loop {
        let wake = match (closing, activity.started.load(Ordering::Acquire)) {
            (Some(deadline), _) => deadline,
            (None, 0) => first_deadline,
            (None, _) => match activity.idle_since() {
                Some(since) => since + limits.idle,
                // Something in flight: look again in an idle period.
                None => Instant::now() + limits.idle,
            },
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait_for(|down| *down), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                // The server bounds the grace period itself.
                closing = Some(far_future());
            }
            () = sleep_until(wake) => {
                if closing.is_some() {
                    tracing::debug!("connection did not close within its grace period: dropped");
                    return;
                }
                if activity.started.load(Ordering::Acquire) == 0 {
                    tracing::debug!(
                        timeout = ?limits.first_request,
                        "connection sent no request within the header timeout: closed"
                    );
                    return;
                }
                let idle = activity
                    .idle_since()
                    .is_some_and(|since| since + limits.idle <= Instant::now());
                if idle {
                    tracing::debug!(timeout = ?limits.idle, "connection idle: closing it");
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + limits.close_grace);
                }
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// The service of one connection: `inner`, with each request counted in the connection's
/// [`Activity`] until its response body is dropped.
#[derive(Clone, Debug)]
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Tracked<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let guard = self.activity.start();
        TrackedFuture {
            future: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// The response future of [`Tracked`]: the request stays in flight while it runs.
    pub(super) struct TrackedFuture<F> {
        #[pin]
        future: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(result.map(|response| {
            response.map(|body| TrackedBody {
                inner: body,
                _guard: guard,
            })
        }))
    }
}

pin_project! {
    /// A response body that keeps its request in flight until it is dropped.
    pub(super) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<InFlight>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_is_in_flight_until_its_body_is_dropped() {
        let activity = Activity::new();
        assert!(activity.idle_since().is_some());
        let guard = activity.start();
        assert_eq!(activity.idle_since(), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(guard);
        let since = activity.idle_since().unwrap();
        assert_eq!(since - activity.accepted, Duration::from_secs(3));
    }
}
