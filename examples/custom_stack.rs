//! A route built by hand: the pieces of `Wsfirst::route` put together with `tower::ServiceBuilder`,
//! plus a layer of our own and a tower-http layer, mounted in axum.
//!
//! Run with `cargo run --example custom_stack`. No network: it starts the test kit's fake
//! Responses API upstream on `127.0.0.1` (both transports on one port) and sends a few requests
//! through the axum router, printing for each what the stack answered (`x-wsfirst-transport` /
//! `x-wsfirst-reason`) and what the upstream received.
//!
//! The stack, outermost first:
//!
//! ```text
//! RequireJson -> Respond -> SetRoute -> SetRequestHeader (tower-http) -> Eligibility
//!             -> Sequence (ours) -> CircuitBreaker -> Fallback -> WebSocket -> HttpUpstream
//! ```
//!
//! `Sequence` numbers the requests that pass eligibility (header `x-gateway-seq`); tower-http's
//! `SetRequestHeaderLayer` gives a request without an `x-request-id` one. The route's header
//! policy forwards both, so the upstream sees them over either transport.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::{Router, body::Body, routing::post_service};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use wsfirst::{
    REASON_HEADER, RespondLayer, TRANSPORT_HEADER, Wsfirst,
    core::{BoxError, Route, headers::HeaderPolicy},
    eligibility::EligibilityTable,
    fallback::FallbackConfig,
    guard::RequireJsonLayer,
    websocket::WebSocketConfig,
};
use wsfirst_websocket::testing::{TestUpstream, Transport, WsScript};

const SEQ: HeaderName = HeaderName::from_static("x-gateway-seq");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Our own layer: stamps `x-gateway-seq: N` on each request, N counting from 1.
#[derive(Clone, Default)]
struct SequenceLayer(Arc<AtomicU64>);

impl<S> Layer<S> for SequenceLayer {
    type Service = Sequence<S>;

    fn layer(&self, inner: S) -> Sequence<S> {
        Sequence {
            inner,
            next: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Sequence<S> {
    inner: S,
    next: Arc<AtomicU64>,
}

impl<S, B> Service<Request<B>> for Sequence<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        request.headers_mut().insert(SEQ, HeaderValue::from(n));
        self.inner.call(request)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream = TestUpstream::start().await;

    let table = EligibilityTable::builder()
        .allow("local", "responses")
        .build()?;
    let wsfirst = Wsfirst::builder().eligibility(table).build();
    // The route's header policy: the Responses API's headers, plus our two.
    let headers = HeaderPolicy::responses()
        .to_builder()
        .forward_header(SEQ)
        .forward_header(REQUEST_ID)
        .build()?;
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .headers(headers)
        .build()?;

    let sequence = SequenceLayer::default();
    let service = ServiceBuilder::new()
        // First, as in `Wsfirst::route`: a `POST` that is not JSON (which a web page could send
        // without a CORS preflight) is `415`.
        .layer(RequireJsonLayer::new())
        .layer(RespondLayer::new())
        .layer(wsfirst.route_layer(route))
        .layer(SetRequestHeaderLayer::if_not_present(
            REQUEST_ID,
            HeaderValue::from_static("req-from-the-gateway"),
        ))
        .layer(wsfirst.eligibility_layer())
        .layer(sequence.clone())
        .layer(wsfirst.breaker_layer())
        // Under a breaker, whose WARN on pin replaces the fallback layer's own; buffers within
        // the shared body budget.
        .layer(wsfirst.fallback_layer(FallbackConfig::builder().warn_interval(None).build()?))
        .layer(wsfirst.websocket_layer(WebSocketConfig::default()))
        .service(wsfirst.http_upstream());
    let app = Router::new().route("/v1/responses", post_service(service));

    let steps: [(&str, Option<&str>, Option<WsScript>); 3] = [
        ("a healthy upstream", Some("req-1"), None),
        (
            "the upstream refuses WebSocket upgrades with 500",
            None,
            Some(WsScript::refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "wrong endpoint",
            )),
        ),
        (
            "the upgrades work again",
            Some("req-3"),
            Some(WsScript::Accept),
        ),
    ];
    for (index, (story, request_id, script)) in steps.into_iter().enumerate() {
        if let Some(script) = script {
            upstream.set_default_ws_script(script);
        }
        let mut request = Request::post("/v1/responses")
            .header("authorization", "Bearer sk-example")
            .header("content-type", "application/json");
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID, id);
        }
        let request = request.body(Body::from(
            r#"{"model":"gpt-kit","input":"hi","stream":true}"#,
        ))?;
        let before = upstream.captured().len();
        let response = app.clone().oneshot(request).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (status, transport, reason) = (
            response.status(),
            header(TRANSPORT_HEADER),
            header(REASON_HEADER),
        );
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "request {}: {story}: status {status}, transport {transport} ({reason}), {} bytes",
            index + 1,
            body.len()
        );
        for seen in &upstream.captured()[before..] {
            let over = match seen.transport {
                Transport::WebSocket => "websocket",
                Transport::Http => "http",
            };
            println!(
                "    the upstream received it over {over}: x-gateway-seq {}, x-request-id {}",
                seen.header(SEQ.as_str()).unwrap_or("-"),
                seen.header(REQUEST_ID.as_str()).unwrap_or("-"),
            );
        }
    }
    println!(
        "our layer numbered {} requests",
        sequence.0.load(Ordering::Relaxed)
    );
    wsfirst.shutdown().await;
    Ok(())
}
