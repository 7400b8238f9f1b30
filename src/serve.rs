//! Serving a router the way a gateway should: `TCP_NODELAY` on every accepted socket, and limits
//! that a slow or greedy client cannot get around.
//!
//! Server-sent events are many small writes. On a socket without `TCP_NODELAY`, Nagle's algorithm
//! holds each small write until the client's delayed ACK arrives, which adds up to about 40 ms to
//! every streamed answer on Linux. `axum::serve` leaves the option as the listener's sockets have
//! it (off): wrap the listener with [`nodelay`] before serving, or use [`serve`], which also
//! enforces a [`ServerConfig`]:
//!
//! | limit | default | protects against |
//! |---|---|---|
//! | [`header_read_timeout`](ServerConfigBuilder::header_read_timeout) | 10 s | a client that sends nothing, or trickles its request headers: a connection's first request (protocol detection included, HTTP/1 and HTTP/2) must be in within it, else the connection is closed; later HTTP/1 requests' headers too |
//! | [`idle_timeout`](ServerConfigBuilder::idle_timeout) | 60 s | a connection kept open with nothing in flight (HTTP/1 keep-alive, an HTTP/2 connection without streams): closed gracefully |
//! | [`http2_keep_alive_interval`](ServerConfigBuilder::http2_keep_alive_interval) / [`http2_keep_alive_timeout`](ServerConfigBuilder::http2_keep_alive_timeout) | 20 s / 20 s | an HTTP/2 peer that vanished while a stream runs: a ping every interval, closed when one is not answered within the timeout |
//! | [`max_concurrent_streams`](ServerConfigBuilder::max_concurrent_streams) | 100 | one HTTP/2 connection running many requests at once (`max_connections` counts connections, not streams) |
//! | [`body_read_timeout`](ServerConfigBuilder::body_read_timeout) | 60 s | a client that trickles its request body, holding a connection and a fallback buffer: the whole body must arrive within it, else `408` |
//! | [`max_connections`](ServerConfigBuilder::max_connections) | 1024 | too many open connections: further ones wait in the listen backlog |
//! | [`max_header_bytes`](ServerConfigBuilder::max_header_bytes) | 64 KiB | huge request headers: `431` (HTTP/1), refused (HTTP/2) |
//! | [`shutdown_grace`](ServerConfigBuilder::shutdown_grace) | 10 s | a shutdown held up forever by a stream that does not end: past it, the connections still open are closed |
//!
//! On shutdown [`serve`] stops accepting at once, lets the requests in flight finish (streams
//! included) within the grace period, then closes the connections still open, and returns once
//! every connection's task has ended: nothing it spawned is left behind. Close the pooled
//! WebSockets after it returns ([`Pool::shutdown`](wsfirst_websocket::Pool::shutdown)).
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::{Wsfirst, core::Route, serve::ServerConfig};
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build();
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let app = Router::new().route("/v1/responses", post_service(wsfirst.route(route)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
//! let config = ServerConfig::default();
//! wsfirst::serve::serve(listener, app, config, shutdown).await?;
//! // Client WebSockets closed (1001), then pooled WebSockets, busy ones within the grace.
//! wsfirst.shutdown_within(config.shutdown_grace()).await;
//! # Ok(())
//! # }
//! ```

use std::{fmt, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    serve::{Listener, ListenerExt},
};
use http_body_util::BodyExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tower::ServiceExt;
use tower_http::timeout::{DeadlineBody, TimeoutError};
use wsfirst_core::{BoxError, ConfigError, ConfigErrorKind};

mod connection;

use self::connection::{Activity, Limits, Tracked};

/// `listener`, with `TCP_NODELAY` set on every socket it accepts (a socket on which it cannot be
/// set is served as it is, and the failure logged at DEBUG).
pub fn nodelay(listener: TcpListener) -> impl Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(set_nodelay)
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
    }
}

/// The limits of [`serve`]; see the [module docs](self) for what each protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    max_connections: usize,
    max_header_bytes: usize,
    shutdown_grace: Duration,
    idle_timeout: Duration,
    http2_keep_alive_interval: Duration,
    http2_keep_alive_timeout: Duration,
    max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
            max_concurrent_streams: 100,
        }
    }
}

impl ServerConfig {
    /// A builder holding the defaults.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder {
            config: Self::default(),
        }
    }

    /// The time a client has to send its request headers: a connection's first request (from
    /// the accept on, protocol detection included), and each later HTTP/1 request.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a connection may stay open with nothing in flight.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How often an HTTP/2 connection is pinged.
    pub fn http2_keep_alive_interval(&self) -> Duration {
        self.http2_keep_alive_interval
    }

    /// How long an HTTP/2 ping may wait for its answer before the connection is closed.
    pub fn http2_keep_alive_timeout(&self) -> Duration {
        self.http2_keep_alive_timeout
    }

    /// The most requests (streams) one HTTP/2 connection may run at once.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// The time a client has to send a request's whole body, from its headers on.
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// The most connections served at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The largest request headers, in bytes.
    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// How long requests in flight may take to finish once shutdown began.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
}

