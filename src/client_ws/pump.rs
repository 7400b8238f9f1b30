//! One response through the route's stack: the `POST` equivalent of a `response.create`
//! served by the [`RouteService`], and its answer turned into the client's messages (each
//! server-sent event one text message, with the request's lane; an answer that is not a
//! stream, a body that fails, or one that ends before its terminal event, an error event).
//!
//! A warm-up (`"generate": false`, WebSocket-only: the HTTP endpoint refuses it as an unknown
//! parameter) goes to the stack marked [`WebSocketOnly`](wsfirst_core::WebSocketOnly) (by the
//! session): it is served by the upstream's WebSocket or answered with an error, never sent over
//! HTTP. A route in mode `http` or an ineligible request gets a 400 error event,
//! `websocket_required`; a pinned key or a failed WebSocket attempt a 503, `websocket_unavailable`
//! (the gateway does not make up a response of its own: the next turn's `previous_response_id`
//! would name a response the upstream never had).

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use tokio::time::Instant;
use tower::ServiceExt;
use wsfirst_core::{Route, Served};
use wsfirst_websocket::{Message, Steering, responses::conversation};

use super::{
    convert::{Lane, SseEvents, error_event, error_from_answer, event_message, with_lane},
    lanes::Running,
    metrics,
    outbox::{Outbox, Overflow},
};
use crate::{RouteService, respond::error_response};

/// The largest error body read from an answer that is not a stream of events.
const MAX_ERROR_BODY: usize = 1 << 20;

/// What a response's events go with: its lane, and where the connection's running responses
/// are booked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job<'a> {
    pub(crate) lane: &'a Lane,
    pub(crate) running: &'a Running,
}

/// Serves one request through the route's stack and sends its events to the client.
pub(crate) async fn pump(
    service: RouteService,
    request: Request<axum::body::Body>,
    outbox: &Outbox,
    route: &Route,
    job: Job<'_>,
) -> Result<(), Overflow> {
    let started = Instant::now();
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let steering = response.extensions().get::<Steering>().cloned();
    let served = response.extensions().get::<Served>();
    let (transport, reason) = served
        .map(|served| (served.transport().as_str(), served.reason_label()))
        .unwrap_or(("none", "error"));
    let status = response.status();
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    let (ok, events) = if status.is_success() && is_stream {
        stream_events(response.into_body(), outbox, job, steering).await?
    } else {
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ERROR_BODY)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        let status = if status.is_success() {
            // An answer that is not a stream of events, where one was asked for.
            StatusCode::BAD_GATEWAY
        } else {
            status
        };
        outbox.push(with_lane(
            error_from_answer(status, &parts.headers, &body),
            job.lane,
        ))?;
        (false, 0)
    };
    metrics::response(route, transport, reason, ok);
    tracing::debug!(
        provider = route.provider(),
        api = route.api(),
        transport,
        reason,
        status = status.as_u16(),
        events,
        ok,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "client websocket response served"
    );
    Ok(())
}

/// Sends each event of an SSE body as one message; a body that fails, or ends before a
/// terminal event, ends with an error event. Returns whether the answer ended without an
/// error event, and how many events it had.
async fn stream_events(
    mut body: axum::body::Body,
    outbox: &Outbox,
    job: Job<'_>,
    steering: Option<Steering>,
) -> Result<(bool, u64), Overflow> {
    let mut sse = SseEvents::default();
    let mut events = 0u64;
    let mut ended: Option<bool> = None;
    let mut booked = Booked(job.running, None);
    let mut send = |data: String, events: &mut u64, ended: &mut Option<bool>| {
        let message = event_message(data);
        // An event after a terminal one: the upstream runs the steered response's successor
        // (its answer goes on until the successor ends).
        let successor = *events > 0 && ended.is_some();
        match terminal(&message) {
            Some(ends) => *ended = Some(ends),
            None if successor => *ended = None,
            None => {}
        }
        if *events == 0 || successor {
            // The response runs: steering finds it by its id.
            if let Some(id) = conversation::response_id(&Message::text(message.as_str())) {
                if let Some(previous) = booked.1.take() {
                    job.running.ended(&previous);
                }
                job.running.started(id.clone(), job.lane, steering.clone());
                booked.1 = Some(id);
            }
        }
        *events += 1;
        outbox.push(with_lane(message, job.lane))
    };
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    sse.push(data);
                    while let Some(data) = sse.next_event() {
                        send(data, &mut events, &mut ended)?;
                    }
                }
            }
            Some(Err(error)) => {
                let answer = error_response(&error);
                let (parts, body) = answer.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let event = error_from_answer(parts.status, &parts.headers, &body);
                outbox.push(with_lane(with_sequence_number(event, events), job.lane))?;
                return Ok((false, events));
            }
            None => {
                if let Some(data) = sse.finish() {
                    send(data, &mut events, &mut ended)?;
                }
                break;
            }
        }
    }
    match ended {
        Some(ok) => Ok((ok, events)),
        None => {
            let event = error_event(
                Some(StatusCode::BAD_GATEWAY),
                &json!({
                    "type": "wsfirst_error",
                    "code": "upstream_ended_early",
                    "message": "the upstream's answer ended before its terminal event",
                    "param": null,
                }),
                Some(events),
                None,
            );
            outbox.push(with_lane(event, job.lane))?;
            Ok((false, events))
        }
    }
}

/// A response booked as running until dropped.
struct Booked<'a>(&'a Running, Option<String>);

impl Drop for Booked<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.1 {
            self.0.ended(id);
        }
    }
}

/// `event` (an error event of [`error_from_answer`]) with a `sequence_number`.
fn with_sequence_number(event: String, sequence_number: u64) -> String {
    match serde_json::from_str::<serde_json::Value>(&event) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.remove("headers");
            let mut error = object.remove("error").unwrap_or(serde_json::Value::Null);
            if let Some(error) = error.as_object_mut() {
                error.remove("headers");
            }
            error_event(
                object
                    .get("status")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|status| u16::try_from(status).ok())
                    .and_then(|status| StatusCode::from_u16(status).ok()),
                &error,
                Some(sequence_number),
                None,
            )
        }
        _ => event,
    }
}

/// Whether an event ends a response: `Some(true)` for `response.completed` / `failed` /
/// `incomplete`, `Some(false)` for `error`, `None` for any other event.
fn terminal(message: &str) -> Option<bool> {
    const ENDS: [&str; 4] = [
        r#""response.completed""#,
        r#""response.failed""#,
        r#""response.incomplete""#,
        r#""error""#,
    ];
    // Most events are none of these: a search is cheaper than parsing them.
    if !ENDS.iter().any(|end| message.contains(end)) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let kind = serde_json::from_str::<Kind<'_>>(message).ok()?.kind;
    match kind.as_ref() {
        "response.completed" | "response.failed" | "response.incomplete" => Some(true),
        "error" => Some(false),
        _ => None,
    }
}
