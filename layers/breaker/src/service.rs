//! The circuit breaker service: admission on the request's key, and the response future that
//! reports the outcome.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;
use wsfirst_core::{BoxError, HttpReason, Intent, MissingExtension, Route, TransportMode};

use crate::{
    BreakerRegistry, ResponseBody,
    cache::{Cached, KeyCache, SlotRef},
    future::{ResponseFuture, Ticket},
    gate::gate,
    slot::Admission,
};

/// A per-key circuit breaker in front of the WebSocket path; see the [crate docs](crate).
///
/// Requests whose [`Intent`] is already HTTP pass through untouched and uncounted. For a
/// WebSocket request it looks up the breaker of `route.breaker_key_for(request.headers())`:
/// closed lets it through; open rewrites its intent to `Intent::Http(HttpReason::Pinned { until })`
/// (it never rejects); half-open lets a bounded number of probes through and pins the others with
/// the deadline that ended the pin (see the [crate docs](crate)). Strict routes
/// ([`TransportMode::WebSocket`]) are never rerouted, but their outcomes are recorded: on a
/// closed key like any other request; on an open or half-open key a success closes the key
/// (unless it was pinned by hand) and a failure is kept as the last failure without extending the
/// pin.
///
/// The service carries no settings: each key has the ones its [`BreakerRegistry`] gives it.
///
/// The WebSocket layer tells it of a failed handshake the moment it happens (the key counts it
/// then, and not again when the HTTP answer that replaced it comes back), and asks it before
/// opening a connection, so that a request admitted while the key was closed opens none once
/// the key is no longer closed (probes and strict requests always may). A dead endpoint so costs
/// at most the threshold's number of handshakes however many requests are in flight. A request
/// admitted on a closed key carries nothing for it: the WebSocket layer asks the registry (its
/// [`HandshakeGates`](wsfirst_core::HandshakeGates), handed to the layer when the stack is built)
/// only when it is about to open a connection. A probe and a strict request on a key that is not
/// closed carry a [`HandshakeGate`](wsfirst_core::HandshakeGate) in their extensions (a 24-byte
/// box), which says how they were admitted.
///
/// The service remembers the last key it looked up together with a keyed hash of the credential
/// header's value it came from (with a random seed of the service's, never the value: the
/// service outlives requests and must not keep credentials), so that a request with the same
/// route and credential neither computes the credential's fingerprint nor looks up the registry:
/// it compares the route's key by pointer and the hash of the request's header value with the
/// remembered one. Each clone remembers its own last key, and each thread the last key any clone
/// of the service looked up on it, so that clones made for a single request (as axum's `Router`
/// does) skip the registry too.
///
/// A request on a closed key whose key the service remembers takes no lock and writes no memory
/// that another thread writes: its hold on the key counts the running thread's copy of the
/// remembered key, and the key's state is only read (a success changes nothing there unless the
/// key has failures to forget or a failure-rate window to fill). Cloning the service writes only
/// memory of the cloning thread too, from the second clone made on a thread on: clones hold the
/// registry through a copy that each thread makes once and the original service keeps.
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    cache: KeyCache,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner`, with the breakers (and their settings) of `registry`.
    pub fn new(inner: S, registry: BreakerRegistry) -> Self {
        CircuitBreaker {
            inner,
            cache: KeyCache::new(registry),
        }
    }

    wsfirst_core::define_inner_service_accessors!();

    /// The registry of breakers.
    pub fn registry(&self) -> &BreakerRegistry {
        self.cache.registry()
    }

    /// The keys this service remembers (tests).
    #[cfg(test)]
    pub(crate) fn cache(&self) -> &KeyCache {
        &self.cache
    }
}

/// The value of the route's credential header in `request`, if the route reads one.
#[inline]
fn credential_value<'a, B>(
    route: &Route,
    request: &'a Request<B>,
) -> Option<&'a http::HeaderValue> {
    route
        .credential_header()
        .and_then(|name| request.headers().get(name))
}

/// The ticket of a request on a key that is not closed, or the deadline of its pin.
#[cold]
#[inline(never)]
fn not_closed(
    cached: &Arc<Cached>,
    route: &Route,
    admission: Admission,
) -> Result<Ticket, Option<Instant>> {
    let key = &cached.key;
    match admission {
        Admission::Closed { generation } => Ok(Ticket::Closed {
            slot: SlotRef::new(cached),
            generation,
        }),
        Admission::Probe { generation } => {
            tracing::debug!(key = %key, "probing the websocket path of a half-open breaker");
            Ok(Ticket::Probe {
                slot: SlotRef::new(cached),
                generation,
            })
        }
        Admission::Observe { generation } => Ok(Ticket::Observe {
            slot: SlotRef::new(cached),
            generation,
        }),
        Admission::Pinned { until } => {
            tracing::debug!(key = %key, "request routed around an open breaker to http");
            metrics::counter!(
                "wsfirst_breaker_pinned_requests_total",
                // The route's shared copy: no allocation per pinned request.
                "provider" => route.provider_shared()
            )
            .increment(1);
            Err(until)
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CircuitBreaker<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // `always`: with the closed-state path inlined into the caller, the `closed_overhead`
    // benchmark measured about 10 ns less per call than with `#[inline]` (which LLVM declined).
    #[inline(always)]
    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The closed-state path: a WebSocket request whose key is the remembered one and closed
        // (one load). Everything else is out of line, so that this stays small.
        let extensions = request.extensions();
        match extensions.get::<Intent>() {
            Some(Intent::WebSocket) => {}
            Some(Intent::Http(_)) => return ResponseFuture::passthrough(self.inner.call(request)),
            None => return ResponseFuture::failed(&MissingExtension::INTENT),
        }
        if let (Some(route), Some(cached)) = (extensions.get::<Route>(), self.cache.remembered()) {
            // The credential is compared by a keyed hash (the cache never keeps the value),
            // computed only when the route is the remembered one.
            if cached.same_route(route.breaker_key())
                && cached.same_credential(
                    self.cache
                        .hasher()
                        .digest(credential_value(route, &request)),
                )
            {
                if let Some(generation) = cached.slot.closed_generation() {
                    cached.slot.touch();
                    let ticket = Ticket::Closed {
                        slot: SlotRef::new(cached),
                        generation,
                    };
                    // No gate in the request: the WebSocket layer asks the registry's
                    // `HandshakeGates` if it is about to open a connection (see `gate`).
                    return ResponseFuture::tracked(self.inner.call(request), ticket);
                }
            }
        }
        self.call_websocket(request)
    }
}

impl<S> CircuitBreaker<S> {
    /// The rest of [`Service::call`] for a WebSocket request: a missing route, a key that is not
    /// the remembered one, or one that is not closed.
    #[inline(never)]
    fn call_websocket<ReqB, ResB>(
        &mut self,
        mut request: Request<ReqB>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        let Some(route) = request.extensions().get::<Route>() else {
            return ResponseFuture::failed(&MissingExtension::ROUTE);
        };
        let strict = route.mode() == TransportMode::WebSocket;
        let cached = self.cache.get(route, request.headers());
        cached.slot.touch();
        let ticket = match cached.slot.admit(strict) {
            Admission::Closed { generation } => Ticket::Closed {
                slot: SlotRef::new(cached),
                generation,
            },
            admission => match not_closed(cached, route, admission) {
                Ok(ticket) => ticket,
                Err(until) => {
                    request
                        .extensions_mut()
                        .insert(Intent::Http(HttpReason::Pinned { until }));
                    return ResponseFuture::passthrough(self.inner.call(request));
                }
            },
        };
        if let Some(gate) = gate(cached, &ticket, strict) {
            request.extensions_mut().insert(gate);
        }
        ResponseFuture::tracked(self.inner.call(request), ticket)
    }
}
