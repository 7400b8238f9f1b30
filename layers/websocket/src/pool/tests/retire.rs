//! Connections leaving a key that keeps others: a retired connection's responses are forgotten
//! and the requests waiting for it move on at once; an idle connection closed to make room is
//! one no conversation waits for, and the key's other idle connections stay pooled and counted.

use super::*;

#[tokio::test(start_paused = true)]
async fn retiring_one_of_a_key_s_connections_forgets_its_responses_and_wakes_its_waiters() {
    let pool = Pool::builder()
        .conversation_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let connector = Connector::new(3).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &key, &connector).await;
    let mut other = checkout(&pool, &key, &connector).await;
    busy.remember("resp_busy");
    other.remember("resp_other");
    let other_id = other.id();
    // `other` stays checked out, so the key keeps a connection when `busy` is retired.
    let started = Instant::now();
    let (conn, ()) = tokio::join!(follow(&pool, &key, &connector, "resp_busy"), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(busy);
    });
    // Woken by the retirement, not by the end of the conversation wait.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(!conn.reused());
    assert_eq!(connector.connects(), 3);
    assert_eq!(pool.connections(), 2);
    // Only the responses of the connections that are still there are remembered.
    assert_eq!(conversation::remembered(&pool), 1);
    other.release();
    let followed = follow(&pool, &key, &connector, "resp_other").await;
    assert_eq!(followed.id(), other_id);
    followed.release();
    // The retired connection's response is not followed any more: an idle one will do.
    let any = follow(&pool, &key, &connector, "resp_busy").await;
    assert!(any.reused());
    assert_eq!(connector.connects(), 3);
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_closes_an_idle_connection_no_one_waits_for_even_a_younger_one() {
    let pool = Pool::builder().max_connections(2).build().unwrap();
    let connector = Connector::new(3).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut wanted = checkout(&pool, &key, &connector).await;
    let younger = checkout(&pool, &key, &connector).await;
    wanted.remember("resp_1");
    let wanted_id = wanted.id();
    let waiter = waiting_follower(&pool, &key, &connector, "resp_1").await;
    // Both idle, the wanted one returned first; nothing yields, so the waiter has not taken
    // it yet.
    wanted.release();
    younger.release();
    let other = checkout(&pool, &PoolKey::for_test("ws://b/v1", None), &connector).await;
    assert!(!other.reused());
    // The younger one made room; the waiting conversation still gets its own connection.
    assert_eq!(waiter.await.unwrap(), wanted_id);
    assert_eq!(connector.connects(), 3);
}

