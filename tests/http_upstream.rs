//! `HttpUpstream` against the test kit's HTTP side on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::time::timeout;
use tower::ServiceExt;
use wsfirst::{
    core::{MissingExtension, Route, headers::HeaderPolicy},
    upstream::{HttpTimeouts, HttpUpstream, HttpUpstreamError, HttpUpstreamErrorKind},
};
use wsfirst_websocket::testing::{Answer, HttpScript, TestUpstream, Transport};

fn route(http_url: &str) -> Route {
    Route::builder("kit", "responses")
        .http_url(http_url)
        .build()
        .unwrap()
}

/// A POST to a gateway path, routed to `http_url`.
fn request(http_url: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut request = Request::post("http://gateway.local/openai/v1/responses")
        .header(header::AUTHORIZATION, "Bearer sk-test")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    request.extensions_mut().insert(route(http_url));
    request
}

fn streaming() -> String {
    json!({"model": "gpt-kit", "input": "hi", "stream": true}).to_string()
}

#[tokio::test]
async fn streams_the_sse_answer_unchanged() {
    let kit = TestUpstream::start().await;
    let answer = Answer::text("hello world");
    kit.set_answer(answer.clone());
    let response = HttpUpstream::new()
        .oneshot(request(&kit.http_url(), streaming()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, answer.sse().as_bytes());
    assert_eq!(kit.http_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn streams_frame_by_frame_without_buffering() {
    let kit = TestUpstream::start().await;
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(10),
    });
    let answer = Answer::default();
    let response = HttpUpstream::new()
        .oneshot(request(&kit.http_url(), streaming()))
        .await
        .unwrap();
    let mut body = response.into_body();
    // Each frame arrives on its own, after its delay, while the later ones are not yet sent.
    for index in 0..answer.len() {
        let frame = timeout(Duration::from_secs(11), body.frame())
            .await
            .unwrap_or_else(|_| panic!("frame {index} did not arrive"))
            .unwrap()
            .unwrap();
        assert_eq!(
            frame.data_ref().unwrap(),
            answer.sse_frame(index).unwrap().as_bytes()
        );
    }
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn non_streaming_answer_is_the_final_json() {
    let kit = TestUpstream::start().await;
    let answer = Answer::text("hello world");
    let response = HttpUpstream::new()
        .oneshot(request(&kit.http_url(), r#"{"model":"gpt-kit"}"#))
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, answer.final_json().unwrap().as_bytes());
}

#[tokio::test]
async fn upstream_statuses_pass_through() {
    let kit = TestUpstream::start().await;
    let upstream = HttpUpstream::new();
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::UNAUTHORIZED,
    ] {
        kit.set_http_status(status);
        let response = upstream
            .clone()
            .oneshot(request(&kit.http_url(), streaming()))
            .await
            .expect("an upstream status is a response, not an error");
        assert_eq!(response.status(), status);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            error["error"]["message"],
            format!("scripted status {}", status.as_u16())
        );
    }
    assert_eq!(kit.http_requests(), 3);
}

#[tokio::test]
async fn sends_to_the_route_url_with_the_body_and_credentials() {
    let kit = TestUpstream::start().await;
    let body =
        json!({"model": "gpt-kit", "input": "x".repeat(1 << 20), "stream": true}).to_string();
    let mut request = request(&kit.http_url(), body.clone());
    request
        .headers_mut()
        .insert("openai-beta", HeaderValue::from_static("responses=v1"));
    let response = HttpUpstream::new().oneshot(request).await.unwrap();
    response.into_body().collect().await.unwrap();
    let captured = kit.captured();
    assert_eq!(captured.len(), 1);
    let sent = &captured[0];
    assert_eq!(sent.transport, Transport::Http);
    assert_eq!(sent.uri.path(), "/v1/responses");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(sent.header("openai-beta"), Some("responses=v1"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.body, body.as_bytes());
}

/// Without a policy of the request's own, a default route's: the Responses API's headers and
/// the body's; `Host` and `Content-Length` from the URL and the body. (Adapted: `x-request-id`
/// and every other header outside the allowlist used to be forwarded.)
#[tokio::test]
async fn forwards_only_the_default_policy_s_headers() {
    let kit = TestUpstream::start().await;
    let body = streaming();
    let mut request = request(&kit.http_url(), body.clone());
    let headers = request.headers_mut();
    headers.insert(header::HOST, HeaderValue::from_static("gateway.local"));
    headers.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-hop"),
    );
    headers.insert("x-hop", HeaderValue::from_static("1"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    headers.insert(
        header::PROXY_AUTHORIZATION,
        HeaderValue::from_static("Basic abc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
    headers.insert(header::COOKIE, HeaderValue::from_static("session=1"));
    headers.insert("x-request-id", HeaderValue::from_static("42"));
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    let response = HttpUpstream::new().oneshot(request).await.unwrap();
    response.into_body().collect().await.unwrap();
    let sent = &kit.captured()[0];
    let mut names: Vec<&str> = sent.headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "authorization",
            "content-length",
            "content-type",
            "host"
        ]
    );
    assert_eq!(sent.header("host"), Some(&*kit.addr().to_string()));
    // The length of the body sent, not the client's header.
    assert_eq!(
        sent.header("content-length"),
        Some(&*body.len().to_string())
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
}

/// The route's `HeaderPolicy` decides: its list, then its static headers, which replace the
/// client's. (Adapted from the removed allow and deny lists of the upstream's builder.)
#[tokio::test]
async fn the_route_s_header_policy_decides_what_is_forwarded() {
    let kit = TestUpstream::start().await;
    let policy = HeaderPolicy::builder()
        .forward_header(header::HeaderName::from_static("x-team"))
        .static_header(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-gateway"),
        )
        .build()
        .unwrap();
    let mut first = request(&kit.http_url(), streaming());
    first
        .headers_mut()
        .insert("x-team", HeaderValue::from_static("blue"));
    first
        .headers_mut()
        .insert("x-internal", HeaderValue::from_static("secret"));
    let with_policy = |policy| route(&kit.http_url()).with_headers(policy);
    first.extensions_mut().insert(with_policy(policy));
    HttpUpstream::new().oneshot(first).await.unwrap();
    let mut second = request(&kit.http_url(), streaming());
    second
        .extensions_mut()
        .insert(with_policy(HeaderPolicy::default()));
    HttpUpstream::new().oneshot(second).await.unwrap();
    let captured = kit.captured();
    assert!(captured[0].headers.get("x-internal").is_none());
    assert_eq!(captured[0].header("x-team"), Some("blue"));
    assert_eq!(
        captured[0].headers.get_all("authorization").iter().count(),
        1
    );
    assert_eq!(
        captured[0].header("authorization"),
        Some("Bearer sk-gateway")
    );
    // An empty policy forwards the body's headers only.
    assert!(captured[1].headers.get("authorization").is_none());
    assert_eq!(captured[1].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn missing_route_is_an_error_not_a_panic() {
    let request = Request::post("/v1/responses")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = HttpUpstream::new().oneshot(request).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<MissingExtension>(),
        Some(&MissingExtension::ROUTE)
    );
}

#[tokio::test]
async fn refused_connection_is_a_typed_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/v1/responses");
    let error = HttpUpstream::new()
        .oneshot(request(&url, streaming()))
        .await
        .unwrap_err();
    let error = error
        .downcast_ref::<HttpUpstreamError>()
        .unwrap_or_else(|| panic!("not an HttpUpstreamError: {error}"));
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Connect);
    assert!(error.is_connect());
    assert_eq!(error.host(), addr.to_string());
    assert_eq!(
        error.to_string(),
        format!("http upstream {addr}: connect failed")
    );
    assert!(std::error::Error::source(error).is_some());
}

#[tokio::test(start_paused = true)]
async fn response_timeout_is_a_typed_error() {
    let kit = TestUpstream::start().await;
    // A non-streaming answer waits once, before the response headers.
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(60),
    });
    let upstream = HttpUpstream::builder()
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let error = upstream
        .oneshot(request(&kit.http_url(), "{}"))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<HttpUpstreamError>().unwrap();
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Timeout);
    assert!(error.to_string().contains(&kit.addr().to_string()));
}

