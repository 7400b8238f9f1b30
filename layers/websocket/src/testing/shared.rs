//! The state the loopback server's handlers share with the [`TestUpstream`](super::TestUpstream)
//! handle: the scripts and answers to use, the counters, the recent captured requests, and the
//! responses the upstream keeps (stored ones for everyone, each connection's own in its
//! [`Memory`]: the latest response of each lane, as the API keeps them).

use std::{
    collections::{HashMap, HashSet, VecDeque},
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
    /// The most recent requests, at most `capture_limit` of them.
    pub(super) captured: Mutex<VecDeque<CapturedRequest>>,
    pub(super) capture_limit: AtomicUsize,
    /// What a new WebSocket connection keeps of the responses it produces.
    pub(super) memory: Mutex<ConnectionMemory>,
    /// `response.steer` messages received over the WebSocket.
    pub(super) steers: AtomicUsize,
    /// The number of warm-ups (`generate: false`) and steering ids handed out.
    pub(super) kit_ids: AtomicU64,
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
    /// Headers added to every answer: HTTP responses and WebSocket handshake answers.
    pub(super) response_headers: Mutex<http::HeaderMap>,
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
            capture_limit: AtomicUsize::new(DEFAULT_CAPTURE_LIMIT),
            memory: Mutex::new(ConnectionMemory::default()),
            steers: AtomicUsize::new(0),
            kit_ids: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
            close_ws: watch::Sender::new(0),
            open_ws: watch::Sender::new(0),
            stored: Mutex::new(Remembered::new(STORED)),
            unique_ids: AtomicBool::new(false),
            renamed: AtomicU64::new(0),
            response_headers: Mutex::default(),
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

    /// Keeps what a request produced: its answer's response id, stored unless `store: false`;
    /// returns the id (the WebSocket side also keeps it in its connection's memory).
    pub(super) fn produced(&self, turn: &Turn, answer: &Answer) -> Option<String> {
        let id = response_id(answer)?;
        if turn.store {
            lock(&self.stored).remember(id.clone());
        }
        Some(id)
    }

    /// The next number of a kit-made id (warm-up responses, steering submissions).
    pub(super) fn next_kit_id(&self) -> u64 {
        self.kit_ids.fetch_add(1, Ordering::SeqCst) + 1
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
        let limit = self.capture_limit.load(Ordering::SeqCst);
        if limit > 0 {
            let mut captured = lock(&self.captured);
            while captured.len() >= limit {
                captured.pop_front();
            }
            captured.push_back(request);
        }
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

/// How many requests [`TestUpstream::captured`](super::TestUpstream::captured) keeps by
/// default, the most recent ones: more than any test reads (the chaos test's ten thousand and
/// its replays), and a bound for an upstream that runs for long (a gateway's offline mode
/// embeds it: keeping every request grew it to 958 MB over 200,000 requests).
pub(super) const DEFAULT_CAPTURE_LIMIT: usize = 16_384;

/// The most lanes one WebSocket connection serves; a `response.create` that would open another
/// gets an error event (the API bounds lanes per connection too; its limit is not documented).
pub(super) const MAX_LANES: usize = 256;

/// What each WebSocket connection of the [`TestUpstream`](super::TestUpstream) keeps of the
/// responses it produced (set with
/// [`TestUpstream::set_connection_memory`](super::TestUpstream::set_connection_memory); it
/// applies to connections opened afterwards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionMemory {
    /// The latest response of each lane (`stream_id`; requests without one share the default
    /// lane), as the API keeps them (the default): a request on any lane of the connection can
    /// continue any lane's latest response, and nothing older. ("The connection keeps
    /// previous-response state in memory, the most recent response only", per lane: OpenAI's
    /// WebSocket-mode guide, <https://developers.openai.com/api/docs/guides/websocket-mode>.)
    #[default]
    LatestPerLane,
    /// The last `n` responses of the connection, whatever their lane: the kit's behaviour
    /// before it followed the API (64 responses), for tests that need a forgiving upstream.
    Recent(usize),
}

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

/// A lane of a connection: its `stream_id`, `None` for the default lane.
pub(super) type Lane = Option<String>;

/// What one WebSocket connection keeps in memory (see [`ConnectionMemory`]). It disappears
/// with the connection.
pub(super) enum Memory {
    /// The latest response id of each lane.
    Lanes(HashMap<Lane, String>),
    /// The last responses, whatever their lane.
    Recent(Remembered),
}

impl Memory {
    pub(super) fn new(kind: ConnectionMemory) -> Self {
        match kind {
            ConnectionMemory::LatestPerLane => Memory::Lanes(HashMap::new()),
            ConnectionMemory::Recent(n) => Memory::Recent(Remembered::new(n.max(1))),
        }
    }

    pub(super) fn knows(&self, id: &str) -> bool {
        match self {
            Memory::Lanes(latest) => latest.values().any(|known| known == id),
            Memory::Recent(recent) => recent.knows(id),
        }
    }

    /// Whether `lane` has a latest response here (always `false` for [`Memory::Recent`]).
    pub(super) fn has_lane(&self, lane: &Lane) -> bool {
        matches!(self, Memory::Lanes(latest) if latest.contains_key(lane))
    }

    /// How many lanes have a latest response here.
    pub(super) fn lanes(&self) -> usize {
        match self {
            Memory::Lanes(latest) => latest.len(),
            Memory::Recent(_) => 0,
        }
    }

    /// The lane whose latest response is `id`, if any.
    pub(super) fn lane_of(&self, id: &str) -> Option<Lane> {
        match self {
            Memory::Lanes(latest) => latest
                .iter()
                .find(|(_, known)| known.as_str() == id)
                .map(|(lane, _)| lane.clone()),
            Memory::Recent(_) => None,
        }
    }

    /// Keeps `id` as the latest response of `lane`.
    pub(super) fn remember(&mut self, lane: &Lane, id: String) {
        match self {
            Memory::Lanes(latest) => {
                latest.insert(lane.clone(), id);
            }
            Memory::Recent(recent) => recent.remember(id),
        }
    }
}

/// What a request says about its conversation: the response it continues, whether what it
/// produces is stored (`store` is `true` when absent, as in the API), its lane, whether it
/// generates output, and its model.
#[derive(Debug)]
pub(super) struct Turn {
    pub(super) previous: Option<String>,
    pub(super) store: bool,
    /// The `stream_id`: `Ok(None)` when absent or `null`, `Err` when not a valid lane name.
    pub(super) lane: Result<Lane, ()>,
    /// `false` for `"generate": false` (a warm-up: state prepared, no output).
    pub(super) generate: bool,
    pub(super) model: Option<String>,
}

impl Turn {
    /// The turn of a request body (JSON or not).
    pub(super) fn of(body: &[u8]) -> Self {
        let value = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        let lane = match value.get("stream_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(lane)) if crate::responses::lanes::is_stream_id(lane) => {
                Ok(Some(lane.clone()))
            }
            Some(_) => Err(()),
        };
        Self {
            previous: value
                .get("previous_response_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            store: value.get("store") != Some(&Value::Bool(false)),
            lane,
            generate: value.get("generate") != Some(&Value::Bool(false)),
            model: value
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// The id of an answer's response: the `response.id` of its first `response.*` event that
/// carries one.
pub(super) fn response_id(answer: &Answer) -> Option<String> {
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
