//! [`HandshakeGate`]: how a circuit breaker in front hears of a failed handshake at once, and
//! [`HandshakeGates`]: where the WebSocket layer finds the gate of a request that carries none.

use std::{fmt, sync::Arc};

use http::HeaderMap;

use crate::{Route, WsFailure};

/// The side of a [`HandshakeGate`] that decides and counts: implemented by a circuit breaker
/// for the key of a request. The `token` is the one the gate was made with (what the
/// implementer needs to tell its requests apart, such as how it admitted the request).
///
/// Both methods are called while a request waits for a connection: they must not block for
/// long. [`may_open`](HandshakeObserver::may_open) is called under the connection pool's lock.
pub trait HandshakeObserver: Send + Sync + fmt::Debug {
    /// Whether the request may open a new connection (start a handshake) now.
    fn may_open(&self, token: u64) -> bool;

    /// A handshake the request started failed with `failure` (in [`Phase::Connect`] or
    /// [`Phase::Handshake`](crate::Phase::Handshake)). Returns whether the observer took it:
    /// then the failure travels on marked [`shared`](WsFailure::shared), not to be counted
    /// again.
    ///
    /// [`Phase::Connect`]: crate::Phase::Connect
    fn failed(&self, token: u64, failure: &WsFailure) -> bool;
}

/// A request extension through which the WebSocket layer asks before it opens a connection for
/// the request, and reports a failed handshake at once.
///
/// A breaker that learns of a refused handshake only from the response would learn of it only
/// when the HTTP answer that replaced it is done; meanwhile other requests, admitted while the
/// key still looked healthy, would open handshakes of their own against the same dead
/// endpoint. With a gate in the request's extensions, the WebSocket layer asks it before it
/// opens a connection ([`HandshakeGate::may_open`]) and reports a failed one at once
/// ([`HandshakeGate::failed`]), marking the failure [`shared`](WsFailure::shared) when the gate
/// took it, so that nobody counts it again on the way back.
///
/// # Example
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use wsfirst_core::{FailureKind, HandshakeGate, HandshakeObserver, Phase, WsFailure};
///
/// /// Allows handshakes until two have failed.
/// #[derive(Debug, Default)]
/// struct Budget(AtomicU32);
///
/// impl HandshakeObserver for Budget {
///     fn may_open(&self, _token: u64) -> bool {
///         self.0.load(Ordering::Acquire) < 2
///     }
///     fn failed(&self, _token: u64, _failure: &WsFailure) -> bool {
///         self.0.fetch_add(1, Ordering::AcqRel);
///         true
///     }
/// }
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(HandshakeGate::new(Arc::new(Budget::default()), 0));
///
/// // What the WebSocket layer does:
/// let gate = request.extensions().get::<HandshakeGate>().unwrap();
/// let refused = WsFailure::new(Phase::Handshake, FailureKind::Dns("no such host".into()));
/// for _ in 0..2 {
///     assert!(gate.may_open());
///     assert!(gate.failed(&refused));
/// }
/// assert!(!gate.may_open());
/// ```
///
/// Cloning it shares the observer. A request without one asks the layer's [`HandshakeGates`], if
/// it was given some; without either it opens connections as it needs them and its failures
/// travel unreported.
#[derive(Clone, Debug)]
pub struct HandshakeGate {
    observer: Arc<dyn HandshakeObserver>,
    token: u64,
}

impl HandshakeGate {
    /// A gate that asks `observer`, with `token`.
    pub fn new(observer: Arc<dyn HandshakeObserver>, token: u64) -> Self {
        HandshakeGate { observer, token }
    }

    /// Whether the request may open a new connection now.
    #[inline]
    pub fn may_open(&self) -> bool {
        self.observer.may_open(self.token)
    }

    /// Reports a failed handshake; returns whether the observer took it (see
    /// [`HandshakeObserver::failed`]).
    pub fn failed(&self, failure: &WsFailure) -> bool {
        self.observer.failed(self.token, failure)
    }

    /// Reports `failure` and returns it as it travels on: [`shared`](WsFailure::shared) if the
    /// observer took it.
    pub fn report(&self, failure: WsFailure) -> WsFailure {
        if self.failed(&failure) {
            failure.shared()
        } else {
            failure
        }
    }
}

/// Gates found when they are needed rather than carried by every request: handed to the
/// WebSocket layer when the stack is built (a circuit breaker's registry implements it), and asked
/// only for a request about to open a connection that carries no [`HandshakeGate`] of its own.
///
/// A request served on a pooled connection so costs nothing: a breaker in front puts a gate in
/// the extensions only of the requests whose admission the registry cannot tell afterwards (a
/// probe of a half-open key, a strict request on an open one); a request admitted on a closed
/// key gets its gate from here, for its key as it is when the connection is about to be opened.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use http::HeaderMap;
/// use wsfirst_core::{HandshakeGate, HandshakeGates, HandshakeObserver, Route, WsFailure};
///
/// /// Refuses every handshake of every key.
/// #[derive(Debug)]
/// struct Never;
///
/// impl HandshakeObserver for Never {
///     fn may_open(&self, _token: u64) -> bool {
///         false
///     }
///     fn failed(&self, _token: u64, _failure: &WsFailure) -> bool {
///         false
///     }
/// }
///
/// impl HandshakeGates for Never {
///     fn gate(&self, _route: &Route, _headers: &HeaderMap) -> Option<HandshakeGate> {
///         Some(HandshakeGate::new(Arc::new(Never), 0))
///     }
/// }
///
/// let route = Route::builder("openai", "responses").http_url("http://x").build().unwrap();
/// let gate = Never.gate(&route, &HeaderMap::new()).unwrap();
/// assert!(!gate.may_open());
/// ```
pub trait HandshakeGates: Send + Sync + fmt::Debug {
    /// The gate of a request on `route` with `headers` that is about to open a connection;
    /// `None` when nothing watches its key (it opens as it needs and nobody hears of its
    /// failures before its answer).
    fn gate(&self, route: &Route, headers: &HeaderMap) -> Option<HandshakeGate>;
}
