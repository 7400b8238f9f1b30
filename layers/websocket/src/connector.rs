//! Opening a WebSocket: DNS, TCP, TLS (rustls) and the upgrade, each failure typed.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Uri};
use rustls_pki_types::ServerName;
use tokio::{
    net::TcpStream,
    time::{Instant, timeout_at},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async_with_config,
    tungstenite::{self, client::IntoClientRequest, error::ProtocolError},
};
use wsfirst_core::{FailureKind, Phase, Route, Transport, WsFailure, redact};

use crate::{WebSocketConfig, tls};

/// An open WebSocket to the upstream.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How many bytes of an upgrade answer's body are kept.
const UPGRADE_BODY_LIMIT: usize = 1024;

/// The handshake headers for a request: those the route's
/// [header policy](wsfirst_core::Route::headers) gives for the WebSocket, the same rules as for
/// the HTTP request.
pub(crate) fn handshake_headers(route: &Route, request: &HeaderMap) -> HeaderMap {
    route.headers().headers_for(request, Transport::WebSocket)
}

/// The size of each read from a WebSocket's socket, on the upstream side and (in the facade) on
/// the client side.
///
/// tungstenite's default is 128 KiB, allocated up front for every connection and zero-filled
/// (`BytesMut::resize`) before every read, even one that finds nothing to read
/// (snapview/tungstenite-rs#547): 128 KiB of `memset` per poll, and 128 KiB held by every idle
/// pooled connection. The events of a Responses stream are a few hundred bytes to a few KiB; a
/// larger message is read in several 8 KiB reads (its frame's buffer is reserved whole once
/// its header is read).
pub const READ_BUFFER_SIZE: usize = 8 * 1024;

/// The tungstenite configuration: the size limit of incoming messages and frames (outgoing
/// messages are checked before they are sent) and the [`READ_BUFFER_SIZE`].
pub(crate) fn protocol_config(config: &WebSocketConfig) -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_message_size(Some(config.max_incoming_message_size()))
        .max_frame_size(Some(config.max_incoming_message_size()))
}

fn timeout(phase: Phase, after: Duration) -> WsFailure {
    WsFailure::new(phase, FailureKind::Timeout(after))
}

fn io_failure(phase: Phase, error: std::io::Error) -> WsFailure {
    WsFailure::new(
        phase,
        FailureKind::Io {
            kind: error.kind(),
            message: error.to_string(),
        },
    )
    .with_source(error)
}

/// Checks that `url` is a `ws://` or `wss://` URL with a host; returns (tls, host, port).
pub(crate) fn target(url: &Uri) -> Result<(bool, &str, u16), WsFailure> {
    let tls = match url.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(WsFailure::new(
                Phase::Connect,
                FailureKind::Local(format!(
                    "the websocket url {} is not ws:// or wss://",
                    redact::uri(url)
                )),
            ));
        }
    };
    let host = url
        .host()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .filter(|host| !host.is_empty())
        .ok_or_else(|| {
            WsFailure::new(
                Phase::Connect,
                FailureKind::Local(format!(
                    "the websocket url {} has no host",
                    redact::uri(url)
                )),
            )
        })?;
    let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((tls, host, port))
}

