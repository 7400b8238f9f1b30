//! The HTTP side of the test upstream: `POST` on any path, SSE or JSON.

use std::{io, sync::Arc, time::Duration};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wsfirst_core::Transport;

use super::{
    Answer, CapturedRequest, HttpScript, lanes,
    shared::{Shared, Turn, not_found_body},
};

/// Request bodies up to this size are read.
const MAX_BODY: usize = 256 << 20;

/// Answers one HTTP request according to the next HTTP script.
pub(super) async fn answer(shared: Arc<Shared>, request: axum::extract::Request) -> Response {
    if request.method() != Method::POST {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the test upstream answers POST requests and websocket upgrades",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {error}"),
            );
        }
    };
    let json = serde_json::from_slice::<Value>(&body);
    let stream = json
        .as_ref()
        .map(|value| value.get("stream") == Some(&Value::Bool(true)));
    let websocket_only = json.as_ref().ok().and_then(lanes::websocket_only_field);
    let turn = Turn::of(&body);
    shared.executed(CapturedRequest {
        transport: Transport::Http,
        uri: parts.uri,
        headers: parts.headers,
        body,
        connection: None,
    });
    let script = shared.next_http_script();
    // The WebSocket-only fields are unknown parameters here.
    if let (Some(field), false) = (websocket_only, matches!(script, HttpScript::Status { .. })) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            lanes::unknown_parameter_body(field),
        )
            .into_response();
    }
    // Over HTTP only stored responses can be continued.
    if let Some(previous) = turn.previous.as_deref() {
        if !matches!(script, HttpScript::Status { .. }) && !shared.is_stored(previous) {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                not_found_body(previous),
            )
                .into_response();
        }
    }
    let delay = match script {
        HttpScript::Status { status, body } => {
            return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        HttpScript::Answer => None,
        HttpScript::SlowEvents { delay } => Some(delay),
        HttpScript::AbortAfterEvents { events } => {
            let answer = shared.next_answer();
            return sse(shared, answer, events, None, true);
        }
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "the request body is not JSON"),
    };
    let answer = shared.next_answer();
    shared.produced(&turn, &answer);
    if stream {
        let count = answer.len();
        return sse(shared, answer, count, delay, false);
    }
    if let Some(delay) = delay {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.stopped() => {
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "test upstream shut down");
            }
        }
    }
    match answer.final_json() {
        Some(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json.to_owned(),
        )
            .into_response(),
        None => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the scripted answer has no terminal event (response.completed, .failed or .incomplete)",
        ),
    }
}

/// A streaming answer: the first `count` SSE frames, each after `delay`, then the end of the
/// body, or a body error when `abort`.
fn sse(
    shared: Arc<Shared>,
    answer: Answer,
    count: usize,
    delay: Option<Duration>,
    abort: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(1);
    tokio::spawn(async move {
        let frames = async {
            for index in 0..count.min(answer.len()) {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let frame = answer.sse_frame(index).unwrap_or_default();
                if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                    return;
                }
            }
            if abort {
                // Let the server write the frames out before the error tears the connection
                // down: wait until the last frame was taken, then let the connection flush.
                let Ok(permit) = tx.reserve().await else {
                    return;
                };
                tokio::task::yield_now().await;
                permit.send(Err(io::Error::other("scripted abort of the sse body")));
            }
        };
        tokio::select! {
            () = frames => {}
            () = shared.stopped() => {}
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body =
        json!({"error": {"type": "invalid_request_error", "code": null, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
