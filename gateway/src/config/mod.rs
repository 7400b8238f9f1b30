//! Route and eligibility configuration from TOML, validated, with errors that name the field.
//!
//! [`Config::from_toml_str`] (or [`Config::from_path`]) parses and validates a whole file; every
//! invalid value is reported with its path, such as
//! `routes[1].breaker.open_duration: invalid duration "3x"`. Unknown fields are errors. The types are
//! plain data: fields left out are `None`, and the layers' own defaults apply to them.
//! [`RouteConfig::to_route`] builds the [`Route`](wsfirst::core::Route) extension of a route and
//! [`EligibilityConfig::to_table`] the [`EligibilityTable`](wsfirst::eligibility::EligibilityTable).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_gateway::config::{Config, ReplayConfig};
//!
//! let config = Config::from_toml_str(r#"
//!     listen = "127.0.0.1:8080"
//!
//!     [eligibility]
//!     websocket_pairs = [["openai", "openai-responses"]]
//!     provider_hosts = { openai = "api.openai.com" }
//!
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.openai.com/v1/responses"
//!     ws_url = "wss://api.openai.com/v1/responses"
//!
//!     [routes.breaker]
//!     consecutive_failures = 3
//!     open_duration = "30s"
//! "#)?;
//! let route = &config.routes[0];
//! assert_eq!(route.breaker.open_duration, Some(Duration::from_secs(30)));
//! assert_eq!(route.fallback.replay, None); // the fallback layer's default applies
//! assert!(config.eligibility.to_table()?.is_allowed("openai", "openai-responses"));
//! assert_eq!(route.to_route()?.provider(), "openai");
//!
//! let error = Config::from_toml_str(r#"
//!     [[routes]]
//!     path = "/v1/responses"
//!     provider = "openai"
//!     api = "openai-responses"
//!     http_url = "https://api.openai.com/v1/responses"
//!     [routes.breaker]
//!     open_duration = "3x"
//! "#).unwrap_err();
//! assert_eq!(error.to_string(), r#"routes[0].breaker.open_duration: invalid duration "3x""#);
//! # Ok::<(), wsfirst_gateway::config::ConfigError>(())
//! ```
//!
//! # Reference
//!
//! The names are those of the library builders' methods (`open_duration` is
//! [`BreakerConfigBuilder::open_duration`](wsfirst::breaker::BreakerConfigBuilder::open_duration),
//! `handshake_timeout` is
//! [`WebSocketConfigBuilder::handshake_timeout`](wsfirst::websocket::WebSocketConfigBuilder::handshake_timeout));
//! the names before the renaming are still read (the README lists them).
//!
//! Durations are strings in human form (`"500ms"`, `"30s"`, `"10m"`, `"1h 30m"`). Byte sizes are
//! an integer number of bytes or a string with a unit: `B`, `KB`/`MB`/`GB` (powers of 1000) or
//! `KiB`/`MiB`/`GiB` (powers of 1024), such as `"16MiB"`, `"512KiB"`, `"1MB"`. "Layer default"
//! means the field may be left out and the layer's own default applies.
//!
//! | field | type | default | meaning |
//! |---|---|---|---|
//! | `listen` | socket address | none | address a gateway listens on, such as `"127.0.0.1:8080"` |
//! | `fingerprint_key_env` | environment variable name | a random key per process | the variable holding the secret (at least 16 bytes) that credential fingerprints are keyed with ([`Config::fingerprint_key`]); set it to keep fingerprints (breaker keys in logs, the admin JSON, metric labels) the same across restarts and replicas; read when the layers are built (by [`Config::validate`] too), a missing variable is an error |
//! | `eligibility.websocket_pairs` | list of `[provider, api]` | `[]` | pairs allowed to try the WebSocket; a provider in no pair is `unknown_provider`, so with none nothing uses the WebSocket in `auto` mode |
//! | `eligibility.deny_pairs` | list of `[provider, api]` | `[]` | pairs never allowed on the WebSocket; wins over `websocket_pairs` |
//! | `eligibility.provider_hosts` | table: provider = host or list of hosts | `{}` | WebSocket hosts registered per provider (host only: no scheme, port or path); a WebSocket URL on another host goes to HTTP (`foreign_host`) |
//! | `eligibility.override_header` | header name | off | per-request header whose value `http` forces HTTP (`request_override`); any other value is ignored; it can never widen a request onto the WebSocket |
//! | `eligibility.max_message_size` | byte size, > 0 | 16 MiB | a request declaring a larger body goes to HTTP (`body_too_large`); see [`limits`](wsfirst::core::limits) |
//! | `server.header_read_timeout` | duration | 10s | the time a client has to send its request headers ([`serve`](wsfirst::serve)) |
//! | `server.body_read_timeout` | duration | 60s | the time a client has to send a request's whole body; past it `408` |
//! | `server.max_connections` | integer, > 0 | 1024 | connections served at once; more wait in the backlog |
//! | `server.max_header_bytes` | byte size, >= 8 KiB | 64 KiB | the largest request headers; larger is `431` |
//! | `server.shutdown_grace` | duration, <= 1 year | 10s | on shutdown, how long requests in flight may finish; past it, the connections still open are closed |
//! | `server.idle_timeout` | duration, > 0 | 60s | a connection with nothing in flight for this long is closed (HTTP/2: `GOAWAY`) |
//! | `server.http2_keep_alive_interval` | duration, > 0 | 20s | how often an HTTP/2 connection is pinged |
//! | `server.http2_keep_alive_timeout` | duration, > 0 | 20s | an HTTP/2 ping unanswered for this long closes the connection |
//! | `server.max_concurrent_streams` | integer, > 0 | 100 | requests (streams) one HTTP/2 connection runs at once; more are refused |
//! | `server.body_budget` | byte size, > 0, >= every route's `body_limit` | 256 MiB | the bytes of request bodies buffered at once by the whole gateway, bodies held for a replay and queued client WebSocket messages together ([`WsfirstBuilder::body_budget`](wsfirst::WsfirstBuilder::body_budget)); past it `503` (`body_budget_exhausted`) |
//! | `server.allowed_hosts` | list of host names, each with an optional port | any | the `Host` values the routes answer to (`localhost` allows any port, `localhost:8080` that port only); another is `421` ([`AllowedHostsLayer`](wsfirst::guard::AllowedHostsLayer), against DNS rebinding) |
//! | `admin.listen` | socket address | no admin | the admin listener (`/admin/transport`, `/metrics`), never the public one: loopback or a private interface; without `[admin]` there is no admin surface |
//! | `admin.token_env` | environment variable name | no token | the variable holding the admin bearer token (at least 16 visible ASCII characters); a wrong or missing token is `401`; required when `admin.listen` is not a loopback address |
//! | `breakers.idle_timeout` | duration | registry default (1h) | forget a breaker key unused for this long (one registry serves every route) |
//! | `breakers.default` | table of breaker settings | the breaker's defaults | the settings of every key without its own: the `routes[].breaker` fields but `enabled` ([`BreakerRegistryBuilder::config`](wsfirst::breaker::BreakerRegistryBuilder::config)) |
//! | `breakers.keys[]` | `provider`, `ws_url`, `config` | none | the settings of one provider + WebSocket endpoint for every credential ([`config_for`](wsfirst::breaker::BreakerRegistryBuilder::config_for)); `config` takes the `routes[].breaker` fields but `enabled`; a key is set in one place: here or in one route's table |
//! | `breakers.max_keys` | integer, > 0 | 10000 | the most breaker keys (one per provider + endpoint + credential); past it the least recently used are evicted, but never a key pinned by hand or with a probe in flight (see [`BreakerRegistry`](wsfirst::breaker::BreakerRegistry), "Memory") |
//! | `breakers.state_gauge_per_credential` | bool | `false` | `true`: one `wsfirst_breaker_state` series per key, labelled with its credential fingerprint; `false`: one per provider and endpoint, showing its worst key |
//! | `breaker_store.redis_url` | `redis://` URL | no store | share breaker state with the other replicas through Redis or Valkey (see [`wsfirst_breaker_redis`]): failures counted by the fleet, pins (automatic and by hand) on every replica, half-open probes across the fleet; requires `fingerprint_key_env`; a store that is down leaves each replica its own breakers |
//! | `breaker_store.prefix` | string, no spaces | `"wsfirst:breaker"` | the start of every key; replicas that share breakers use the same one |
//! | `breaker_store.timeout` | duration, > 0 | 250ms | the deadline of one command; past it the store counts as down |
//! | `breaker_store.connect_timeout` | duration, > 0 | 1s | the deadline of a connection attempt |
//! | `breaker_store.failure_window` | duration, > 0 | 10s | the fleet's failure count of a key is forgotten this long after its last failure |
//! | `breaker_store.probe_lease` | duration, > 0 | 60s | a half-open probe slot of a replica that died is free again after this |
//! | `breaker_store.key_ttl` | duration, > 0 | 1h | a key's record lives this long after its pin ends |
//! | `routes[].path` | string starting with `/`, unique | required | the path the route is mounted on |
//! | `routes[].provider` | non-empty string | required | provider id, as in the eligibility pairs |
//! | `routes[].api` | non-empty string | required | API id, as in the eligibility pairs |
//! | `routes[].http_url` | `http://` or `https://` URL | required | the upstream's HTTP endpoint |
//! | `routes[].ws_url` | `ws://` or `wss://` URL | none | the upstream's WebSocket endpoint; required when `mode = "websocket"` |
//! | `routes[].mode` | `"auto"`, `"websocket"`, `"http"` | `"auto"` | `auto`: the WebSocket when eligible and healthy, else HTTP; `websocket`: strict, always the WebSocket, failures reach the caller; `http`: never the WebSocket |
//! | `routes[].body_limit` | byte size, > 0 | layer default (16 MiB, see [`limits`](wsfirst::core::limits)) | largest request body read into memory: buffered so it can be replayed over HTTP, or as the message of strict `websocket` mode (`413` past it), and the largest client WebSocket message |
//! | `routes[].timeouts.handshake_timeout` | duration, > 0 | layer default (5s) | TCP + TLS + WebSocket handshake |
//! | `routes[].timeouts.first_event_timeout` | duration, > 0 | layer default (30s) | from the request sent to the upstream's first event |
//! | `routes[].timeouts.idle_timeout` | duration, > 0 | layer default (300s) | between two events of an answer |
//! | `routes[].timeouts.http_response` | duration, > 0 | upstream default (10m) | HTTP: from sending the request to the response headers, connecting included; past it `504` |
//! | `routes[].timeouts.http_idle` | duration, > 0 | upstream default (300s) | HTTP: between two chunks of the response body; past it the body ends with an error |
//! | `routes[].breaker.enabled` | bool | `true` | `false`: no breaker layer for this route (it neither reads nor feeds its key's breaker) |
//! | `routes[].breaker.consecutive_failures` | integer | layer default | trip after this many WebSocket failures in a row; `0` turns this rule off |
//! | `routes[].breaker.failure_rate_threshold` | number, 0 to 1 | layer default | trip when this fraction of the last `failure_rate_window` calls failed |
//! | `routes[].breaker.failure_rate_window` | integer, > 0 | layer default | number of recent calls the failure rate is computed over |
//! | `routes[].breaker.failure_rate_min_calls` | integer, > 0, <= `failure_rate_window` | layer default | calls needed in the window before the failure rate counts |
//! | `routes[].breaker.open_duration` | duration, > 0 | layer default | how long a tripped key stays pinned to HTTP the first time (grows with each trip) |
//! | `routes[].breaker.max_open_duration` | duration, >= `open_duration` | layer default | cap of the growing pinned period |
//! | `routes[].breaker.half_open_probes` | integer, > 0 | layer default | requests allowed to probe the WebSocket when half-open |
//! | `routes[].pool.idle_timeout` | duration, > 0 | layer default | close a pooled WebSocket idle for this long |
//! | `routes[].pool.max_age` | duration, > 0 | layer default | retire a pooled WebSocket older than this (before the upstream's own limit) |
//! | `routes[].pool.max_connections_per_key` | integer, > 0 | layer default | most pooled WebSockets per key |
//! | `routes[].pool.conversation_wait` | duration | 5s | how long a request continuing a conversation (`previous_response_id`) waits for the busy connection that produced the response; `0s`: never waits |
//! | `routes[].pool.max_connections` | integer, > 0 | layer default (1024) | most WebSockets of the route's pool in total, across keys (routes with equal `[routes.pool]` tables share a pool, routes without one the default pool); at it, a new connection closes the idle one returned longest ago, or waits (at most `timeouts.handshake_timeout`) and is replayed over HTTP |
//! | `routes[].pool.max_idle_connections` | integer, > 0 | layer default (256) | most idle WebSockets of the route's pool in total; past it, the one returned longest ago is closed |
//! | `routes[].pool.write_stall_timeout` | duration, > 0 | layer default (60s) | a streaming answer's WebSocket is closed when its client reads nothing for this long |
//! | `routes[].pool.min_idle` | integer, <= `max_connections_per_key` and `max_idle_connections` | 0 | idle WebSockets kept open per known key ahead of requests: the route's own static credential from start, other keys after their first request (not per affinity value); reopened when taken, closed by the upstream, aged out, or after the breaker lets the key back on the WebSocket ([`PoolBuilder::min_idle`](wsfirst::websocket::PoolBuilder::min_idle)) |
//! | `routes[].pool.affinity_header` | header name | none | request header whose value keeps a session on its own connection |
//! | `routes[].fallback.replay` | `"before_first_event"`, `"connect_only"` | `"before_first_event"` | which WebSocket failures are sent again (over HTTP, or once on a fresh WebSocket): `before_first_event`, any the upstream provably did not execute (nothing written, a failed write, a refusal); `connect_only`, only those where nothing was written; never one that may have executed ([`Replay`](wsfirst::core::Replay)) |
//! | `routes[].forward_headers` | list of header names | `[]` | request headers forwarded to the upstream besides the API's own (`authorization`, `openai-beta`, `openai-organization`, `openai-project`), on the WebSocket handshake and over HTTP alike; nothing else is forwarded (no `cookie` unless listed, never `eligibility.override_header`; HTTP also carries the body's `content-type`, `content-encoding`, `accept`, and the headers that route a session, such as Codex's `session-id` ([`RESPONSES_SESSION_HEADERS`](wsfirst::core::headers::RESPONSES_SESSION_HEADERS)), which a name listed here sends on the handshake too); see [`HeaderPolicy`](wsfirst::core::headers::HeaderPolicy) |
//! | `routes[].headers` | table: header name = value | `{}` | static headers set on every upstream request, on the WebSocket handshake and over HTTP alike, replacing the client's, such as the `"Authorization"` of a gateway that holds the API key (`OpenAI-Beta` flags are added to the client's instead); hop-by-hop headers and the handshake's own ([`is_reserved_for_websocket`](wsfirst::core::headers::is_reserved_for_websocket)) are rejected |
//! | `routes[].client_tokens_env` | environment variable name | none | the variable holding the tokens clients must present (`Authorization: Bearer <token>`), comma-separated, each at least 16 visible ASCII characters, compared in constant time and taken off before the upstream; checked on `POST`s and before client WebSocket upgrades, `401` otherwise ([`RequireClientTokenLayer`](wsfirst::guard::RequireClientTokenLayer)); required when `headers` sets a credential (`authorization`, `api-key`, a name with `key`, `token`, `auth`, `secret`, `password`, `cookie`) unless `open = true`; read at load, a variable not set or set but empty is an error |
//! | `routes[].open` | bool | `false` | `true`: a route whose `headers` set a credential asks clients for none, so whoever reaches it spends that credential (a loopback-only gateway for one user); not with `client_tokens_env` |
//! | `routes[].client_websocket.enabled` | bool | `true` | `false`: the route takes no client WebSocket connections (its `GET` is not mounted); see [`client_ws`](wsfirst::client_ws) |
//! | `routes[].client_websocket.max_message_size` | byte size, > 0, <= `body_limit` | `body_limit` | the largest client message; left out: the route's `body_limit`, and never more than it (an error at load: the WebSocket reader holds no more of one message than the route takes); larger closes the connection with `1009` |
//! | `routes[].client_websocket.idle_timeout` | duration, > 0 | 10m | no client message and no response running for this long: closed with `1000` |
//! | `routes[].client_websocket.ping_interval` | duration, > 0 | 30s | keep-alive pings; a client silent for a whole interval after a ping is closed with `1011` |
//! | `routes[].client_websocket.max_lifetime` | duration, > 0 | 60m | after it, queued messages get the `websocket_connection_limit_reached` error event and the connection is closed with `1001` |
//! | `routes[].client_websocket.send_buffer` | byte size, > 0 | 8 MiB | events buffered for a client that reads slowly; past it closed with `1008` |
//! | `routes[].client_websocket.max_queued` | integer, > 0 | 16 | `response.create` messages waiting while one runs |
//! | `routes[].client_websocket.max_queued_bytes` | byte size, > 0 | 16 MiB | the bytes of those messages (one always fits an empty queue); past it the client's next messages wait in TCP |
//! | `routes[].client_websocket.allowed_origins` | list of `scheme://host[:port]` | `[]` | web pages of these origins may connect besides the gateway's own ([`AllowedOrigins`](wsfirst::guard::AllowedOrigins)); an upgrade with another `Origin` is `403`; clients without `Origin` (SDKs) always may |
//! | `routes[].client_websocket.max_lanes` | integer, > 0 | 8 | lanes (`stream_id`, the default lane included) with a response running or queued at once on one client connection; a `response.create` opening another gets a 400 error event (`too_many_lanes`) |
//! | `routes[].client_websocket.max_connections` | integer, > 0 | 1024 | client connections open on the route at once; past it an upgrade is `503` |
//! | `routes[].client_websocket.shutdown_grace` | duration | 10s | on shutdown, the time a running response has to finish |

mod breakers;
mod build;
mod client_tokens;
mod client_ws;
mod error;
mod guards;
mod locate;
mod parse;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub(crate) use parse::MaskedHeaders;
pub use parse::is_credential_header;
pub use schema::{
    AdminConfig, BreakerConfig, BreakerKeyConfig, BreakerStoreConfig, BreakersConfig,
    ClientWebSocketConfig, Config, EligibilityConfig, FallbackConfig, Pair, PoolConfig,
    ReplayConfig, RouteConfig, ServerLimitsConfig, TimeoutsConfig,
};
