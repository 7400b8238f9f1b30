//! Conversations own their socket: an idle connection whose latest response lives only in its
//! memory is held for the conversation's next turn; others take another connection; under
//! pressure the hold used least recently is given up first, and counted.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::*;

fn key() -> PoolKey {
    PoolKey::for_test("ws://a/v1", None)
}

/// Checks a connection out, has it produce `response` (held when `hold`) and returns it.
async fn produce(
    pool: &Pool,
    key: &PoolKey,
    connector: &Arc<Connector>,
    response: &str,
    hold: bool,
) -> u64 {
    let mut conn = checkout(pool, key, connector).await;
    conn.produced(response, hold);
    let id = conn.id();
    conn.release();
    id
}

#[tokio::test]
async fn a_held_connection_is_left_to_its_conversation() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = key();
    let held = produce(&pool, &key, &connector, "resp_1", true).await;
    // Another conversation opens its own connection...
    let other = checkout(&pool, &key, &connector).await;
    assert_ne!(other.id(), held);
    assert_eq!(connector.connects(), 2);
    other.release();
    // ...and the conversation's next turn finds its own.
    let next = follow(&pool, &key, &connector, "resp_1").await;
    assert_eq!(next.id(), held);
}

#[tokio::test]
async fn a_connection_whose_response_is_stored_is_not_held() {
    let pool = Pool::new();
    let connector = Connector::new(1).await;
    let key = key();
    let first = produce(&pool, &key, &connector, "resp_1", false).await;
    let other = checkout(&pool, &key, &connector).await;
    assert_eq!(other.id(), first);
    assert_eq!(connector.connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_hold_ends_after_the_hold_time_and_outlives_the_idle_timeout() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(30))
        .conversation_hold(Duration::from_secs(120))
        .build()
        .unwrap();
    let connector = Connector::new(2).await;
    let key = key();
    let held = produce(&pool, &key, &connector, "resp_1", true).await;
    // Past the idle timeout, still held: the conversation gets it back.
    tokio::time::advance(Duration::from_secs(60)).await;
    let next = follow(&pool, &key, &connector, "resp_1").await;
    assert_eq!(next.id(), held);
    let mut next = next;
    next.produced("resp_2", true);
    next.release();
    // Past the hold, it expires like any idle connection.
    tokio::time::advance(Duration::from_secs(121)).await;
    let other = checkout(&pool, &key, &connector).await;
    assert_ne!(other.id(), held);
    assert_eq!(connector.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn after_the_hold_others_may_take_the_connection() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(300))
        .conversation_hold(Duration::from_secs(10))
        .build()
        .unwrap();
    let connector = Connector::new(1).await;
    let key = key();
    let held = produce(&pool, &key, &connector, "resp_1", true).await;
    tokio::time::advance(Duration::from_secs(11)).await;
    let other = checkout(&pool, &key, &connector).await;
    assert_eq!(other.id(), held);
}

/// The value of `wsfirst_ws_pool_holds_released_total{reason}` in `recorder`.
fn released(snapshotter: &metrics_util::debugging::Snapshotter, reason: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == "wsfirst_ws_pool_holds_released_total"
                && key
                    .labels()
                    .any(|label| label.key() == "reason" && label.value() == reason);
            match (matches, value) {
                (true, DebugValue::Counter(count)) => Some(count),
                _ => None,
            }
        })
        .unwrap_or(0)
}

/// Runs `test` on a current-thread runtime with a local metrics recorder.
fn with_recorder(test: impl Future<Output = ()>) -> metrics_util::debugging::Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test));
    snapshotter
}

#[test]
fn at_the_keys_maximum_the_hold_used_least_recently_is_given_up_and_counted() {
    let snapshotter = with_recorder(async {
        let pool = Pool::builder().max_connections_per_key(2).build().unwrap();
        let connector = Connector::new(2).await;
        let key = key();
        let mut first = checkout(&pool, &key, &connector).await;
        let mut second = checkout(&pool, &key, &connector).await;
        first.produced("resp_1", true);
        second.produced("resp_2", true);
        let (first_id, second_id) = (first.id(), second.id());
        first.release();
        tokio::time::advance(Duration::from_secs(1)).await;
        second.release();
        // Full key, both held: the one returned longest ago goes to the new request.
        let other = checkout(&pool, &key, &connector).await;
        assert_eq!(other.id(), first_id);
        assert_eq!(connector.connects(), 2);
        // The other conversation keeps its own.
        let next = follow(&pool, &key, &connector, "resp_2").await;
        assert_eq!(next.id(), second_id);
    });
    assert_eq!(released(&snapshotter, "key_full"), 1);
}

#[test]
fn at_the_pools_maximum_a_hold_goes_last_and_is_counted() {
    let snapshotter = with_recorder(async {
        let pool = Pool::builder().max_connections(2).build().unwrap();
        let connector = Connector::new(4).await;
        let session = |name| PoolKey::for_test("ws://a/v1", Some(name));
        let held = produce(&pool, &session("a"), &connector, "resp_1", true).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        produce(&pool, &session("b"), &connector, "resp_2", false).await;
        // Room for c: b's connection goes, though a's was returned earlier.
        let busy = checkout(&pool, &session("c"), &connector).await;
        let next = follow(&pool, &session("a"), &connector, "resp_1").await;
        assert_eq!(next.id(), held);
        next.release();
        // Room for d, with only a held connection idle: the hold goes.
        let _d = checkout(&pool, &session("d"), &connector).await;
        assert_eq!(connector.connects(), 4);
        drop(busy);
    });
    assert_eq!(released(&snapshotter, "pool_full"), 1);
}
