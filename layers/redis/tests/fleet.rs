//! Three replicas' breakers sharing one real `redis-server` (started by the test on a free
//! loopback port): the fleet's failure count, pins by hand, probes across the fleet, a probe
//! slot of a replica that died, Redis killed and restarted, keys expiring. Redis runs in real
//! time: every wait is a bounded polling loop, nothing asserts on durations.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use tokio::sync::watch;
use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
use wsfirst_breaker::{
    BreakerConfig, BreakerHandle, BreakerRegistry, BreakerState, CircuitBreaker,
};
use wsfirst_breaker_redis::{
    RedisStore, RedisStoreConfig,
    testing::{RedisServer, until},
};
use wsfirst_core::{
    BoxError, BreakerKey, FailureKind, HttpReason, Intent, Phase, Route, Served, WsFailure,
};

/// The upstream the replicas share: its WebSocket upgrade answers 500 while `failing`; while
/// `held`, WebSocket attempts wait (a probe in flight).
struct Upstream {
    failing: AtomicBool,
    handshakes: AtomicUsize,
    held: watch::Sender<bool>,
}

impl Upstream {
    fn new() -> Arc<Self> {
        Arc::new(Upstream {
            failing: AtomicBool::new(true),
            handshakes: AtomicUsize::new(0),
            held: watch::channel(false).0,
        })
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

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

fn replica(store: RedisStoreConfig, config: BreakerConfig, upstream: &Arc<Upstream>) -> Replica {
    let upstream = upstream.clone();
    let inner = service_fn(move |request: Request<()>| {
        let upstream = upstream.clone();
        async move {
            let mut response = Response::new(Empty::new());
            if let Some(Intent::WebSocket) = request.extensions().get::<Intent>() {
                upstream.handshakes.fetch_add(1, Ordering::SeqCst);
                let mut held = upstream.held.subscribe();
                let _ = held.wait_for(|held| !held).await;
                if upstream.failing.load(Ordering::SeqCst) {
                    return Err(WsFailure::new(
                        Phase::Handshake,
                        FailureKind::UpgradeStatus {
                            status: StatusCode::INTERNAL_SERVER_ERROR,
                            body: Bytes::new(),
                        },
                    ));
                }
                response
                    .extensions_mut()
                    .insert(Served::websocket(Duration::from_millis(1)));
            } else {
                response
                    .extensions_mut()
                    .insert(Served::http(HttpReason::ModeHttp));
            }
            Ok(response)
        }
    });
    let store = RedisStore::new(store).unwrap();
    let registry = BreakerRegistry::builder()
        .config(config)
        .store(Arc::new(store.clone()))
        .build();
    Replica {
        handle: registry.handle(),
        store,
        service: CircuitBreaker::new(BoxCloneSyncService::new(inner), registry),
    }
}

impl Replica {
    /// One WebSocket request, answered (`Ok`) or failed. Bounded: a request must never wait
    /// on the store.
    fn request(&self) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> {
        let mut request = Request::new(());
        request.extensions_mut().insert(route());
        request.extensions_mut().insert(Intent::WebSocket);
        let service = self.service.clone();
        Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(5), service.oneshot(request))
                .await
                .expect("a request never waits on the store")
                .map(drop)
        })
    }

    fn state(&self) -> Option<BreakerState> {
        self.handle.get(&key()).map(|s| s.state)
    }
}

fn store_config(
    server: &RedisServer,
    prefix: &str,
) -> wsfirst_breaker_redis::RedisStoreConfigBuilder {
    RedisStoreConfig::builder(server.url())
        .prefix(prefix)
        .reconnect_max(Duration::from_millis(200))
}

fn breaker() -> wsfirst_breaker::BreakerConfigBuilder {
    BreakerConfig::builder()
        .consecutive_failures(3)
        .no_failure_rate()
}

