//! Retiring one of several connections of a key: the key stays, but the retired connection's
//! responses are forgotten and the requests waiting for it move on at once.

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
    let waiter = {
        let pool = pool.clone();
        let key = key.clone();
        let connector = connector.clone();
        tokio::spawn(async move { follow(&pool, &key, &connector, "resp_1").await.id() })
    };
    while pool.lock().keys[&key].conversations.wanted_is_empty() {
        tokio::task::yield_now().await;
    }
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
