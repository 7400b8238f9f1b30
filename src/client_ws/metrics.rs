//! The metrics of client WebSocket connections (listed in the [module docs](super)); the
//! requests themselves are counted by the layers, as for `POST`.

use wsfirst_core::Route;

/// Why a client connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The client closed it or went away.
    Client,
    /// No message and no response for the idle timeout.
    Idle,
    /// No frame (not even a pong) for a ping interval after a ping.
    KeepAlive,
    /// The connection reached its lifetime cap.
    Lifetime,
    /// The client read too slowly: the send buffer overflowed.
    SlowReader,
    /// The client sent a message over the size limit.
    TooLarge,
    /// The gateway shut down.
    Shutdown,
}

impl CloseCause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseCause::Client => "client",
            CloseCause::Idle => "idle",
            CloseCause::KeepAlive => "keep_alive",
            CloseCause::Lifetime => "lifetime",
            CloseCause::SlowReader => "slow_reader",
            CloseCause::TooLarge => "too_large",
            CloseCause::Shutdown => "shutdown",
        }
    }
}

/// Counts one open connection in the gauge until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGauge {
    route: Route,
}

impl ConnectionGauge {
    pub(crate) fn open(route: &Route) -> Self {
        gauge(route).increment(1.0);
        Self {
            route: route.clone(),
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        gauge(&self.route).decrement(1.0);
    }
}

fn gauge(route: &Route) -> metrics::Gauge {
    metrics::gauge!(
        "wsfirst_client_ws_connections",
        "provider" => route.provider_shared(),
        "api" => route.api_shared(),
    )
}

pub(crate) fn response(route: &Route, transport: &'static str, reason: &'static str, ok: bool) {
    metrics::counter!(
        "wsfirst_client_ws_responses_total",
        "provider" => route.provider_shared(),
        "api" => route.api_shared(),
        "transport" => transport,
        "reason" => reason,
        "outcome" => if ok { "ok" } else { "error" },
    )
    .increment(1);
}

pub(crate) fn closed(route: &Route, cause: CloseCause) {
    metrics::counter!(
        "wsfirst_client_ws_closed_total",
        "provider" => route.provider_shared(),
        "api" => route.api_shared(),
        "cause" => cause.as_str(),
    )
    .increment(1);
}