/// Builds a [`ServerConfig`]; see [`ServerConfig::builder`].
#[derive(Clone, Copy, Debug)]
pub struct ServerConfigBuilder {
    config: ServerConfig,
}

impl ServerConfigBuilder {
    /// The time a client has to send its request headers (default 10 s): a connection whose
    /// first request is not in within it from the accept on (a client that sends nothing, or
    /// only the HTTP/2 preface) is closed, and so is an HTTP/1 connection that trickles a later
    /// request's headers.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// How long a connection may stay open with nothing in flight (default 60 s): past it the
    /// connection is closed gracefully (HTTP/2: `GOAWAY`). A request counts as in flight until
    /// its response, stream included, has been sent or dropped.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How often an HTTP/2 connection is pinged (default 20 s).
    pub fn http2_keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.http2_keep_alive_interval = interval;
        self
    }

    /// How long an HTTP/2 ping may wait for its answer before the connection is closed
    /// (default 20 s).
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.config.http2_keep_alive_timeout = timeout;
        self
    }

    /// The most requests (streams) one HTTP/2 connection may run at once (default 100, not
    /// zero); further streams are refused by HTTP/2 flow control (`REFUSED_STREAM`).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.config.max_concurrent_streams = max;
        self
    }

    /// The time a client has to send a request's whole body, from its headers on (default 60 s);
    /// past it the request is answered `408`.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_read_timeout = timeout;
        self
    }

    /// The most connections served at once (default 1024); further ones wait in the listen
    /// backlog until one ends.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// The largest request headers, in bytes (default 64 KiB, at least 8 KiB).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.config.max_header_bytes = bytes;
        self
    }

    /// How long requests in flight (streams included) may take to finish once shutdown began
    /// (default 10 s; zero closes them at once); past it [`serve`] closes the connections still
    /// open.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Checks the values and builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        const CONFIG: &str = "server config";
        let config = self.config;
        for (field, value) in [
            ("header_read_timeout", config.header_read_timeout),
            ("body_read_timeout", config.body_read_timeout),
            ("idle_timeout", config.idle_timeout),
            (
                "http2_keep_alive_interval",
                config.http2_keep_alive_interval,
            ),
            ("http2_keep_alive_timeout", config.http2_keep_alive_timeout),
        ] {
            ConfigError::check_duration(CONFIG, field, value)?;
        }
        ConfigError::check_max_duration(CONFIG, "shutdown_grace", config.shutdown_grace)?;
        ConfigError::check_not_zero(CONFIG, "max_connections", config.max_connections as u64)?;
        ConfigError::check_not_zero(
            CONFIG,
            "max_concurrent_streams",
            config.max_concurrent_streams as u64,
        )?;
        if config.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ConfigError::new(
                CONFIG,
                "max_header_bytes",
                ConfigErrorKind::TooSmall {
                    value: config.max_header_bytes as u64,
                    min: MIN_HEADER_BYTES as u64,
                },
            ));
        }
        Ok(config)
    }
}

/// hyper's smallest HTTP/1 read buffer.
const MIN_HEADER_BYTES: usize = 8192;

/// Serves `router` on `listener` with the limits of `config` and `TCP_NODELAY` on every socket,
/// until `shutdown` completes; then stops accepting, lets the requests in flight finish within
/// the [grace period](ServerConfigBuilder::shutdown_grace), closes the connections still open
/// after it, and returns once every connection's task has ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let body_timeout = config.body_read_timeout;
    let service = router.map_request(move |request: http::Request<hyper::body::Incoming>| {
        // The whole body within the timeout (tower-http's `DeadlineBody`, not its `TimeoutBody`,
        // whose timer restarts at each frame: a client trickling a byte at a time would hold
        // the connection and the fallback buffer forever); its error is named as this
        // server's, which the route answers with `408`.
        request.map(|body| DeadlineBody::new(body_timeout, body).map_err(named(body_timeout)))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(config.max_concurrent_streams)
        .keep_alive_interval(config.http2_keep_alive_interval)
        .keep_alive_timeout(config.http2_keep_alive_timeout);
    let builder = Arc::new(builder);
    let limits = Limits {
        first_request: config.header_read_timeout,
        idle: config.idle_timeout,
        close_grace: config.header_read_timeout,
    };
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let (shutting_down, shutdown_seen) = watch::channel(false);
    // Every connection's task, so that none outlives `serve`.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A connection is accepted only when one of the `max_connections` slots is free.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.map_err(io::Error::other)?,
            () = shutdown.as_mut() => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Such as too many open files: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let mut stream = stream;
        set_nodelay(&mut stream);
        let activity = Activity::new();
        let tracked = TowerToHyperService::new(Tracked::new(service.clone(), activity.clone()));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), tracked)
            .into_owned();
        let watch = connection::drive(connection, activity, limits, shutdown_seen.clone());
        connections.spawn(async move {
            watch.await;
            drop(permit);
        });
        // Forget the tasks that ended (the set holds the open connections only).
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    shutting_down.send_replace(true);
    let grace = config.shutdown_grace;
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            ?grace,
            "requests still in flight at the end of the shutdown grace period: closing their connections"
        );
    }
    // Their tasks end now (cut short past the grace period), before `serve` returns.
    connections.shutdown().await;
    Ok(())
}

