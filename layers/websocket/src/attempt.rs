//! One WebSocket attempt: checkout, send, wait for the first event, build the response.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Response, Uri, header::CONTENT_TYPE};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;
use wsfirst_core::{BoxError, ErrorScope, FailureKind, Phase, Route, Served, WsFailure};

use crate::{
    Codec, Decoded, Exchange, Pool, WebSocketConfig,
    body::{Streaming, WsBody},
    connector::{self, map_error},
    metrics::{record_failure, record_rejection},
    pool::{PoolKey, pooled::Pooled},
    read::read,
};

/// How an exchange on one connection went before the response could be built.
enum Exchanged {
    /// The first event arrived (and for a non-streaming answer, the whole answer).
    Done(Response<WsBody>),
    /// The upstream said "this connection, not the endpoint": try once more on a fresh one.
    Retry(WsFailure),
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
    let encoded = config.codec().encode(&parts, body).map_err(|error| {
        WsFailure::new(Phase::Send, FailureKind::Local(error.to_string())).with_source(error)
    })?;
    let (messages, content_type, streaming) = encoded.into_parts();
    if let Some(size) = messages.iter().map(Message::len).find(|size| *size > limit) {
        return Err(Box::new(WsFailure::new(
            Phase::Send,
            FailureKind::TooLarge { size, limit },
        )));
    }

    let handshake: HeaderMap = connector::handshake_headers(&config, &parts.headers);
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
    };

    let mut fresh = false;
    let mut replaced_dead = false;
    let mut retried_code = false;
    loop {
        let conn = pool
            .checkout(
                &key,
                continues.as_deref(),
                fresh,
                config.handshake_timeout(),
                || connector::connect(&url, &handshake, &config),
            )
            .await?;
        let reused = conn.reused();
        tracing::Span::current().record("reused", reused);
        match exchange(&job, conn).await {
            Exchanged::Done(response) => {
                return Ok(response);
            }
            Exchanged::Retry(failure) if !retried_code => {
                tracing::debug!(error = %failure, "retrying once on a fresh websocket connection");
                retried_code = true;
                fresh = true;
            }
            Exchanged::Retry(failure) => return Err(Box::new(failure)),
            Exchanged::Failed(failure) if reused && !replaced_dead && connection_gone(&failure) => {
                // The pooled connection died under us (the upstream closed it while idle, or
                // is going away): replace it once without counting a failure.
                tracing::debug!(error = %failure, "pooled websocket connection was dead, replacing it");
                replaced_dead = true;
                fresh = true;
            }
            Exchanged::Failed(failure) => return Err(Box::new(failure)),
        }
    }
}

/// The close codes with which an upstream says "this connection is going away, open another"
/// rather than "this request failed" (RFC 6455, section 7.4.1): 1001 going away, 1011 internal
/// error, 1012 service restart, 1013 try again later. The official Python SDK reconnects after
/// them (`_RECOVERABLE_CLOSE_CODES` in `src/openai/types/websocket_reconnection.py`).
const GONE_CLOSE_CODES: [u16; 4] = [1001, 1011, 1012, 1013];

/// Whether a failure of a reused connection means that the connection is gone, not that the
/// provider is failing: an I/O error, a close without a code, or a close with one of the
/// [`GONE_CLOSE_CODES`], while sending the request or before its first event. The connection
/// produced nothing for this request, so it is replaced once, and the failure is not counted.
/// (The client cannot see whether the close left the upstream before the request arrived; a
/// second such failure, on the fresh connection, is the provider's.)
fn connection_gone(failure: &WsFailure) -> bool {
    matches!(failure.phase(), Phase::Send | Phase::BeforeFirstEvent)
        && match failure.kind() {
            FailureKind::Closed { code: None, .. } | FailureKind::Io { .. } => true,
            FailureKind::Closed {
                code: Some(code), ..
            } => GONE_CLOSE_CODES.contains(code),
            _ => false,
        }
}

/// Sends the request on `conn` and reads up to the first event (a streaming answer) or the end
/// (a non-streaming answer).
async fn exchange(job: &Job, mut conn: Pooled) -> Exchanged {
    // The first-event deadline covers the send too: an upstream that stops reading (or a
    // silently dead pooled connection) would otherwise hold a large write until TCP gives up.
    let mut deadline = Instant::now() + job.first_event_timeout;
    let stream = conn.stream();
    let send = async {
        for message in &job.messages {
            stream.feed(message.clone()).await?;
        }
        stream.flush().await
    };
    match timeout_at(deadline, send).await {
        Err(_) => {
            return Exchanged::Failed(WsFailure::new(
                Phase::Send,
                FailureKind::Timeout(job.first_event_timeout),
            ));
        }
        Ok(Err(error)) => return Exchanged::Failed(map_error(Phase::Send, error)),
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
                    conn.remember(&response_id);
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
                return if scope == ErrorScope::Connection {
                    Exchanged::Retry(failure)
                } else {
                    Exchanged::Failed(failure)
                };
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
                })
            } else {
                WsBody::Full(Some(concat(gathered).unwrap_or_default()))
            };
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, job.content_type.clone());
            response.extensions_mut().insert(Served::websocket(attempt));
            return Exchanged::Done(response);
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
