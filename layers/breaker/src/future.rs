//! Future types

use std::{
    error::Error,
    future::Future,
    mem,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use wsfirst_core::{BoxError, MissingExtension, Served, Transport, find_ws_failure};

use crate::{
    body::{BodyTracker, ResponseBody},
    slot::Slot,
};

/// What the response future must report, and to which key.
#[derive(Debug)]
pub(crate) enum Ticket {
    /// Not a WebSocket attempt (already HTTP, or pinned): nothing to learn.
    None,
    /// A closed-state attempt.
    Closed { slot: Arc<Slot>, generation: u32 },
    /// A strict request on an open or half-open key.
    Observe { slot: Arc<Slot>, generation: u32 },
    /// A half-open probe; its slot goes back if it ends without a verdict.
    Probe(ProbeGuard),
}

/// Holds a half-open probe slot; dropping it unreported gives the slot back.
#[derive(Debug)]
pub(crate) struct ProbeGuard {
    /// `None` once disarmed.
    slot: Option<Arc<Slot>>,
    generation: u32,
}

impl ProbeGuard {
    pub(crate) fn new(slot: Arc<Slot>, generation: u32) -> Self {
        ProbeGuard {
            slot: Some(slot),
            generation,
        }
    }

    /// Takes the slot out: the caller reports the probe's verdict.
    fn disarm(mut self) -> Option<(Arc<Slot>, u32)> {
        self.slot.take().map(|slot| (slot, self.generation))
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.release_probe(self.generation);
        }
    }
}

impl Ticket {
    #[inline]
    fn on_response<B: http_body::Body>(self, response: Response<B>) -> Response<ResponseBody<B>> {
        if let Ticket::None = self {
            return response.map(ResponseBody::untracked);
        }
        let served = response.extensions().get::<Served>();
        let by_websocket = served.is_some_and(|s| s.transport() == Transport::WebSocket);
        let cause = served.and_then(Served::fallback_cause);
        let tracker = match self {
            Ticket::None => None,
            Ticket::Closed { slot, generation } => {
                if by_websocket {
                    // The verdict waits for the end of the body: a mid-stream error is a failure.
                    Some(BodyTracker { slot, generation })
                } else {
                    if let Some(failure) = cause {
                        slot.closed_failure(generation, failure, Instant::now());
                    }
                    None
                }
            }
            Ticket::Observe { slot, generation } => {
                if by_websocket {
                    slot.healthy(generation, Instant::now(), true)
                        .map(|generation| BodyTracker { slot, generation })
                } else {
                    if let Some(failure) = cause {
                        slot.observe_failure(generation, failure, Instant::now());
                    }
                    None
                }
            }
            Ticket::Probe(guard) => {
                if by_websocket {
                    guard.disarm().and_then(|(slot, generation)| {
                        slot.healthy(generation, Instant::now(), false)
                            .map(|generation| BodyTracker { slot, generation })
                    })
                } else {
                    if let Some(failure) = cause {
                        if let Some((slot, generation)) = guard.disarm() {
                            slot.probe_failure(generation, failure, Instant::now());
                        }
                    }
                    // Otherwise no verdict: the guard gives the slot back.
                    None
                }
            }
        };
        response.map(|body| ResponseBody::new(body, tracker))
    }

    fn on_error(self, error: &(dyn Error + 'static)) {
        let Some(failure) = find_ws_failure(error) else {
            // Not a WebSocket failure: no verdict (a probe's guard gives its slot back).
            return;
        };
        let now = Instant::now();
        match self {
            Ticket::None => {}
            Ticket::Closed { slot, generation } => slot.closed_failure(generation, failure, now),
            Ticket::Observe { slot, generation } => slot.observe_failure(generation, failure, now),
            Ticket::Probe(guard) => {
                if let Some((slot, generation)) = guard.disarm() {
                    slot.probe_failure(generation, failure, now);
                }
            }
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`](crate::CircuitBreaker).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Failed { error: Option<MissingExtension> },
        Called { #[pin] future: F, ticket: Ticket },
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn called(future: F, ticket: Ticket) -> Self {
        ResponseFuture {
            kind: Kind::Called { future, ticket },
        }
    }

    pub(crate) fn failed(error: MissingExtension) -> Self {
        ResponseFuture {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Failed { error } => Poll::Ready(Err(match error.take() {
                Some(error) => error.into(),
                None => "circuit breaker response future polled after completion".into(),
            })),
            KindProj::Called { future, ticket } => {
                let result = ready!(future.poll(cx));
                let ticket = mem::replace(ticket, Ticket::None);
                Poll::Ready(match result {
                    Ok(response) => Ok(ticket.on_response(response)),
                    Err(error) => {
                        let error = error.into();
                        ticket.on_error(&*error);
                        Err(error)
                    }
                })
            }
        }
    }
}
