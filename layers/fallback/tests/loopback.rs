//! The fallback layer against a real HTTP upstream on 127.0.0.1, with a WebSocket attempt that
//! really fails to connect (a refused port).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use axum::{Router, body::Bytes as AxumBytes, routing::post};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};
use wsfirst_core::{
    BoxError, FailureKind, Intent, Phase, Route, Served, Transport, WsFailure, find_ws_failure,
};
use wsfirst_fallback::{FallbackConfig, FallbackLayer, ReplayBody};

type Body = ReplayBody<Full<Bytes>>;

/// An HTTP upstream that echoes the body and counts what it executed.
async fn http_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let executed = Arc::new(AtomicUsize::new(0));
    let counter = executed.clone();
    let app = Router::new().route(
        "/v1/responses",
        post(move |body: AxumBytes| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { body }
        }),
    );
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, executed)
}

/// A loopback port with nothing listening on it.
async fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// Stands in for the WebSocket layer over the HTTP upstream: a WebSocket intent connects to
/// `ws` (and fails as the real layer would), anything else goes to the HTTP upstream.
#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    ws: SocketAddr,
    /// Fail mid-stream instead of connecting.
    mid_stream: bool,
}

impl Service<Request<Body>> for Upstream {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if request.extensions().get::<Intent>() == Some(&Intent::WebSocket) {
                if this.mid_stream {
                    return Err(WsFailure::new(
                        Phase::MidStream,
                        FailureKind::Closed {
                            code: Some(1011),
                            reason: String::new(),
                        },
                    )
                    .into());
                }
                let error = TcpStream::connect(this.ws).await.unwrap_err();
                let failure = WsFailure::new(
                    Phase::Connect,
                    FailureKind::Io {
                        kind: error.kind(),
                        message: error.to_string(),
                    },
                )
                .with_source(error);
                return Err(failure.into());
            }
            let response = this.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

fn request(http: SocketAddr, body: Bytes) -> Request<Full<Bytes>> {
    let route = Route::builder("loopback", "echo")
        .ws_url("ws://127.0.0.1:1/v1/responses")
        .http_url(format!("http://{http}/v1/responses"))
        .build()
        .unwrap();
    let mut request = Request::post(format!("http://{http}/v1/responses"))
        .body(Full::new(body))
        .unwrap();
    request.extensions_mut().insert(route);
    request.extensions_mut().insert(Intent::WebSocket);
    request
}

#[tokio::test]
async fn one_mib_body_is_replayed_over_http_byte_identical() {
    let (http, executed) = http_upstream().await;
    let upstream = Upstream {
        client: Client::builder(TokioExecutor::new()).build_http(),
        ws: refused_port().await,
        mid_stream: false,
    };
    let mut service = FallbackLayer::new(FallbackConfig::default()).layer(upstream);

    let data: Bytes = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(http, data.clone()))
        .await
        .unwrap();

    let served = response.extensions().get::<Served>().unwrap();
    assert_eq!(served.transport(), Transport::Http);
    assert_eq!(
        served.fallback_cause().map(WsFailure::phase),
        Some(Phase::Connect)
    );
    assert!(
        response.body() == &data,
        "the upstream received other bytes"
    );
    assert_eq!(executed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn mid_stream_failure_executes_nothing_over_http() {
    let (http, executed) = http_upstream().await;
    let upstream = Upstream {
        client: Client::builder(TokioExecutor::new()).build_http(),
        ws: refused_port().await,
        mid_stream: true,
    };
    let mut service = FallbackLayer::new(FallbackConfig::default()).layer(upstream);

    let error = service
        .ready()
        .await
        .unwrap()
        .call(request(http, Bytes::from_static(b"{}")))
        .await
        .unwrap_err();
    assert_eq!(
        find_ws_failure(&*error).map(WsFailure::phase),
        Some(Phase::MidStream)
    );
    assert_eq!(executed.load(Ordering::SeqCst), 0);
}
