//! `HttpUpstream` over `https://` with a certificate made at test time by `rcgen`: an HTTPS
//! server on 127.0.0.1 (hyper-util's auto server over a tokio-rustls acceptor, offering `h2` and
//! `http/1.1` by ALPN) that records what it received and streams the answer the test feeds it.

use std::{
    convert::Infallible,
    error::Error as _,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rcgen::CertifiedKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::{
    net::TcpListener,
    sync::mpsc::{self, UnboundedReceiver, UnboundedSender},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use wsfirst::{
    core::Route,
    upstream::{HttpUpstream, HttpUpstreamError, HttpUpstreamErrorKind},
    websocket::tls::ClientTls,
};
use wsfirst_websocket::testing::Answer;

/// A self-signed certificate (and its key) for these subject alternative names.
fn certificate(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    (cert.der().clone(), key)
}

/// A request as the HTTPS server received it.
#[derive(Debug)]
struct Seen {
    version: Version,
    path: String,
    authorization: Option<String>,
    body: Bytes,
}

/// The HTTPS server. Each request's answer is an SSE stream whose frames the test sends through
/// the sender handed out by [`HttpsServer::next_answer`]; dropping the sender ends the answer.
struct HttpsServer {
    addr: SocketAddr,
    tls_accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: UnboundedReceiver<UnboundedSender<Bytes>>,
    task: JoinHandle<()>,
}

/// An answer body: each frame as the test sends it, ending when the test drops its sender.
struct ChannelBody(UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|data| Ok(Frame::data(data))))
    }
}

