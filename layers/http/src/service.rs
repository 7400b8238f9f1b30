//! The [`HttpUpstream`] service and its builder.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::{ClientConfig, RootCertStore};
use tower_service::Service;
use wsfirst_core::{BoxError, ConfigError, MissingExtension, Route, Transport};

#[cfg(doc)]
use crate::{HttpUpstreamError, HttpUpstreamErrorKind};
use crate::{UpstreamBody, connect::TimeoutConnector, future::ResponseFuture};

/// The request body type the client sends: any body, boxed once.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BoxError>;
type HttpClient = Client<TimeoutConnector<HttpsConnector<HttpConnector>>, RequestBody>;

/// The HTTP upstream service: sends each request to its [`Route`]'s HTTP URL over a pooled
/// hyper-util client (`http://` and `https://` via rustls) and streams the answer back.
///
/// - The request goes to `route.http_url()` (never to a URL taken from the client's request)
///   with its method, body and the headers its route's
///   [header policy](wsfirst_core::Route::headers) gives for HTTP, the policy its WebSocket
///   handshake uses, so both transports forward the same headers (by default the Responses
///   API's `authorization`, `openai-beta`, `openai-organization`, `openai-project`, and the
///   body's `content-type`, `content-encoding`, `accept`). Nothing else: never a `cookie`, never
///   a hop-by-hop header; `Host` and `Content-Length` are set from the URL and the body.
/// - The route's [HTTP timeouts](wsfirst_core::Route::http_timeouts) override the upstream's.
/// - The response is the upstream's, unchanged: statuses pass through (a `500` from the upstream
///   is an `Ok` response with status `500`), and the body streams as it arrives (SSE frame by
///   frame, nothing buffered).
/// - Errors are boxed: [`MissingExtension::ROUTE`] when the request has no `Route`, else an
///   [`HttpUpstreamError`] (connect failure, response timeout, broken request).
///
/// Cloning shares the connection pool. See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct HttpUpstream {
    client: HttpClient,
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    response_timeout: Option<Duration>,
    body_idle_timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl HttpUpstream {
    /// An upstream service with the default settings and this TLS configuration (such as the
    /// one the WebSocket layer uses, so both trust the same roots).
    pub fn with_tls(tls: impl Into<Arc<ClientConfig>>) -> Self {
        Self::builder()
            .tls(tls)
            .build()
            .expect("the default configuration builds with any ClientConfig")
    }

    /// An upstream service with the default settings (see [`HttpUpstreamBuilder`]).
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration builds: webpki roots and ring's protocol versions")
    }

    /// Starts configuring an upstream service.
    pub fn builder() -> HttpUpstreamBuilder {
        HttpUpstreamBuilder::default()
    }
}

impl Default for HttpUpstream {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("connect_timeout", &self.config.connect_timeout)
            .field("response_timeout", &self.config.response_timeout)
            .field("body_idle_timeout", &self.config.body_idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for HttpUpstream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<UpstreamBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The legacy client is always ready; connections are made per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(route) = request.extensions().get::<Route>() else {
            return ResponseFuture::failed(Box::new(MissingExtension::ROUTE));
        };
        let url = route.http_url().clone();
        // Its `host:port` is written out only for an error or a log line.
        let host = Upstream(route.clone());
        let timeouts = route.http_timeouts();
        let headers = route
            .headers()
            .headers_for(request.headers(), Transport::Http);
        let (parts, body) = request.into_parts();
        let mut outgoing = Request::new(body.map_err(Into::into).boxed_unsync());
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = url;
        // The client picks HTTP/2 itself when the upstream negotiates it.
        *outgoing.version_mut() = Version::HTTP_11;
        // Never `Host` or `Content-Length`: the client sets them from the URL and the body, so a
        // replayed body always matches its length.
        *outgoing.headers_mut() = headers;
        tracing::trace!(upstream = %host, "sending request to the http upstream");
        ResponseFuture::new(
            self.client.request(outgoing),
            timeouts.response.or(self.config.response_timeout),
            timeouts.idle.or(self.config.body_idle_timeout),
            host,
        )
    }
}

/// The upstream of a request, for errors and logs: displayed as its `host:port`.
#[derive(Clone)]
pub(crate) struct Upstream(Route);

