//! One client WebSocket connection: its messages served one response at a time, in order,
//! through the route's [`RouteService`], and the connection's limits (idle time, keep-alive,
//! lifetime, message size, slow reader, shutdown).
//!
//! Three tasks share a connection: the reader (client frames to a bounded queue of requests),
//! the [writer](super::outbox) (the outbox to the client), and the session loop here, which
//! takes the requests in order and serves each to its end before the next.

use std::{pin::pin, time::Duration};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use serde_json::json;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep_until},
};
use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::coding::CloseCode};
use wsfirst_core::{Route, headers};

use super::{
    ClientWsConfig,
    convert::{Incoming, error_event, read_message},
    inbox::{Inbox, Queued},
    metrics::{self, CloseCause},
    outbox::{CLOSE_TIMEOUT, Outbox, Overflow},
    pump::pump,
};
use crate::RouteService;

/// The message of the lifetime cap's error event, as OpenAI's API words it.
pub(crate) const LIFETIME_MESSAGE: &str = "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue.";

/// What a session needs besides its socket.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) service: RouteService,
    pub(crate) config: ClientWsConfig,
    /// The upgrade request's path and query: every request of the connection is a `POST` to it.
    pub(crate) uri: Uri,
    /// The upgrade request's headers, without the handshake's own and the body's.
    pub(crate) headers: HeaderMap,
    pub(crate) closing: watch::Receiver<bool>,
    /// The byte bounds of the queue of the client's messages.
    pub(crate) inbox: Inbox,
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

/// How serving a response ended, for the session loop.
enum Served_ {
    /// Served to its end (an error event included).
    Done,
    /// The connection must end.
    End(CloseCause),
}

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

    /// Takes the requests in order until the connection must end, and says why.
    async fn serve_requests(
        &mut self,
        route: &Route,
        outbox: &Outbox,
        requests: &mut mpsc::Receiver<Queued>,
        state: &watch::Receiver<ReaderState>,
        opened: Instant,
    ) -> CloseCause {
        let lifetime_end = opened + self.config.max_lifetime();
        let mut keep_alive = KeepAlive::new(self.config.ping_interval(), self.inbox.clone());
        let mut idle_since = opened;
        loop {
            let idle_end = idle_since.max(state.borrow().last_message) + self.config.idle_timeout();
            let incoming = tokio::select! {
                biased;
                cause = ended(state) => return cause,
                _ = self.closing.wait_for(|closing| *closing) => {
                    return refuse_queued(outbox, requests, CloseCause::Shutdown);
                }
                () = sleep_until(lifetime_end) => {
                    return refuse_queued(outbox, requests, CloseCause::Lifetime);
                }
                () = sleep_until(idle_end) => {
                    if state.borrow().last_message + self.config.idle_timeout() <= Instant::now() {
                        return CloseCause::Idle;
                    }
                    continue;
                }
                () = keep_alive.tick() => {
                    if !keep_alive.check(outbox, &state.borrow(), requests) {
                        return CloseCause::KeepAlive;
                    }
                    continue;
                }
                incoming = requests.recv() => incoming,
            };
            let body = match incoming {
                // The reader ended: the state says why.
                None => return client_end(state),
                Some((Incoming::Refused(event), _)) => {
                    if outbox.push(event).is_err() {
                        return CloseCause::SlowReader;
                    }
                    continue;
                }
                Some((Incoming::Create(body), _held)) => body,
            };
            let served = self
                .serve_one(route, outbox, body, requests, state, &mut keep_alive)
                .await;
            idle_since = Instant::now();
            match served {
                Served_::Done => {}
                Served_::End(CloseCause::Shutdown) => {
                    return refuse_queued(outbox, requests, CloseCause::Shutdown);
                }
                Served_::End(cause) => return cause,
            }
        }
    }

    /// Serves one response to its end, watching the connection meanwhile.
    async fn serve_one(
        &mut self,
        route: &Route,
        outbox: &Outbox,
        body: Bytes,
        requests: &mpsc::Receiver<Queued>,
        state: &watch::Receiver<ReaderState>,
        keep_alive: &mut KeepAlive,
    ) -> Served_ {
        let request = self.request(body);
        let mut pump = pin!(pump(self.service.clone(), request, outbox, route));
        let mut grace: Option<Instant> = None;
        loop {
            let grace_end = grace.unwrap_or_else(far_future);
            tokio::select! {
                biased;
                cause = ended(state) => return Served_::End(cause),
                _ = self.closing.wait_for(|closing| *closing), if grace.is_none() => {
                    grace = Some(Instant::now() + self.config.shutdown_grace());
                }
                () = sleep_until(grace_end), if grace.is_some() => {
                    let event = shutting_down_event();
                    let _ = outbox.push(event);
                    return Served_::End(CloseCause::Shutdown);
                }
                () = keep_alive.tick() => {
                    if !keep_alive.check(outbox, &state.borrow(), requests) {
                        return Served_::End(CloseCause::KeepAlive);
                    }
                }
                served = &mut pump => return match served {
                    Ok(()) => Served_::Done,
                    Err(Overflow) => Served_::End(CloseCause::SlowReader),
                },
            }
        }
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

/// Answers every request already queued with the error event of `cause` (the lifetime cap's
/// `websocket_connection_limit_reached`, or `server_shutting_down`); at the lifetime cap the
/// client gets that event even with nothing queued.
fn refuse_queued(
    outbox: &Outbox,
    requests: &mut mpsc::Receiver<Queued>,
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
    while let Ok((incoming, _held)) = requests.try_recv() {
        let event = match incoming {
            Incoming::Create(_) => refusal.clone(),
            Incoming::Refused(event) => event,
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
    inbox: Inbox,
    next: Instant,
    /// When the last ping was queued and not yet answered by any frame.
    pinged: Option<Instant>,
}

impl KeepAlive {
    fn new(interval: Option<Duration>, inbox: Inbox) -> Self {
        Self {
            interval,
            inbox,
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
        requests: &mpsc::Receiver<Queued>,
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
    requests: mpsc::Sender<Queued>,
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
