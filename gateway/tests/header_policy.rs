//! One header policy for both transports: a route's WebSocket handshake and its HTTP request
//! forward exactly the same request headers (the allowlist, then the route's static headers),
//! against the test kit on 127.0.0.1, comparing what it captured on each transport.

use axum::{Router, body::Body};
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wsfirst::{
    Wsfirst,
    core::{
        Route,
        headers::{BODY_HEADERS, HeaderPolicy},
    },
    eligibility::EligibilityTable,
    websocket::testing::{CapturedRequest, TestUpstream, Transport},
};
use wsfirst_gateway::{Configured, config::Config};

const STREAM: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;

/// The headers the HTTP client writes itself (from the URL and the body).
const HTTP_OWN: [&str; 2] = ["host", "content-length"];

/// The headers the WebSocket client writes itself (RFC 6455 §4.1).
const WEBSOCKET_OWN: [&str; 5] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// A client request: the Responses API's credentials, account and beta headers, the body's
/// headers, and what must never reach the upstream unasked: a cookie, the eligibility override
/// header (`http` sends the request over HTTP, any other value is ignored), unknown headers.
fn request(transport_override: &'static str) -> Request<Body> {
    Request::post("/v1/responses")
        .header("authorization", "Bearer sk-client")
        .header("openai-beta", "assistants=v2")
        .header("openai-organization", "org-1")
        .header("openai-project", "proj-1")
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("cookie", "session=secret")
        .header("x-wsfirst-transport", transport_override)
        .header("x-custom", "1")
        .header("user-agent", "sdk/1")
        .header("x-stainless-lang", "python")
        .body(Body::from(STREAM))
        .unwrap()
}

