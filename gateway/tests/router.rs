//! The router a configuration file builds ([`Configured::router`]) serves its routes, and the
//! library's admin router nested next to it pins and unpins their breaker keys.

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wsfirst::websocket::testing::{TestUpstream, WsScript};
use wsfirst_gateway::{Configured, config::Config};

const STREAM: &str = r#"{"model":"gpt-test","input":"hi","stream":true}"#;

fn request(body: &'static str) -> Request<Body> {
    Request::post("/v1/responses")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn configured_router_serves_routes_and_the_admin_endpoints() {
    let upstream = TestUpstream::start().await;
    upstream.set_default_ws_script(WsScript::refuse(StatusCode::UPGRADE_REQUIRED, ""));
    let config = Config::from_toml_str(&format!(
        r#"
        [eligibility]
        websocket_pairs = [["local", "responses"]]

        [[routes]]
        path = "/v1/responses"
        provider = "local"
        api = "responses"
        http_url = "{http}"
        ws_url = "{ws}"

        [routes.breaker]
        consecutive_failures = 3
        open_duration = "30s"
        "#,
        http = upstream.http_url(),
        ws = upstream.ws_url(),
    ))
    .unwrap();
    let configured = Configured::from_config(&config).unwrap();
    let app = configured
        .router()
        .nest("/admin", configured.wsfirst.admin_router());

    let response = app.clone().oneshot(request(STREAM)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-wsfirst-reason"], "fallback");

    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let post = |uri: &str, json: serde_json::Value| {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(json.to_string()))
            .unwrap()
    };
    let json = |response: Response<Body>| async move {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };

    let snapshot = json(app.clone().oneshot(get("/admin/transport")).await.unwrap()).await;
    let key = snapshot["keys"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(snapshot["keys"][0]["state"], "open");
    assert!(!key.contains("sk-test"), "{key}");

    let unpinned = app
        .clone()
        .oneshot(post(
            "/admin/transport/unpin",
            serde_json::json!({ "key": key }),
        ))
        .await
        .unwrap();
    assert_eq!(unpinned.status(), StatusCode::OK);
    assert_eq!(json(unpinned).await["state"], "closed");

    let pinned = app
        .clone()
        .oneshot(post(
            "/admin/transport/pin",
            serde_json::json!({ "key": key, "for": "10m" }),
        ))
        .await
        .unwrap();
    assert_eq!(json(pinned).await["state"], "open");
    let response = app.clone().oneshot(request(STREAM)).await.unwrap();
    assert_eq!(response.headers()["x-wsfirst-reason"], "pinned");
    assert_eq!(upstream.handshakes(), 1);

    let bad = app
        .clone()
        .oneshot(post(
            "/admin/transport/pin",
            serde_json::json!({ "key": key, "for": "3x" }),
        ))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = app
        .oneshot(post(
            "/admin/transport/unpin",
            serde_json::json!({ "key": "nope" }),
        ))
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
