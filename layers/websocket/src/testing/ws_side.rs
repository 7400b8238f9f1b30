//! The WebSocket side of the test upstream: one connection's lanes (`stream_id`), each served
//! in order (FIFO), all in parallel, as the API serves them (OpenAI's WebSocket-mode guide,
//! <https://developers.openai.com/api/docs/guides/websocket-mode>: "Requests with the same
//! `stream_id` are processed FIFO, and events echo it"); steering; warm-ups.
//!
//! The connection task reads the client's messages and owns the lanes' books; what it sends
//! goes through jobs (one per answer, plus one per message of its own), polled by the same
//! task, which share the socket's sending half.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    extract::{
        FromRequestParts,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{
    SinkExt, StreamExt,
    stream::{FuturesUnordered, SplitSink, SplitStream},
};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use wsfirst_core::Transport;

use super::{
    Answer, CapturedRequest, WsScript, lanes,
    shared::{Lane, MAX_LANES, Memory, Shared, Turn, lock, not_found_event, response_id},
};

/// The close code that means "no close frame": the connection is dropped instead.
const ABNORMAL: u16 = 1006;
/// How long a closing connection waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Messages up to this size are accepted (well above any default client limit).
const MAX_MESSAGE: usize = 256 << 20;

/// Handles an upgrade request according to the next connection script.
pub(super) async fn upgrade(shared: Arc<Shared>, request: axum::extract::Request) -> Response {
    let script = shared.handshake();
    match script {
        WsScript::Refuse { status, body } => return (status, body).into_response(),
        WsScript::Hang => {
            shared.stopped().await;
            return (StatusCode::SERVICE_UNAVAILABLE, "test upstream shut down").into_response();
        }
        _ => {}
    }
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let uri = parts.uri;
    let headers = parts.headers;
    upgrade
        // As the client side does ([`crate::READ_BUFFER_SIZE`]): tungstenite zero-fills the
        // whole read buffer before every read, which would weigh on every figure measured
        // against the kit.
        .read_buffer_size(crate::connector::READ_BUFFER_SIZE)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let connection = shared.accepted();
            shared.open_ws.send_modify(|open| *open += 1);
            let memory = Memory::new(*lock(&shared.memory));
            let (sink, stream) = socket.split();
            let mut conn = Connection {
                sink: Arc::new(tokio::sync::Mutex::new(sink)),
                stream,
                shared: Arc::clone(&shared),
                script,
                id: connection,
                uri,
                headers,
                memory,
                lanes: HashMap::new(),
                requests: 0,
            };
            conn.serve().await;
            drop(conn);
            shared.open_ws.send_modify(|open| *open -= 1);
        })
}

/// What to do after a request was answered.
enum Next {
    /// Wait for the next request.
    Continue,
    /// Close the connection with this code.
    Close(u16),
    /// Drop the connection (the client went away, or the upstream shuts down).
    Stop,
}

/// The sending half of the socket, shared by the jobs.
type Sink = Arc<tokio::sync::Mutex<SplitSink<WebSocket, Message>>>;

/// Something the connection sends: an answer on a lane, or a message of its own.
type Job = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// What a job tells the connection when it ends.
struct Finished {
    /// The lane it served; `None` for a message of the connection's own.
    lane: Option<Lane>,
    /// The request and its answer, when the answer was sent in full.
    produced: Option<(Turn, Answer)>,
    next: Next,
}

/// A request waiting on its lane.
enum Work {
    /// A `response.create`, the `number`-th request of the connection.
    Create { turn: Turn, number: usize },
    /// The automatic successor of a steered response.
    Successor { previous: String, store: bool },
}

/// One lane's books: its queue, and the response it runs.
#[derive(Default)]
struct LaneState {
    queue: VecDeque<Work>,
    /// While busy: the running response's id (when its answer has one) and its `store`.
    running: Option<(Option<String>, bool)>,
}