/// A gateway with the override header and one `auto` route to `upstream`, plus `extra` lines
/// in the route's table.
fn configured(upstream: &TestUpstream, extra: &str) -> Router {
    let config = Config::from_toml_str(&format!(
        r#"
        [eligibility]
        websocket_pairs = [["local", "responses"]]
        override_header = "x-wsfirst-transport"

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"
        {extra}
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .unwrap();
    Configured::from_config(&config).unwrap().router()
}

/// Sends the same request once over HTTP (forced by the override header) and once over the
/// WebSocket, and returns what the upstream received on each.
async fn captured_on_both(
    app: Router,
    upstream: &TestUpstream,
) -> (CapturedRequest, CapturedRequest) {
    for (transport_override, served) in [("http", "http"), ("websocket", "websocket")] {
        let response = app
            .clone()
            .oneshot(request(transport_override))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-wsfirst-transport"], served);
        response.into_body().collect().await.unwrap();
    }
    let captured = upstream.captured();
    assert_eq!(captured.len(), 2, "{captured:?}");
    let on = |transport| {
        captured
            .iter()
            .find(|request| request.transport == transport)
            .cloned()
            .unwrap()
    };
    (on(Transport::Http), on(Transport::WebSocket))
}

/// The request headers a transport forwarded: every (name, value) it received, sorted, but the
/// ones its client writes itself and those in `also_skip`.
fn forwarded(
    captured: &CapturedRequest,
    own: &[&str],
    also_skip: &[HeaderName],
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = captured
        .headers
        .iter()
        .filter(|(name, _)| !own.contains(&name.as_str()) && !also_skip.contains(name))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Asserts that both transports forwarded the same headers, and that HTTP added only the body's
/// headers and its own; returns the forwarded headers.
fn assert_same_on_both(http: &CapturedRequest, ws: &CapturedRequest) -> Vec<(String, String)> {
    let over_http = forwarded(http, &HTTP_OWN, &BODY_HEADERS);
    let on_handshake = forwarded(ws, &WEBSOCKET_OWN, &[]);
    assert_eq!(over_http, on_handshake);
    // Counted: what each transport received is the forwarded headers plus its own, plus (HTTP)
    // the body's content type and accept.
    assert_eq!(
        http.headers.len(),
        over_http.len() + HTTP_OWN.len() + 2,
        "{:?}",
        http.headers
    );
    assert_eq!(http.header("content-type"), Some("application/json"));
    assert_eq!(http.header("accept"), Some("text/event-stream"));
    assert_eq!(
        ws.headers.len(),
        on_handshake.len() + WEBSOCKET_OWN.len(),
        "{:?}",
        ws.headers
    );
    for own in WEBSOCKET_OWN {
        assert!(ws.headers.contains_key(own), "{own}: {:?}", ws.headers);
    }
    over_http
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn both_transports_forward_exactly_the_same_allowed_headers() {
    let upstream = TestUpstream::start().await;
    let (http, ws) = captured_on_both(configured(&upstream, ""), &upstream).await;
    let same = assert_same_on_both(&http, &ws);
    assert_eq!(
        same,
        pairs(&[
            ("authorization", "Bearer sk-client"),
            ("openai-beta", "assistants=v2"),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
        ])
    );
    for captured in [&http, &ws] {
        for never in [
            "cookie",
            "x-wsfirst-transport",
            "x-custom",
            "user-agent",
            "x-stainless-lang",
        ] {
            assert!(
                captured.headers.get(never).is_none(),
                "{never} reached the upstream over {:?}",
                captured.transport
            );
        }
    }
}

/// A gateway that holds the API key sets it in `[routes.headers]`: the upstream sees it on both
/// transports, never the client's; the route's beta flags are added to the client's on both.
#[tokio::test]
async fn a_static_authorization_replaces_the_client_s_on_both_transports() {
    let upstream = TestUpstream::start().await;
    let app = configured(
        &upstream,
        "open = true\n[routes.headers]\nAuthorization = \"Bearer sk-gateway\"\nOpenAI-Beta = \"responses_websockets=2026-02-06\"",
    );
    let (http, ws) = captured_on_both(app, &upstream).await;
    let same = assert_same_on_both(&http, &ws);
    assert_eq!(
        same,
        pairs(&[
            ("authorization", "Bearer sk-gateway"),
            (
                "openai-beta",
                "assistants=v2, responses_websockets=2026-02-06"
            ),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
        ])
    );
    for captured in [&http, &ws] {
        assert_eq!(captured.headers.get_all("authorization").iter().count(), 1);
    }
}

/// `forward_headers` adds to the allowlist on both transports; a cookie only when listed.
#[tokio::test]
async fn listed_headers_are_forwarded_on_both_transports() {
    let upstream = TestUpstream::start().await;
    let app = configured(&upstream, "forward_headers = [\"X-Custom\", \"cookie\"]");
    let (http, ws) = captured_on_both(app, &upstream).await;
    let same = assert_same_on_both(&http, &ws);
    assert_eq!(
        same,
        pairs(&[
            ("authorization", "Bearer sk-client"),
            ("cookie", "session=secret"),
            ("openai-beta", "assistants=v2"),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
            ("x-custom", "1"),
        ])
    );
}

/// Built with the library: a route's policy that names the eligibility table's override header
/// loses it, on both transports.
#[tokio::test]
async fn the_override_header_is_never_forwarded_even_when_listed() {
    let upstream = TestUpstream::start().await;
    let table = EligibilityTable::builder()
        .allow("local", "responses")
        .override_header(HeaderName::from_static("x-wsfirst-transport"))
        .build()
        .unwrap();
    let wsfirst = Wsfirst::builder().eligibility(table).build();
    let policy = HeaderPolicy::responses()
        .to_builder()
        .forward_header(HeaderName::from_static("x-wsfirst-transport"))
        .forward_header(HeaderName::from_static("x-custom"))
        .build()
        .unwrap();
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .headers(policy)
        .build()
        .unwrap();
    let service = wsfirst.route(route);
    let app = Router::new().route("/v1/responses", axum::routing::post_service(service));
    let (http, ws) = captured_on_both(app, &upstream).await;
    let same = assert_same_on_both(&http, &ws);
    let names: Vec<&str> = same.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "authorization",
            "openai-beta",
            "openai-organization",
            "openai-project",
            "x-custom"
        ]
    );
}

/// Issue 23: with a static `Authorization` on the route (a gateway that holds the key), the
/// breaker key comes from the credential sent upstream, so two clients with different
/// `Authorization` values share one breaker; without one, each credential has its own.
#[tokio::test]
async fn the_breaker_key_follows_the_credential_sent_upstream() {
    let upstream = TestUpstream::start().await;
    let keys_after_two_clients = |policy: HeaderPolicy| {
        let upstream = &upstream;
        async move {
            let table = EligibilityTable::builder()
                .allow("local", "responses")
                .build()
                .unwrap();
            let wsfirst = Wsfirst::builder().eligibility(table).build();
            let route = Route::builder("local", "responses")
                .ws_url(upstream.ws_url())
                .http_url(upstream.http_url())
                .headers(policy)
                .build()
                .unwrap();
            let service = wsfirst.route(route);
            for client in ["Bearer sk-alice", "Bearer sk-bob"] {
                let request = Request::post("/v1/responses")
                    .header("authorization", client)
                    .header("content-type", "application/json")
                    .body(Body::from(STREAM))
                    .unwrap();
                let response = service.clone().oneshot(request).await.unwrap();
                assert_eq!(response.headers()["x-wsfirst-transport"], "websocket");
                response.into_body().collect().await.unwrap();
            }
            wsfirst.breakers().snapshot().len()
        }
    };
    let held = HeaderPolicy::responses()
        .to_builder()
        .static_header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer sk-gateway"),
        )
        .build()
        .unwrap();
    assert_eq!(keys_after_two_clients(held).await, 1);
    assert_eq!(keys_after_two_clients(HeaderPolicy::responses()).await, 2);
    // The upstream saw the gateway's key on the first two handshakes.
    let handshakes: Vec<CapturedRequest> = upstream
        .captured()
        .into_iter()
        .filter(|captured| captured.transport == Transport::WebSocket)
        .collect();
    assert!(handshakes.len() >= 2, "{handshakes:?}");
    assert_eq!(
        handshakes[0].header("authorization"),
        Some("Bearer sk-gateway")
    );
}