/// Names the deadline's error as this server's ([`BodyReadTimeout`]); a named function, so that
/// the connection's future is `Send` (a closure here trips rustc's higher-ranked inference).
fn named(timeout: Duration) -> impl FnMut(BoxError) -> BoxError + Clone + Send + Sync {
    move |error| {
        if error.is::<TimeoutError>() {
            Box::new(BodyReadTimeout(timeout))
        } else {
            error
        }
    }
}

/// A client did not send its request body within the body read timeout; the route answers
/// `408`.
#[derive(Debug)]
pub struct BodyReadTimeout(Duration);

impl fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body did not arrive within the body read timeout ({:?})",
            self.0
        )
    }
}

impl std::error::Error for BodyReadTimeout {}

#[cfg(test)]
mod tests {
    use super::*;
    use wsfirst_core::MAX_DURATION;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_set() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = nodelay(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }

    #[test]
    fn bad_limits_name_their_field() {
        let error = ServerConfig::builder()
            .max_connections(0)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "max_connections");
        let error = ServerConfig::builder()
            .max_header_bytes(100)
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid server config: max_header_bytes must be at least 8192, got 100"
        );
        let error = ServerConfig::builder()
            .body_read_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "body_read_timeout");
        let error = ServerConfig::builder()
            .shutdown_grace(MAX_DURATION + Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "shutdown_grace");
        let error = ServerConfig::builder()
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "idle_timeout");
        let error = ServerConfig::builder()
            .max_concurrent_streams(0)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "max_concurrent_streams");
        let error = ServerConfig::builder()
            .http2_keep_alive_timeout(MAX_DURATION + Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "http2_keep_alive_timeout");
        let config = ServerConfig::builder()
            .shutdown_grace(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(config.shutdown_grace(), Duration::ZERO);
        assert_eq!(
            ServerConfig::default().shutdown_grace(),
            Duration::from_secs(10)
        );
    }

    /// Each setter keeps what the ones before it set, and the getters read what was set.
    #[test]
    fn every_limit_is_kept_and_read_back() {
        let config = ServerConfig::builder()
            .header_read_timeout(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(3))
            .http2_keep_alive_timeout(Duration::from_secs(4))
            .max_concurrent_streams(5)
            .body_read_timeout(Duration::from_secs(6))
            .max_connections(7)
            .max_header_bytes(MIN_HEADER_BYTES)
            .shutdown_grace(Duration::from_secs(9))
            .build()
            .unwrap();
        assert_eq!(config.header_read_timeout(), Duration::from_secs(1));
        assert_eq!(config.idle_timeout(), Duration::from_secs(2));
        assert_eq!(config.http2_keep_alive_interval(), Duration::from_secs(3));
        assert_eq!(config.http2_keep_alive_timeout(), Duration::from_secs(4));
        assert_eq!(config.max_concurrent_streams(), 5);
        assert_eq!(config.body_read_timeout(), Duration::from_secs(6));
        assert_eq!(config.max_connections(), 7);
        // The smallest accepted value is the minimum itself.
        assert_eq!(config.max_header_bytes(), 8192);
        assert_eq!(config.shutdown_grace(), Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_read_timeout_says_what_did_not_arrive_in_time() {
        let silent = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<bytes::Bytes>, BoxError>,
        >());
        let timeout = Duration::from_secs(60);
        let body = DeadlineBody::new(timeout, silent).map_err(named(timeout));
        let error = body.collect().await.unwrap_err();
        assert!(error.is::<BodyReadTimeout>(), "{error}");
        assert_eq!(
            error.to_string(),
            "the request body did not arrive within the body read timeout (60s)"
        );
        let mut name = named(timeout);
        let other = name(Box::new(io::Error::other("reset")));
        assert_eq!(other.to_string(), "reset");
    }
}
