//! The response body keeps what hyper knows of its length and its end, so that a server passing it
//! on can send a JSON answer with its `Content-Length` and end an empty one without another poll.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use wsfirst_core::Route;
use wsfirst_http::HttpUpstream;

const ANSWER: &str = r#"{"id":"resp_1","object":"response","status":"completed"}"#;

/// An upstream on 127.0.0.1 answering `/json` with [`ANSWER`] and `/empty` with no body.
async fn upstream_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/json",
            axum::routing::post(|| async { ([("content-type", "application/json")], ANSWER) }),
        )
        .route("/empty", axum::routing::post(|| async { "" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn post(url: String) -> http::Response<wsfirst_http::UpstreamBody> {
    let route = Route::builder("kit", "responses")
        .http_url(url)
        .build()
        .unwrap();
    let mut request = http::Request::post("/v1/responses")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    request.extensions_mut().insert(route);
    HttpUpstream::new().oneshot(request).await.unwrap()
}

#[tokio::test]
async fn a_json_answer_keeps_its_exact_length_and_is_not_over_before_it_is_read() {
    let base = upstream_server().await;
    let response = post(format!("{base}/json")).await;
    let body = response.into_body();
    assert_eq!(body.size_hint().exact(), Some(ANSWER.len() as u64));
    assert!(!body.is_end_stream());
    assert_eq!(body.collect().await.unwrap().to_bytes(), ANSWER.as_bytes());
}

#[tokio::test]
async fn an_empty_answer_is_over_at_once() {
    let base = upstream_server().await;
    let response = post(format!("{base}/empty")).await;
    let body = response.into_body();
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.is_end_stream());
}
