//! One pooled connection's life outside the pool's books: its birth time and the responses it
//! produced, what is waiting on it before a request is written, the graceful close, and the gauge of connections.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::{FutureExt, StreamExt};
use http::HeaderMap;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{connector::WsStream, read::Incoming};

/// How long a graceful close may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// An idle connection and since when it waits.
pub(super) struct Idle {
    pub(super) conn: Conn,
    pub(super) since: Instant,
}

/// A connection, its birth time, its number in the pool, and the responses it produced (the
/// last [`Pool::REMEMBERED_RESPONSES`](super::Pool::REMEMBERED_RESPONSES), oldest first).
pub(super) struct Conn {
    pub(super) stream: WsStream,
    /// The headers of its handshake's answer that reach the client with each response it
    /// serves (see [`Opened`]).
    pub(super) answer: HeaderMap,
    pub(super) created: Instant,
    pub(super) id: u64,
    pub(super) responses: VecDeque<Arc<str>>,
    /// Whether its latest response lives only in its memory (a `store: false` response, see
    /// [`Codec::holds`](crate::Codec::holds)): while idle, the connection is held for the
    /// conversation's next turn, up to the hold time.
    pub(super) hold: bool,
    /// Whether its latest response continued an earlier one (a conversation of two turns or
    /// more): under pressure, such holds are given up after those of first turns.
    pub(super) chain: bool,
}

/// A connection just opened, as the pool's `connect` function gives it: the socket, and the
/// headers of the handshake's answer that the route's header policy passes on to the client
/// ([`HeaderPolicy::answer_for`](wsfirst_core::headers::HeaderPolicy::answer_for)), kept with
/// the connection for every response it serves. A bare socket has none.
pub(crate) struct Opened {
    pub(crate) stream: WsStream,
    pub(crate) answer: HeaderMap,
}

impl From<WsStream> for Opened {
    fn from(stream: WsStream) -> Self {
        Self {
            stream,
            answer: HeaderMap::new(),
        }
    }
}

impl Conn {
    /// A connection opened now, numbered `id`.
    pub(super) fn new(opened: Opened, id: u64) -> Self {
        let Opened { stream, answer } = opened;
        Self {
            stream,
            answer,
            created: Instant::now(),
            id,
            responses: VecDeque::new(),
            hold: false,
            chain: false,
        }
    }
}

/// Why a held connection was given to a request of another conversation, or closed, before its
/// hold ended: the `reason` label of `wsfirst_ws_pool_holds_released_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Release {
    /// Its key had its maximum of connections, none idle and free: the request took it.
    Key,
    /// The pool had its maximum of connections: it was closed to make room.
    Pool,
    /// The pool had its maximum of idle connections: it was closed.
    Idle,
}

/// Counts a hold given up under pressure, and logs it at debug level.
pub(super) fn released(reason: Release) {
    let reason = match reason {
        Release::Key => "key_full",
        Release::Pool => "pool_full",
        Release::Idle => "idle_full",
    };
    metrics::counter!("wsfirst_ws_pool_holds_released_total", "reason" => reason).increment(1);
    tracing::debug!(
        reason,
        "a conversation's websocket connection was given up before its hold ended"
    );
}

/// Moves the `wsfirst_ws_pool_connections` gauge of `state` by `delta`.
pub(super) fn gauge(state: &'static str, delta: f64) {
    metrics::gauge!("wsfirst_ws_pool_connections", "state" => state).increment(delta);
}

/// Closes a connection with a close frame, in the background when a runtime is available.
pub(super) fn close_later(conn: Conn) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(close_gracefully(conn));
    }
}

pub(super) async fn close_gracefully(mut conn: Conn) {
    let _ = tokio::time::timeout(CLOSE_GRACE, conn.stream.close(None)).await;
}

/// What is already waiting on a connection, read without waiting: `None` when nothing but
/// pings and pongs (it looks open), else the first other item: a close, an error, the end of
/// the stream (`Some(None)`), or a message nobody asked for.
pub(super) fn waiting(stream: &mut WsStream) -> Option<Incoming> {
    loop {
        match stream.next().now_or_never() {
            None => return None,
            Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Some(other) => return Some(other),
        }
    }
}
