//! Keys per credential, and the key a service remembers.

use super::*;

#[tokio::test(start_paused = true)]
async fn each_credential_has_its_own_breaker() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    let _ = h
        .exchange(
            with_credential(&route, "Bearer sk-alice"),
            Outcome::Fail(refused()),
        )
        .await;
    let (alice, _) = h
        .exchange(with_credential(&route, "Bearer sk-alice"), Outcome::Http)
        .await;
    assert!(pinned(&alice));
    let (bob, _) = h
        .exchange(with_credential(&route, "Bearer sk-bob"), Outcome::Ws)
        .await;
    assert_eq!(bob, Intent::WebSocket);
    let (alice, _) = h
        .exchange(with_credential(&route, "Bearer sk-alice"), Outcome::Http)
        .await;
    assert!(pinned(&alice), "the cache switched back to alice's key");
    let snapshots = h.handle.snapshot();
    assert_eq!(snapshots.len(), 2);
    let json = serde_json::to_string(&snapshots).unwrap();
    assert!(!json.contains("sk-alice"), "{json}");
}

#[tokio::test(start_paused = true)]
async fn routes_built_apart_with_equal_keys_share_one_breaker() {
    let mut h = Harness::new(config().no_failure_rate().build().unwrap());
    // Two route objects with the same provider and endpoint (the same route built twice, or
    // two routes to one endpoint), alternating on one service: whichever one the service
    // remembers, both reach the same breaker.
    let (first, second) = (route(TransportMode::Auto), route(TransportMode::Auto));
    assert!(first.breaker_key() == second.breaker_key());
    assert!(!first.breaker_key().ptr_eq(second.breaker_key()));
    h.ws(&first, Outcome::Fail(refused())).await;
    h.ws(&second, Outcome::Fail(refused())).await;
    assert_eq!(h.only().consecutive_failures, 2);
    h.ws(&first, Outcome::Fail(refused())).await;
    assert_eq!(h.state(), BreakerState::Open);
    assert!(pinned(&h.ws(&second, Outcome::Http).await));
    assert!(pinned(&h.ws(&first, Outcome::Http).await));
    assert_eq!(h.handle.snapshot().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_key_cache_follows_the_credential_header_bytes() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    // Each request carries its own copy of the value, as a server would parse it.
    let alice = || {
        let mut request = request(&route, Intent::WebSocket);
        let value = HeaderValue::from_str(&format!("Bearer sk-{}", "alice")).unwrap();
        request.headers_mut().insert(AUTHORIZATION, value);
        request
    };
    let alice_key = route.breaker_key_for(alice().headers());
    let _ = h.exchange(alice(), Outcome::Fail(refused())).await;
    assert_eq!(h.handle.get(&alice_key).unwrap().state, BreakerState::Open);
    assert!(pinned(&h.exchange(alice(), Outcome::Http).await.0));
    // No credential header: the route's own key, not the remembered one.
    assert_eq!(
        h.ws(&route, Outcome::Ws).await,
        Intent::WebSocket,
        "a request without a credential is not alice's"
    );
    assert!(pinned(&h.exchange(alice(), Outcome::Http).await.0));
    // A route reading another header keys on that header's value.
    let api_key = Route::builder("openai", "openai-responses")
        .ws_url("wss://api.openai.com/v1/responses")
        .http_url("https://api.openai.com/v1/responses")
        .credential_header(http::HeaderName::from_static("x-api-key"))
        .build()
        .unwrap();
    let mut by_api_key = alice();
    by_api_key.extensions_mut().insert(api_key.clone());
    by_api_key
        .headers_mut()
        .insert("x-api-key", HeaderValue::from_static("k2"));
    let expected = api_key.breaker_key_for(by_api_key.headers());
    assert_ne!(expected, alice_key);
    assert_eq!(
        h.exchange(by_api_key, Outcome::Ws).await.0,
        Intent::WebSocket
    );
    let mut keys: Vec<_> = h.handle.snapshot().into_iter().map(|s| s.key).collect();
    keys.sort_by_key(ToString::to_string);
    let mut wanted = vec![alice_key, route.breaker_key().clone(), expected];
    wanted.sort_by_key(ToString::to_string);
    assert_eq!(keys, wanted);
    // The remembered header value never shows in debug output.
    let debug = format!("{:?}", h.service);
    assert!(!debug.contains("alice") && !debug.contains("k2"), "{debug}");
    assert!(debug.contains("from_credential_header"), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn clones_made_for_one_request_share_the_last_key() {
    let mut h = Harness::new(config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    // Like axum's router: a never-called prototype, cloned for every request.
    let prototype = h.service.clone();
    let send = async |h: &mut Harness, request, outcome| {
        h.service = prototype.clone();
        h.exchange(request, outcome).await.0
    };
    send(
        &mut h,
        with_credential(&route, "Bearer sk-alice"),
        Outcome::Fail(refused()),
    )
    .await;
    let alice = send(
        &mut h,
        with_credential(&route, "Bearer sk-alice"),
        Outcome::Http,
    )
    .await;
    assert!(pinned(&alice));
    let bob = send(
        &mut h,
        with_credential(&route, "Bearer sk-bob"),
        Outcome::Ws,
    )
    .await;
    assert_eq!(bob, Intent::WebSocket);
    let nobody = send(&mut h, request(&route, Intent::WebSocket), Outcome::Ws).await;
    assert_eq!(nobody, Intent::WebSocket);
    let alice = send(
        &mut h,
        with_credential(&route, "Bearer sk-alice"),
        Outcome::Http,
    )
    .await;
    assert!(pinned(&alice), "back to alice's key");
    assert_eq!(h.handle.snapshot().len(), 3);
    // The prototype was never called, yet it holds the last key its clones used.
    let (own, shared) = prototype.cache().keys();
    assert!(own.is_none());
    assert_eq!(
        shared,
        Some(route.breaker_key_for(with_credential(&route, "Bearer sk-alice").headers()))
    );
}

#[tokio::test(start_paused = true)]
async fn the_key_cache_keeps_no_credential() {
    let mut h = Harness::new(config().build().unwrap());
    let route = route(TransportMode::Auto);
    let prototype = h.service.clone();
    // The header value's bytes in a buffer of their own: whoever keeps the value keeps a
    // reference to it.
    let secret = Bytes::from(b"Bearer sk-kept-nowhere".to_vec());
    let request = || {
        let mut request = request(&route, Intent::WebSocket);
        let value = HeaderValue::from_maybe_shared(secret.clone()).unwrap();
        request.headers_mut().insert(AUTHORIZATION, value);
        request
    };
    // A lookup (the service's first request), a hit on its own key, and a clone that finds the
    // key its siblings share.
    h.ws(&route, Outcome::Ws).await;
    let _ = h.exchange(request(), Outcome::Ws).await;
    let _ = h.exchange(request(), Outcome::Ws).await;
    h.service = prototype.clone();
    let _ = h.exchange(request(), Outcome::Ws).await;
    let (own, shared) = h.service.cache().keys();
    assert!(own.is_some() && shared.is_some());
    assert!(
        secret.is_unique(),
        "the service (or its clones) still holds the credential header value"
    );
    let debug = format!("{:?} {:?}", h.service, prototype);
    assert!(!debug.contains("sk-kept-nowhere"), "{debug}");
    // The key is still the credential's: another credential gets another key.
    let key = route.breaker_key_for(request().headers());
    assert_eq!(h.handle.get(&key).unwrap().window_calls, 3);
    let other = h
        .exchange(with_credential(&route, "Bearer sk-other"), Outcome::Ws)
        .await;
    assert_eq!(other.0, Intent::WebSocket);
    assert_eq!(h.handle.get(&key).unwrap().window_calls, 3);
    assert_eq!(h.handle.snapshot().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn keys_are_named_by_their_shown_text() {
    // The admin pins by key text: the shown endpoint, without its query, names the key.
    let h = Harness::new(config().build().unwrap());
    let route = Route::builder("live", "live-api")
        .ws_url("wss://live.example/v1/ws?key=sk-in-the-query")
        .http_url("https://live.example/v1")
        .no_credential()
        .build()
        .unwrap();
    h.handle
        .pin(route.breaker_key(), Some(Duration::from_secs(60)));
    let text = h.only().key.to_string();
    assert!(!text.contains("sk-in-the-query"), "{text}");
    assert_eq!(
        h.handle.key_named(&text).as_ref(),
        Some(route.breaker_key())
    );
}