#[tokio::test]
async fn clones_share_one_service_configuration() {
    let kit = TestUpstream::start().await;
    let upstream = HttpUpstream::builder().http2(false).build().unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let upstream = upstream.clone();
            let url = kit.http_url();
            tokio::spawn(async move {
                let response = upstream.oneshot(request(&url, streaming())).await.unwrap();
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Answer::default().sse().as_bytes());
    }
    assert_eq!(kit.http_requests(), 4);
}

#[tokio::test]
async fn tls_failure_is_a_typed_connect_error() {
    // The kit speaks plain HTTP: the TLS handshake to it fails.
    let kit = TestUpstream::start().await;
    let url = format!("https://{}/v1/responses", kit.addr());
    let error = HttpUpstream::new()
        .oneshot(request(&url, streaming()))
        .await
        .unwrap_err();
    let error = error
        .downcast_ref::<HttpUpstreamError>()
        .unwrap_or_else(|| panic!("not an HttpUpstreamError: {error}"));
    assert!(error.is_connect(), "{error:?}");
    assert_eq!(error.host(), kit.addr().to_string());
    assert_eq!(kit.http_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_default_response_timeout_is_ten_minutes() {
    let kit = TestUpstream::start().await;
    // A non-streaming answer that takes 11 minutes to come.
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(11 * 60),
    });
    let error = HttpUpstream::new()
        .oneshot(request(&kit.http_url(), "{}"))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<HttpUpstreamError>().unwrap();
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Timeout);
    assert!(error.is_timeout());
}

