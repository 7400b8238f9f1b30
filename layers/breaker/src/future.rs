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
    /// Not a WebSocket attempt (already HTTP, or pinned), or reported already: nothing to learn.
    Spent,
    /// The request lacked an extension and never reached the inner service.
    Missing(&'static MissingExtension),
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
        let served = response.extensions().get::<Served>();
        let by_websocket = served.is_some_and(|s| s.transport() == Transport::WebSocket);
        let cause = served.and_then(Served::fallback_cause);
        let tracker = match self {
            Ticket::Spent | Ticket::Missing(_) => None,
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
            Ticket::Spent | Ticket::Missing(_) => {}
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
        // `None` when the request was refused before reaching the inner service.
        #[pin]
        future: Option<F>,
        ticket: Ticket,
    }
}

impl<F> ResponseFuture<F> {
    /// A request that is not a WebSocket attempt: its response body is not tracked.
    #[inline]
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            future: Some(future),
            ticket: Ticket::Spent,
        }
    }

    /// A WebSocket attempt whose outcome goes to `ticket`.
    #[inline]
    pub(crate) fn tracked(future: F, ticket: Ticket) -> Self {
        ResponseFuture {
            future: Some(future),
            ticket,
        }
    }

    pub(crate) fn failed(error: &'static MissingExtension) -> Self {
        ResponseFuture {
            future: None,
            ticket: Ticket::Missing(error),
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
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Ready(Err(match mem::replace(this.ticket, Ticket::Spent) {
                Ticket::Missing(error) => (*error).into(),
                _ => "circuit breaker response future polled after completion".into(),
            }));
        };
        let result = ready!(future.poll(cx));
        if let Ticket::Spent = this.ticket {
            // Not a WebSocket attempt: nothing to learn.
            return Poll::Ready(match result {
                Ok(response) => Ok(response.map(ResponseBody::untracked)),
                Err(error) => Err(error.into()),
            });
        }
        let ticket = mem::replace(this.ticket, Ticket::Spent);
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
