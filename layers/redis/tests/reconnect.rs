//! The store's reconnection schedule while Redis cannot be reached (a test binary of its own:
//! it reads the store's DEBUG logs). Nothing listens on the store's port, so every attempt is
//! refused at once, and paused time runs the waits between attempts: 100 ms, doubling, at most
//! `reconnect_max`.

mod logs;

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, sleep_until};
use wsfirst_breaker::BreakerRegistry;
use wsfirst_breaker_redis::{RedisStore, RedisStoreConfig};

use logs::Logs;

/// A loopback port that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(start_paused = true)]
async fn attempts_wait_100_ms_then_twice_as_long_each_time_up_to_the_maximum() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The store's task runs on this thread (a current-thread runtime).
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = RedisStoreConfig::builder(format!("redis://127.0.0.1:{}/0", closed_port()))
        .reconnect_max(Duration::from_secs(1))
        .build()
        .unwrap();
    let store = RedisStore::new(config).unwrap();
    let _registry = BreakerRegistry::builder()
        .store(Arc::new(store.clone()))
        .build();
    let start = Instant::now();
    // Attempts at 0, 0.1, 0.3, 0.7, 1.5, then every second: 2.5, 3.5, 4.5, 5.5. Each look is
    // between two attempts.
    for (at, retries) in [(180, 1), (500, 2), (1_000, 3), (2_000, 4), (6_000, 8)] {
        sleep_until(start + Duration::from_millis(at)).await;
        // Failed attempts after the first (the first one is the outage's WARN).
        let failed = logs.count("breaker store still unreachable");
        assert_eq!(failed, retries, "after {at} ms");
    }
    assert!(!store.is_connected());
}