#[tokio::test(start_paused = true)]
async fn a_body_that_goes_silent_ends_with_a_timeout() {
    let kit = TestUpstream::start().await;
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(60),
    });
    let upstream = HttpUpstream::builder()
        .body_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // The SSE headers come at once; the first frame would come after 60 s.
    let response = upstream
        .oneshot(request(&kit.http_url(), streaming()))
        .await
        .unwrap();
    let error = response.into_body().collect().await.unwrap_err();
    let error = error.downcast_ref::<HttpUpstreamError>().unwrap();
    assert_eq!(error.kind(), HttpUpstreamErrorKind::BodyTimeout);
    assert_eq!(
        error.to_string(),
        format!(
            "http upstream {}: no body data within the idle timeout",
            kit.addr()
        )
    );
}

/// Issue 25, gap 6: the idle timer restarts with each frame. Every frame comes 4 s after the
/// last, under the 5 s idle timeout, while the whole answer takes far longer than 5 s (a total
/// timeout would cut it): the body must end normally, with every frame.
#[tokio::test(start_paused = true)]
async fn a_body_that_keeps_coming_outlives_its_idle_timeout() {
    let kit = TestUpstream::start().await;
    let answer = Answer::text("one two three four five six");
    kit.set_answer(answer.clone());
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(4),
    });
    let upstream = HttpUpstream::builder()
        .body_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = upstream
        .oneshot(request(&kit.http_url(), streaming()))
        .await
        .unwrap();
    let sse = response.into_body().collect().await.unwrap().to_bytes();
    let frames = sse.windows(2).filter(|pair| pair == b"\n\n").count();
    assert!(frames >= 3, "{} frames: {sse:?}", frames);
    // Paused time: the clock moved by the scripted waits only (no wall-clock assertion).
    assert!(
        started.elapsed() >= Duration::from_secs(4 * frames as u64),
        "the answer took {:?}, not longer than the idle timeout",
        started.elapsed()
    );
    assert!(sse.ends_with(b"\n\n"), "{sse:?}");
}

#[tokio::test(start_paused = true)]
async fn a_route_can_carry_its_own_timeouts() {
    let kit = TestUpstream::start().await;
    kit.set_default_http_script(HttpScript::SlowEvents {
        delay: Duration::from_secs(60),
    });
    let mut request = request(&kit.http_url(), "{}");
    let route = Route::builder("kit", "responses")
        .http_url(kit.http_url())
        .http_timeouts(HttpTimeouts {
            response: Some(Duration::from_secs(5)),
            idle: None,
        })
        .build()
        .unwrap();
    request.extensions_mut().insert(route);
    let error = HttpUpstream::new().oneshot(request).await.unwrap_err();
    let error = error.downcast_ref::<HttpUpstreamError>().unwrap();
    assert_eq!(error.kind(), HttpUpstreamErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn the_connect_timeout_covers_the_tls_handshake() {
    // A server that accepts TCP connections and never answers the TLS handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let upstream = HttpUpstream::builder()
        .connect_timeout(Duration::from_secs(3))
        .response_timeout(None)
        .build()
        .unwrap();
    let url = format!("https://{addr}/v1/responses");
    let error = upstream
        .oneshot(request(&url, streaming()))
        .await
        .unwrap_err();
    let error = error
        .downcast_ref::<HttpUpstreamError>()
        .unwrap_or_else(|| panic!("not an HttpUpstreamError: {error}"));
    assert_eq!(error.kind(), HttpUpstreamErrorKind::ConnectTimeout);
    assert!(error.is_connect() && error.is_timeout());
    server.abort();
}
