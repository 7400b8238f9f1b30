//! The header names the policy works with: what never crosses a proxy (hop-by-hop, the
//! WebSocket handshake's own), what travels with a body, and the Responses API's lists (what it
//! reads, what routes a session, what an upstream's handshake answer gives back).

use http::{HeaderName, header};

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus `upgrade`.
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers that the WebSocket client writes itself during the handshake (RFC 6455 §4.1), plus
/// `host` and `content-length`, which it derives from the URL and the (empty) upgrade request
/// (and which the HTTP client derives from the URL and the body).
pub const WEBSOCKET_HANDSHAKE: [HeaderName; 7] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_PROTOCOL,
];

/// The request headers that travel with an HTTP body: `content-type` and `content-encoding`
/// (how the upstream reads the body) and `accept` (the answer's format). A [`HeaderPolicy`](super::HeaderPolicy)
/// forwards them to the HTTP upstream whatever its list says; never to the WebSocket
/// handshake, which has no body (the codec decides the messages' format), unless the policy
/// lists them.
pub const BODY_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT,
];

/// The request headers the OpenAI Responses API reads, on its WebSocket handshake and over
/// HTTP alike: `authorization`, `openai-beta`, `openai-organization` and `openai-project`. The
/// forward list of [`HeaderPolicy::responses`](super::HeaderPolicy::responses), the default of every
/// [`Route`](crate::Route).
pub static RESPONSES_FORWARD_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
];

/// The request headers that route a client's session (Codex's, as its 0.171 release sends them
/// on every request and on its WebSocket handshake): `session-id` and `session_id` (the
/// session; older releases used the underscore), `thread-id`, `x-client-request-id` (the
/// thread again), `originator` (which client), and Codex's `x-codex-turn-state` (the sticky
/// routing token an upstream gave in an earlier answer, sent back while the turn lasts),
/// `x-codex-turn-metadata` (the turn's ids, as JSON), `x-codex-window-id`,
/// `x-codex-beta-features` and `x-codex-installation-id`. The session list of
/// [`HeaderPolicy::responses`](super::HeaderPolicy::responses).
///
/// They describe one request of one session, so they are forwarded with each HTTP request and
/// never on a pooled WebSocket's handshake: that connection serves other sessions after this
/// one, and its handshake headers are part of its pool key, so per-session (and, for
/// `x-codex-turn-metadata`, per-turn) values would split the pool into one connection per
/// session or per turn and lose the conversations that the pool keeps on their connection.
/// Over the WebSocket the same ids still reach the upstream in the request body, where Codex
/// puts them too (`prompt_cache_key` and `client_metadata`).
pub static RESPONSES_SESSION_HEADERS: [HeaderName; 10] = [
    HeaderName::from_static("session-id"),
    HeaderName::from_static("session_id"),
    HeaderName::from_static("thread-id"),
    HeaderName::from_static("x-client-request-id"),
    HeaderName::from_static("originator"),
    HeaderName::from_static("x-codex-turn-state"),
    HeaderName::from_static("x-codex-turn-metadata"),
    HeaderName::from_static("x-codex-window-id"),
    HeaderName::from_static("x-codex-beta-features"),
    HeaderName::from_static("x-codex-installation-id"),
];

/// The headers of an upstream's WebSocket handshake answer that reach the client on the
/// response of each request served on that connection, as an HTTP upstream's response headers
/// do: those Codex reads from the handshake (`codex-rs/codex-api/src/endpoint/responses_websocket.rs`):
/// `x-codex-turn-state` (the sticky routing token, see [`RESPONSES_SESSION_HEADERS`]),
/// `x-models-etag` (the model list's version), `x-reasoning-included` and `openai-model` (the
/// model the server chose). The answer list of [`HeaderPolicy::responses`](super::HeaderPolicy::responses). Nothing else of a
/// handshake's answer is passed on: it describes the connection, not the response.
pub static RESPONSES_ANSWER_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-codex-turn-state"),
    HeaderName::from_static("x-models-etag"),
    HeaderName::from_static("x-reasoning-included"),
    HeaderName::from_static("openai-model"),
];

/// The Responses API's headers whose values are comma-separated lists of flags: `openai-beta`.
/// A route's static `OpenAI-Beta` value (such as `responses_websockets=2026-02-06`) is added to
/// the client's own flags, so a client that asks for other betas keeps them.
pub static RESPONSES_LIST_HEADERS: [HeaderName; 1] = [HeaderName::from_static("openai-beta")];

/// Whether `name` is a hop-by-hop header (see [`HOP_BY_HOP`]).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether `name` may neither be forwarded to nor configured on an upstream request: a
/// hop-by-hop header or one of the handshake's own (see [`WEBSOCKET_HANDSHAKE`]).
pub fn is_reserved_for_websocket(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || WEBSOCKET_HANDSHAKE.contains(name)
}
