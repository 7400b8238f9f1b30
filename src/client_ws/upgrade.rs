//! [`ClientWebSocket`]: the service of a route's `GET` that accepts a client's WebSocket
//! upgrade (RFC 6455 §4.2) and hands the connection to a [session](super::session).

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};
use tower_service::Service;

use super::{
    ClientConnections, ClientWsConfig,
    inbox::Inbox,
    session::{Session, request_headers},
};
use wsfirst_fallback::BodyBudget;

use crate::{RouteService, guard::AllowedOrigins};

/// The `GET` service of a route that accepts client WebSocket connections in the Responses
/// API's WebSocket mode: mount it next to the route's `POST` service with
/// [`MethodRouter::get_service`](axum::routing::MethodRouter::get_service) (see the
/// [module docs](super) for an example). Each `response.create` message of a connection is
/// served through the [`RouteService`] as a streaming `POST` would be.
///
/// The server must serve HTTP/1.1 upgrades ([`serve`](crate::serve::serve) and `axum::serve`
/// do). A request that is not a valid upgrade is answered `400` (`426` for a WebSocket version
/// other than 13), and `503` once [`ClientConnections::close`] was called or while
/// [`max_connections`](super::ClientWsConfigBuilder::max_connections) are open. Cloning shares
/// the count of open connections.
///
/// **Browsers.** An upgrade whose `Origin` is another site's is refused with `403` (code
/// `origin_not_allowed`): browsers let any page open a WebSocket to any address (no CORS), and
/// the connection would spend the upstream credential the gateway holds. Upgrades without
/// `Origin` (SDKs, command-line clients) and from the gateway's own origin pass; a browser app
/// of another origin that is meant to use the gateway is listed with
/// [`allow_origins`](Self::allow_origins).
///
/// **Client tokens.** On a route with [`RouteOptions::client_tokens`](crate::RouteOptions::client_tokens),
/// an upgrade without `Authorization: Bearer <token>` for one of them is refused with `401`
/// before the upgrade.
///
/// **Headers that route a session.** The upgrade request's headers go with the request of
/// every message, so the route's [header policy](crate::core::headers::HeaderPolicy) decides
/// what reaches the upstream: Codex's session headers (`session-id`, `x-codex-turn-metadata`...)
/// with each request served over HTTP, never on a pooled upstream handshake. The `101` answers
/// at once, before any upstream connection is chosen (each message may be served by another
/// pooled connection, or over HTTP), so it carries no header of an upstream's handshake answer:
/// what Codex reads there (`x-codex-turn-state`, `x-models-etag`, `x-reasoning-included`,
/// `openai-model`) reaches clients over `POST` only. Waiting for an upstream handshake
/// (a preconnect) would add that handshake to every upgrade, open an upstream connection for
/// clients that never send, and have nothing to give when the route serves over HTTP; the
/// conversation's affinity does not need the token (a continuing request follows the
/// connection that produced its previous response). An upgrade that brings a routing token
/// back (`x-codex-turn-state`, as Codex does when it reconnects within a turn) is logged at
/// `INFO`: the token goes to the upstream only with requests served over HTTP.
#[derive(Clone, Debug)]
pub struct ClientWebSocket {
    service: RouteService,
    config: ClientWsConfig,
    connections: ClientConnections,
    origins: AllowedOrigins,
    budget: BodyBudget,
    /// The connections open through this service and its clones.
    open: Arc<AtomicUsize>,
}

/// Codex's sticky routing token (see [`RESPONSES_SESSION_HEADERS`](crate::core::headers::RESPONSES_SESSION_HEADERS)).
const TURN_STATE: &str = "x-codex-turn-state";

/// One connection of a [`ClientWebSocket`], counted until dropped.
#[derive(Debug)]
struct RouteSlot(Arc<AtomicUsize>);

impl Drop for RouteSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientWebSocket {
    /// Accepts connections for `service` with the limits of `config`, counted and shut down by
    /// `connections`.
    pub fn new(
        service: RouteService,
        config: ClientWsConfig,
        connections: ClientConnections,
    ) -> Self {
        Self {
            service,
            config,
            connections,
            origins: AllowedOrigins::default(),
            budget: BodyBudget::process(),
            open: Arc::default(),
        }
    }

    /// Lets pages of these origins open connections too (none by default: only requests
    /// without `Origin` and from the gateway's own origin are accepted).
    ///
    /// ```
    /// # let wsfirst = wsfirst::Wsfirst::builder().build();
    /// # let route = wsfirst::core::Route::builder("p", "a").http_url("http://127.0.0.1:9/").build().unwrap();
    /// # let service = wsfirst.route(route);
    /// use wsfirst::{client_ws::ClientWsConfig, guard::AllowedOrigins};
    ///
    /// let clients = wsfirst
    ///     .client_websocket(&service, ClientWsConfig::default())
    ///     .allow_origins(AllowedOrigins::new(["https://chat.example.com"]));
    /// # let _ = clients;
    /// ```
    pub fn allow_origins(mut self, origins: AllowedOrigins) -> Self {
        self.origins = origins;
        self
    }