/// One accepted WebSocket connection.
struct Connection {
    sink: Sink,
    stream: SplitStream<WebSocket>,
    shared: Arc<Shared>,
    script: WsScript,
    id: u64,
    uri: Uri,
    headers: HeaderMap,
    /// The responses this connection produced, as the API keeps them in its memory.
    memory: Memory,
    /// The lanes with work, queued or running.
    lanes: HashMap<Lane, LaneState>,
    /// How many requests this connection received.
    requests: usize,
}

impl Connection {
    async fn serve(&mut self) {
        let mut close_ws = self.shared.close_ws.subscribe();
        let mut jobs: FuturesUnordered<Job> = FuturesUnordered::new();
        let shared = Arc::clone(&self.shared);
        let close = loop {
            let message = tokio::select! {
                message = self.stream.next() => message,
                Some(finished) = jobs.next() => {
                    match self.finished(finished, &mut jobs) {
                        Next::Continue => continue,
                        Next::Close(code) => break Some((code, true)),
                        Next::Stop => break None,
                    }
                }
                () = shared.stopped() => break Some((1001, false)),
                _ = close_ws.changed() => break Some((1001, false)),
            };
            let body = match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                Some(Ok(Message::Text(text))) => Bytes::copy_from_slice(text.as_str().as_bytes()),
                Some(Ok(Message::Binary(data))) if self.script == WsScript::Raw => data,
                Some(Ok(_)) => continue,
            };
            if let Some(job) = self.received(body) {
                jobs.push(job);
            }
            while let Some(job) = self.start_idle_lanes() {
                jobs.push(job);
            }
        };
        // The jobs hold the sending half at times: they go first.
        drop(jobs);
        if let Some((code, wait)) = close {
            self.close(code, wait).await;
        }
    }

    /// Takes a client message: queues a request on its lane, or answers it at once (a job
    /// of the connection's own), or ignores it.
    fn received(&mut self, body: Bytes) -> Option<Job> {
        if self.script == WsScript::Raw {
            if self.requests > 0 {
                return None;
            }
            return self.create(body);
        }
        let kind = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| Some((value.get("type")?.as_str()?.to_owned(), value)));
        match kind {
            Some((kind, _)) if kind == "response.create" => self.create(body),
            Some((kind, steer)) if kind == "response.steer" => Some(self.steer(&steer)),
            // An acknowledgement the client may send after each response (Codex, behind a
            // flag): nothing to answer.
            Some((kind, _)) if kind == "response.processed" => None,
            _ => Some(self.own(error_event(
                "invalid_request",
                "expected a JSON message with \"type\": \"response.create\"",
            ))),
        }
    }

    /// Counts and captures a `response.create`, and queues it on its lane.
    fn create(&mut self, body: Bytes) -> Option<Job> {
        let turn = Turn::of(&body);
        self.requests += 1;
        self.shared.executed(CapturedRequest {
            transport: Transport::WebSocket,
            uri: self.uri.clone(),
            headers: self.headers.clone(),
            body,
            connection: Some(self.id),
        });
        let lane = match &turn.lane {
            Ok(lane) => lane.clone(),
            Err(()) => {
                return Some(self.own(lanes::invalid_request_event(
                    "invalid_value",
                    "stream_id must be 1 to 256 ASCII letters, digits, underscores, hyphens or periods",
                    "stream_id",
                    &None,
                )));
            }
        };
        let known = self.lanes.contains_key(&lane) || self.memory.has_lane(&lane);
        if !known && self.lanes.len() + self.memory.lanes() >= MAX_LANES {
            let message = format!("a connection serves at most {MAX_LANES} lanes (stream_id)");
            return Some(self.own(lanes::invalid_request_event(
                "too_many_streams",
                &message,
                "stream_id",
                &lane,
            )));
        }
        let number = self.requests;
        self.lanes
            .entry(lane)
            .or_default()
            .queue
            .push_back(Work::Create { turn, number });
        None
    }

    /// Answers a `response.steer`: accepted when the target response runs on this connection
    /// (its successor then runs on the target's lane when it ends), else failed at once with
    /// the input (the SDK's `response.steer.*` events).
    fn steer(&mut self, steer: &Value) -> Job {
        self.shared.steers.fetch_add(1, Ordering::SeqCst);
        let target = steer
            .get("previous_response_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let running = self
            .lanes
            .iter_mut()
            .find(|(_, state)| matches!(&state.running, Some((Some(id), _)) if *id == target));
        if let Some((lane, state)) = running {
            let store = state.running.as_ref().is_none_or(|(_, store)| *store);
            state.queue.push_front(Work::Successor {
                previous: target.clone(),
                store,
            });
            let id = format!("steer_kit_{:04}", self.shared.next_kit_id());
            let event = lanes::steer_accepted(&id, &target, lane);
            return self.own(event);
        }
        let event = match self.memory.lane_of(&target) {
            Some(lane) => lanes::steer_failed(
                "response_already_completed",
                "the response completed and no longer accepts steering input",
                steer,
                &lane,
            ),
            None => lanes::steer_failed(
                "response_not_found",
                "the target response is not available on this connection",
                steer,
                &None,
            ),
        };
        self.own(event)
    }

    /// Starts the next request of an idle lane with work, if there is one.
    fn start_idle_lanes(&mut self) -> Option<Job> {
        let lane = self
            .lanes
            .iter()
            .find(|(_, state)| state.running.is_none() && !state.queue.is_empty())
            .map(|(lane, _)| lane.clone())?;
        self.start(lane)
    }

    /// Starts the next request of `lane` (idle); forgets the lane when it has none.
    fn start(&mut self, lane: Lane) -> Option<Job> {
        let state = self.lanes.get_mut(&lane)?;
        let Some(work) = state.queue.pop_front() else {
            self.lanes.remove(&lane);
            return None;
        };
        let (turn, number) = match work {
            Work::Create { turn, number } => (turn, number),
            Work::Successor { previous, store } => {
                let turn = Turn {
                    previous: Some(previous),
                    store,
                    lane: Ok(lane.clone()),
                    generate: true,
                    model: None,
                };
                (turn, 0)
            }
        };
        // A response this connection does not keep, and nobody stored, is not found.
        let missing = turn
            .previous
            .as_deref()
            .filter(|id| !self.memory.knows(id) && !self.shared.is_stored(id));
        if let (Some(previous), false) = (missing, self.script == WsScript::Raw) {
            let event = lanes::with_lane(&not_found_event(previous), &lane);
            state.running = Some((None, turn.store));
            let sink = Arc::clone(&self.sink);
            return Some(Box::pin(async move {
                let next = send(&sink, event).await;
                Finished {
                    lane: Some(lane),
                    produced: None,
                    next,
                }
            }));
        }
        let answer = if turn.generate {
            self.shared.next_answer()
        } else {
            let id = format!("resp_kit_warmup_{:04}", self.shared.next_kit_id());
            lanes::warm_up(&id, turn.model.as_deref())
        };
        state.running = Some((response_id(&answer), turn.store));
        let job = Answering {
            sink: Arc::clone(&self.sink),
            script: self.script.clone(),
            lane: lane.clone(),
            number,
        };
        Some(Box::pin(async move {
            let (complete, next) = job.answer(&answer).await;
            Finished {
                lane: Some(job.lane),
                produced: complete.then_some((turn, answer)),
                next,
            }
        }))
    }

    /// Books what a job did, and starts its lane's next request.
    fn finished(&mut self, finished: Finished, jobs: &mut FuturesUnordered<Job>) -> Next {
        let Finished {
            lane,
            produced,
            next,
        } = finished;
        let Some(lane) = lane else {
            return match next {
                Next::Continue => Next::Continue,
                other => other,
            };
        };
        if let Some((turn, answer)) = produced {
            if let Some(id) = self.shared.produced(&turn, &answer) {
                self.memory.remember(&lane, id);
            }
        }
        if let Some(state) = self.lanes.get_mut(&lane) {
            state.running = None;
        }
        if !matches!(next, Next::Continue) {
            return next;
        }
        if let Some(job) = self.start(lane) {
            jobs.push(job);
        }
        Next::Continue
    }

    /// A job that sends one message of the connection's own.
    fn own(&self, text: String) -> Job {
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            let next = send(&sink, text).await;
            Finished {
                lane: None,
                produced: None,
                next,
            }
        })
    }

    /// Closes with `code` and, when `wait`, waits (briefly) for the client's close reply; code
    /// 1006 drops the connection without a close frame.
    async fn close(&mut self, code: u16, wait: bool) {
        if code == ABNORMAL {
            return;
        }
        let frame = CloseFrame {
            code,
            reason: "".into(),
        };
        let sent = self
            .sink
            .lock()
            .await
            .send(Message::Close(Some(frame)))
            .await;
        if sent.is_err() || !wait {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

/// Sends one text message.
async fn send(sink: &Sink, text: String) -> Next {
    match sink.lock().await.send(Message::text(text)).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Stop,
    }
}

/// One answer being sent on a lane, according to the connection's script.
struct Answering {
    sink: Sink,
    script: WsScript,
    lane: Lane,
    /// Which request of the connection it answers (0 for a steered successor).
    number: usize,
}

impl Answering {
    /// Answers one request; says whether the answer was sent in full, and what comes next.
    async fn answer(&self, answer: &Answer) -> (bool, Next) {
        let all = answer.len();
        match self.script.clone() {
            WsScript::Accept => self.send_events(answer, all, None).await,
            WsScript::SlowEvents { delay } => self.send_events(answer, all, Some(delay)).await,
            WsScript::CloseBeforeFirstEvent { code } => (false, Next::Close(code)),
            WsScript::CloseOnRequest { request, code } if request == self.number => {
                (false, Next::Close(code))
            }
            WsScript::CloseOnRequest { .. } => self.send_events(answer, all, None).await,
            WsScript::CloseAfterEvents { events, code } => {
                match self.send_events(answer, events, None).await {
                    (complete, Next::Continue) => (complete, Next::Close(code)),
                    other => other,
                }
            }
            WsScript::ErrorEvent {
                code,
                message,
                after_events,
            } => match self.send_events(answer, after_events, None).await {
                (complete, Next::Continue) => {
                    let event = lanes::with_lane(&error_event(&code, &message), &self.lane);
                    (complete, send(&self.sink, event).await)
                }
                other => other,
            },
            WsScript::Stall { after_events } => {
                if let (_, Next::Continue) = self.send_events(answer, after_events, None).await {
                    // Silent until the client goes away (the connection then drops this job);
                    // whatever it sends meanwhile waits on its lane.
                    std::future::pending::<()>().await;
                }
                (false, Next::Stop)
            }
            WsScript::Raw => match self.send_events(answer, all, None).await {
                (complete, Next::Continue) => (complete, Next::Close(1000)),
                other => other,
            },
            // Handled before the upgrade.
            WsScript::Refuse { .. } | WsScript::Hang => (false, Next::Stop),
        }
    }

    /// Sends the first `count` events of the answer, each with the lane, waiting `delay`
    /// before each; says whether that was the whole answer.
    async fn send_events(
        &self,
        answer: &Answer,
        count: usize,
        delay: Option<Duration>,
    ) -> (bool, Next) {
        for message in answer.messages().iter().take(count) {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if let Next::Stop = send(&self.sink, lanes::with_lane(message, &self.lane)).await {
                return (false, Next::Stop);
            }
        }
        (count >= answer.len(), Next::Continue)
    }
}

/// `{"type":"error","error":{"code":<code>,"message":<message>}}`.
pub(super) fn error_event(code: &str, message: &str) -> String {
    json!({"type": "error", "error": {"code": code, "message": message}}).to_string()
}
