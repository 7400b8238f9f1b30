//! One client WebSocket connection: its messages served through the route's
//! [`RouteService`], each lane's responses one at a time in order, lanes in parallel
//! ([`Lanes`]), and the connection's limits (idle time, keep-alive, lifetime, message size,
//! slow reader, shutdown).
//!
//! Three tasks share a connection: the reader (client frames to a bounded queue of requests),
//! the [writer](super::outbox) (the outbox to the client), and the session loop here, which
//! puts the requests on their lanes and polls the running responses.

use std::{future::Future, pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream::FuturesUnordered};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use serde_json::json;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep_until},
};
use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::coding::CloseCode};
use wsfirst_core::{Route, WebSocketOnly, headers};
use wsfirst_websocket::responses::websocket_only::WARM_UP_FIELD;

use super::{
    ClientWsConfig,
    convert::{Create, Incoming, Lane, error_event, read_message, steer_failed, with_lane},
    inbox::Inbox,
    lanes::{Lanes, Running},
    metrics::{self, CloseCause},
    outbox::{CLOSE_TIMEOUT, Outbox, Overflow},
    pump::{Job, pump},
};
use crate::RouteService;

/// The message of the lifetime cap's error event, as OpenAI's API words it.
pub(crate) const LIFETIME_MESSAGE: &str = "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue.";

/// What a session needs besides its socket.
#[derive(Debug)]
pub(crate) struct Session {
    /// The byte bounds of the queue of the client's messages.
    pub(crate) inbox: Inbox,
    pub(crate) service: RouteService,
    pub(crate) config: ClientWsConfig,
    /// The upgrade request's path and query: every request of the connection is a `POST` to it.
    pub(crate) uri: Uri,
    /// The upgrade request's headers, without the handshake's own and the body's.
    pub(crate) headers: HeaderMap,
    pub(crate) closing: watch::Receiver<bool>,
}

/// How the client's side ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientEnd {
    /// A close frame, an error, or the end of the stream.
    Gone,
    /// A message over the size limit.
    TooLarge,
}

/// What the reader shares with the session besides the queue.
struct ReaderState {
    /// When the last frame of any kind arrived (pongs included).
    last_frame: Instant,
    /// When the last message arrived.
    last_message: Instant,
    ended: Option<ClientEnd>,
}

/// A response being served, and its lane.
type Pumping<'a> = Pin<Box<dyn Future<Output = (Lane, Result<(), Overflow>)> + Send + 'a>>;