    /// Holds queued messages' bytes from `budget` instead of the
    /// [process's](BodyBudget::process) ([`Wsfirst::client_websocket`](crate::Wsfirst::client_websocket)
    /// gives the one of its [`body_budget`](crate::WsfirstBuilder::body_budget), shared with
    /// the routes' fallback layers); a message
    /// it has no room for is answered with a `503` error event (code `body_budget_exhausted`).
    pub fn with_budget(mut self, budget: BodyBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The limits of the connections.
    pub fn config(&self) -> &ClientWsConfig {
        &self.config
    }

    /// The largest message a client may send: the configuration's
    /// [`max_message_size`](ClientWsConfig::max_message_size), at most the route's
    /// [`body_limit`](RouteService::body_limit), so that the WebSocket reader never holds more
    /// of one message than the route would take (a larger one closes the connection with
    /// `1009`).
    pub fn max_message_size(&self) -> usize {
        self.config
            .max_message_size()
            .min(self.service.body_limit())
    }

    /// The budget queued messages are held from.
    pub fn budget(&self) -> &BodyBudget {
        &self.budget
    }

    fn accept<B>(&self, mut request: Request<B>) -> Response<axum::body::Body> {
        if self.connections.is_closing() {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_shutting_down",
                "the gateway is shutting down",
            );
        }
        if !self.origins.allows(request.headers()) {
            tracing::debug!(
                origin = ?request.headers().get(header::ORIGIN),
                "client websocket upgrade from another site refused"
            );
            return refusal(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "websocket connections from this origin are not allowed",
            );
        }
        if !self.service.client_token_check().allows(request.headers()) {
            // Before the upgrade: the session's requests go through the same check.
            return crate::guard::unauthorized();
        }
        let key = match check_upgrade(request.headers()) {
            Ok(key) => key,
            Err(refusal) => return refusal.into_response(),
        };
        if request.headers().contains_key(TURN_STATE) {
            // A client resuming a turn on a new connection: its sticky routing token cannot
            // pick a pooled upstream connection (see the type docs).
            let route = self.service.route();
            tracing::info!(
                provider = route.provider(),
                api = route.api(),
                "client websocket brings back x-codex-turn-state: it reaches the upstream only \
                 with requests served over http; the conversation continues by \
                 previous_response_id"
            );
        }
        let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return refusal(
                StatusCode::BAD_REQUEST,
                "upgrade_unavailable",
                "this connection cannot be upgraded (websocket upgrades need HTTP/1.1)",
            );
        };
        let session = Session {
            service: self.service.clone(),
            config: self.config,
            uri: request.uri().clone(),
            headers: request_headers(request.headers()),
            closing: self.connections.closing(),
            inbox: Inbox::new(self.config.max_queued_bytes(), self.budget.clone()),
        };
        let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(wsfirst_websocket::READ_BUFFER_SIZE)
            .max_message_size(Some(self.max_message_size()))
            .max_frame_size(Some(self.max_message_size()));
        let max = self.config.max_connections();
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .is_err()
        {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                "too many websocket connections are open on this route: try again later",
            );
        }
        let slot = RouteSlot(Arc::clone(&self.open));
        let guard = self.connections.register();
        let route = self.service.route();
        let span = tracing::debug_span!(
            "client_websocket",
            provider = route.provider(),
            api = route.api()
        );
        let session = async move {
            let _guards = (guard, slot);
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(ws_config),
                    )
                    .await;
                    session.run(socket).await;
                }
                Err(error) => tracing::debug!(%error, "client websocket upgrade failed"),
            }
        };
        tokio::spawn(tracing::Instrument::instrument(session, span));
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, key);
        response
    }
}

/// Why an upgrade request is refused: the status, and the code and message of the HTTP
/// endpoint's error body.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl Refusal {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    fn into_response(self) -> Response<axum::body::Body> {
        let mut response = refusal(self.status, self.code, self.message);
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Checks the upgrade request's headers; gives the `Sec-WebSocket-Accept` value.
fn check_upgrade(headers: &HeaderMap) -> Result<HeaderValue, Refusal> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "not_a_websocket_upgrade",
            "this path takes POST requests and websocket upgrades (Connection: upgrade, Upgrade: websocket)",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refusal::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported_websocket_version",
            "only websocket version 13 is supported",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing_websocket_key",
            "the upgrade request has no Sec-WebSocket-Key",
        ));
    };
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_websocket_key",
            "the Sec-WebSocket-Key is not valid",
        )
    })
}

/// A refused upgrade: `status` and the HTTP endpoint's error body.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response<axum::body::Body> {
    crate::guard::refusal(status, code, message)
}

impl<B> Service<Request<B>> for ClientWebSocket {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.accept(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers
    }

    #[test]
    fn a_valid_upgrade_gets_the_rfc_accept_key() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            check_upgrade(&upgrade()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn bad_upgrades_are_refused_with_a_status() {
        let mut headers = upgrade();
        headers.remove(header::UPGRADE);
        assert_eq!(
            check_upgrade(&headers).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let mut headers = upgrade();
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let response = check_upgrade(&headers).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        let mut headers = upgrade();
        headers.remove(header::SEC_WEBSOCKET_KEY);
        assert_eq!(
            check_upgrade(&headers).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