/// A synchronous connection to look into the server.
fn peek(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The fleet's failure count and whether the key's record says open.
fn stored(server: &RedisServer, prefix: &str) -> (u64, bool) {
    let mut conn = peek(server);
    let counts: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:count:*"))
        .query(&mut conn)
        .unwrap();
    let count = counts
        .iter()
        .map(|key| {
            redis::cmd("GET")
                .arg(key)
                .query::<Option<u64>>(&mut conn)
                .unwrap()
                .unwrap_or(0)
        })
        .sum();
    let open = stored_states(server, prefix)
        .iter()
        .any(|state| state == "open");
    (count, open)
}

async fn fleet(
    server: &RedisServer,
    prefix: &str,
    config: BreakerConfig,
    upstream: &Arc<Upstream>,
) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..3)
        .map(|_| {
            replica(
                store_config(server, prefix).build().unwrap(),
                config.clone(),
                upstream,
            )
        })
        .collect();
    until("every replica is connected", || {
        replicas.iter().all(|r| r.store.is_connected())
    })
    .await;
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_pin_after_the_threshold_in_total() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let replicas = fleet(&server, "t1", breaker().build().unwrap(), &upstream).await;
    // Round robin, one request at a time, each failure counted by the fleet before the next.
    let mut sent = 0;
    while !stored(&server, "t1").1 {
        assert!(
            sent < 9,
            "the fleet must pin before three replicas would alone"
        );
        let _ = replicas[sent % 3].request().await;
        sent += 1;
        let expected = sent as u64;
        until("the failure is counted", || {
            let (count, open) = stored(&server, "t1");
            open || count == expected
        })
        .await;
    }
    until("every replica is pinned", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Open))
    })
    .await;
    assert_eq!(
        upstream.handshakes(),
        3,
        "threshold 3 in total, one failure per replica"
    );
    // Pinned everywhere: no more handshakes.
    for replica in &replicas {
        let _ = replica.request().await;
    }
    assert_eq!(upstream.handshakes(), 3);
    let snapshot = replicas[2].handle.get(&key()).unwrap();
    assert_eq!(snapshot.trips, 1);
    assert!(snapshot.until_secs.unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_by_hand_on_one_replica_applies_to_all() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    upstream.failing.store(false, Ordering::SeqCst);
    let replicas = fleet(&server, "t2", breaker().build().unwrap(), &upstream).await;
    for replica in &replicas {
        replica.request().await.unwrap();
    }
    replicas[0]
        .handle
        .pin(&key(), Some(Duration::from_secs(600)));
    until("every replica is pinned by hand", || {
        replicas.iter().all(|r| {
            r.handle
                .get(&key())
                .is_some_and(|s| s.state == BreakerState::Open && s.pinned_by_hand)
        })
    })
    .await;
    let before = upstream.handshakes();
    for replica in &replicas {
        replica.request().await.unwrap();
    }
    assert_eq!(upstream.handshakes(), before, "pinned everywhere");
    assert!(replicas[0].handle.unpin(&key()) || replicas[1].handle.unpin(&key()));
    until("every replica is unpinned", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Closed))
    })
    .await;
    // A pin until unpinned, then a reset elsewhere.
    replicas[1].handle.pin(&key(), None);
    until("pinned until unpinned everywhere", || {
        replicas.iter().all(|r| {
            r.handle
                .get(&key())
                .is_some_and(|s| s.state == BreakerState::Open && s.until_secs.is_none())
        })
    })
    .await;
    assert!(replicas[2].handle.reset(&key()));
    until("reset everywhere", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Closed))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_probes_once_across_the_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_millis(300))
        .jitter(0.0)
        .half_open_probes(1)
        .build()
        .unwrap();
    let replicas = fleet(&server, "t3", config, &upstream).await;
    for replica in &replicas {
        let _ = replica.request().await;
    }
    until("every replica is pinned", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Open))
    })
    .await;
    // The upstream heals, but the probe's answer is held back: one probe in flight.
    upstream.failing.store(false, Ordering::SeqCst);
    upstream.held.send_replace(true);
    let pinned_at = upstream.handshakes();
    let mut probes = Vec::new();
    for round in 0..1000 {
        assert!(round < 999, "no probe was admitted");
        for replica in &replicas {
            probes.push(tokio::spawn(replica.request()));
        }
        if upstream.handshakes() > pinned_at {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Everybody keeps asking for a while: still one probe across the fleet.
    for _ in 0..30 {
        for replica in &replicas {
            probes.push(tokio::spawn(replica.request()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        upstream.handshakes(),
        pinned_at + 1,
        "one probe across three replicas"
    );
    upstream.held.send_replace(false);
    until("every replica is closed", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Closed))
    })
    .await;
    for probe in probes {
        probe.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_slot_of_a_replica_that_died_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_millis(200))
        .jitter(0.0)
        .build()
        .unwrap();
    let store = || {
        store_config(&server, "t4")
            .probe_lease(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let doomed = replica(store(), config.clone(), &upstream);
    let survivor = replica(store(), config, &upstream);
    until("both connected", || {
        doomed.store.is_connected() && survivor.store.is_connected()
    })
    .await;
    survivor.request().await.unwrap_err();
    for _ in 0..2 {
        let _ = doomed.request().await;
    }
    until("both pinned", || {
        doomed.state() == Some(BreakerState::Open) && survivor.state() == Some(BreakerState::Open)
    })
    .await;
    // The doomed replica takes the probe slot, its probe hangs, and it dies.
    upstream.failing.store(false, Ordering::SeqCst);
    upstream.held.send_replace(true);
    let pinned_at = upstream.handshakes();
    let mut hanging = None;
    for _ in 0..1000 {
        let probe = tokio::spawn(doomed.request());
        tokio::time::sleep(Duration::from_millis(10)).await;
        if upstream.handshakes() > pinned_at {
            hanging = Some(probe);
            break;
        }
    }
    let hanging = hanging.expect("the doomed replica probed");
    hanging.abort();
    drop(doomed);
    upstream.held.send_replace(false);
    // The survivor probes once the lease ran out, and closes.
    until("the survivor probed and closed", || {
        survivor.state() == Some(BreakerState::Closed) || {
            let request = survivor.request();
            tokio::spawn(request);
            false
        }
    })
    .await;
    assert!(upstream.handshakes() > pinned_at + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    upstream.failing.store(false, Ordering::SeqCst);
    let replicas = fleet(&server, "t5", breaker().build().unwrap(), &upstream).await;
    for replica in &replicas {
        replica.request().await.unwrap();
    }
    server.kill();
    until("every replica knows the store is down", || {
        replicas.iter().all(|r| !r.store.is_connected()) || {
            // Only a request or an event shows a dead connection; keep traffic going.
            for replica in &replicas {
                tokio::spawn(replica.request());
            }
            false
        }
    })
    .await;
    // Requests keep flowing on local breakers: replica 0 alone trips on its own three failures.
    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        replicas[0].request().await.unwrap_err();
    }
    assert_eq!(replicas[0].state(), Some(BreakerState::Open));
    assert_eq!(replicas[1].state(), Some(BreakerState::Closed));
    upstream.failing.store(false, Ordering::SeqCst);
    replicas[1].request().await.unwrap();
    // Redis comes back empty: replica 0 tells it its pin, and the others catch up.
    server.restart();
    until("every replica reconnected", || {
        replicas.iter().all(|r| r.store.is_connected())
    })
    .await;
    until("the pin reached every replica", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Open))
    })
    .await;
    assert!(stored(&server, "t5").1, "the pin is in the store again");
    // Replica 0's own pin, with its end and its trip: no closed replica restored a pin.
    let record = record(&server, "t5");
    assert_ne!(record["until"], "0", "{record:?}");
    assert_eq!(record["trips"], "1", "{record:?}");
    assert_eq!(record["manual"], "0", "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_and_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_millis(200))
        .build()
        .unwrap();
    let store = store_config(&server, "t6")
        .key_ttl(Duration::from_millis(300))
        .failure_window(Duration::from_millis(300))
        .build()
        .unwrap();
    let replica = replica(store, config, &upstream);
    until("connected", || replica.store.is_connected()).await;
    replica.request().await.unwrap_err();
    until("the failure is counted", || stored(&server, "t6").0 == 1).await;
    let mut conn = peek(&server);
    let keys: Vec<String> = redis::cmd("KEYS").arg("t6:*").query(&mut conn).unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        assert!(ttl > 0, "{key} has no ttl ({ttl})");
    }
    for _ in 0..2 {
        let _ = replica.request().await;
    }
    until("pinned", || stored(&server, "t6").1).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("t6:*").query(&mut conn).unwrap();
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        assert!(ttl > 0, "{key} has no ttl ({ttl})");
    }
    // The record never names the credential; then everything expires.
    until("every key expired", || {
        redis::cmd("KEYS")
            .arg("t6:*")
            .query::<Vec<String>>(&mut peek(&server))
            .unwrap()
            .is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_is_worked_around_then_caught_up() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let replicas = fleet(&server, "t7", breaker().build().unwrap(), &upstream).await;
    upstream.failing.store(false, Ordering::SeqCst);
    for replica in &replicas {
        replica.request().await.unwrap();
    }
    server.pause();
    // Requests never wait on it (each is bounded by 5 s in `request`, far less than a hang),
    // and the replicas notice the store is too slow.
    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        replicas[0].request().await.unwrap_err();
    }
    assert_eq!(
        replicas[0].state(),
        Some(BreakerState::Open),
        "its own breaker decided"
    );
    until("every replica counts the store as down", || {
        replicas.iter().all(|r| !r.store.is_connected()) || {
            for replica in &replicas[1..] {
                replica
                    .handle
                    .pin(&BreakerKey::new("probe", "wss://nudge", None), None);
            }
            false
        }
    })
    .await;
    server.resume();
    until("every replica reconnected", || {
        replicas.iter().all(|r| r.store.is_connected())
    })
    .await;
    until("the pin made meanwhile reached every replica", || {
        replicas
            .iter()
            .all(|r| r.state() == Some(BreakerState::Open))
    })
    .await;
}

