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
    pool.checkout(key, false, TIMEOUT, || connector.connect())
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

#[tokio::test]
async fn dead_idle_connection_is_replaced_silently() {
    let pool = Pool::new();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    checkout(&pool, &key, &connector).await.release();
    // The upstream closes the idle connection.
    let mut server = connector.servers.lock().unwrap().remove(0);
    server.close(None).await.unwrap();
    drop(server);
    tokio::task::yield_now().await;
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
        pool.checkout(&key, false, TIMEOUT, move || {
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
        pool.checkout(&key, false, TIMEOUT, move || {
            let connect = connector.connect();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                connect.await
            }
        })
    });
    let conns: Vec<_> = futures_util::future::join_all(attempts).await;
    assert!(conns.iter().all(Result::is_ok));
    assert_eq!(connector.connects(), 4);
    assert_eq!(pool.connections(), 4);
}

#[tokio::test(start_paused = true)]
async fn full_key_waits_for_a_release_then_gives_up() {
    let pool = Pool::builder().max_connections_per_key(1).build().unwrap();
    let connector = Connector::new(2).await;
    let key = PoolKey::for_test("ws://a/v1", None);
    let held = checkout(&pool, &key, &connector).await;
    let failure = pool
        .checkout(&key, false, TIMEOUT, || connector.connect())
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
    assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
    let failure = pool
        .checkout(&key, false, TIMEOUT, || connector.connect())
        .await
        .unwrap_err();
    assert!(failure.to_string().contains("pool is closed"), "{failure}");
    assert_eq!(pool.connections(), 0);
}