impl HttpsServer {
    async fn start(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls_accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let task = {
            let (tls_accepted, seen) = (tls_accepted.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let (tls_accepted, seen, answers_tx) =
                        (tls_accepted.clone(), seen.clone(), answers_tx.clone());
                    tokio::spawn(async move {
                        // A client that rejects the certificate ends the handshake here.
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        tls_accepted.fetch_add(1, Ordering::SeqCst);
                        let service = hyper::service::service_fn(move |request| {
                            handle(request, seen.clone(), answers_tx.clone())
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            })
        };
        HttpsServer {
            addr,
            tls_accepted,
            seen,
            answers,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The sender of the frames of the next request's answer (once its headers are sent).
    async fn next_answer(&mut self) -> UnboundedSender<Bytes> {
        self.answers
            .recv()
            .await
            .expect("the server hands out one sender per request")
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: UnboundedSender<UnboundedSender<Bytes>>,
) -> Result<Response<ChannelBody>, Infallible> {
    let version = request.version();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        version,
        path,
        authorization,
        body,
    });
    let (frames_tx, frames) = mpsc::unbounded_channel();
    let _ = answers.send(frames_tx);
    let body = ChannelBody(frames);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .unwrap())
}

/// A streaming Responses API POST routed to `http_url`.
fn request(http_url: &str) -> Request<Full<Bytes>> {
    let route = Route::builder("tls", "responses")
        .http_url(http_url)
        .build()
        .unwrap();
    let body = json!({"model": "gpt-kit", "input": "hi", "stream": true}).to_string();
    let mut request = Request::post("http://gateway.local/openai/v1/responses")
        .header(header::AUTHORIZATION, "Bearer sk-test")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    request.extensions_mut().insert(route);
    request
}

/// Sends one request through `upstream`, feeds the answer's SSE frames one at a time and checks
/// that each arrives on its own before the next is sent; returns the response's version.
async fn exchange(upstream: &HttpUpstream, server: &mut HttpsServer, url: &str) -> Version {
    let answer = Answer::text("hello over https");
    let response = upstream.clone().oneshot(request(url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let version = response.version();
    let frames = server.next_answer().await;
    let mut body = response.into_body();
    let mut received = Vec::new();
    for index in 0..answer.len() {
        let frame = answer.sse_frame(index).unwrap();
        frames.send(Bytes::from(frame.clone())).unwrap();
        let data = body
            .frame()
            .await
            .unwrap_or_else(|| panic!("the body ended before frame {index}"))
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(data, frame.as_bytes(), "frame {index}");
        received.extend_from_slice(&data);
    }
    drop(frames);
    // The body ends with the answer (HTTP/2 may close the stream with an empty DATA frame).
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        assert!(
            frame.data_ref().is_some_and(Bytes::is_empty),
            "nothing after the answer: {frame:?}"
        );
    }
    assert_eq!(received, answer.sse().as_bytes());
    version
}

/// The text of an error and all its sources.
/// The default roots plus `cert`, as a whole stack would share them.
fn extra_root(cert: CertificateDer<'static>) -> ClientTls {
    ClientTls::builder().extra_root(cert).build().unwrap()
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

#[tokio::test]
async fn https_with_the_extra_root_streams_the_answer_over_http2() {
    let (cert, key) = certificate(&["localhost", "127.0.0.1"]);
    let mut server = HttpsServer::start(cert.clone(), key).await;
    // `http2(true)` is the default: ALPN offers h2 and the server picks it.
    let upstream = HttpUpstream::builder()
        .tls(extra_root(cert).client_config())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/responses", server.port());

    let version = exchange(&upstream, &mut server, &url).await;
    assert_eq!(version, Version::HTTP_2);
    {
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].version, Version::HTTP_2);
        assert_eq!(seen[0].path, "/v1/responses");
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test"));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap()["stream"],
            true
        );
    }

    // The HTTP/2 connection is shared: a second request makes no new TLS handshake.
    exchange(&upstream, &mut server, &url).await;
    assert_eq!(server.seen().len(), 2);
    assert_eq!(server.tls_accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_with_http2_off_negotiates_http1_and_checks_the_ip_san() {
    let (cert, key) = certificate(&["localhost", "127.0.0.1"]);
    let mut server = HttpsServer::start(cert.clone(), key).await;
    let upstream = HttpUpstream::builder()
        .http2(false)
        .tls(extra_root(cert).client_config())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/v1/responses", server.port());

    let version = exchange(&upstream, &mut server, &url).await;
    assert_eq!(version, Version::HTTP_11);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(seen[0].path, "/v1/responses");
}

#[tokio::test]
async fn unknown_issuer_is_a_typed_connect_error() {
    let (cert, key) = certificate(&["localhost"]);
    let server = HttpsServer::start(cert, key).await;
    // The default trust (webpki roots) does not include the test's self-signed certificate.
    let url = format!("https://localhost:{}/v1/responses", server.port());
    let error = HttpUpstream::new()
        .oneshot(request(&url))
        .await
        .unwrap_err();
    let error = error
        .downcast_ref::<HttpUpstreamError>()
        .unwrap_or_else(|| panic!("not an HttpUpstreamError: {error}"));
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Connect);
    assert_eq!(error.host(), format!("localhost:{}", server.port()));
    let text = chain(error);
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn certificate_for_another_host_is_a_typed_connect_error() {
    // Trusted as a root, but issued for another name than the one dialled.
    let (cert, key) = certificate(&["api.example.com"]);
    let server = HttpsServer::start(cert.clone(), key).await;
    let upstream = HttpUpstream::builder()
        .tls(extra_root(cert).client_config())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/responses", server.port());
    let error = upstream.oneshot(request(&url)).await.unwrap_err();
    let error = error
        .downcast_ref::<HttpUpstreamError>()
        .unwrap_or_else(|| panic!("not an HttpUpstreamError: {error}"));
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Connect);
    assert!(error.source().is_some());
    let text = chain(error);
    assert!(text.contains("not valid for name"), "{text}");
    assert!(server.seen().is_empty());
}

/// `with_tls` uses the configuration it is given (here one that trusts the test's certificate),
/// not the default roots.
#[tokio::test]
async fn with_tls_trusts_the_roots_it_is_given() {
    let (cert, key) = certificate(&["localhost"]);
    let mut server = HttpsServer::start(cert.clone(), key).await;
    let upstream = HttpUpstream::with_tls(extra_root(cert).client_config());
    let url = format!("https://localhost:{}/v1/responses", server.port());
    exchange(&upstream, &mut server, &url).await;
    assert_eq!(server.seen().len(), 1);
}