impl Upstream {
    /// `host:port` of the route's HTTP URL.
    pub(crate) fn host(&self) -> String {
        host_of(self.0.http_url())
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host())
    }
}

/// `host:port` of a URL, for errors and logs (never the URL's user info).
fn host_of(url: &Uri) -> String {
    let host = url.host().unwrap_or("unknown-host");
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    format!("{host}:{port}")
}

/// Configures an [`HttpUpstream`]; see [`HttpUpstream::builder`].
///
/// Defaults: connect timeout (DNS + TCP + TLS) 10 s, response timeout 10 min, body idle timeout
/// 300 s, idle pooled connections kept 90 s (at most 256 per host), HTTP/1.1 and HTTP/2
/// (negotiated with ALPN over TLS), Mozilla's webpki roots with ring. Which headers are
/// forwarded is no setting of the upstream, which routes share: each request's route decides
/// (see [`HttpUpstream`]).
#[derive(Clone)]
pub struct HttpUpstreamBuilder {
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    body_idle_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    http2: bool,
    tls: Option<Arc<ClientConfig>>,
}

impl Default for HttpUpstreamBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Some(Duration::from_secs(600)),
            body_idle_timeout: Some(Duration::from_secs(300)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: 256,
            http2: true,
            tls: None,
        }
    }
}

impl HttpUpstreamBuilder {
    /// The limit on setting up a connection: DNS, TCP and TLS together (default 10 s). Past it,
    /// an [`HttpUpstreamError`] of kind
    /// [`ConnectTimeout`](HttpUpstreamErrorKind::ConnectTimeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit on the time from sending the request to the response headers, connecting
    /// included (default 10 min, as the official OpenAI SDKs wait: a non-streaming answer's
    /// headers come only when the whole answer is ready; `None`: no limit). Past it, an
    /// [`HttpUpstreamError`] of kind [`Timeout`](HttpUpstreamErrorKind::Timeout). A route's
    /// [`http_timeouts`](wsfirst_core::Route::http_timeouts) override it.
    pub fn response_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.response_timeout = timeout.into();
        self
    }

    /// The limit on the time between two chunks of the response body (default 300 s, long
    /// enough for a reasoning model's silences; `None`: no limit). Past it, the body ends with
    /// an [`HttpUpstreamError`] of kind [`BodyTimeout`](HttpUpstreamErrorKind::BodyTimeout).
    /// A route's [`http_timeouts`](wsfirst_core::Route::http_timeouts) override it.
    pub fn body_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.body_idle_timeout = timeout.into();
        self
    }

    /// How long an idle pooled connection is kept (default 90 s; `None`: no limit).
    pub fn pool_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.pool_idle_timeout = timeout.into();
        self
    }

    /// The most idle connections kept per host (default 256). Keep it at least at the number of
    /// requests in flight to one host at busy times: past it, each answer's connection is closed
    /// and the next request opens a new one (at 256 clients with a limit of 32, connecting was
    /// 15 % of the gateway's CPU and cut its JSON throughput to 62 % of a minimal proxy's; see
    /// BENCHMARKS.md).
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// Whether HTTP/2 may be negotiated over TLS (default `true`).
    pub fn http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// The rustls configuration (roots, client certificates, verifier), such as the one the
    /// WebSocket layer uses (`ClientTls::client_config` of `wsfirst-websocket`), so both trust
    /// the same roots (default: Mozilla's webpki roots with ring). Its ALPN protocols are
    /// replaced to match [`http2`](Self::http2).
    pub fn tls(mut self, config: impl Into<Arc<ClientConfig>>) -> Self {
        self.tls = Some(config.into());
        self
    }

    /// Checks the settings without building anything (a gateway checks the timeouts of its
    /// routes' [`HttpTimeouts`](wsfirst_core::HttpTimeouts) with it).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let error = wsfirst_http::HttpUpstream::builder()
    ///     .body_idle_timeout(Duration::ZERO)
    ///     .check()
    ///     .unwrap_err();
    /// assert_eq!(error.field(), "body_idle_timeout");
    /// ```
    pub fn check(&self) -> Result<(), ConfigError> {
        check_duration("connect_timeout", Some(self.connect_timeout))?;
        check_duration("response_timeout", self.response_timeout)?;
        check_duration("body_idle_timeout", self.body_idle_timeout)?;
        check_duration("pool_idle_timeout", self.pool_idle_timeout)
    }

    /// Builds the service (and its connection pool).
    pub fn build(self) -> Result<HttpUpstream, ConfigError> {
        self.check()?;
        // The connector sets ALPN to match the enabled HTTP versions.
        let mut tls = match &self.tls {
            Some(config) => ClientConfig::clone(config),
            None => ClientConfig::clone(default_tls()),
        };
        tls.alpn_protocols = Vec::new();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let https = if self.http2 {
            https.enable_all_versions().wrap_connector(http)
        } else {
            https.enable_http1().wrap_connector(http)
        };
        let connector = TimeoutConnector {
            inner: https,
            timeout: self.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(HttpUpstream {
            client,
            config: Arc::new(Config {
                response_timeout: self.response_timeout,
                body_idle_timeout: self.body_idle_timeout,
                connect_timeout: self.connect_timeout,
            }),
        })
    }
}

