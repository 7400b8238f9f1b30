//! Clients in WebSocket mode: a route of the Responses API also accepts the WebSocket upgrade
//! of OpenAI's WebSocket mode on its path (`GET`, what the official Python SDK's
//! `client.responses.connect()` dials: `ws://<base_url>/responses`), and serves each
//! `response.create` message through the route's own stack, as a streaming `POST`.
//!
//! - **Same stack.** Each message becomes the body of a streaming `POST` to the same path, with
//!   the upgrade request's headers (its `Authorization` included); the route's
//!   [`RouteService`](crate::RouteService) serves it: eligibility, breaker, fallback, the
//!   upstream's WebSocket or HTTP. The route's header policy decides what reaches the upstream,
//!   as for `POST`.
//! - **Same messages.** Every event of the answer goes back as one text message, the event's
//!   JSON text unchanged, whether the upstream's WebSocket or its HTTP stream served it. How it
//!   travelled shows in the metrics and logs only.
//! - **Lanes.** A `response.create` may name a lane (`stream_id`, 1 to 256 of `[A-Za-z0-9_.-]`,
//!   the `openai` SDK's rule; another value gets a 400 error event with `param: "stream_id"`):
//!   the responses of one lane are served one after the other, in order (FIFO), lanes in
//!   parallel, at most [`max_lanes`](ClientWsConfigBuilder::max_lanes) lanes with work at once
//!   (default 8; a request opening another gets a 400 error event, code `too_many_lanes`);
//!   messages without `stream_id` share the default lane. The gateway serves each lane's
//!   response through the stack like any other, so `stream_id` is removed from the request
//!   (the upstream, WebSocket or HTTP, never sees it) and put back at the end of every event
//!   and error event of the lane. Requests waiting, all lanes together, are bounded by
//!   [`max_queued`](ClientWsConfigBuilder::max_queued).
//! - **Every client event has an answer.** `response.create` as above; `response.processed`
//!   (Codex's acknowledgement, sent after a response ended) is acknowledged silently (the
//!   upstream connection that produced the response is back in the pool, which the session
//!   does not own); `response.steer` is handed to the upstream WebSocket connection that runs
//!   the target (its answer's [`Steering`](wsfirst_websocket::Steering) handle), whose
//!   `response.steer.*` events and the steered response's successor come back on the target's
//!   lane; a target running over HTTP gets `response.steer.failed` at once
//!   (`steering_not_supported`, on its lane), an unknown one `response_not_found`, both with the
//!   input returned; a warm-up (`"generate": false`) is marked
//!   [`WebSocketOnly`](wsfirst_core::WebSocketOnly) and never sent over HTTP: a 400 error event
//!   (`websocket_required`) on a route in mode `http`, a 503 (`websocket_unavailable`) while
//!   the key is pinned or when its WebSocket attempt failed; any other message gets a 400 error
//!   event.
//! - **Conversations.** A request with a `previous_response_id` follows the upstream connection
//!   that produced that response (the pool's conversation rules), so `store: false` chains work
//!   while the upstream's WebSocket serves them. When the route is pinned to HTTP, a
//!   `store: false` chain cannot continue: the client gets the upstream's own
//!   `previous_response_not_found` error event (status 400), as it would from the API after a
//!   reconnect.
//! - **Errors** are the WebSocket mode's `error` events with their `status`:
//!   `{"type":"error","status":N,"error":{"type","code","message","param","headers"},"headers":{...}}`
//!   (the headers inside `error`, where the SDK reads them, and at the top level, where Codex
//!   reads them).
//!   A client error of the upstream (4xx, 429 with its rate-limit headers) is passed as the
//!   upstream sent it; a failure before the first event is replayed over HTTP under the same
//!   rules as `POST`; a transport failure the client must see is an error event with the
//!   gateway's status (`502`, `504`) and code (`websocket_failed`, `upstream_failed`, ...); after
//!   output, the error event carries the next `sequence_number` (status 500 and type
//!   `server_error` when the HTTP stream's error event had none). The connection stays usable
//!   for the next response.
//! - **Limits** ([`ClientWsConfig`]): message size (`1009`), idle time (`1000`), ping keep-alive
//!   (`1011`), a lifetime cap of 60 minutes with the API's reconnect error
//!   `websocket_connection_limit_reached` (then `1001`), a send buffer for clients that read
//!   slowly (`1008`), a cap on the connections open per route (`503` to further upgrades: an
//!   upgraded connection leaves [`serve`](crate::serve::serve)'s own connection limit), and
//!   graceful shutdown (`1001`, [`ClientConnections::close`]).
//!
//! Metrics: see [`metrics`](self#metrics) below; the requests are also counted by the layers
//! exactly as `POST` requests are.
//!
//! # Metrics
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `wsfirst_client_ws_connections` | gauge | `provider`, `api`: client WebSocket connections open |
//! | `wsfirst_client_ws_responses_total` | counter | `provider`, `api`, `transport`, `reason` (as `x-wsfirst-reason`; `none` and `error` when the stack failed before serving), `outcome` (`ok`, or `error`: the client got an error event) |
//! | `wsfirst_client_ws_closed_total` | counter | `provider`, `api`, `cause`: `client`, `idle`, `keep_alive`, `lifetime`, `slow_reader`, `too_large`, `shutdown` |
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::{Wsfirst, client_ws::ClientWsConfig, core::Route};
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build();
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let service = wsfirst.route(route);
//! let clients = wsfirst.client_websocket(&service, ClientWsConfig::default());
//! let app = Router::new().route("/v1/responses", post_service(service).get_service(clients));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
//! wsfirst::serve::serve(listener, app, Default::default(), shutdown).await?;
//! wsfirst.shutdown().await; // closes client websockets (1001), then the pool
//! # Ok(())
//! # }
//! ```

mod config;
mod connections;
mod convert;
mod held;
mod inbox;
mod lanes;
mod metrics;
mod outbox;
mod pump;
mod session;
mod upgrade;

pub use config::{ClientWsConfig, ClientWsConfigBuilder};
pub use connections::ClientConnections;
pub use upgrade::ClientWebSocket;
