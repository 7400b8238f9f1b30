//! A request that sets a field the WebSocket mode does not support (`background: true`) is not
//! tried on the WebSocket: the layer's inner HTTP service gets it with the body unchanged, byte
//! for byte, and the response says why. Against the loopback upstream, counting what it executed
//! on each transport.
#![cfg(feature = "testing")]

mod ws_support;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Service, ServiceExt, util::BoxCloneService};
use ws_support::*;
use wsfirst_core::{
    BoxError, FailureKind, HttpReason, Ineligible, Intent, Phase, Served, Transport,
};
use wsfirst_websocket::{
    Pool, WebSocket, WebSocketConfig,
    testing::{Answer, TestUpstream},
};

/// The intents the HTTP side was called with.
type Seen = Arc<Mutex<Vec<Option<Intent>>>>;

/// An inner service that posts each request to the upstream's HTTP endpoint (a real HTTP
/// exchange, so that the upstream counts and captures it), remembering its intent.
fn http_to(upstream: &TestUpstream) -> (HttpService, Seen) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = upstream.http_url();
    let seen = Seen::default();
    let record = seen.clone();
    let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
        record
            .lock()
            .unwrap()
            .push(request.extensions().get::<Intent>().cloned());
        let client = client.clone();
        let url = url.clone();
        async move {
            let (parts, body) = request.into_parts();
            let mut outgoing = Request::post(url).body(body).unwrap();
            *outgoing.headers_mut() = parts.headers;
            let response = client.request(outgoing).await.expect("http upstream");
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.expect("http body").to_bytes();
            Ok::<_, Infallible>(Response::from_parts(parts, Full::new(bytes)))
        }
    });
    (BoxCloneService::new(service), seen)
}

fn layer_over(upstream: &TestUpstream) -> (Svc, Seen) {
    let (http, seen) = http_to(upstream);
    let config = WebSocketConfig::builder().build().unwrap();
    (WebSocket::with_pool(http, config, Pool::new()), seen)
}

fn unsupported() -> Intent {
    Intent::Http(HttpReason::Ineligible(Ineligible::UnsupportedField(
        "background",
    )))
}

#[tokio::test]
async fn background_goes_over_http_with_the_body_unchanged() {
    let upstream = TestUpstream::start().await;
    upstream.set_answer(Answer::text("in the background"));
    let route = route(&upstream);
    let (mut service, seen) = layer_over(&upstream);
    // Odd spacing, field order and escapes: the bytes must arrive as they are.
    let bodies = [
        r#"{"model":"gpt-kit", "background":true,"input":"hi","stream":true}"#,
        "{\n  \"background\" : true,\n  \"input\" : \"caf\\u00e9\",\n  \"model\":\"gpt-kit\"\n}",
    ];
    for (index, body) in bodies.into_iter().enumerate() {
        let response = call(&mut service, request_with(&route, body.into(), &[]))
            .await
            .unwrap();
        let served = response.extensions().get::<Served>().unwrap().clone();
        assert_eq!(served.transport(), Transport::Http);
        assert_eq!(served.reason_label(), "unsupported_field");
        assert_eq!(served.ws_attempt(), None);
        let (bytes, error) = read_body(response.into_body()).await;
        assert!(error.is_none(), "{error:?}");
        let answer = Answer::text("in the background");
        let expected = if index == 0 {
            answer.sse()
        } else {
            answer.final_json().unwrap().to_owned()
        };
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    assert_eq!(
        (
            upstream.handshakes(),
            upstream.ws_requests(),
            upstream.http_requests()
        ),
        (0, 0, 2)
    );
    let captured = upstream.captured();
    for (captured, body) in captured.iter().zip(bodies) {
        assert_eq!(captured.transport, Transport::Http);
        assert_eq!(captured.body, Bytes::from(body), "byte for byte");
        assert_eq!(captured.header("authorization"), Some("Bearer sk-test"));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(unsupported()), Some(unsupported())]
    );
    upstream.shutdown().await;
}