impl Session {
    /// Serves the connection until it ends.
    pub(crate) async fn run<S>(mut self, socket: S)
    where
        S: Stream<Item = Result<Message, tungstenite::Error>>
            + futures_util::Sink<Message>
            + Unpin
            + Send
            + 'static,
    {
        let route = self.service.route().clone();
        let _gauge = metrics::ConnectionGauge::open(&route);
        let opened = Instant::now();
        tracing::debug!(
            provider = route.provider(),
            api = route.api(),
            "client websocket opened"
        );
        let (sink, stream) = socket.split();
        let (outbox, writer) = Outbox::new(sink, self.config.send_buffer());
        let writer = tokio::spawn(writer);
        let (requests_tx, mut requests) = mpsc::channel(self.config.max_queued());
        let (state_tx, mut state) = watch::channel(ReaderState {
            last_frame: opened,
            last_message: opened,
            ended: None,
        });
        let reader = tokio::spawn(read(stream, requests_tx, state_tx, self.inbox.clone()));

        let cause = self
            .serve_requests(&route, &outbox, &mut requests, &state, opened)
            .await;
        metrics::closed(&route, cause);
        tracing::debug!(
            provider = route.provider(),
            api = route.api(),
            cause = cause.as_str(),
            open_s = opened.elapsed().as_secs(),
            "client websocket closed"
        );
        match cause {
            CloseCause::Client => {}
            CloseCause::Idle => outbox.close(CloseCode::Normal, "idle timeout"),
            CloseCause::KeepAlive => outbox.abort(CloseCode::Error, "keep-alive ping unanswered"),
            CloseCause::Lifetime => outbox.close(CloseCode::Away, "connection lifetime reached"),
            CloseCause::SlowReader => outbox.abort(CloseCode::Policy, "client reads too slowly"),
            CloseCause::TooLarge => outbox.close(CloseCode::Size, "message too big"),
            CloseCause::Shutdown => outbox.close(CloseCode::Away, "server shutting down"),
        }
        drop(outbox);
        // The writer sends the close frame; the reader then sees the client's reply (or the
        // end). A client that reads nothing (too slow, or gone) is not waited for.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
        if !matches!(cause, CloseCause::SlowReader | CloseCause::KeepAlive) {
            let ended = state.wait_for(|state| state.ended.is_some());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, ended).await;
        }
        reader.abort();
    }

    /// Takes the requests until the connection must end, and says why: each lane's in order,
    /// lanes in parallel ([`Lanes`]).
    async fn serve_requests(
        &mut self,
        route: &Route,
        outbox: &Outbox,
        requests: &mut mpsc::Receiver<Incoming>,
        state: &watch::Receiver<ReaderState>,
        opened: Instant,
    ) -> CloseCause {
        let lifetime_end = opened + self.config.max_lifetime();
        let mut keep_alive = KeepAlive::new(self.config.ping_interval(), self.inbox.clone());
        let mut idle_since = opened;
        let mut lanes = Lanes::new(self.config.max_lanes());
        let running = Running::default();
        let mut pumps: FuturesUnordered<Pumping<'_>> = FuturesUnordered::new();
        // Set when shutdown began: running responses have until then to finish.
        let mut grace: Option<Instant> = None;
        let mut lifetime_over = false;
        loop {
            if grace.is_none() && !lifetime_over {
                while let Some(create) = lanes.next_ready() {
                    pumps.push(self.start(create, outbox, route, &running));
                }
            }
            if pumps.is_empty() {
                if grace.is_some() {
                    return refuse_queued(outbox, requests, &mut lanes, CloseCause::Shutdown);
                }
                if lifetime_over {
                    return refuse_queued(outbox, requests, &mut lanes, CloseCause::Lifetime);
                }
            }
            let busy = !pumps.is_empty();
            let accept = lanes.queued() < self.config.max_queued();
            let idle_end = idle_since.max(state.borrow().last_message) + self.config.idle_timeout();
            let grace_end = grace.unwrap_or_else(far_future);
            tokio::select! {
                biased;
                cause = ended(state) => return cause,
                _ = self.closing.wait_for(|closing| *closing), if grace.is_none() => {
                    grace = Some(Instant::now() + self.config.shutdown_grace());
                }
                () = sleep_until(grace_end), if grace.is_some() => {
                    for lane in lanes.running() {
                        let _ = outbox.push(with_lane(shutting_down_event(), lane));
                    }
                    return refuse_queued(outbox, requests, &mut lanes, CloseCause::Shutdown);
                }
                () = sleep_until(lifetime_end), if !lifetime_over => lifetime_over = true,
                () = sleep_until(idle_end), if !busy => {
                    if state.borrow().last_message + self.config.idle_timeout() <= Instant::now() {
                        return CloseCause::Idle;
                    }
                }
                () = keep_alive.tick() => {
                    if !keep_alive.check(outbox, &state.borrow(), requests) {
                        return CloseCause::KeepAlive;
                    }
                }
                Some((lane, served)) = pumps.next() => {
                    lanes.finished(&lane);
                    idle_since = Instant::now();
                    if served.is_err() {
                        return CloseCause::SlowReader;
                    }
                }
                incoming = requests.recv(), if accept => {
                    let event = match incoming {
                        // The reader ended: the state says why.
                        None => return client_end(state),
                        Some(Incoming::Refused(event)) => Some(event),
                        Some(Incoming::Processed) => None,
                        Some(Incoming::Steer(steer)) => steered(&steer, &running),
                        Some(Incoming::Create(create)) => lanes.push(create).err(),
                    };
                    if let Some(event) = event {
                        if outbox.push(event).is_err() {
                            return CloseCause::SlowReader;
                        }
                    }
                }
            }
        }
    }

    /// Starts serving one response through the route's stack.
    fn start<'a>(
        &self,
        create: Create,
        outbox: &'a Outbox,
        route: &'a Route,
        running: &'a Running,
    ) -> Pumping<'a> {
        let mut request = self.request(create.body);
        if create.warm_up {
            // Never over HTTP: each layer that would send it there answers an error instead.
            request
                .extensions_mut()
                .insert(WebSocketOnly::new(WARM_UP_FIELD));
        }
        let service = self.service.clone();
        Box::pin(async move {
            let job = Job {
                lane: &create.lane,
                running,
            };
            let served = pump(service, request, outbox, route, job).await;
            (create.lane, served)
        })
    }

    /// The `POST` equivalent of a `response.create` message: the upgrade request's path and
    /// headers (the route's header policy picks what reaches the upstream, as for `POST`).
    fn request(&self, body: Bytes) -> Request<axum::body::Body> {
        let mut request = Request::new(axum::body::Body::from(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        request
    }
}

/// The headers of an upgrade request that its `POST` equivalents carry: all but the handshake's
/// own, the hop-by-hop ones and those that describe a body.
pub(crate) fn request_headers(upgrade: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(upgrade.len());
    for (name, value) in upgrade {
        if headers::is_reserved_for_websocket(name) || headers::BODY_HEADERS.contains(name) {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Resolves when the client's side ended, with the cause.
async fn ended(state: &watch::Receiver<ReaderState>) -> CloseCause {
    let mut state = state.clone();
    // An error means the reader is gone, which it only is after saying why (or when aborted).
    let _ = state.wait_for(|state| state.ended.is_some()).await;
    client_end(&state)
}

fn client_end(state: &watch::Receiver<ReaderState>) -> CloseCause {
    match state.borrow().ended {
        Some(ClientEnd::TooLarge) => CloseCause::TooLarge,
        _ => CloseCause::Client,
    }
}

/// Answers every request already queued (on its lane, or not yet read from the reader's
/// queue) with the error event of `cause` (the lifetime cap's
/// `websocket_connection_limit_reached`, or `server_shutting_down`); at the lifetime cap the
/// client gets that event even with nothing queued.
fn refuse_queued(
    outbox: &Outbox,
    requests: &mut mpsc::Receiver<Incoming>,
    lanes: &mut Lanes,
    cause: CloseCause,
) -> CloseCause {
    let refusal = match cause {
        CloseCause::Lifetime => error_event(
            Some(StatusCode::BAD_REQUEST),
            &json!({
                "type": "invalid_request_error",
                "code": "websocket_connection_limit_reached",
                "message": LIFETIME_MESSAGE,
                "param": null,
            }),
            None,
            None,
        ),
        _ => shutting_down_event(),
    };
    let mut refused = 0;
    let queued = lanes.drain_queued().into_iter().map(Incoming::Create);
    let unread = std::iter::from_fn(|| requests.try_recv().ok());
    for incoming in queued.chain(unread) {
        let event = match incoming {
            Incoming::Create(create) => with_lane(refusal.clone(), &create.lane),
            Incoming::Refused(event) => event,
            Incoming::Steer(steer) => steer_failed(
                &steer,
                "response_not_found",
                "the connection is closing",
                &None,
            ),
            Incoming::Processed => continue,
        };
        refused += 1;
        if outbox.push(event).is_err() {
            return CloseCause::SlowReader;
        }
    }
    if refused == 0 && cause == CloseCause::Lifetime {
        let _ = outbox.push(refusal);
    }
    cause
}

/// The answer to a `response.steer` (the `openai` SDK's `ResponseSteer`): handed to the
/// upstream WebSocket connection that runs the target response (its [`Steering`] handle; the
/// upstream's `response.steer.accepted` / `.pending` / `.failed` then come back among the
/// target's events, on its lane), without `stream_id` (the upstream runs the target on its
/// default lane). Otherwise `response.steer.failed` at once, with the input returned and the
/// SDK's error code: `steering_not_supported` (on the target's lane) when the target runs over
/// HTTP, `response_not_found` when no response of that id runs on this connection.
///
/// [`Steering`]: wsfirst_websocket::Steering
fn steered(steer: &serde_json::Value, running: &Running) -> Option<String> {
    let target = steer
        .get("previous_response_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let not_running = || {
        steer_failed(
            steer,
            "response_not_found",
            "the target response is not running on this connection",
            &None,
        )
    };
    let Some((lane, steering)) = running.find(target) else {
        return Some(not_running());
    };
    let Some(steering) = steering else {
        return Some(steer_failed(
            steer,
            "steering_not_supported",
            "the response runs over http, which cannot be steered",
            &lane,
        ));
    };
    let mut upstream = steer.clone();
    if let Some(object) = upstream.as_object_mut() {
        object.remove("stream_id");
    }
    match steering.send(Message::text(upstream.to_string())) {
        Ok(()) => None,
        // It ended in the meantime.
        Err(_) => Some(not_running()),
    }
}

/// The error event of a request the gateway's shutdown leaves unanswered (status 503).
fn shutting_down_event() -> String {
    error_event(
        Some(StatusCode::SERVICE_UNAVAILABLE),
        &json!({
            "type": "server_error",
            "code": "server_shutting_down",
            "message": "the gateway is shutting down: reconnect and send the request again",
            "param": null,
        }),
        None,
        None,
    )
}

/// Keep-alive pings, and whether the client still answers.
struct KeepAlive {
    interval: Option<Duration>,
    next: Instant,
    /// When the last ping was queued and not yet answered by any frame.
    pinged: Option<Instant>,
    /// A reader waiting for room in the byte-bounded queue is not a dead client.
    inbox: Inbox,
}

impl KeepAlive {
    fn new(interval: Option<Duration>, inbox: Inbox) -> Self {
        Self {
            inbox,
            interval,
            next: Instant::now() + interval.unwrap_or_default(),
            pinged: None,
        }
    }

    /// Resolves at the next ping time (never without pings).
    async fn tick(&mut self) {
        match self.interval {
            Some(_) => sleep_until(self.next).await,
            None => std::future::pending().await,
        }
    }

    /// At a ping time: `false` when the client sent nothing since the previous ping was
    /// written (it is gone), else queues the next ping. A client whose messages wait because
    /// the queue is full, or whose pings wait behind buffered events, is given the benefit of
    /// the doubt.
    fn check(
        &mut self,
        outbox: &Outbox,
        state: &ReaderState,
        requests: &mpsc::Receiver<Incoming>,
    ) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let now = Instant::now();
        self.next = now + interval;
        if let Some(pinged) = self.pinged {
            let blocked =
                requests.capacity() == 0 || self.inbox.is_waiting() || outbox.buffered() > 0;
            if state.last_frame < pinged && !blocked {
                return false;
            }
        }
        self.pinged = Some(now);
        outbox.ping();
        true
    }
}

/// The reader task: client frames to the queue of requests, in order, and the connection's
/// state to the session.
async fn read<S>(
    mut stream: S,
    requests: mpsc::Sender<Incoming>,
    state: watch::Sender<ReaderState>,
    inbox: Inbox,
) where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let end = loop {
        let message = match stream.next().await {
            None => break ClientEnd::Gone,
            Some(Err(tungstenite::Error::Capacity(_))) => {
                break ClientEnd::TooLarge;
            }
            Some(Err(_)) => break ClientEnd::Gone,
            Some(Ok(message)) => message,
        };
        let now = Instant::now();
        let incoming = match message {
            Message::Text(text) => Some(read_message(text.as_str())),
            Message::Binary(_) => Some(Incoming::Refused(super::convert::client_error(
                "unsupported_message",
                "binary messages are not supported: send JSON text messages",
                None,
            ))),
            Message::Close(_) => {
                state.send_modify(|state| state.ended = Some(ClientEnd::Gone));
                // Reading on lets tungstenite write its close reply and see the end.
                let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
                return;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        };
        state.send_modify(|state| {
            state.last_frame = now;
            if incoming.is_some() {
                state.last_message = now;
            }
        });
        if let Some(incoming) = incoming {
            if requests.send(inbox.admit(incoming).await).await.is_err() {
                break ClientEnd::Gone;
            }
        }
    };
    state.send_modify(|state| state.ended = Some(end));
}
