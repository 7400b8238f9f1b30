//! The pool's caps across keys: idle connections in total (the one returned longest ago is
//! closed), connections in total (a new key closes an idle connection of another, or waits for
//! room, then fails as exhausted), and books that always add up.

use super::*;

/// A pool with these totals and nothing else in the way.
fn pool(max_connections: usize, max_idle: usize) -> Pool {
    Pool::builder()
        .max_connections(max_connections)
        .max_idle_connections(max_idle)
        .build()
        .unwrap()
}

fn key(session: &str) -> PoolKey {
    PoolKey::for_test("ws://a/v1", Some(session))
}

fn balanced(pool: &Pool) -> bool {
    pool.lock().books_balance()
}

/// Whether the server end of connection `index` (in the order they were opened) received a
/// close frame or saw the connection end.
async fn closed(connector: &Connector, index: usize) -> bool {
    // A stand-in takes its place: the test never reads it.
    let stand_in = pair().await.1;
    let mut server = std::mem::replace(&mut connector.servers.lock().unwrap()[index], stand_in);
    matches!(
        tokio::time::timeout(TIMEOUT, server.next()).await,
        Ok(None | Some(Ok(Message::Close(_)) | Err(_)))
    )
}

#[test]
fn zero_totals_are_refused() {
    for (builder, field) in [
        (Pool::builder().max_connections(0), "max_connections"),
        (
            Pool::builder().max_idle_connections(0),
            "max_idle_connections",
        ),
        (
            Pool::builder().write_stall_timeout(Duration::ZERO),
            "write_stall_timeout",
        ),
    ] {
        assert_eq!(builder.build().unwrap_err().field(), field);
    }
    let pool = Pool::new();
    let debug = format!("{pool:?}");
    for field in [
        "max_connections: 1024",
        "max_idle_connections: 256",
        "write_stall_timeout: 60s",
    ] {
        assert!(debug.contains(field), "{debug}");
    }
}

#[tokio::test(start_paused = true)]
async fn past_the_idle_total_the_connection_returned_longest_ago_is_closed() {
    let pool = pool(1024, 2);
    let connector = Connector::new(3).await;
    let conns = [
        checkout(&pool, &key("a"), &connector).await,
        checkout(&pool, &key("b"), &connector).await,
        checkout(&pool, &key("c"), &connector).await,
    ];
    for conn in conns {
        conn.release();
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(pool.idle_connections(), 2);
    assert_eq!(pool.connections(), 2);
    assert!(balanced(&pool));
    assert!(
        closed(&connector, 0).await,
        "a's connection was returned first"
    );
    // b and c are still pooled.
    assert!(checkout(&pool, &key("b"), &connector).await.reused());
    assert!(checkout(&pool, &key("c"), &connector).await.reused());
    assert_eq!(connector.connects(), 3);
    assert!(balanced(&pool));
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_closes_an_idle_connection_of_another_key_for_a_new_one() {
    let pool = pool(2, 256);
    let connector = Connector::new(3).await;
    checkout(&pool, &key("a"), &connector).await.release();
    tokio::time::advance(Duration::from_secs(1)).await;
    checkout(&pool, &key("b"), &connector).await.release();
    let fresh = checkout(&pool, &key("c"), &connector).await;
    assert!(!fresh.reused());
    assert_eq!(pool.connections(), 2);
    assert_eq!(pool.idle_connections(), 1);
    assert!(balanced(&pool));
    assert!(
        closed(&connector, 0).await,
        "a's connection was the oldest idle one"
    );
    assert!(checkout(&pool, &key("b"), &connector).await.reused());
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_of_busy_connections_waits_for_room_then_gives_up() {
    let pool = pool(2, 256);
    let connector = Connector::new(4).await;
    let a = checkout(&pool, &key("a"), &connector).await;
    let b = checkout(&pool, &key("b"), &connector).await;
    // Every connection busy, none idle: a new key waits the handshake timeout, then fails as a
    // full key does (replay-safe, not counted by the breaker).
    let failure = pool
        .checkout(&key("c"), None, false, TIMEOUT, || connector.connect())
        .await
        .unwrap_err();
    assert_eq!(failure.phase(), Phase::Connect);
    assert!(matches!(failure.kind(), FailureKind::Local(_)), "{failure}");
    assert!(
        failure
            .to_string()
            .contains("all 2 websocket connections of the pool")
    );
    assert!(std::error::Error::source(&failure).is_some_and(|source| source.is::<PoolExhausted>()));
    assert_eq!(connector.connects(), 2);
    assert!(balanced(&pool));

    // A connection that closes makes room...
    let (c_key, d_key) = (key("c"), key("d"));
    let (c, ()) = tokio::join!(checkout(&pool, &c_key, &connector), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
    });
    assert!(!c.reused());
    assert_eq!(connector.connects(), 3);
    // ...and so does one that comes back idle: the waiter closes it and opens its own.
    let (d, ()) = tokio::join!(checkout(&pool, &d_key, &connector), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.release();
    });
    assert!(!d.reused());
    assert_eq!(connector.connects(), 4);
    assert_eq!(pool.connections(), 2);
    assert_eq!(pool.idle_connections(), 0);
    assert!(balanced(&pool));
}

#[tokio::test(start_paused = true)]
async fn many_keys_never_hold_more_than_the_totals() {
    let pool = Pool::builder()
        .max_connections(8)
        .max_idle_connections(4)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let connector = Connector::new(40).await;
    for i in 0..40 {
        let conn = checkout(&pool, &key(&format!("session-{i}")), &connector).await;
        assert!(pool.connections() <= 8);
        conn.release();
        assert!(pool.idle_connections() <= 4);
        assert!(pool.connections() <= 8);
        assert!(balanced(&pool));
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.idle_connections(), 4);
    // The books of the keys whose connections were closed are gone too.
    assert_eq!(pool.lock().keys.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn closing_the_pool_ends_the_wait_for_room() {
    let pool = pool(1, 256);
    let connector = Connector::new(2).await;
    let _held = checkout(&pool, &key("a"), &connector).await;
    let b = key("b");
    let (failure, ()) = tokio::join!(
        pool.checkout(&b, None, false, TIMEOUT, || connector.connect()),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            pool.close().await;
        }
    );
    let failure = failure.unwrap_err();
    assert!(failure.to_string().contains("pool is closed"), "{failure}");
}
