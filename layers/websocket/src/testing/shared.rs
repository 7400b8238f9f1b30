//! The state the loopback server's handlers share with the [`TestUpstream`](super::TestUpstream)
//! handle: the scripts and answers to use, the counters, and the captured requests.

use std::{
    collections::VecDeque,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderMap, Uri};
use serde_json::Value;
use tokio::sync::watch;
use wsfirst_core::Transport;

use super::{Answer, HttpScript, WsScript};

/// A request the [`TestUpstream`](super::TestUpstream) received, as it received it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CapturedRequest {
    /// The transport it came over.
    pub transport: Transport,
    /// The path and query: of the upgrade request for the WebSocket, of the POST for HTTP.
    pub uri: Uri,
    /// The headers: of the upgrade request for the WebSocket (the same for every request on a
    /// connection), of the POST for HTTP.
    pub headers: HeaderMap,
    /// The body: the WebSocket message's text, or the HTTP request body.
    pub body: Bytes,
    /// The WebSocket connection that carried it (numbered from 1 in order of upgrade), `None`
    /// for HTTP.
    pub connection: Option<u64>,
}

impl CapturedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The state the handlers share with the [`TestUpstream`](super::TestUpstream) handle.
pub(super) struct Shared {
    pub(super) answer: Mutex<Answer>,
    pub(super) answers: Mutex<VecDeque<Answer>>,
    pub(super) ws_default: Mutex<WsScript>,
    pub(super) ws_scripts: Mutex<VecDeque<WsScript>>,
    pub(super) http_default: Mutex<HttpScript>,
    pub(super) http_scripts: Mutex<VecDeque<HttpScript>>,
    pub(super) handshakes: AtomicUsize,
    pub(super) accepted: AtomicUsize,
    pub(super) ws_requests: AtomicUsize,
    pub(super) http_requests: AtomicUsize,
    pub(super) next_connection: AtomicU64,
    pub(super) captured: Mutex<Vec<CapturedRequest>>,
    /// `true` once the upstream shuts down.
    pub(super) shutdown: watch::Sender<bool>,
    /// Bumped by [`TestUpstream::close_ws_connections`](super::TestUpstream::close_ws_connections).
    pub(super) close_ws: watch::Sender<u64>,
    /// The number of open WebSocket connections.
    pub(super) open_ws: watch::Sender<usize>,
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the state).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// The state of a new upstream: the default answer and scripts, nothing counted.
    pub(super) fn new() -> Self {
        Self {
            answer: Mutex::new(Answer::default()),
            answers: Mutex::default(),
            ws_default: Mutex::new(WsScript::Accept),
            ws_scripts: Mutex::default(),
            http_default: Mutex::new(HttpScript::Answer),
            http_scripts: Mutex::default(),
            handshakes: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            ws_requests: AtomicUsize::new(0),
            http_requests: AtomicUsize::new(0),
            next_connection: AtomicU64::new(0),
            captured: Mutex::default(),
            shutdown: watch::Sender::new(false),
            close_ws: watch::Sender::new(0),
            open_ws: watch::Sender::new(0),
        }
    }

    /// The answer for the next request: the next queued one, else the current one.
    pub(super) fn next_answer(&self) -> Answer {
        lock(&self.answers)
            .pop_front()
            .unwrap_or_else(|| lock(&self.answer).clone())
    }

    fn next_ws_script(&self) -> WsScript {
        lock(&self.ws_scripts)
            .pop_front()
            .unwrap_or_else(|| lock(&self.ws_default).clone())
    }

    pub(super) fn next_http_script(&self) -> HttpScript {
        lock(&self.http_scripts)
            .pop_front()
            .unwrap_or_else(|| lock(&self.http_default).clone())
    }

    /// Counts a handshake and picks the script of a new connection.
    pub(super) fn handshake(&self) -> WsScript {
        self.handshakes.fetch_add(1, Ordering::SeqCst);
        self.next_ws_script()
    }

    /// Counts an accepted connection and numbers it.
    pub(super) fn accepted(&self) -> u64 {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.next_connection.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Counts and captures a request.
    pub(super) fn executed(&self, request: CapturedRequest) {
        let counter = match request.transport {
            Transport::WebSocket => &self.ws_requests,
            Transport::Http => &self.http_requests,
        };
        // Capture first, so a test that sees the counter move also sees the request.
        lock(&self.captured).push(request);
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Resolves when the upstream shuts down.
    pub(super) async fn stopped(&self) {
        let mut shutdown = self.shutdown.subscribe();
        // An error means the sender is gone, which only happens once the upstream is gone too.
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    }
}