/// Opens a WebSocket to `url` with `headers`, all steps within the handshake timeout; gives
/// the socket and the headers of the upstream's answer to the handshake.
pub(crate) async fn connect(
    url: &Uri,
    headers: &HeaderMap,
    config: &WebSocketConfig,
) -> Result<(WsStream, HeaderMap), WsFailure> {
    let started = Instant::now();
    let limit = config.handshake_timeout();
    let deadline = started + limit;
    let (tls, host, port) = target(url)?;

    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(timeout(Phase::Connect, limit)),
            Ok(Err(error)) => {
                return Err(WsFailure::new(
                    Phase::Connect,
                    FailureKind::Dns(format!("{host}: {error}")),
                )
                .with_source(error));
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(WsFailure::new(
            Phase::Connect,
            FailureKind::Dns(format!("{host}: no addresses")),
        ));
    }

    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout(Phase::Connect, limit)),
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(error)) => last_error = Some(error),
        }
    }
    let tcp = match (tcp, last_error) {
        (Some(tcp), _) => tcp,
        (None, Some(error)) => return Err(io_failure(Phase::Connect, error)),
        (None, None) => unreachable!("at least one address was tried"),
    };
    // Latency matters more than throughput for small event messages.
    let _ = tcp.set_nodelay(true);

    let stream = if tls {
        let name = ServerName::try_from(host.to_owned()).map_err(|error| {
            WsFailure::new(
                Phase::Connect,
                FailureKind::Tls(format!("invalid server name {host}: {error}")),
            )
        })?;
        let tls = match config.tls() {
            Some(tls) => tls.client_config(),
            None => match timeout_at(deadline, tls::default_tls()).await {
                Err(_) => return Err(timeout(Phase::Connect, limit)),
                Ok(Err(error)) => {
                    return Err(WsFailure::new(
                        Phase::Connect,
                        FailureKind::Tls(error.to_string()),
                    )
                    .with_source(error));
                }
                Ok(Ok(tls)) => tls.client_config(),
            },
        };
        let connector = tokio_rustls::TlsConnector::from(tls);
        match timeout_at(deadline, connector.connect(name, tcp)).await {
            Err(_) => return Err(timeout(Phase::Connect, limit)),
            Ok(Err(error)) => {
                return Err(
                    WsFailure::new(Phase::Connect, FailureKind::Tls(error.to_string()))
                        .with_source(error),
                );
            }
            Ok(Ok(stream)) => MaybeTlsStream::Rustls(stream),
        }
    } else {
        MaybeTlsStream::Plain(tcp)
    };

    let mut request = url.into_client_request().map_err(|error| {
        WsFailure::new(
            Phase::Handshake,
            FailureKind::Local(format!("cannot build the upgrade request: {error}")),
        )
    })?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    let upgrade = client_async_with_config(request, stream, Some(protocol_config(config)));
    match timeout_at(deadline, upgrade).await {
        Err(_) => Err(timeout(Phase::Handshake, limit)),
        Ok(Err(error)) => Err(map_error(Phase::Handshake, error)),
        Ok(Ok((stream, response))) => {
            metrics::histogram!("wsfirst_ws_handshake_seconds")
                .record(started.elapsed().as_secs_f64());
            Ok((stream, response.into_parts().0.headers))
        }
    }
}

