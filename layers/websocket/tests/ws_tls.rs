//! `wss://` success and certificate failures, with a certificate made at test time by `rcgen`:
//! a TLS terminator on 127.0.0.1 (tokio-rustls) in front of the scriptable upstream, so the
//! WebSocket the layer opens is TLS end to end on the client side and the kit still scripts and
//! counts what the upstream sees.
#![cfg(feature = "testing")]

mod ws_support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
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

/// A TLS terminator on 127.0.0.1: accepts TLS with `cert`, then pipes the plain bytes to the
/// test kit. Counts completed TLS handshakes.
struct TlsFront {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsFront {
    async fn start(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        kit: SocketAddr,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let accepted = counter.clone();
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
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
    WebSocketConfig::builder()
        .webpki_roots(false)
        .native_roots(false)
        .extra_root(root)
        .build()
        .unwrap()
}

/// The layer under test over the counting HTTP stand-in.
fn layered(config: WebSocketConfig) -> (Svc, Arc<AtomicUsize>) {
    let (http, calls) = http_stand_in();
    let service = WebSocketLayer::new(config)
        .with_pool(Pool::new())
        .layer(http);
    (service, calls)
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
    let config = WebSocketConfig::builder()
        .native_roots(false)
        .build()
        .unwrap();
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
