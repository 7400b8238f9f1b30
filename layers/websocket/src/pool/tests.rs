//! The pool alone, over prepared loopback connections: reuse per key, expiry, maximum age, dead
//! connections, coalesced handshakes, a full key, the reaper and a clean close.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
};

use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::Role},
};
use wsfirst_core::{FailureKind, Phase};

use super::{pooled::Pooled, *};
use crate::{PoolExhausted, connector::WsStream};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A connected client WebSocket and its server end, without an HTTP upgrade (no timers).
async fn pair() -> (WsStream, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = WebSocketStream::from_raw_socket(
        MaybeTlsStream::Plain(client.unwrap()),
        Role::Client,
        None,
    )
    .await;
    let server = WebSocketStream::from_raw_socket(server.unwrap().0, Role::Server, None).await;
    (client, server)
}

/// `n` prepared connections handed out by a counting connect function.
struct Connector {
    clients: Mutex<Vec<WsStream>>,
    servers: Mutex<Vec<WebSocketStream<TcpStream>>>,
    connects: AtomicUsize,
}

impl Connector {
    async fn new(n: usize) -> Arc<Self> {
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..n {
            let (client, server) = pair().await;
            clients.push(client);
            servers.push(server);
        }
        clients.reverse();
        Arc::new(Self {
            clients: Mutex::new(clients),
            servers: Mutex::new(servers),
            connects: AtomicUsize::new(0),
        })
    }

    fn connect(&self) -> impl Future<Output = Result<WsStream, WsFailure>> + use<> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let client = self.clients.lock().unwrap().pop();
        async move { Ok(client.expect("the test prepared enough connections")) }
    }

    fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

async fn checkout(pool: &Pool, key: &PoolKey, connector: &Arc<Connector>) -> Pooled {
    pool.checkout(key, None, false, TIMEOUT, || connector.connect())
        .await
        .unwrap()
}

#[test]
fn invalid_settings_name_the_field() {
    let cases = [
        (Pool::builder().idle_timeout(Duration::ZERO), "idle_timeout"),
        (Pool::builder().max_age(Duration::ZERO), "max_age"),
        (Pool::builder().max_age(Duration::MAX), "max_age"),
        (Pool::builder().idle_timeout(Duration::MAX), "idle_timeout"),
        (
            Pool::builder().max_connections_per_key(0),
            "max_connections_per_key",
        ),
    ];
    for (builder, field) in cases {
        let error = builder.build().unwrap_err();
        assert_eq!(error.field(), field, "{error}");
    }
}

#[tokio::test]
async fn released_connection_is_reused_for_the_same_key_only() {
    let pool = Pool::new();
    let connector = Connector::new(3).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let first = checkout(&pool, &key, &connector).await;
    assert!(!first.reused());
    first.release();
    assert_eq!(pool.idle_connections(), 1);
    let second = checkout(&pool, &key, &connector).await;
    assert!(second.reused());
    assert_eq!(connector.connects(), 1);
    second.release();

    // Another affinity value is another key, with a connection of its own.
    let session = PoolKey::for_test("ws://a/v1", Some("session-1"));
    let third = checkout(&pool, &session, &connector).await;
    assert!(!third.reused());
    assert_eq!(connector.connects(), 2);
    assert_eq!(pool.connections(), 2);
}

#[tokio::test]
async fn dropped_checkout_is_closed_not_pooled() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    drop(checkout(&pool, &key, &connector).await);
    assert_eq!(pool.connections(), 0);
    assert!(!checkout(&pool, &key, &connector).await.reused());
    assert_eq!(connector.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_expire() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let connector = Connector::new(3).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    checkout(&pool, &key, &connector).await.release();
    tokio::time::advance(Duration::from_secs(59)).await;
    let again = checkout(&pool, &key, &connector).await;
    assert!(again.reused(), "still fresh after 59 s");
    again.release();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(!checkout(&pool, &key, &connector).await.reused());
    assert_eq!(connector.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn connections_retire_at_max_age() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(3600))
        .max_age(Duration::from_secs(600))
        .build()
        .unwrap();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let conn = checkout(&pool, &key, &connector).await;
    tokio::time::advance(Duration::from_secs(300)).await;
    conn.release();
    let conn = checkout(&pool, &key, &connector).await;
    assert!(conn.reused());
    // Busy past its maximum age: retired when released, not pooled.
    tokio::time::advance(Duration::from_secs(301)).await;
    conn.release();
    assert_eq!(pool.idle_connections(), 0);
    assert!(!checkout(&pool, &key, &connector).await.reused());
    assert_eq!(connector.connects(), 2);
}

