//! Future types
//!
//! [`ResponseFuture`] is the response future of [`CircuitBreaker`](crate::CircuitBreaker): the
//! inner future's, plus the outcome it reports to the request's key.

use std::{
    future::Future,
    mem,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use wsfirst_core::{BoxError, MissingExtension, Served, Transport, WsFailure, find_ws_failure};

use crate::{
    body::{BodyTracker, ResponseBody},
    cache::SlotRef,
};

/// What the response future must report, and to which key.
///
/// Kept to 16 bytes (a pointer, a generation and the tag in its padding) so that the response
/// future stays within what the compiler moves without calling `memcpy`.
#[derive(Debug)]
pub(crate) enum Ticket {
    /// Not a WebSocket attempt (already HTTP, or pinned), or reported already: nothing to learn.
    Spent,
    /// The request lacked an extension and never reached the inner service.
    Missing(&'static MissingExtension),
    /// A closed-state attempt.
    Closed { slot: SlotRef, generation: u32 },
    /// A strict request on an open or half-open key.
    Observe { slot: SlotRef, generation: u32 },
    /// A half-open probe. It must end in a verdict or give its slot back: the response future
    /// gives it back when it is dropped holding it.
    Probe { slot: SlotRef, generation: u32 },
}

impl Ticket {
    /// A probe's slot goes back (no verdict).
    #[cold]
    #[inline(never)]
    fn give_back(self) {
        if let Ticket::Probe { slot, generation } = self {
            slot.release_probe(generation);
        }
    }

    /// The error of a response future that has no inner future: the request was refused, or the
    /// future already completed (a bug in the caller, as with any future).
    #[cold]
    #[inline(never)]
    fn refusal(self) -> BoxError {
        match self {
            Ticket::Missing(error) => (*error).into(),
            _ => panic!("`ResponseFuture` polled after completion"),
        }
    }

    /// Learns from a response's extensions; returns what its body reports to, if anything.
    #[inline]
    fn on_response(self, extensions: &http::Extensions) -> Option<BodyTracker> {
        if let Ticket::Spent | Ticket::Missing(_) = self {
            return None;
        }
        let served = extensions.get::<Served>();
        let by_websocket = served.is_some_and(|s| s.transport() == Transport::WebSocket);
        match self {
            // The verdict waits for the end of the body: a mid-stream error is a failure.
            Ticket::Closed { slot, generation } if by_websocket => {
                Some(BodyTracker { slot, generation })
            }
            ticket => ticket.on_other_response(served, by_websocket),
        }
    }

    /// [`Ticket::on_response`] for everything but a closed-state WebSocket success.
    #[cold]
    #[inline(never)]
    fn on_other_response(self, served: Option<&Served>, by_websocket: bool) -> Option<BodyTracker> {
        let cause = served.and_then(Served::fallback_cause);
        match self {
            Ticket::Spent | Ticket::Missing(_) => None,
            Ticket::Closed { slot, generation } => {
                if let Some(failure) = cause {
                    slot.closed_failure(generation, failure, Instant::now());
                }
                None
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
            Ticket::Probe { slot, generation } => {
                if by_websocket {
                    slot.healthy(generation, Instant::now(), false)
                        .map(|generation| BodyTracker { slot, generation })
                } else {
                    match cause {
                        Some(failure) => slot.probe_failure(generation, failure, Instant::now()),
                        // No verdict: the slot goes back.
                        None => slot.release_probe(generation),
                    }
                    None
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    /// Learns from an error, given the [`WsFailure`] found in its source chain, if any.
    fn on_error(self, failure: Option<&WsFailure>) {
        match (self, failure) {
            (Ticket::Spent | Ticket::Missing(_), _) => {}
            // Not a WebSocket failure: no verdict, and a probe's slot goes back.
            (Ticket::Probe { slot, generation }, None) => slot.release_probe(generation),
            (_, None) => {}
            (Ticket::Closed { slot, generation }, Some(failure)) => {
                slot.closed_failure(generation, failure, Instant::now())
            }
            (Ticket::Observe { slot, generation }, Some(failure)) => {
                slot.observe_failure(generation, failure, Instant::now())
            }
            (Ticket::Probe { slot, generation }, Some(failure)) => {
                slot.probe_failure(generation, failure, Instant::now())
            }
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`](crate::CircuitBreaker).
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics with "`ResponseFuture` polled after
    /// completion".
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request was refused before reaching the inner service, or once the
        // inner future completed.
        #[pin]
        future: Option<F>,
        ticket: Ticket,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        #[inline]
        fn drop(this: Pin<&mut Self>) {
            // A probe dropped before its verdict (cancelled, or its inner future panicked)
            // gives its slot back, so the key can never stick in half-open.
            let ticket = this.project().ticket;
            if let Ticket::Probe { .. } = ticket {
                mem::replace(ticket, Ticket::Spent).give_back();
            }
        }
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

    // `always`: see `CircuitBreaker::call`.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(mem::replace(this.ticket, Ticket::Spent).refusal()));
        };
        let result = ready!(future.poll(cx));
        // Done: the inner future goes now rather than with this one, and polling again panics.
        this.future.set(None);
        Poll::Ready(match result {
            Ok(response) => {
                let ticket = mem::replace(this.ticket, Ticket::Spent);
                let tracker = ticket.on_response(response.extensions());
                Ok(response.map(|body| ResponseBody::new(body, tracker)))
            }
            Err(error) => {
                // The conversion and the search run the error's own code (`source()`): the
                // ticket stays in the future until they are done, so that a panic there still
                // gives a probe's slot back.
                let error = error.into();
                let failure = find_ws_failure(&*error);
                mem::replace(this.ticket, Ticket::Spent).on_error(failure);
                Err(error)
            }
        })
    }
}