/// The key's stored record (the test's only key under `prefix`).
fn record(server: &RedisServer, prefix: &str) -> std::collections::HashMap<String, String> {
    let mut conn = peek(server);
    let states: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:state:*"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    redis::cmd("HGETALL")
        .arg(&states[0])
        .query(&mut conn)
        .unwrap()
}

/// Fails requests round robin, one per replica at a time (so that no replica trips on its own
/// failures), until the fleet's failure script pins the key; returns the pin's length as the
/// record says (`until - since`, both the server's time) and the record's trips.
async fn trip_by_the_fleet(
    server: &RedisServer,
    prefix: &str,
    replicas: &[Replica],
) -> (Duration, u64) {
    let mut sent = 0;
    while !stored(server, prefix).1 {
        assert!(sent < 3, "the fleet pins after three failures in total");
        let _ = replicas[sent % 3].request().await;
        sent += 1;
        let expected = sent as u64;
        until("the failure is counted", || {
            let (count, open) = stored(server, prefix);
            open || count == expected
        })
        .await;
    }
    let record = record(server, prefix);
    let field = |name: &str| -> u64 { record[name].parse().unwrap() };
    let pin = Duration::from_millis(field("until") - field("since"));
    (pin, field("trips"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_s_pins_start_at_the_base_double_and_stop_at_the_cap() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_secs(60))
        .max_open_duration(Duration::from_secs(150))
        .jitter(0.0)
        .build()
        .unwrap();
    let replicas = fleet(&server, "t8", config, &upstream).await;
    let mut pins = Vec::new();
    for _ in 0..3 {
        pins.push(trip_by_the_fleet(&server, "t8", &replicas).await);
        until("every replica is pinned", || {
            replicas
                .iter()
                .all(|r| r.state() == Some(BreakerState::Open))
        })
        .await;
        // Closed by hand, well within the decay: the next trip continues the backoff.
        assert!(replicas[0].handle.unpin(&key()));
        until("every replica is closed", || {
            replicas
                .iter()
                .all(|r| r.state() == Some(BreakerState::Closed))
        })
        .await;
    }
    assert_eq!(
        pins,
        [
            (Duration::from_secs(60), 1),
            (Duration::from_secs(120), 2),
            (Duration::from_secs(150), 3),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_timeout_longer_than_the_connect_timeout_connects() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // A connection attempt may take both: to connect, then to get the first answer.
    let store = store_config(&server, "t9")
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let replica = replica(store, breaker().build().unwrap(), &Upstream::new());
    until("connected", || replica.store.is_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_a_replica_probes_on_its_own_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_millis(200))
        .jitter(0.0)
        .half_open_probes(1)
        .build()
        .unwrap();
    let replica = replica(
        store_config(&server, "t10").build().unwrap(),
        config,
        &upstream,
    );
    until("connected", || replica.store.is_connected()).await;
    server.kill();
    // Three failures of its own: pinned here, while the store finds Redis gone.
    for _ in 0..3 {
        replica.request().await.unwrap_err();
    }
    assert_eq!(replica.state(), Some(BreakerState::Open));
    until("the store knows Redis is down", || {
        !replica.store.is_connected()
    })
    .await;
    // The upstream heals; once the pin ends, the probe slot is granted here, not by the fleet.
    upstream.failing.store(false, Ordering::SeqCst);
    let pinned_at = upstream.handshakes();
    until("probed and closed", || {
        replica.state() == Some(BreakerState::Closed) || {
            tokio::spawn(replica.request());
            false
        }
    })
    .await;
    assert!(upstream.handshakes() > pinned_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_made_while_redis_does_not_answer_reaches_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let replicas = fleet(&server, "t11", breaker().build().unwrap(), &upstream).await;
    let keys = [key(), BreakerKey::new("other", "wss://other.test/v1", None)];
    // The store holds a closed record of both keys.
    for key in &keys {
        replicas[0].handle.pin(key, None);
        assert!(replicas[0].handle.unpin(key));
    }
    until("both keys are stored closed", || {
        stored_states(&server, "t11") == ["closed"; 2]
    })
    .await;
    server.pause();
    // A command sent now still runs when Redis wakes up: the store must first notice.
    replicas[0]
        .handle
        .pin(&BreakerKey::new("nudge", "wss://nudge.test", None), None);
    until("the store noticed", || !replicas[0].store.is_connected()).await;
    // Both pins are made here meanwhile, and kept to be told when Redis is back.
    for key in &keys {
        replicas[0].handle.pin(key, None);
    }
    server.resume();
    until("both pins are stored", || {
        let states = stored_states(&server, "t11");
        states.len() == 3 && states.iter().all(|state| state == "open")
    })
    .await;
    for key in &keys {
        let snapshot = replicas[0].handle.get(key).unwrap();
        assert!(snapshot.state == BreakerState::Open && snapshot.pinned_by_hand);
    }
}

/// The `state` field of every record under `prefix`.
fn stored_states(server: &RedisServer, prefix: &str) -> Vec<String> {
    let mut conn = peek(server);
    let states: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:state:*"))
        .query(&mut conn)
        .unwrap();
    states
        .iter()
        .map(|key| {
            redis::cmd("HGET")
                .arg(key)
                .arg("state")
                .query::<Option<String>>(&mut conn)
                .unwrap()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_redis_lost_is_restored_by_the_replica_that_holds_it() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let replica = replica(
        store_config(&server, "t12").build().unwrap(),
        breaker().build().unwrap(),
        &upstream,
    );
    until("connected", || replica.store.is_connected()).await;
    replica.handle.pin(&key(), Some(Duration::from_secs(600)));
    until("the pin is stored", || stored(&server, "t12").1).await;
    // Told to Redis while it was up: nothing is pending when it comes back empty.
    server.kill();
    server.restart();
    until("the pin is stored again", || stored(&server, "t12").1).await;
    let record = record(&server, "t12");
    assert_eq!(record["manual"], "1", "{record:?}");
    assert_ne!(record["until"], "0", "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_shortens_a_pin_by_at_most_its_share() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    let config = breaker()
        .open_duration(Duration::from_secs(60))
        .jitter(0.5)
        .build()
        .unwrap();
    let within = |pin: Duration| pin > Duration::from_secs(30) && pin <= Duration::from_secs(60);
    // Tripped by the fleet's count (the failure script).
    let replicas = fleet(&server, "t13", config.clone(), &upstream).await;
    let (pin, _) = trip_by_the_fleet(&server, "t13", &replicas).await;
    assert!(within(pin), "{pin:?}");
    // Tripped by one replica on its own (the trip script): the fleet's count of each failure
    // ends with its window before the next one.
    let alone = replica(
        store_config(&server, "t14")
            .failure_window(Duration::from_millis(300))
            .build()
            .unwrap(),
        config,
        &upstream,
    );
    until("connected", || alone.store.is_connected()).await;
    for _ in 0..3 {
        alone.request().await.unwrap_err();
        until("counted", || stored(&server, "t14") != (0, false)).await;
        until("forgotten by the fleet", || stored(&server, "t14").0 == 0).await;
    }
    until("pinned", || stored(&server, "t14").1).await;
    let record = record(&server, "t14");
    let field = |name: &str| -> u64 { record[name].parse().unwrap() };
    let pin = Duration::from_millis(field("until") - field("since"));
    assert!(within(pin), "{pin:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_meets_a_key_late_learns_the_fleet_s_pin() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let upstream = Upstream::new();
    upstream.failing.store(false, Ordering::SeqCst);
    let first = replica(
        store_config(&server, "t15").build().unwrap(),
        breaker().build().unwrap(),
        &upstream,
    );
    until("connected", || first.store.is_connected()).await;
    first.handle.pin(&key(), Some(Duration::from_secs(600)));
    until("the pin is stored", || stored(&server, "t15").1).await;
    // A replica that never saw the key: its first request makes it read the key's record.
    let late = replica(
        store_config(&server, "t15").build().unwrap(),
        breaker().build().unwrap(),
        &upstream,
    );
    until("connected", || late.store.is_connected()).await;
    let _ = late.request().await;
    until("the late replica is pinned", || {
        late.handle
            .get(&key())
            .is_some_and(|s| s.state == BreakerState::Open && s.pinned_by_hand)
    })
    .await;
}
