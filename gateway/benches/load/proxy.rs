//! The floor of any proxy: a minimal hyper reverse proxy, run as a child process (the benchmark
//! binary started again with [`ROLE_ENV`] set), with what every proxy needs and nothing else:
//! HTTP/1.1 keep-alive towards the client with `TCP_NODELAY`, a pooled client towards the
//! upstream, and the answer's body streamed through frame by frame.

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, Uri};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;

/// Set (to the upstream's `host:port`) when the benchmark binary runs as the proxy.
pub(crate) const ROLE_ENV: &str = "WSFIRST_LOAD_PROXY_UPSTREAM";

type Upstream = Client<HttpConnector, Incoming>;

/// Serves the proxy until killed; prints `listening on http://<addr>` first.
pub(crate) fn run(upstream: String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        println!("listening on http://{addr}");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let client = client.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let service =
                    service_fn(move |request| forward(client.clone(), upstream.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
}

async fn forward(
    client: Upstream,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(upstream)
        .path_and_query(path)
        .build()
        .expect("a valid upstream uri");
    parts.headers.remove(http::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response),
        Err(error) => panic!("the minimal proxy's upstream failed: {error}"),
    }
}
