//! The breaker in front of a real (loopback) upstream socket: a dead endpoint is tried until the
//! key trips, then costs no connection attempt at all until a probe finds it healthy again.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tower::{Layer, Service, ServiceExt, service_fn};
use wsfirst_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use wsfirst_core::{BoxError, FailureKind, HttpReason, Intent, Phase, Route, Served, WsFailure};

type Body = Full<bytes::Bytes>;

/// Counts what the upstream stand-in did.
#[derive(Default)]
struct Counts {
    connect_attempts: AtomicUsize,
    http: AtomicUsize,
}

/// An inner stack that "tries the WebSocket" by connecting to `addr` and waiting for a first
/// byte (the first event), and serves HTTP otherwise.
fn inner(
    addr: SocketAddr,
    counts: Arc<Counts>,
) -> impl Service<Request<()>, Response = Response<Body>, Error = BoxError> + Clone {
    service_fn(move |request: Request<()>| {
        let counts = counts.clone();
        async move {
            match request.extensions().get::<Intent>() {
                Some(Intent::WebSocket) => {
                    counts.connect_attempts.fetch_add(1, Ordering::SeqCst);
                    let mut stream = TcpStream::connect(addr).await.map_err(|error| {
                        WsFailure::new(
                            Phase::Connect,
                            FailureKind::Io {
                                kind: error.kind(),
                                message: error.to_string(),
                            },
                        )
                        .with_source(error)
                    })?;
                    let mut first = [0u8; 1];
                    stream.read_exact(&mut first).await.map_err(|error| {
                        WsFailure::new(
                            Phase::BeforeFirstEvent,
                            FailureKind::Closed {
                                code: None,
                                reason: error.to_string(),
                            },
                        )
                    })?;
                    let mut response = Response::new(Full::from(vec![first[0]]));
                    response
                        .extensions_mut()
                        .insert(Served::websocket(Duration::from_millis(1)));
                    Ok::<_, BoxError>(response)
                }
                Some(Intent::Http(reason)) => {
                    counts.http.fetch_add(1, Ordering::SeqCst);
                    let mut response = Response::new(Full::from("http"));
                    response
                        .extensions_mut()
                        .insert(Served::http(reason.clone()));
                    Ok(response)
                }
                None => Err("no intent".into()),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_dead_endpoint_is_pinned_then_probed_back() {
    // Bound but not listening: connections are refused until `listen`.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let counts = Arc::new(Counts::default());

    let config = BreakerConfig::builder()
        .consecutive_failures(3)
        .jitter(0.0)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(config);
    let handle = layer.handle();
    let mut service = layer.layer(inner(addr, counts.clone()));
    let route = Route::builder("local", "local-api")
        .ws_url(format!("ws://{addr}/ws"))
        .http_url(format!("http://{addr}/http"))
        .build()
        .unwrap();
    let request = || {
        let mut request = Request::new(());
        request.extensions_mut().insert(route.clone());
        request.extensions_mut().insert(Intent::WebSocket);
        request
    };

    for _ in 0..3 {
        let error = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap_err();
        let failure = wsfirst_core::find_ws_failure(&*error).unwrap();
        assert_eq!(failure.phase(), Phase::Connect);
    }
    assert_eq!(counts.connect_attempts.load(Ordering::SeqCst), 3);
    assert_eq!(handle.snapshot()[0].state, BreakerState::Open);

    // Pinned: twenty requests, no connection attempt, all served over HTTP as pinned.
    for _ in 0..20 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        let served = response.extensions().get::<Served>().unwrap().clone();
        assert!(matches!(served.reason(), Some(HttpReason::Pinned { .. })));
        assert_eq!(
            &response.into_body().collect().await.unwrap().to_bytes()[..],
            b"http"
        );
    }
    assert_eq!(counts.connect_attempts.load(Ordering::SeqCst), 3);
    assert_eq!(counts.http.load(Ordering::SeqCst), 20);

    // The endpoint heals; after the open period one probe connects and closes the breaker.
    let listener = socket.listen(16).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"!").await;
            }
        })
    };
    tokio::time::advance(Duration::from_secs(30)).await;
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(
        &response.into_body().collect().await.unwrap().to_bytes()[..],
        b"!"
    );
    assert_eq!(handle.snapshot()[0].state, BreakerState::Closed);
    for _ in 0..3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_eq!(
            &response.into_body().collect().await.unwrap().to_bytes()[..],
            b"!"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    assert_eq!(counts.connect_attempts.load(Ordering::SeqCst), 7);
    server.abort();
}