/// Maps a tungstenite error seen in `phase` to a typed failure.
pub(crate) fn map_error(phase: Phase, error: tungstenite::Error) -> WsFailure {
    use tungstenite::Error;
    let kind = match &error {
        Error::Http(response) => {
            // The body of a refused credential may repeat part of it: not even copied (and
            // `WsFailure::new` would drop it).
            let refused = matches!(
                response.status(),
                http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN
            );
            let body = response
                .body()
                .as_deref()
                .filter(|_| !refused)
                .map(|body| Bytes::copy_from_slice(&body[..body.len().min(UPGRADE_BODY_LIMIT)]))
                .unwrap_or_default();
            return WsFailure::new(
                phase,
                FailureKind::UpgradeStatus {
                    status: response.status(),
                    body,
                },
            );
        }
        Error::Io(io) => FailureKind::Io {
            kind: io.kind(),
            message: io.to_string(),
        },
        Error::Tls(tls) => FailureKind::Tls(tls.to_string()),
        Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size, max_size }) => {
            FailureKind::TooLarge {
                size: *size,
                limit: *max_size,
            }
        }
        Error::ConnectionClosed
        | Error::AlreadyClosed
        | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => FailureKind::Closed {
            code: None,
            reason: String::new(),
        },
        other => FailureKind::Protocol(other.to_string()),
    };
    WsFailure::new(phase, kind).with_source(error)
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue, StatusCode, header::AUTHORIZATION};
    use wsfirst_core::headers::HeaderPolicy;

    use super::*;

    fn route(policy: HeaderPolicy) -> Route {
        Route::builder("p", "a")
            .http_url("http://x")
            .headers(policy)
            .build()
            .unwrap()
    }

    #[test]
    fn handshake_headers_are_the_route_s_allowlist_plus_static_headers() {
        let policy = HeaderPolicy::responses()
            .to_builder()
            .static_header(
                HeaderName::from_static("openai-beta"),
                HeaderValue::from_static("responses-websocket=v1"),
            )
            .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-route"))
            .build()
            .unwrap();
        let route = route(policy);
        let mut request = HeaderMap::new();
        request.insert("authorization", HeaderValue::from_static("Bearer sk-1"));
        request.insert("openai-beta", HeaderValue::from_static("other"));
        request.insert("cookie", HeaderValue::from_static("c=1"));
        request.insert("connection", HeaderValue::from_static("keep-alive"));
        request.insert("host", HeaderValue::from_static("client.example"));
        request.insert("content-type", HeaderValue::from_static("application/json"));
        let headers = handshake_headers(&route, &request);
        assert_eq!(headers.len(), 2, "{headers:?}");
        // A static header replaces the forwarded one...
        assert_eq!(headers["authorization"], "Bearer sk-route");
        // ... but the beta flags are a list: the route's flag is added to the client's.
        assert_eq!(headers["openai-beta"], "other, responses-websocket=v1");

        // Without client flags, the route's value alone.
        let headers = handshake_headers(&route, &HeaderMap::new());
        assert_eq!(headers["openai-beta"], "responses-websocket=v1");
    }

    #[test]
    fn a_policy_without_list_headers_replaces_the_beta_header() {
        let beta = HeaderName::from_static("openai-beta");
        let policy = HeaderPolicy::builder()
            .forward_header(beta.clone())
            .static_header(beta, HeaderValue::from_static("mine"))
            .build()
            .unwrap();
        let mut request = HeaderMap::new();
        request.insert("openai-beta", HeaderValue::from_static("theirs"));
        assert_eq!(
            handshake_headers(&route(policy), &request)["openai-beta"],
            "mine"
        );
    }

    #[test]
    fn non_websocket_urls_are_rejected() {
        for url in ["http://x/y", "/relative"] {
            let failure = target(&url.parse().unwrap()).unwrap_err();
            assert_eq!(failure.phase(), Phase::Connect);
            assert!(matches!(failure.kind(), FailureKind::Local(_)), "{url}");
        }
        assert_eq!(
            target(&"wss://h/p".parse().unwrap()).unwrap(),
            (true, "h", 443)
        );
        assert_eq!(
            target(&"ws://[::1]:81/p".parse().unwrap()).unwrap(),
            (false, "::1", 81)
        );
    }

    #[test]
    fn upgrade_errors_keep_status_and_body() {
        let response = http::Response::builder()
            .status(500)
            .body(Some(b"internal error".to_vec()))
            .unwrap();
        let failure = map_error(
            Phase::Handshake,
            tungstenite::Error::Http(Box::new(response)),
        );
        assert_eq!(
            failure.kind(),
            &FailureKind::UpgradeStatus {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: Bytes::from_static(b"internal error")
            }
        );
    }

    #[test]
    fn refused_credentials_keep_no_body() {
        for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
            let response = http::Response::builder()
                .status(status)
                .body(Some(b"Incorrect API key provided: sk-proj-abc".to_vec()))
                .unwrap();
            let failure = map_error(
                Phase::Handshake,
                tungstenite::Error::Http(Box::new(response)),
            );
            assert_eq!(
                failure.kind(),
                &FailureKind::UpgradeStatus {
                    status,
                    body: Bytes::new()
                }
            );
            let shown = format!("{failure} {failure:?}");
            assert!(!shown.contains("sk-proj"), "{shown}");
        }
    }

    #[test]
    fn url_failures_show_no_userinfo_or_query() {
        let failure = target(&"http://user:hunter2@x/y?key=sk-1".parse().unwrap()).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "websocket connect failed: the websocket url http://x/y is not ws:// or wss://"
        );
        let failure = target(&"/relative?key=sk-1".parse().unwrap()).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "websocket connect failed: the websocket url /relative is not ws:// or wss://"
        );
    }

    #[test]
    fn too_long_messages_are_too_large() {
        let failure = map_error(
            Phase::MidStream,
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size: 20,
                max_size: 10,
            }),
        );
        assert_eq!(
            failure.kind(),
            &FailureKind::TooLarge {
                size: 20,
                limit: 10
            }
        );
    }

    #[tokio::test]
    async fn refused_connection_is_an_io_failure() {
        // Bind then drop to get a port that nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url: Uri = format!("ws://127.0.0.1:{port}/v1").parse().unwrap();
        let failure = connect(&url, &HeaderMap::new(), &WebSocketConfig::default())
            .await
            .unwrap_err();
        assert_eq!(failure.phase(), Phase::Connect);
        assert!(
            matches!(failure.kind(), FailureKind::Io { kind, .. } if *kind == std::io::ErrorKind::ConnectionRefused),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn unknown_host_is_a_dns_failure() {
        let url: Uri = "ws://no-such-host.invalid/v1".parse().unwrap();
        let failure = connect(&url, &HeaderMap::new(), &WebSocketConfig::default())
            .await
            .unwrap_err();
        assert_eq!(failure.phase(), Phase::Connect);
        assert!(matches!(failure.kind(), FailureKind::Dns(_)), "{failure:?}");
    }
}
