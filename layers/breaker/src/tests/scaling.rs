//! What the closed-state path and cloning the service count: the running thread's copies, never
//! the key's state or the registry that every thread shares.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Waker},
};

use super::*;

#[tokio::test(start_paused = true)]
async fn requests_in_flight_on_a_closed_key_do_not_count_its_state() {
    let registry = BreakerRegistry::builder()
        .config(config().build().unwrap())
        .build();
    let mut h = Harness::with_layer(CircuitBreakerLayer::from_registry(registry.clone()));
    let route = route(TransportMode::Auto);
    // The first request looks the key up; the service remembers it.
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    let state = registry.existing(route.breaker_key()).unwrap();
    let held = Arc::strong_count(&state);
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        in_flight.push(h.start_ws(&route).await);
    }
    assert_eq!(
        Arc::strong_count(&state),
        held,
        "a request on a remembered closed key holds its thread's copy of the key"
    );
    // Their outcomes count all the same.
    for (future, send) in in_flight {
        send.send_response(response(Some(Served::websocket(Duration::from_millis(5)))));
        future.await.unwrap().into_body().collect().await.unwrap();
    }
    assert_eq!(h.only().window_calls, 5);
    assert_eq!(Arc::strong_count(&state), held);
}

/// An upstream that answers at once over the WebSocket.
fn upstream() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<Body>, BoxError>> + std::marker::Send,
> + Clone
+ std::marker::Send
+ Sync {
    tower::service_fn(|_: Request<()>| async {
        Ok::<_, BoxError>(response(Some(Served::websocket(Duration::from_millis(5)))))
    })
}

/// Polls a future that is ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the upstream answers at once"),
    }
}

/// Calls `service` once with a WebSocket request on `route` (body dropped: nothing recorded).
fn call<S>(service: &mut S, route: &Route) -> Result<(), BoxError>
where
    S: Service<Request<()>, Error = BoxError>,
{
    now(std::future::poll_fn(|cx| service.poll_ready(cx)))?;
    now(service.call(request(route, Intent::WebSocket))).map(drop)
}

#[test]
fn cloning_the_service_counts_the_registry_once_per_thread() {
    let registry = BreakerRegistry::new();
    let prototype = CircuitBreakerLayer::from_registry(registry.clone()).layer(upstream());
    let route = route(TransportMode::Auto);
    let before = registry.strong_count();
    let clones: Vec<_> = (0..8).map(|_| prototype.clone()).collect();
    assert_eq!(
        registry.strong_count(),
        before,
        "clones on the service's thread"
    );
    drop(clones);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // As axum's router calls a route: a clone of a never-called prototype per request.
                call(&mut prototype.clone(), &route).unwrap();
                let counted = registry.strong_count();
                assert_eq!(counted, before + 1, "this thread's shard");
                for _ in 0..8 {
                    call(&mut prototype.clone(), &route).unwrap();
                    assert_eq!(registry.strong_count(), counted);
                }
            })
            .join()
            .unwrap();
    });
    assert_eq!(registry.len(), 1);
}

#[test]
fn a_thread_forgets_the_keys_of_a_dropped_registry() {
    let route = route(TransportMode::Auto);
    let registry = BreakerRegistry::new();
    let mut service = CircuitBreakerLayer::from_registry(registry.clone()).layer(upstream());
    call(&mut service, &route).unwrap();
    let state = Arc::downgrade(&registry.existing(route.breaker_key()).unwrap());
    drop((service, registry));
    // The next key this thread looks up, for any service, lets the retired one go.
    let mut other = CircuitBreakerLayer::new(BreakerConfig::default()).layer(upstream());
    call(&mut other, &route).unwrap();
    assert!(
        state.upgrade().is_none(),
        "the dropped registry's key is freed"
    );
}