#[tokio::test]
async fn background_false_or_absent_still_goes_over_the_websocket() {
    let upstream = TestUpstream::start().await;
    let route = route(&upstream);
    let (mut service, seen) = layer_over(&upstream);
    for body in [
        r#"{"model":"gpt-kit","background":false,"input":"hi","stream":true}"#,
        r#"{"model":"gpt-kit","input":"background","stream":true}"#,
    ] {
        let response = call(&mut service, request_with(&route, body.into(), &[]))
            .await
            .unwrap();
        assert_eq!(
            response.extensions().get::<Served>().map(Served::transport),
            Some(Transport::WebSocket)
        );
        let (bytes, error) = read_body(response.into_body()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(String::from_utf8(bytes).unwrap(), Answer::default().sse());
    }
    assert_eq!((upstream.ws_requests(), upstream.http_requests()), (2, 0));
    // `background: false` says what leaving it out says.
    let sent = upstream.captured()[0].json().unwrap();
    assert_eq!(sent.get("background"), None);
    assert_eq!(sent["input"], "hi");
    assert!(seen.lock().unwrap().is_empty());
    upstream.shutdown().await;
}

#[tokio::test]
async fn an_unsupported_request_is_counted_by_field() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let upstream = TestUpstream::start().await;
    let route = route(&upstream);
    let (mut service, _) = layer_over(&upstream);
    let body = r#"{"model":"gpt-kit","background":true,"input":"hi"}"#;
    let response = call(&mut service, request_with(&route, body.into(), &[]))
        .await
        .unwrap();
    read_body(response.into_body()).await;

    let counted = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            (key.name() == "wsfirst_ws_ineligible_total").then(|| {
                assert_eq!(
                    labels,
                    [
                        ("provider", "test"),
                        ("api", "test-responses"),
                        ("reason", "unsupported_field"),
                        ("field", "background"),
                    ]
                );
                value
            })
        });
    assert_eq!(counted, Some(DebugValue::Counter(1)));
    upstream.shutdown().await;
}

/// A request body of data and trailers (buildable from bytes, as the layer requires).
#[derive(Debug, Default)]
struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl From<Bytes> for WithTrailers {
    fn from(data: Bytes) -> Self {
        Self {
            data: Some(data),
            trailers: None,
        }
    }
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(data) => Some(http_body::Frame::data(data)),
            None => self.trailers.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

/// A body with trailers cannot be rebuilt from bytes: it goes on to the attempt, whose codec
/// refuses the field with a replay-safe failure before any connection is made (a fallback layer
/// replays the identical request, trailers included, over HTTP). The field is never dropped.
#[tokio::test]
async fn with_trailers_the_codec_refuses_the_field_replay_safe() {
    let upstream = TestUpstream::start().await;
    let inner = tower::service_fn(|_: Request<WithTrailers>| async {
        Err::<Response<Full<Bytes>>, BoxError>("the http side is not called".into())
    });
    let mut service = WebSocket::new(inner, WebSocketConfig::default());
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let body = WithTrailers {
        data: Some(Bytes::from_static(
            br#"{"model":"gpt-kit","background":true,"input":"hi"}"#,
        )),
        trailers: Some(trailers),
    };
    let mut request = Request::post("/v1/responses").body(body).unwrap();
    request.extensions_mut().insert(route(&upstream));
    request.extensions_mut().insert(Intent::WebSocket);
    let result = service.ready().await.unwrap().call(request).await;
    let failure = failure_of(result);
    assert_eq!(failure.phase(), Phase::Send);
    assert!(failure.is_replay_safe());
    assert!(
        matches!(failure.kind(), FailureKind::Local(message) if message.contains("background")),
        "{failure:?}"
    );
    assert_eq!(upstream.handshakes(), 0);
    upstream.shutdown().await;
}
