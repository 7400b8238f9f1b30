//! The logs of an outage (a test binary of its own: tracing caches interest process-wide): Redis
//! killed gives one WARN however many reconnection attempts fail, and Redis back gives one INFO;
//! a change made meanwhile reaches Redis when it is back.

mod logs;

use std::{sync::Arc, time::Duration};

use wsfirst_breaker::{BreakerRegistry, BreakerState};
use wsfirst_breaker_redis::{
    RedisStore, RedisStoreConfig,
    testing::{RedisServer, until},
};
use wsfirst_core::BreakerKey;

use logs::Logs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_logs_one_warn_and_one_info() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .init();
    let config = RedisStoreConfig::builder(server.url())
        .prefix("outage")
        .reconnect_max(Duration::from_millis(100))
        .build()
        .unwrap();
    let store = RedisStore::new(config).unwrap();
    let registry = BreakerRegistry::builder()
        .store(Arc::new(store.clone()))
        .build();
    let handle = registry.handle();
    until("connected", || store.is_connected()).await;
    let key = BreakerKey::new("openai", "wss://api.example/v1", None);

    server.kill();
    // Changes by hand while Redis is away apply here at once; the store notices the outage.
    handle.pin(&key, None);
    assert_eq!(handle.get(&key).unwrap().state, BreakerState::Open);
    until("the store noticed", || !store.is_connected()).await;
    // Several reconnection attempts fail (DEBUG each): still one WARN.
    until("three more attempts failed", || {
        logs.count("breaker store still unreachable") >= 3
    })
    .await;
    assert_eq!(
        logs.count("breaker store unreachable"),
        1,
        "{}",
        logs.text()
    );

    server.restart();
    until("reconnected", || store.is_connected()).await;
    assert_eq!(
        logs.count("breaker store reachable again"),
        1,
        "{}",
        logs.text()
    );
    assert_eq!(logs.count("breaker store unreachable"), 1);
    // The pin made while Redis was away reached it.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    until("the pin is stored", || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("outage:state:*")
            .query(&mut conn)
            .unwrap();
        keys.len() == 1
    })
    .await;
}
