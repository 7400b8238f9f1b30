//! One WebSocket attempt: checkout, send, wait for the first event, build the response.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Response, Uri, header::CONTENT_TYPE};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;
use wsfirst_core::{
    BoxError, Delivery, ErrorScope, FailureKind, HandshakeGate, Phase, Replay, Route, Served,
    WsFailure,
};

use crate::{
    Codec, Decoded, Exchange, Pool, Steering, WebSocketConfig,
    body::{Streaming, WsBody},
    connector::{self, map_error},
    gate::RequestGate,
    metrics::{Resend, record_failure, record_rejection, record_resend},
    pool::{Opened, PoolKey, pooled::Pooled},
    read::read,
};

/// How an exchange on one connection went before the response could be built.
enum Exchanged {
    /// The first event arrived (and for a non-streaming answer, the whole answer).
    Done(Response<WsBody>),
    /// It failed; the failure says how far the request got ([`WsFailure::delivery`]).
    Failed(WsFailure),
}

/// What the attempt needs besides the connection.
struct Job {
    messages: Vec<Message>,
    content_type: http::HeaderValue,
    streaming: bool,
    codec: Arc<dyn Codec>,
    first_event_timeout: Duration,
    idle_timeout: Duration,
    started: Instant,
    /// Whether the response lives only in the connection's memory ([`Codec::holds`]).
    holds: bool,
}