#[tokio::test(start_paused = true)]
async fn closing_one_of_a_key_s_idle_connections_keeps_the_others_pooled_and_counted() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let pool = Pool::builder().max_idle_connections(2).build().unwrap();
    let connector = Connector::new(3).await;
    let a = PoolKey::for_test("ws://a/v1", None);
    let b = PoolKey::for_test("ws://b/v1", None);
    let (first, second) = (
        checkout(&pool, &a, &connector).await,
        checkout(&pool, &a, &connector).await,
    );
    let other = checkout(&pool, &b, &connector).await;
    let second_id = second.id();
    for conn in [first, second, other] {
        conn.release();
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // a's first connection, returned longest ago, made room; a keeps its second one.
    assert_eq!(pool.idle_connections(), 2);
    assert!(pool.lock().books_balance());
    assert_eq!(idle_gauge(&snapshotter), 2.0);
    let again = checkout(&pool, &a, &connector).await;
    assert!(again.reused());
    assert_eq!(again.id(), second_id);
    // A snapshot takes the gauge's changes since the previous one: the reuse took one off.
    assert_eq!(idle_gauge(&snapshotter), -1.0);
    assert_eq!(connector.connects(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_key_whose_last_idle_connection_is_closed_keeps_its_busy_one() {
    let pool = Pool::builder().max_idle_connections(1).build().unwrap();
    let connector = Connector::new(3).await;
    let a = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &a, &connector).await;
    busy.remember("resp_busy");
    let busy_id = busy.id();
    checkout(&pool, &a, &connector).await.release();
    tokio::time::advance(Duration::from_secs(1)).await;
    // b's return passes the idle total: a's idle connection goes, a's busy one stays counted.
    checkout(&pool, &PoolKey::for_test("ws://b/v1", None), &connector)
        .await
        .release();
    assert_eq!(pool.idle_connections(), 1);
    assert_eq!(pool.connections(), 2);
    assert!(pool.lock().books_balance());
    // Returned last, so b's idle connection makes room this time.
    tokio::time::advance(Duration::from_secs(1)).await;
    busy.release();
    assert_eq!(
        follow(&pool, &a, &connector, "resp_busy").await.id(),
        busy_id
    );
    assert_eq!(connector.connects(), 3);
}

#[test]
fn handles_share_a_pool_and_its_settings_have_their_defaults() {
    let pool = Pool::new();
    assert!(pool.same_pool(&pool.clone()));
    assert!(!pool.same_pool(&Pool::new()));
    let debug = format!("{pool:?}");
    assert!(debug.contains("max_age: 3300s"), "{debug}");
    // The longest conversation wait allowed is allowed.
    assert!(
        Pool::builder()
            .conversation_wait(wsfirst_core::MAX_DURATION)
            .build()
            .is_ok()
    );
}

/// The value of the pool's idle gauge in `snapshotter`.
fn idle_gauge(snapshotter: &metrics_util::debugging::Snapshotter) -> f64 {
    use metrics_util::debugging::DebugValue;

    let value = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let idle = key.name() == "wsfirst_ws_pool_connections"
                && key
                    .labels()
                    .any(|l| l.key() == "state" && l.value() == "idle");
            idle.then_some(value)
        });
    match value {
        Some(DebugValue::Gauge(idle)) => idle.into_inner(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn closing_the_pool_closes_the_idle_connections_and_keeps_counting_the_busy_ones() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let pool = Pool::new();
    let connector = Connector::new(3).await;
    let a = PoolKey::for_test("ws://a/v1", None);
    let b = PoolKey::for_test("ws://b/v1", None);
    let busy = checkout(&pool, &a, &connector).await;
    checkout(&pool, &a, &connector).await.release();
    checkout(&pool, &b, &connector).await.release();
    assert_eq!((pool.connections(), pool.idle_connections()), (3, 2));
    pool.close().await;
    assert_eq!((pool.connections(), pool.idle_connections()), (1, 0));
    assert!(pool.lock().books_balance());
    assert_eq!(idle_gauge(&snapshotter), 0.0);
    // The busy one is closed when its response ends.
    busy.release();
    assert_eq!((pool.connections(), pool.idle_connections()), (0, 0));
    assert!(pool.lock().books_balance());
}

#[tokio::test]
async fn a_failed_handshake_beside_a_busy_connection_keeps_the_key_s_books() {
    let pool = Pool::new();
    let connector = Connector::new(1).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let busy = checkout(&pool, &key, &connector).await;
    let failure = WsFailure::new(
        Phase::Handshake,
        FailureKind::UpgradeStatus {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            body: "down".into(),
        },
    );
    let result = pool
        .checkout(&key, None, false, TIMEOUT, || {
            let failure = failure.clone();
            async move { Err::<WsStream, _>(failure) }
        })
        .await;
    assert_eq!(result.unwrap_err(), failure);
    assert_eq!(pool.connections(), 1);
    assert!(pool.lock().books_balance());
    busy.release();
    assert!(checkout(&pool, &key, &connector).await.reused());
    assert!(pool.lock().books_balance());
}

#[tokio::test(start_paused = true)]
async fn a_connection_found_too_old_at_checkout_leaves_the_books_and_the_gauge() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    // The reaper would come every 30 min: the checkout is the one that finds it too old.
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(3600))
        .max_age(Duration::from_secs(10))
        .build()
        .unwrap();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    checkout(&pool, &key, &connector).await.release();
    tokio::time::advance(Duration::from_secs(11)).await;
    let fresh = checkout(&pool, &key, &connector).await;
    assert!(!fresh.reused());
    assert_eq!((pool.connections(), pool.idle_connections()), (1, 0));
    assert!(pool.lock().books_balance());
    assert_eq!(idle_gauge(&snapshotter), 0.0);
}
