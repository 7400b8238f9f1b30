//! `wss://` success and certificate failures, with a certificate made at test time by `rcgen`:
//! a TLS terminator on 127.0.0.1 (tokio-rustls) in front of the scriptable upstream, so the
//! WebSocket the layer opens is TLS end to end on the client side and the kit still scripts and
//! counts what the upstream sees.
#![cfg(feature = "testing")]

mod ws_support;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use rcgen::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tower::Layer;
use ws_support::*;
use wsfirst_core::{FailureKind, Phase, Served, Transport};
use wsfirst_websocket::{
    Pool, WebSocketConfig, WebSocketLayer,
    testing::{Answer, TestUpstream},
    tls::ClientTls,
};

/// A self-signed certificate (and its key) for these subject alternative names.
fn certificate(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .expect("rcgen makes a certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    (cert.der().clone(), key)
}

/// A self-signed certificate for `localhost` whose subject is `common_name`: roots that differ
/// only by key would share a subject, and a verifier picks a root by its subject.
fn certificate_of(common_name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

/// A TLS terminator on 127.0.0.1: accepts TLS with `cert`, then pipes the plain bytes to the
/// test kit. Counts completed TLS handshakes and keeps the ALPN protocol each one agreed on.
struct TlsFront {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    alpn: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    task: JoinHandle<()>,
}

impl TlsFront {
    async fn start(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        kit: SocketAddr,
    ) -> Self {
        Self::with_alpn(cert, key, kit, &[b"http/1.1"]).await
    }

    /// A terminator whose server offers these ALPN protocols, in its order of preference.
    async fn with_alpn(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        kit: SocketAddr,
        alpn: &[&[u8]],
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let agreed = Arc::new(Mutex::new(Vec::new()));
        let alpn = agreed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let accepted = counter.clone();
                let agreed = agreed.clone();
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let protocol = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    agreed.lock().unwrap().push(protocol);
                    let Ok(mut plain) = TcpStream::connect(kit).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            addr,
            accepted,
            alpn,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Trusts only `root`: no webpki, no platform roots.
fn only(root: CertificateDer<'static>) -> WebSocketConfig {
    let tls = ClientTls::builder()
        .webpki_roots(false)
        .native_roots(false)
        .extra_root(root)
        .build()
        .unwrap();
    WebSocketConfig::builder().tls(tls).build().unwrap()
}

/// The layer under test over the counting HTTP stand-in.
fn layered(config: WebSocketConfig) -> (Svc, Arc<AtomicUsize>) {
    let (http, calls) = http_stand_in();
    let service = WebSocketLayer::with_pool(config, Pool::new()).layer(http);
    (service, calls)
}

/// Serves one streaming request to `url` and checks it was answered over the WebSocket.
async fn streams(service: &mut Svc, url: &str) {
    let response = call(service, request(&route_to(url), true)).await.unwrap();
    assert_eq!(
        response.extensions().get::<Served>().map(Served::transport),
        Some(Transport::WebSocket),
        "{url}"
    );
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{url}: {error:?}");
    assert_eq!(String::from_utf8(bytes).unwrap(), Answer::default().sse());
}

#[tokio::test]
async fn wss_to_localhost_with_the_extra_root_streams_the_answer() {
    let kit = TestUpstream::start().await;
    let answer = Answer::text("hello over tls");
    kit.set_answer(answer.clone());
    let (cert, key) = certificate(&["localhost", "127.0.0.1"]);
    let front = TlsFront::start(cert.clone(), key, kit.addr()).await;
    let (mut service, http_calls) = layered(only(cert));
    let route = route_to(&format!("wss://localhost:{}/v1/responses", front.port()));

    let response = call(&mut service, request(&route, true)).await.unwrap();
    assert_eq!(
        response.extensions().get::<Served>().map(Served::transport),
        Some(Transport::WebSocket)
    );
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(String::from_utf8(bytes).unwrap(), answer.sse());

    // The upgrade went through the TLS terminator, with the request's credentials.
    assert_eq!(front.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(kit.handshakes(), 1);
    let captured = kit.captured();
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(captured[0].uri.path(), "/v1/responses");
    assert_eq!(
        captured[0].json().unwrap()["type"],
        "response.create",
        "{captured:?}"
    );

    // A second request reuses the pooled TLS connection: no new TLS or WebSocket handshake.
    let response = call(&mut service, request(&route, false)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        answer.final_json().unwrap()
    );
    assert_eq!(front.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(kit.handshakes(), 1);
    assert_eq!(kit.ws_requests(), 2);
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wss_to_an_ip_address_checks_the_ip_san() {
    let kit = TestUpstream::start().await;
    let answer = Answer::default();
    let (cert, key) = certificate(&["localhost", "127.0.0.1"]);
    let front = TlsFront::start(cert.clone(), key, kit.addr()).await;
    let (mut service, _) = layered(only(cert));
    let route = route_to(&format!("wss://127.0.0.1:{}/v1/responses", front.port()));

    let response = call(&mut service, request(&route, true)).await.unwrap();
    let (bytes, error) = read_body(response.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(String::from_utf8(bytes).unwrap(), answer.sse());
    assert_eq!(kit.handshakes(), 1);
}

#[tokio::test]
async fn unknown_issuer_is_a_connect_tls_failure() {
    let kit = TestUpstream::start().await;
    let (cert, key) = certificate(&["localhost"]);
    let front = TlsFront::start(cert, key, kit.addr()).await;
    // The default trust (webpki roots) does not include the test's self-signed certificate.
    let tls = ClientTls::builder().native_roots(false).build().unwrap();
    let config = WebSocketConfig::builder().tls(tls).build().unwrap();
    let (mut service, http_calls) = layered(config);
    let route = route_to(&format!("wss://localhost:{}/v1/responses", front.port()));

    let failure = failure_of(call(&mut service, request(&route, true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    match failure.kind() {
        FailureKind::Tls(message) => assert!(message.contains("UnknownIssuer"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(failure.is_replay_safe());
    assert_eq!(kit.handshakes(), 0, "nothing reached the upstream");
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn certificate_for_another_host_is_a_connect_tls_failure() {
    let kit = TestUpstream::start().await;
    // Trusted as a root, but issued for another name than the one dialled.
    let (cert, key) = certificate(&["api.example.com"]);
    let front = TlsFront::start(cert.clone(), key, kit.addr()).await;
    let (mut service, http_calls) = layered(only(cert));
    let route = route_to(&format!("wss://localhost:{}/v1/responses", front.port()));

    let failure = failure_of(call(&mut service, request(&route, true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    match failure.kind() {
        FailureKind::Tls(message) => {
            assert!(message.contains("not valid for name"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(failure.is_replay_safe());
    assert_eq!(kit.handshakes(), 0, "nothing reached the upstream");
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn extra_roots_add_to_the_webpki_roots_and_to_each_other() {
    let kit = TestUpstream::start().await;
    let (first, first_key) = certificate_of("first private ca");
    let (second, second_key) = certificate_of("second private ca");
    let (stranger, stranger_key) = certificate_of("untrusted ca");
    let first_front = TlsFront::start(first.clone(), first_key, kit.addr()).await;
    let second_front = TlsFront::start(second.clone(), second_key, kit.addr()).await;
    let stranger_front = TlsFront::start(stranger, stranger_key, kit.addr()).await;
    // One TLS configuration for every route: the webpki roots plus two private roots.
    let tls = ClientTls::builder()
        .native_roots(false)
        .extra_root(first)
        .extra_root(second)
        .build_async()
        .await
        .unwrap();
    assert_eq!(
        tls.root_count(),
        Some(webpki_roots::TLS_SERVER_ROOTS.len() + 2),
        "the extra roots are added to the webpki roots, not instead of them"
    );
    let config = WebSocketConfig::builder().tls(tls.clone()).build().unwrap();
    let other_route = WebSocketConfig::builder().tls(tls.clone()).build().unwrap();
    assert!(Arc::ptr_eq(
        &config.tls().unwrap().client_config(),
        &other_route.tls().unwrap().client_config()
    ));
    let (mut service, http_calls) = layered(config);

    streams(
        &mut service,
        &format!("wss://localhost:{}/v1", first_front.port()),
    )
    .await;
    streams(
        &mut service,
        &format!("wss://localhost:{}/v1", second_front.port()),
    )
    .await;
    let url = format!("wss://localhost:{}/v1", stranger_front.port());
    let failure = failure_of(call(&mut service, request(&route_to(&url), true)).await);
    match failure.kind() {
        FailureKind::Tls(message) => assert!(message.contains("UnknownIssuer"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(kit.handshakes(), 2);
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_websocket_never_negotiates_http2() {
    let kit = TestUpstream::start().await;
    let (cert, key) = certificate(&["localhost"]);
    // A server that prefers HTTP/2.
    let front = TlsFront::with_alpn(cert.clone(), key, kit.addr(), &[b"h2", b"http/1.1"]).await;
    // The HTTP client's configuration offers HTTP/2; the WebSocket's copy of it does not.
    let tls = ClientTls::builder()
        .webpki_roots(false)
        .native_roots(false)
        .extra_root(cert)
        .build()
        .unwrap();
    let http = tls.with_alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    for tls in [tls, ClientTls::from_config(http)] {
        let config = WebSocketConfig::builder().tls(tls).build().unwrap();
        let (mut service, _) = layered(config);
        streams(
            &mut service,
            &format!("wss://localhost:{}/v1", front.port()),
        )
        .await;
    }
    assert_eq!(
        *front.alpn.lock().unwrap(),
        [Some(b"http/1.1".to_vec()), Some(b"http/1.1".to_vec())]
    );
}

#[tokio::test]
async fn without_a_tls_configuration_the_process_default_is_used() {
    let kit = TestUpstream::start().await;
    let (cert, key) = certificate(&["localhost"]);
    let front = TlsFront::start(cert, key, kit.addr()).await;
    // No TLS given: the webpki and platform roots, read off the async worker at this first
    // `wss://` connection. Neither trusts the test's certificate.
    let config = WebSocketConfig::default();
    assert!(config.tls().is_none());
    let (mut service, _) = layered(config);
    let url = format!("wss://localhost:{}/v1", front.port());
    let failure = failure_of(call(&mut service, request(&route_to(&url), true)).await);
    assert_eq!(failure.phase(), Phase::Connect);
    match failure.kind() {
        FailureKind::Tls(message) => assert!(message.contains("UnknownIssuer"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(kit.handshakes(), 0);
}
