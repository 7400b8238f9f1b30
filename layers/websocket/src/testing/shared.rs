//! The state the loopback server's handlers share with the [`TestUpstream`](super::TestUpstream)
//! handle: the scripts and answers to use, the counters, the captured requests, and the
//! responses the upstream keeps (stored ones for everyone, each connection's own in its
//! [`Memory`]).

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderMap, Uri};
use serde_json::{Value, json};
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
    /// The ids of the responses produced with `store` not `false`, known to every connection
    /// and to the HTTP side.
    pub(super) stored: Mutex<Remembered>,
    /// Whether each answer served gets a response id of its own.
    pub(super) unique_ids: AtomicBool,
    /// The number of answers served with a response id of their own.
    pub(super) renamed: AtomicU64,
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
            stored: Mutex::new(Remembered::new(STORED)),
            unique_ids: AtomicBool::new(false),
            renamed: AtomicU64::new(0),
        }
    }

    /// The answer for the next request: the next queued one, else the current one; with
    /// [unique response ids](super::TestUpstream::set_unique_response_ids), renamed.
    pub(super) fn next_answer(&self) -> Answer {
        let answer = lock(&self.answers)
            .pop_front()
            .unwrap_or_else(|| lock(&self.answer).clone());
        if !self.unique_ids.load(Ordering::SeqCst) {
            return answer;
        }
        let Some(old) = response_id(&answer) else {
            return answer;
        };
        let number = self.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        let (old, new) = (
            json!(old).to_string(),
            json!(format!("resp_kit_{number:04}")).to_string(),
        );
        Answer::raw_events(
            answer
                .messages()
                .iter()
                .map(|message| message.replace(&old, &new)),
        )
    }

    /// Whether the response `id` was stored (produced with `store` not `false`).
    pub(super) fn is_stored(&self, id: &str) -> bool {
        lock(&self.stored).knows(id)
    }

    /// Keeps what a request produced: its answer's response id, stored unless `store: false`,
    /// and in `memory` (the connection's, for the WebSocket side).
    pub(super) fn produced(&self, turn: &Turn, answer: &Answer, memory: Option<&mut Memory>) {
        let Some(id) = response_id(answer) else {
            return;
        };
        if turn.store {
            lock(&self.stored).remember(id.clone());
        }
        if let Some(memory) = memory {
            memory.remember(id);
        }
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

/// How many stored response ids the upstream keeps (the oldest are forgotten first).
const STORED: usize = 1 << 16;

/// How many response ids each WebSocket connection keeps in its memory.
pub(super) const CONNECTION_MEMORY: usize = 64;

/// A bounded set of response ids; the oldest are forgotten first.
pub(super) struct Remembered {
    ids: HashSet<String>,
    order: VecDeque<String>,
    limit: usize,
}

impl Remembered {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            limit,
        }
    }

    pub(super) fn knows(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub(super) fn remember(&mut self, id: String) {
        if self.ids.contains(&id) {
            return;
        }
        if self.order.len() >= self.limit {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        self.ids.insert(id.clone());
        self.order.push_back(id);
    }
}

/// What one WebSocket connection keeps in memory: the ids of the last [`CONNECTION_MEMORY`]
/// responses it produced, whatever their `store`. It disappears with the connection.
pub(super) struct Memory(Remembered);

impl Default for Memory {
    fn default() -> Self {
        Self(Remembered::new(CONNECTION_MEMORY))
    }
}

impl Memory {
    pub(super) fn knows(&self, id: &str) -> bool {
        self.0.knows(id)
    }

    fn remember(&mut self, id: String) {
        self.0.remember(id);
    }
}

/// What a request says about its conversation: the response it continues, and whether what it
/// produces is stored (`store` is `true` when absent, as in the API).
#[derive(Debug)]
pub(super) struct Turn {
    pub(super) previous: Option<String>,
    pub(super) store: bool,
}

impl Turn {
    /// The turn of a request body (JSON or not).
    pub(super) fn of(body: &[u8]) -> Self {
        let value = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        Self {
            previous: value
                .get("previous_response_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            store: value.get("store") != Some(&Value::Bool(false)),
        }
    }
}

/// The id of an answer's response: the `response.id` of its first `response.*` event that
/// carries one.
fn response_id(answer: &Answer) -> Option<String> {
    answer.messages().iter().find_map(|message| {
        crate::responses::conversation::response_id(&crate::Message::text(message.as_str()))
    })
}

/// The message of the API's `previous_response_not_found` error.
fn not_found_message(id: &str) -> String {
    format!("Previous response with id '{id}' not found.")
}

/// The error event the WebSocket mode sends for a `previous_response_id` it cannot find.
pub(super) fn not_found_event(id: &str) -> String {
    json!({
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "message": not_found_message(id),
            "param": "previous_response_id",
        },
    })
    .to_string()
}

/// The body of the HTTP endpoint's 400 answer for a `previous_response_id` it cannot find.
pub(super) fn not_found_body(id: &str) -> String {
    json!({
        "error": {
            "message": not_found_message(id),
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        },
    })
    .to_string()
}