/// A duration setting must be neither zero nor longer than [`MAX_DURATION`](wsfirst_core::MAX_DURATION).
fn check_duration(field: &'static str, value: Option<Duration>) -> Result<(), ConfigError> {
    match value {
        Some(value) => ConfigError::check_duration("http upstream config", field, value),
        None => Ok(()),
    }
}

impl fmt::Debug for HttpUpstreamBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpUpstreamBuilder")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("http2", &self.http2)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Mozilla's webpki roots with ring's default protocol versions, built once.
fn default_tls() -> &'static ClientConfig {
    static DEFAULT: OnceLock<ClientConfig> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsfirst_core::MAX_DURATION;

    #[test]
    fn host_names_the_port_and_never_user_info() {
        let cases = [
            ("https://api.openai.com/v1/responses", "api.openai.com:443"),
            ("http://user:secret@127.0.0.1:8080/x", "127.0.0.1:8080"),
            ("http://localhost/x", "localhost:80"),
        ];
        for (url, host) in cases {
            assert_eq!(&*host_of(&url.parse().unwrap()), host);
        }
    }

    #[test]
    fn invalid_durations_name_their_field() {
        let zero = HttpUpstream::builder()
            .response_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(zero.field(), "response_timeout");
        let long = HttpUpstream::builder()
            .pool_idle_timeout(MAX_DURATION + Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(long.field(), "pool_idle_timeout");
        assert!(long.to_string().contains("at most"), "{long}");
    }

    #[tokio::test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    async fn a_future_polled_after_completion_panics() {
        let mut upstream = HttpUpstream::new();
        // No `Route` extension: the future fails at once.
        let mut future =
            std::pin::pin!(upstream.call(Request::new(http_body_util::Empty::<Bytes>::new())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
        let _ = future.as_mut().poll(&mut cx);
    }

    #[test]
    fn is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<HttpUpstream>();
        check::<HttpUpstreamBuilder>();
    }

    /// Each setter keeps what the ones before it set, and its own value.
    #[test]
    fn every_setting_is_kept_by_the_builder() {
        let builder = HttpUpstream::builder()
            .connect_timeout(Duration::from_secs(3))
            .response_timeout(Duration::from_secs(4))
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(6)
            .http2(false)
            .tls(default_tls().clone())
            .body_idle_timeout(Duration::from_secs(7));
        assert_eq!(
            format!("{builder:?}"),
            "HttpUpstreamBuilder { connect_timeout: 3s, response_timeout: Some(4s), \
             pool_idle_timeout: Some(5s), pool_max_idle_per_host: 6, http2: false, tls: true }"
        );
        let upstream = builder.build().unwrap();
        assert_eq!(upstream.config.connect_timeout, Duration::from_secs(3));
        assert_eq!(
            upstream.config.response_timeout,
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            upstream.config.body_idle_timeout,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn a_zero_body_idle_timeout_is_refused_by_name() {
        let error = HttpUpstream::builder()
            .body_idle_timeout(Duration::ZERO)
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "body_idle_timeout");
    }

    #[test]
    fn with_tls_keeps_the_defaults() {
        let upstream = HttpUpstream::with_tls(default_tls().clone());
        assert_eq!(upstream.config.connect_timeout, Duration::from_secs(10));
        assert_eq!(
            upstream.config.response_timeout,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            upstream.config.body_idle_timeout,
            Some(Duration::from_secs(300))
        );
    }
}
