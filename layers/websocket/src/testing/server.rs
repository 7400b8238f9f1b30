//! The loopback server: one port, WebSocket upgrades and HTTP POSTs on any path.

use std::{fmt, io, net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use axum::{Router, extract::State, response::Response, serve::ListenerExt};
use http::{Method, StatusCode, header};
use tokio::{net::TcpListener, task::JoinHandle};

use super::{
    Answer, CapturedRequest, ConnectionMemory, HttpScript, WsScript, http_side,
    shared::{Shared, lock},
    ws_side,
};

/// How long [`TestUpstream::shutdown`] waits for connections to close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A scriptable upstream on `127.0.0.1` that speaks the Responses API over a WebSocket and over
/// HTTP (SSE or JSON) on one ephemeral port, any path; see the [module docs](super).
///
/// All methods take `&self`, so share it with `Arc` if tasks need it. Dropping it stops the
/// server (without waiting); [`TestUpstream::shutdown`] stops it and waits.
pub struct TestUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl TestUpstream {
    /// Starts an upstream on `127.0.0.1` with an ephemeral port, answering
    /// [`Answer::default`] (`"hello world"`) with the default scripts ([`WsScript::Accept`],
    /// [`HttpScript::Answer`]).
    ///
    /// # Panics
    ///
    /// If it cannot bind a loopback port (use [`TestUpstream::try_start`] to get the error).
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(upstream) => upstream,
            Err(error) => panic!("test upstream could not bind 127.0.0.1:0: {error}"),
        }
    }

    /// Starts an upstream like [`TestUpstream::start`], returning the error if it cannot bind.
    pub async fn try_start() -> io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let signal = {
            let shared = Arc::clone(&shared);
            async move { shared.stopped().await }
        };
        let task = tokio::spawn(async move {
            // No Nagle delay: with paused time, a small write held back by the kernel lets the
            // clock run ahead of the bytes.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
        });
        Ok(TestUpstream {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address the upstream listens on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>/v1/responses` (any path works).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/responses", self.addr)
    }

    /// `http://127.0.0.1:<port>/v1/responses` (any path works).
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/responses", self.addr)
    }

    /// Sets the answer both transports serve from now on (default [`Answer::default`]).
    pub fn set_answer(&self, answer: Answer) {
        *lock(&self.shared.answer) = answer;
    }

    /// Queues an answer for the next request (over either transport) that gets an answer;
    /// queued answers are used in order before the one set with [`TestUpstream::set_answer`].
    pub fn push_answer(&self, answer: Answer) {
        lock(&self.shared.answers).push_back(answer);
    }

    /// Gives each answer served (over either transport) a response id of its own, as the API
    /// does (default off, so that every answer is byte for byte the one set): every occurrence
    /// of the answer's response id (the `response.id` of its first `response.*` event that
    /// carries one, [`Answer::RESPONSE_ID`] for [`Answer::text`]) is replaced by
    /// `resp_kit_0001`, `resp_kit_0002`, ... in the order answers are served. Conversations
    /// (`previous_response_id`) need it, unless each answer is given its own id some other way;
    /// see the [module docs](super).
    pub fn set_unique_response_ids(&self, unique: bool) {
        self.shared.unique_ids.store(unique, Ordering::SeqCst);
    }

    /// Sets the script of WebSocket connections for which no script is queued (default
    /// [`WsScript::Accept`]).
    pub fn set_default_ws_script(&self, script: WsScript) {
        *lock(&self.shared.ws_default) = script;
    }

    /// Queues the script of the next WebSocket connection; queued scripts are used in order,
    /// one per upgrade request, before the default.
    pub fn push_ws_script(&self, script: WsScript) {
        lock(&self.shared.ws_scripts).push_back(script);
    }

    /// Sets the script of HTTP requests for which no script is queued (default
    /// [`HttpScript::Answer`]).
    pub fn set_default_http_script(&self, script: HttpScript) {
        *lock(&self.shared.http_default) = script;
    }

    /// Queues the script of the next HTTP request; queued scripts are used in order before the
    /// default.
    pub fn push_http_script(&self, script: HttpScript) {
        lock(&self.shared.http_scripts).push_back(script);
    }

    /// Makes every HTTP request (for which no script is queued) fail with `status` and a small
    /// JSON error body: shorthand for `set_default_http_script(HttpScript::status(status))`.
    pub fn set_http_status(&self, status: StatusCode) {
        self.set_default_http_script(HttpScript::status(status));
    }

    /// The number of WebSocket upgrade requests received, refused and hung ones included.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// The number of WebSocket upgrades accepted (connections opened).
    pub fn ws_connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The number of WebSocket connections open right now.
    pub fn open_ws_connections(&self) -> usize {
        *self.shared.open_ws.borrow()
    }

    /// The number of `response.create` requests received over the WebSocket (each counts as
    /// executed, whatever its connection's script then does).
    pub fn ws_requests(&self) -> usize {
        self.shared.ws_requests.load(Ordering::SeqCst)
    }

    /// The number of HTTP POST requests received (each counts as executed, whatever its script
    /// then does).
    pub fn http_requests(&self) -> usize {
        self.shared.http_requests.load(Ordering::SeqCst)
    }

    /// The requests received so far over either transport, in order of arrival: the most
    /// recent ones, at most the [capture limit](TestUpstream::set_capture_limit) (16,384 by
    /// default). The counters ([`ws_requests`](TestUpstream::ws_requests),
    /// [`http_requests`](TestUpstream::http_requests)) count them all.
    pub fn captured(&self) -> Vec<CapturedRequest> {
        lock(&self.shared.captured).iter().cloned().collect()
    }

    /// How many of the most recent requests [`captured`](TestUpstream::captured) keeps
    /// (default 16,384; `0`: none, the counters only). An upstream that serves for long (a
    /// gateway's offline mode) keeps its memory bounded this way.
    pub fn set_capture_limit(&self, limit: usize) {
        self.shared.capture_limit.store(limit, Ordering::SeqCst);
        let mut captured = lock(&self.shared.captured);
        while captured.len() > limit {
            captured.pop_front();
        }
    }

    /// Sets what each WebSocket connection opened from now on keeps of the responses it
    /// produced (default [`ConnectionMemory::LatestPerLane`], as the API); see the
    /// [module docs](super).
    pub fn set_connection_memory(&self, memory: ConnectionMemory) {
        *lock(&self.shared.memory) = memory;
    }

    /// Adds these headers to every answer from now on: each HTTP response and each WebSocket
    /// handshake's answer (the `101`, or the refusal), as an upstream that hands out a routing
    /// token such as Codex's `x-codex-turn-state` does.
    pub fn set_response_headers(&self, headers: http::HeaderMap) {
        *lock(&self.shared.response_headers) = headers;
    }

    /// The number of `response.steer` messages received over the WebSocket (not counted in
    /// [`ws_requests`](TestUpstream::ws_requests)).
    pub fn steers(&self) -> usize {
        self.shared.steers.load(Ordering::SeqCst)
    }

    /// Closes every open WebSocket connection with close code `1001` (going away), as an
    /// upstream does when it restarts; new connections are accepted as usual.
    pub fn close_ws_connections(&self) {
        self.shared
            .close_ws
            .send_modify(|generation| *generation += 1);
    }

    /// Stops accepting, closes every connection (WebSocket ones with close code `1001`, hung
    /// upgrades with `503`) and waits (up to a few seconds) until they are closed.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let mut open = self.shared.open_ws.subscribe();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, open.wait_for(|open| *open == 0)).await;
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl fmt::Debug for TestUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestUpstream")
            .field("addr", &self.addr)
            .field("handshakes", &self.handshakes())
            .field("ws_connections", &self.ws_connections())
            .field("ws_requests", &self.ws_requests())
            .field("http_requests", &self.http_requests())
            .finish_non_exhaustive()
    }
}

/// Every request: a WebSocket upgrade (a `GET` with `Upgrade: websocket`), else HTTP.
async fn handle(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let is_upgrade = request.method() == Method::GET
        && request
            .headers()
            .get(header::UPGRADE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    let extra = lock(&shared.response_headers).clone();
    let mut response = if is_upgrade {
        ws_side::upgrade(shared, request).await
    } else {
        http_side::answer(shared, request).await
    };
    for (name, value) in &extra {
        response.headers_mut().append(name, value.clone());
    }
    response
}
