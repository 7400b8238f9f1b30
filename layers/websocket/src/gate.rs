//! The gate of one request: the [`HandshakeGate`] it carries, or else the one the layer's
//! [`HandshakeGates`] give, looked up only when the request is about to open a connection (a
//! request served on a pooled connection never looks it up).

use std::sync::OnceLock;

use http::HeaderMap;
use wsfirst_core::{HandshakeGate, HandshakeGates, Route, WsFailure};

/// Where a request's gate comes from; see the [module docs](self).
pub(crate) struct RequestGate<'a> {
    carried: Option<&'a HandshakeGate>,
    gates: Option<&'a dyn HandshakeGates>,
    route: &'a Route,
    headers: &'a HeaderMap,
    found: OnceLock<Option<HandshakeGate>>,
}

impl<'a> RequestGate<'a> {
    pub(crate) fn new(
        carried: Option<&'a HandshakeGate>,
        gates: Option<&'a dyn HandshakeGates>,
        route: &'a Route,
        headers: &'a HeaderMap,
    ) -> Self {
        RequestGate {
            carried,
            gates,
            route,
            headers,
            found: OnceLock::new(),
        }
    }

    /// The gate, looked up once on first use.
    pub(crate) fn handshake_gate(&self) -> Option<&HandshakeGate> {
        self.carried.or_else(|| {
            self.found
                .get_or_init(|| self.gates?.gate(self.route, self.headers))
                .as_ref()
        })
    }

    /// Whether the request may open a new connection now (yes without a gate).
    pub(crate) fn may_open(&self) -> bool {
        self.handshake_gate().is_none_or(HandshakeGate::may_open)
    }

    /// Reports a failed handshake to the gate, if any; the failure as it travels on.
    pub(crate) fn report(&self, failure: WsFailure) -> WsFailure {
        match self.handshake_gate() {
            Some(gate) => gate.report(failure),
            None => failure,
        }
    }
}