/// Closes the server end of the first prepared connection, and lets the close arrive.
async fn close_server(connector: &Connector) {
    let mut server = connector.servers.lock().unwrap().remove(0);
    server.close(None).await.unwrap();
    drop(server);
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_connection_closed_while_idle_says_so_before_the_write_and_is_not_reused() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut conn = checkout(&pool, &key, &connector).await;
    assert!(conn.closed_before_write().is_none(), "open");
    conn.release();
    close_server(&connector).await;
    // Handed out as it is: the check right before the write finds the close.
    let mut conn = checkout(&pool, &key, &connector).await;
    assert!(conn.reused());
    let failure = conn.closed_before_write().expect("found closed");
    assert_eq!(failure.phase(), Phase::Send);
    assert_eq!(failure.delivery(), wsfirst_core::Delivery::Unsent);
    assert!(
        matches!(failure.kind(), FailureKind::Closed { .. }),
        "{failure:?}"
    );
    drop(conn);
    assert_eq!(pool.connections(), 0);
    let conn = checkout(&pool, &key, &connector).await;
    assert!(!conn.reused());
    assert_eq!(connector.connects(), 2);
    assert_eq!(pool.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_share_one_failing_handshake() {
    let pool = Pool::new();
    let connects = Arc::new(AtomicUsize::new(0));
    let failure = WsFailure::new(
        Phase::Handshake,
        FailureKind::UpgradeStatus {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            body: "down".into(),
        },
    );
    let key = PoolKey::for_test("ws://dead/v1", None);
    let attempts = (0..64).map(|_| {
        let connects = connects.clone();
        let failure = failure.clone();
        pool.checkout(&key, None, false, TIMEOUT, move || {
            connects.fetch_add(1, Ordering::SeqCst);
            let failure = failure.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err::<WsStream, _>(failure)
            }
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    for result in results {
        assert_eq!(result.unwrap_err(), failure);
    }
    assert_eq!(pool.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn after_a_successful_handshake_waiters_open_their_own() {
    let pool = Pool::new();
    let connector = Connector::new(4).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let attempts = (0..4).map(|_| {
        let connector = connector.clone();
        pool.checkout(&key, None, false, TIMEOUT, move || {
            let connect = connector.connect();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                connect.await
            }
        })
    });
    let started = Instant::now();
    let conns: Vec<_> = futures_util::future::join_all(attempts).await;
    assert!(conns.iter().all(Result::is_ok));
    assert_eq!(connector.connects(), 4);
    assert_eq!(pool.connections(), 4);
    // One handshake, then the three others side by side: not one after another.
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn full_key_waits_for_a_release_then_gives_up() {
    let pool = Pool::builder().max_connections_per_key(1).build().unwrap();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let held = checkout(&pool, &key, &connector).await;
    let failure = pool
        .checkout(&key, None, false, TIMEOUT, || connector.connect())
        .await
        .unwrap_err();
    assert_eq!(failure.phase(), Phase::Connect);
    assert!(matches!(failure.kind(), FailureKind::Local(_)), "{failure}");
    assert!(std::error::Error::source(&failure).is_some_and(|source| source.is::<PoolExhausted>()));
    let (waiter, ()) = tokio::join!(checkout(&pool, &key, &connector), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        held.release();
    });
    assert!(waiter.reused());
    assert_eq!(connector.connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn reaper_closes_expired_idle_connections_then_stops() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let connector = Connector::new(1).await;
    let key = PoolKey::for_test("ws://a/v1", Some("finished-session"));
    checkout(&pool, &key, &connector).await.release();
    assert!(pool.lock().reaper);
    tokio::time::sleep(Duration::from_secs(91)).await;
    assert_eq!(pool.connections(), 0);
    assert!(pool.lock().keys.is_empty());
    assert!(!pool.lock().reaper);
    let mut server = connector.servers.lock().unwrap().remove(0);
    assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
}

#[tokio::test]
async fn close_sends_close_frames_and_refuses_new_checkouts() {
    let pool = Pool::new();
    let connector = Connector::new(1).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    checkout(&pool, &key, &connector).await.release();
    pool.close().await;
    let mut server = connector.servers.lock().unwrap().remove(0);
    // Bounded: a pool that closed nothing must fail here, not hang.
    assert!(matches!(
        tokio::time::timeout(TIMEOUT, server.next()).await,
        Ok(Some(Ok(Message::Close(_))))
    ));
    let failure = pool
        .checkout(&key, None, false, TIMEOUT, || connector.connect())
        .await
        .unwrap_err();
    assert!(failure.to_string().contains("pool is closed"), "{failure}");
    assert_eq!(pool.connections(), 0);
}

// Conversations keep their socket.

async fn follow(pool: &Pool, key: &PoolKey, connector: &Arc<Connector>, response: &str) -> Pooled {
    pool.checkout(key, Some(response), false, TIMEOUT, || connector.connect())
        .await
        .unwrap()
}

/// A request continuing `response`, spawned, once it waits for its busy connection; it
/// resolves to the id of the connection it got.
async fn waiting_follower(
    pool: &Pool,
    key: &PoolKey,
    connector: &Arc<Connector>,
    response: &'static str,
) -> tokio::task::JoinHandle<u64> {
    let waiter = {
        let pool = pool.clone();
        let key = key.clone();
        let connector = connector.clone();
        tokio::spawn(async move { follow(&pool, &key, &connector, response).await.id() })
    };
    while pool.lock().keys[key].conversations.wanted_is_empty() {
        tokio::task::yield_now().await;
    }
    waiter
}

#[test]
fn conversation_wait_may_be_zero_but_not_endless() {
    assert!(
        Pool::builder()
            .conversation_wait(Duration::ZERO)
            .build()
            .is_ok()
    );
    let error = Pool::builder()
        .conversation_wait(Duration::MAX)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "conversation_wait");
}

#[tokio::test]
async fn a_continuing_request_gets_the_connection_that_produced_its_response() {
    let pool = Pool::new();
    let connector = Connector::new(3).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut first = checkout(&pool, &key, &connector).await;
    let mut second = checkout(&pool, &key, &connector).await;
    first.remember("resp_1");
    second.remember("resp_2");
    let (first_id, second_id) = (first.id(), second.id());
    first.release();
    second.release();
    // Without a conversation the most recently returned connection is reused; with one, its own.
    let conn = follow(&pool, &key, &connector, "resp_1").await;
    assert_eq!(conn.id(), first_id);
    assert!(conn.reused());
    conn.release();
    let conn = follow(&pool, &key, &connector, "resp_2").await;
    assert_eq!(conn.id(), second_id);
    conn.release();
    // An unknown response, or a retry on a fresh connection, takes any connection.
    let conn = follow(&pool, &key, &connector, "resp_unknown").await;
    assert_eq!(conn.id(), second_id);
    conn.release();
    assert_eq!(connector.connects(), 2);
    let fresh = pool
        .checkout(&key, Some("resp_1"), true, TIMEOUT, || connector.connect())
        .await
        .unwrap();
    assert!(!fresh.reused());
    assert_eq!(connector.connects(), 3);
}

#[tokio::test]
async fn conversations_are_per_key() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let other = PoolKey::for_test("ws://a/v1", Some("session"));
    let mut conn = checkout(&pool, &key, &connector).await;
    conn.remember("resp_1");
    conn.release();
    let conn = follow(&pool, &other, &connector, "resp_1").await;
    assert!(!conn.reused());
    assert_eq!(connector.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_continuing_request_waits_for_its_busy_connection() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &key, &connector).await;
    busy.remember("resp_1");
    let busy_id = busy.id();
    let started = Instant::now();
    let (conn, ()) = tokio::join!(follow(&pool, &key, &connector, "resp_1"), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        busy.release();
    });
    assert_eq!(conn.id(), busy_id);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(connector.connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_the_conversation_wait_a_request_takes_another_connection() {
    let pool = Pool::builder()
        .conversation_wait(Duration::from_secs(3))
        .build()
        .unwrap();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &key, &connector).await;
    busy.remember("resp_1");
    let started = Instant::now();
    let conn = follow(&pool, &key, &connector, "resp_1").await;
    assert_ne!(conn.id(), busy.id());
    assert!(!conn.reused());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(connector.connects(), 2);
    // Its claim on the busy connection ended with the wait: others may reuse it again.
    assert!(pool.lock().keys[&key].conversations.wanted_is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_moves_on_as_soon_as_its_connection_dies() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &key, &connector).await;
    busy.remember("resp_1");
    let started = Instant::now();
    let (conn, ()) = tokio::join!(follow(&pool, &key, &connector, "resp_1"), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // An answer cut short: the connection is closed, and its responses forgotten.
        drop(busy);
    });
    assert!(!conn.reused());
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!(connector.connects(), 2);
    assert_eq!(conversation::remembered(&pool), 0);
}

#[tokio::test]
async fn a_conversation_s_connection_closed_while_idle_is_found_before_the_write() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut conn = checkout(&pool, &key, &connector).await;
    conn.remember("resp_1");
    conn.release();
    close_server(&connector).await;
    // Followed, then found closed before the write: dropped, its responses forgotten.
    let mut conn = follow(&pool, &key, &connector, "resp_1").await;
    assert!(conn.reused());
    assert!(conn.closed_before_write().is_some());
    drop(conn);
    assert_eq!(conversation::remembered(&pool), 0);
    let conn = follow(&pool, &key, &connector, "resp_1").await;
    assert!(!conn.reused());
    assert_eq!(connector.connects(), 2);
    assert_eq!(pool.connections(), 1);
}

#[tokio::test]
async fn a_connection_a_conversation_waits_for_is_left_to_it() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut busy = checkout(&pool, &key, &connector).await;
    busy.remember("resp_1");
    let busy_id = busy.id();
    let waiter = waiting_follower(&pool, &key, &connector, "resp_1").await;
    busy.release();
    // Returned but claimed: a request that continues nothing opens its own.
    let other = checkout(&pool, &key, &connector).await;
    assert!(!other.reused());
    assert_eq!(waiter.await.unwrap(), busy_id);
    assert_eq!(connector.connects(), 2);
}

#[tokio::test]
async fn each_connection_remembers_its_last_responses_only() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut conn = checkout(&pool, &key, &connector).await;
    for turn in 0..100 {
        conn.remember(&format!("resp_{turn}"));
    }
    conn.remember("resp_99");
    conn.remember("");
    conn.remember(&"x".repeat(conversation::MAX_RESPONSE_ID + 1));
    assert_eq!(conversation::remembered(&pool), Pool::REMEMBERED_RESPONSES);
    let id = conn.id();
    // Busy: a request continuing a forgotten response does not wait for it.
    let other = follow(&pool, &key, &connector, "resp_0").await;
    assert_ne!(other.id(), id);
    drop(other);
    conn.release();
    assert_eq!(follow(&pool, &key, &connector, "resp_92").await.id(), id);
}

#[tokio::test]
async fn the_newest_producer_of_a_response_id_owns_it() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut first = checkout(&pool, &key, &connector).await;
    let mut second = checkout(&pool, &key, &connector).await;
    first.remember("resp_same");
    second.remember("resp_same");
    let second_id = second.id();
    second.release();
    // The former owner leaving does not make the id forgotten.
    drop(first);
    assert_eq!(conversation::remembered(&pool), 1);
    assert_eq!(
        follow(&pool, &key, &connector, "resp_same").await.id(),
        second_id
    );
}

#[tokio::test]
async fn closing_the_pool_forgets_every_conversation() {
    let pool = Pool::new();
    let connector = Connector::new(1).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let mut conn = checkout(&pool, &key, &connector).await;
    conn.remember("resp_1");
    conn.release();
    pool.close().await;
    assert_eq!(conversation::remembered(&pool), 0);
}

mod holds;
mod retire;
mod totals;
