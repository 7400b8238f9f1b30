//! Redis is validated, not trusted: records and stream entries written by hand (a non-integer
//! `rev`, a forged entry with a huge `rev`, an oversized `cause`, keys of the wrong type) are
//! skipped or replaced, and the replicas keep sharing pins. A real `redis-server`; every wait
//! is a bounded polling loop.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
use wsfirst_breaker::{
    BreakerConfig, BreakerHandle, BreakerRegistry, BreakerState, CircuitBreaker,
};
use wsfirst_breaker_redis::{
    RedisStore, RedisStoreConfig,
    testing::{RedisServer, until},
};
use wsfirst_core::{BreakerKey, Intent, Route, Served, WsFailure};

type Inner = BoxCloneSyncService<Request<()>, Response<Empty<Bytes>>, WsFailure>;

struct Replica {
    handle: BreakerHandle,
    store: RedisStore,
    service: CircuitBreaker<Inner>,
}

fn route() -> Route {
    Route::builder("openai", "openai-responses")
        .ws_url("ws://upstream.test/v1/responses")
        .http_url("http://upstream.test/v1/responses")
        .build()
        .unwrap()
}

fn key() -> BreakerKey {
    route().breaker_key().clone()
}

fn replica(server: &RedisServer, prefix: &str) -> Replica {
    let inner = service_fn(|_: Request<()>| async {
        let mut response = Response::new(Empty::new());
        response
            .extensions_mut()
            .insert(Served::websocket(Duration::from_millis(1)));
        Ok::<_, WsFailure>(response)
    });
    let config = RedisStoreConfig::builder(server.url())
        .prefix(prefix)
        .reconnect_max(Duration::from_millis(200))
        .build()
        .unwrap();
    let store = RedisStore::new(config).unwrap();
    let registry = BreakerRegistry::builder()
        .config(BreakerConfig::default())
        .store(Arc::new(store.clone()))
        .build();
    Replica {
        handle: registry.handle(),
        store,
        service: CircuitBreaker::new(BoxCloneSyncService::new(inner), registry),
    }
}

impl Replica {
    /// One request, which makes the key on this replica.
    async fn request(&self) {
        let mut request = Request::new(());
        request.extensions_mut().insert(route());
        request.extensions_mut().insert(Intent::WebSocket);
        tokio::time::timeout(
            Duration::from_secs(5),
            self.service.clone().oneshot(request),
        )
        .await
        .expect("a request never waits on the store")
        .unwrap();
    }

    fn pinned_by_hand(&self) -> bool {
        self.handle
            .get(&key())
            .is_some_and(|s| s.state == BreakerState::Open && s.pinned_by_hand)
    }

    fn closed(&self) -> bool {
        self.handle
            .get(&key())
            .is_some_and(|s| s.state == BreakerState::Closed)
    }
}

/// Two connected replicas that both have the key.
async fn pair(server: &RedisServer, prefix: &str) -> [Replica; 2] {
    let replicas = [replica(server, prefix), replica(server, prefix)];
    until("both replicas are connected", || {
        replicas.iter().all(|r| r.store.is_connected())
    })
    .await;
    for replica in &replicas {
        replica.request().await;
    }
    replicas
}

fn conn(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The key's record in the store, once a replica wrote one.
async fn state_key(server: &RedisServer, prefix: &str) -> String {
    let mut found = None;
    for _ in 0..500 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:state:*"))
            .query(&mut conn(server))
            .unwrap();
        if let Some(key) = keys.into_iter().next() {
            found = Some(key);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    found.expect("a record in the store")
}

/// Pins by hand on one replica, unpins on the other: both see both changes.
async fn still_shared(replicas: &[Replica; 2]) {
    replicas[0]
        .handle
        .pin(&key(), Some(Duration::from_secs(600)));
    until("the pin reaches the other replica", || {
        replicas[1].pinned_by_hand()
    })
    .await;
    assert!(replicas[1].handle.unpin(&key()));
    until("the unpin reaches the first replica", || {
        replicas[0].closed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_integer_rev_does_not_stop_sharing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas = pair(&server, "u1").await;
    // A change, so that the record exists.
    replicas[0].handle.reset(&key());
    let state = state_key(&server, "u1").await;
    let _: () = redis::cmd("HSET")
        .arg(&state)
        .arg("rev")
        .arg("not-a-number")
        .query(&mut conn(&server))
        .unwrap();
    still_shared(&replicas).await;
    assert!(replicas.iter().all(|r| r.store.is_connected()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_the_wrong_type_are_replaced() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas = pair(&server, "u2").await;
    replicas[0].handle.reset(&key());
    let state = state_key(&server, "u2").await;
    let mut conn = conn(&server);
    let _: () = redis::cmd("DEL").arg(&state).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&state)
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    let count = state.replace(":state:", ":count:");
    let _: () = redis::cmd("SET")
        .arg(&count)
        .arg("many")
        .query(&mut conn)
        .unwrap();
    still_shared(&replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_stream_entry_with_a_huge_rev_does_not_freeze_the_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas = pair(&server, "u3").await;
    replicas[0].handle.reset(&key());
    let state = state_key(&server, "u3").await;
    let id = state.rsplit(':').next().unwrap().to_owned();
    // A closed state at a revision no real change reaches.
    let _: String = redis::cmd("XADD")
        .arg("u3:events")
        .arg("*")
        .arg("v")
        .arg(1)
        .arg("id")
        .arg(&id)
        .arg("rev")
        .arg("9007199254740990")
        .arg("state")
        .arg("closed")
        .arg("cause")
        .arg("x".repeat(100_000))
        .query(&mut conn(&server))
        .unwrap();
    still_shared(&replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_an_oversized_cause_is_skipped_and_then_replaced() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas = pair(&server, "u4").await;
    replicas[0].handle.reset(&key());
    let state = state_key(&server, "u4").await;
    // An open pin with a cause far over the bound: not applied by a replica that reads it.
    let _: () = redis::cmd("HSET")
        .arg(&state)
        .arg("state")
        .arg("open")
        .arg("until")
        .arg(0)
        .arg("manual")
        .arg(1)
        .arg("cause")
        .arg("x".repeat(1 << 20))
        .query(&mut conn(&server))
        .unwrap();
    let late = replica(&server, "u4");
    until("the late replica is connected", || {
        late.store.is_connected()
    })
    .await;
    late.request().await;
    until("the late replica read the record", || {
        late.store.pending_events() == 0
    })
    .await;
    // Its `Created` event read the record: still closed (nothing else could open it).
    let snapshot = late.handle.get(&key()).unwrap();
    assert_eq!(snapshot.state, BreakerState::Closed);
    // The next change replaces the record, and reaches every replica.
    still_shared(&replicas).await;
    replicas[0]
        .handle
        .pin(&key(), Some(Duration::from_secs(600)));
    until("the pin reaches the late replica", || late.pinned_by_hand()).await;
}