/// Serves the request (its head and its whole body, read by the service's future) over the
/// WebSocket of `route`.
pub(crate) async fn attempt(
    config: WebSocketConfig,
    pool: Pool,
    route: Route,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<WsBody>, BoxError> {
    let span = tracing::info_span!(
        "websocket_attempt",
        provider = route.provider(),
        api = route.api(),
        reused = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    async move {
        let result = run(config, pool, route, parts, body).await;
        let span = tracing::Span::current();
        match &result {
            Ok(response) if response.status().is_success() => span.record("outcome", "first_event"),
            Ok(_) => span.record("outcome", "rejected"),
            Err(error) => match wsfirst_core::find_ws_failure(&**error) {
                Some(failure) => {
                    record_failure(failure);
                    span.record("outcome", failure.kind().as_str())
                }
                None => span.record("outcome", "error"),
            },
        };
        result
    }
    .instrument(span)
    .await
}

async fn run(
    config: WebSocketConfig,
    pool: Pool,
    route: Route,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<WsBody>, BoxError> {
    let started = Instant::now();
    let url: Uri = match route.ws_url() {
        Some(url) => url.clone(),
        None => {
            return Err(Box::new(WsFailure::new(
                Phase::Connect,
                FailureKind::Local("the route has no websocket url".into()),
            )));
        }
    };
    connector::target(&url)?;

    let limit = config.max_message_size();
    // Asked before `encode` takes the body: the response this request continues, if any.
    let continues = config.codec().continues(&parts, &body);
    let holds = config.codec().holds(&parts, &body);
    let encoded = config.codec().encode(&parts, body).map_err(|error| {
        WsFailure::new(Phase::Send, FailureKind::Local(error.to_string()))
            .with_delivery(Delivery::Unsent)
            .with_source(error)
    })?;
    let (messages, content_type, streaming) = encoded.into_parts();
    if let Some(size) = messages.iter().map(Message::len).find(|size| *size > limit) {
        return Err(Box::new(
            WsFailure::new(Phase::Send, FailureKind::TooLarge { size, limit })
                .with_delivery(Delivery::Unsent),
        ));
    }

    let handshake: HeaderMap = connector::handshake_headers(&route, &parts.headers);
    let key = PoolKey::new(
        &url,
        &route,
        &handshake,
        config.affinity_header(),
        &parts.headers,
    );
    let job = Job {
        messages,
        content_type,
        streaming,
        codec: config.codec().clone(),
        first_event_timeout: config.first_event_timeout(),
        idle_timeout: config.idle_timeout(),
        started,
        holds,
    };

    // The route's setting, put there by the fallback layer (the one owner of the setting).
    let replay = parts
        .extensions
        .get::<Replay>()
        .copied()
        .unwrap_or_default();
    // The breaker's, if one is in front: asked before a new connection is opened, told of a
    // failed handshake at once (see `HandshakeGate`); looked up only then.
    let gate = RequestGate::new(
        parts.extensions.get::<HandshakeGate>(),
        config.handshake_gates().map(|gates| &**gates),
        &route,
        &parts.headers,
    );
    // With `min_idle`, the key is kept warm from now on (nothing when it is 0); the gate is
    // looked up only when the warmer has none that may open.
    pool.warm_key(&key, &url, &handshake, &config, route.headers(), || {
        gate.handshake_gate().cloned()
    });
    let connect = || async {
        // What the route's policy passes on of the handshake's answer stays with the
        // connection, for every response it serves.
        connector::connect(&url, &handshake, &config)
            .await
            .map(|(stream, answer)| Opened {
                stream,
                answer: route.headers().answer_for(&answer),
            })
            .map_err(|failure| gate.report(failure))
    };
    // Once sent again, always on a fresh connection, and never a second time.
    let mut resent = false;
    loop {
        let conn = pool
            .checkout_gated(
                &key,
                continues.as_deref(),
                resent,
                config.handshake_timeout(),
                Some(&gate),
                connect,
            )
            .await?;
        let reused = conn.reused();
        tracing::Span::current().record("reused", reused);
        let failure = match exchange(&job, conn).await {
            Exchanged::Done(response) => return Ok(response),
            Exchanged::Failed(failure) => failure,
        };
        match resend_reason(&failure, reused) {
            Some(reason) if !resent && replay.allows(&failure) => {
                record_resend(reason, &failure);
                resent = true;
            }
            _ => return Err(Box::new(failure)),
        }
    }
}

/// Why a failed exchange may be tried once more on a fresh connection, if it may: the upstream
/// provably did not execute the request (see the crate docs, "When a request is sent again"),
/// and the failure says nothing about the endpoint, only about this connection.
///
/// - A reused connection found closed right before the write ([`Delivery::Unsent`]): the
///   upstream closed it while it was idle.
/// - A reused connection whose write failed before the message was complete
///   ([`Delivery::Incomplete`]): it died while idle, and the upstream never got the whole
///   message.
/// - A refusal of the request on this connection ([`Delivery::Refused`], an error event of
///   [`ErrorScope::Connection`], on any connection): for the Responses API the connection limit,
///   which the API answers with status 400 (the request was rejected, not executed) and "open a
///   new connection" (`responses::CONNECTION_SCOPED_CODES`).
///
/// The same failures of a fresh connection (other than a refusal) are the endpoint's: they go
/// to the caller, and the fallback layer may replay them over HTTP. Anything after our message
/// was written ([`Delivery::MaybeExecuted`]: a close with any code, an end of stream, a timeout,
/// another error event) is never sent again.
fn resend_reason(failure: &WsFailure, reused: bool) -> Option<Resend> {
    match failure.delivery() {
        Delivery::Unsent if reused => Some(Resend::ClosedBeforeWrite),
        Delivery::Incomplete if reused => Some(Resend::WriteFailed),
        Delivery::Refused => Some(Resend::Refused),
        _ => None,
    }
}

/// Sends the request on `conn` and reads up to the first event (a streaming answer) or the end
/// (a non-streaming answer).
async fn exchange(job: &Job, mut conn: Pooled) -> Exchanged {
    // The first-event deadline covers the send too: an upstream that stops reading (or a
    // silently dead pooled connection) would otherwise hold a large write until TCP gives up.
    let mut deadline = Instant::now() + job.first_event_timeout;
    // The upstream's close (or end of stream) already there: nothing is written on it.
    if let Some(failure) = conn.closed_before_write() {
        return Exchanged::Failed(failure);
    }
    // How many messages went into the socket's buffer in full. A failure while writing leaves
    // the request incomplete (nothing an upstream acts on) unless an earlier message of several
    // may have reached it in full.
    let mut fed = 0;
    // The handshake answer's headers that the client gets with the response.
    let answer = conn.answer().clone();
    let stream = conn.stream();
    let send = async {
        for message in &job.messages {
            stream.feed(message.clone()).await?;
            fed += 1;
        }
        stream.flush().await
    };
    let sent = timeout_at(deadline, send).await;
    let delivery = if fed == 0 || job.messages.len() == 1 {
        Delivery::Incomplete
    } else {
        Delivery::MaybeExecuted
    };
    match sent {
        Err(_) => {
            let kind = FailureKind::Timeout(job.first_event_timeout);
            return Exchanged::Failed(WsFailure::new(Phase::Send, kind).with_delivery(delivery));
        }
        Ok(Err(error)) => {
            return Exchanged::Failed(map_error(Phase::Send, error).with_delivery(delivery));
        }
        Ok(Ok(())) => {}
    }
    let sent = Instant::now();
    let mut exchange = Exchange::new(job.streaming);
    let mut gathered: Vec<Bytes> = Vec::new();
    // From the start of the attempt to the first event, for `Served`.
    let mut attempt = Duration::ZERO;
    loop {
        let phase = if exchange.events() == 0 {
            Phase::BeforeFirstEvent
        } else {
            Phase::MidStream
        };
        let limit = if exchange.events() == 0 {
            job.first_event_timeout
        } else {
            job.idle_timeout
        };
        let incoming = match timeout_at(deadline, conn.stream().next()).await {
            Err(_) => return Exchanged::Failed(WsFailure::new(phase, FailureKind::Timeout(limit))),
            Ok(incoming) => incoming,
        };
        // The connection remembers the response it produces, for the conversation's next turn.
        if exchange.events() == 0 {
            if let Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) = &incoming {
                if let Some(response_id) = job.codec.response_id(message) {
                    conn.produced(&response_id, job.holds);
                }
            }
        }
        let decoded = match read(incoming, &*job.codec, &exchange, phase) {
            Ok(decoded) => decoded,
            Err(failure) => return Exchanged::Failed(failure),
        };
        let end = match decoded {
            Decoded::Ignore => continue,
            Decoded::Error {
                code,
                message,
                scope,
                ..
            } if exchange.events() == 0 => {
                let failure = WsFailure::new(
                    Phase::BeforeFirstEvent,
                    FailureKind::UpstreamError {
                        code,
                        message,
                        scope,
                    },
                );
                // Only the codec knows the API's word for "refused, not executed".
                return Exchanged::Failed(if scope == ErrorScope::Connection {
                    failure.with_delivery(Delivery::Refused)
                } else {
                    failure
                });
            }
            Decoded::Error {
                code,
                message,
                scope,
                ..
            } => {
                // Only a non-streaming answer reads past its first event here.
                return Exchanged::Failed(WsFailure::new(
                    Phase::MidStream,
                    FailureKind::UpstreamError {
                        code,
                        message,
                        scope,
                    },
                ));
            }
            Decoded::Reject {
                status,
                headers,
                body,
            } => {
                // The upstream's own answer. Rejected before any event, the request never
                // started and the connection may serve another (the pool's liveness check drops
                // it if anything else arrives); after an event, as after a mid-stream error,
                // what else may come for this request is unknown, so it is not reused.
                if exchange.events() == 0 && !job.codec.ends_on_close() {
                    conn.release();
                }
                record_rejection(status);
                let mut response = Response::new(WsBody::Full(Some(body)));
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                response
                    .headers_mut()
                    .entry(CONTENT_TYPE)
                    .or_insert_with(|| job.content_type.clone());
                add_answer(response.headers_mut(), &answer);
                if exchange.events() == 0 {
                    attempt = job.started.elapsed();
                }
                response.extensions_mut().insert(Served::websocket(attempt));
                return Exchanged::Done(response);
            }
            Decoded::Event { frame } => {
                gathered.extend(frame);
                false
            }
            Decoded::End { frame } => {
                gathered.extend(frame);
                true
            }
        };
        if exchange.events() == 0 {
            metrics::histogram!("wsfirst_ws_first_event_seconds")
                .record(sent.elapsed().as_secs_f64());
            attempt = job.started.elapsed();
        }
        exchange.record_event();
        let now = Instant::now();
        deadline = now + job.idle_timeout;
        if job.streaming || end {
            let conn = if end {
                if !job.codec.ends_on_close() {
                    conn.release();
                }
                None
            } else {
                Some(conn)
            };
            // A streaming answer that holds its connection can be steered while it runs.
            let steering = (job.streaming && conn.is_some()).then(Steering::channel);
            let (steering, receiver) = match steering {
                Some((steering, receiver)) => (Some(steering), Some(receiver)),
                None => (None, None),
            };
            let body = if job.streaming {
                WsBody::stream(Streaming {
                    conn,
                    codec: job.codec.clone(),
                    exchange,
                    pending: concat(gathered),
                    done: end,
                    idle_timeout: job.idle_timeout,
                    idle: Box::pin(tokio::time::sleep_until(deadline)),
                    // The first frame waits for the caller from now: the write-stall deadline
                    // runs until it polls.
                    handed_out: Some(now),
                    stalled: None,
                    steering: receiver,
                    unsent: None,
                    unflushed: false,
                    successors: 0,
                    successor_started: false,
                    holds: job.holds,
                })
            } else {
                WsBody::Full(Some(concat(gathered).unwrap_or_default()))
            };
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, job.content_type.clone());
            add_answer(response.headers_mut(), &answer);
            response.extensions_mut().insert(Served::websocket(attempt));
            if let Some(steering) = steering {
                response.extensions_mut().insert(steering);
            }
            return Exchanged::Done(response);
        }
    }
}

/// Adds the handshake answer's headers to a response, as an HTTP upstream's response headers
/// would be, except those the response already has (an error event's own).
fn add_answer(headers: &mut HeaderMap, answer: &HeaderMap) {
    for name in answer.keys() {
        if headers.contains_key(name) {
            continue;
        }
        for value in answer.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
}

fn concat(frames: Vec<Bytes>) -> Option<Bytes> {
    match frames.len() {
        0 => None,
        1 => frames.into_iter().next(),
        _ => Some(Bytes::from(frames.concat())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(phase: Phase, delivery: Delivery) -> WsFailure {
        WsFailure::new(phase, FailureKind::Local("x".into())).with_delivery(delivery)
    }

    #[test]
    fn only_a_reused_connection_or_a_refusal_is_worth_a_fresh_connection() {
        let table = [
            (
                Phase::Send,
                Delivery::Unsent,
                true,
                Some(Resend::ClosedBeforeWrite),
            ),
            (Phase::Send, Delivery::Unsent, false, None),
            (
                Phase::Send,
                Delivery::Incomplete,
                true,
                Some(Resend::WriteFailed),
            ),
            (Phase::Send, Delivery::Incomplete, false, None),
            (
                Phase::BeforeFirstEvent,
                Delivery::Refused,
                true,
                Some(Resend::Refused),
            ),
            (
                Phase::BeforeFirstEvent,
                Delivery::Refused,
                false,
                Some(Resend::Refused),
            ),
            (Phase::BeforeFirstEvent, Delivery::MaybeExecuted, true, None),
            (
                Phase::BeforeFirstEvent,
                Delivery::MaybeExecuted,
                false,
                None,
            ),
            (Phase::MidStream, Delivery::MaybeExecuted, true, None),
        ];
        for (phase, delivery, reused, reason) in table {
            assert_eq!(
                resend_reason(&failed(phase, delivery), reused),
                reason,
                "{phase:?} {delivery:?} reused: {reused}"
            );
        }
    }
}
