//! The WebSocket side of the test upstream.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        FromRequestParts,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use wsfirst_core::Transport;

use super::{
    Answer, CapturedRequest, WsScript,
    shared::{Memory, Shared, Turn, not_found_event},
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
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let connection = shared.accepted();
            shared.open_ws.send_modify(|open| *open += 1);
            let mut conn = Connection {
                socket,
                shared: Arc::clone(&shared),
                script,
                id: connection,
                uri,
                headers,
                memory: Memory::default(),
                complete: false,
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

/// One accepted WebSocket connection.
struct Connection {
    socket: WebSocket,
    shared: Arc<Shared>,
    script: WsScript,
    id: u64,
    uri: Uri,
    headers: HeaderMap,
    /// The responses this connection produced, as the API keeps them in its memory.
    memory: Memory,
    /// Whether the last answer was sent in full.
    complete: bool,
    /// How many requests this connection received.
    requests: usize,
}

impl Connection {
    async fn serve(&mut self) {
        let mut close_ws = self.shared.close_ws.subscribe();
        loop {
            let shared = Arc::clone(&self.shared);
            let message = tokio::select! {
                message = self.socket.recv() => message,
                () = shared.stopped() => return self.close(1001, false).await,
                _ = close_ws.changed() => return self.close(1001, false).await,
            };
            let body = match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => Bytes::copy_from_slice(text.as_str().as_bytes()),
                Some(Ok(Message::Binary(data))) if self.script == WsScript::Raw => data,
                Some(Ok(_)) => continue,
            };
            if self.script != WsScript::Raw && !is_response_create(&body) {
                let error = error_event(
                    "invalid_request",
                    "expected a JSON message with \"type\": \"response.create\"",
                );
                if self.socket.send(Message::text(error)).await.is_err() {
                    return;
                }
                continue;
            }
            let turn = Turn::of(&body);
            self.requests += 1;
            self.shared.executed(CapturedRequest {
                transport: Transport::WebSocket,
                uri: self.uri.clone(),
                headers: self.headers.clone(),
                body,
                connection: Some(self.id),
            });
            // A response this connection did not produce, and nobody stored, is not found.
            if let Some(previous) = turn.previous.as_deref().filter(|id| !self.knows(id)) {
                if self.script != WsScript::Raw {
                    match self.send(not_found_event(previous)).await {
                        Next::Continue => continue,
                        _ => return,
                    }
                }
            }
            let answer = self.shared.next_answer();
            self.complete = false;
            let next = tokio::select! {
                next = self.answer(&answer) => next,
                () = shared.stopped() => return self.close(1001, false).await,
            };
            if self.complete {
                self.shared.produced(&turn, &answer, Some(&mut self.memory));
            }
            match next {
                Next::Continue => {}
                Next::Close(code) => return self.close(code, true).await,
                Next::Stop => return,
            }
        }
    }

    /// Answers one request according to the script.
    async fn answer(&mut self, answer: &Answer) -> Next {
        let all = answer.len();
        match self.script.clone() {
            WsScript::Accept => self.send_events(answer, all, None).await,
            WsScript::SlowEvents { delay } => self.send_events(answer, all, Some(delay)).await,
            WsScript::CloseBeforeFirstEvent { code } => Next::Close(code),
            WsScript::CloseOnRequest { request, code } if request == self.requests => {
                Next::Close(code)
            }
            WsScript::CloseOnRequest { .. } => self.send_events(answer, all, None).await,
            WsScript::CloseAfterEvents { events, code } => {
                match self.send_events(answer, events, None).await {
                    Next::Continue => Next::Close(code),
                    other => other,
                }
            }
            WsScript::ErrorEvent {
                code,
                message,
                after_events,
            } => match self.send_events(answer, after_events, None).await {
                Next::Continue => self.send(error_event(&code, &message)).await,
                other => other,
            },
            WsScript::Stall { after_events } => {
                if let Next::Continue = self.send_events(answer, after_events, None).await {
                    // Silent until the client goes away; whatever it sends is ignored.
                    while let Some(Ok(message)) = self.socket.recv().await {
                        if let Message::Close(_) = message {
                            break;
                        }
                    }
                }
                Next::Stop
            }
            WsScript::Raw => match self.send_events(answer, all, None).await {
                Next::Continue => Next::Close(1000),
                other => other,
            },
            // Handled before the upgrade.
            WsScript::Refuse { .. } | WsScript::Hang => Next::Stop,
        }
    }

    /// Sends the first `count` events of the answer, waiting `delay` before each.
    async fn send_events(
        &mut self,
        answer: &Answer,
        count: usize,
        delay: Option<Duration>,
    ) -> Next {
        for message in answer.messages().iter().take(count) {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if let Next::Stop = self.send(message.clone()).await {
                return Next::Stop;
            }
        }
        self.complete = count >= answer.len();
        Next::Continue
    }

    /// Whether this connection can continue response `id`: it produced it, or it was stored.
    fn knows(&self, id: &str) -> bool {
        self.memory.knows(id) || self.shared.is_stored(id)
    }

    async fn send(&mut self, text: String) -> Next {
        match self.socket.send(Message::text(text)).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
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
        if self.socket.send(Message::Close(Some(frame))).await.is_err() || !wait {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.socket.recv().await {}
        })
        .await;
    }
}

fn is_response_create(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|value| value.get("type").and_then(Value::as_str) == Some("response.create"))
}

/// `{"type":"error","error":{"code":<code>,"message":<message>}}`.
pub(super) fn error_event(code: &str, message: &str) -> String {
    json!({"type": "error", "error": {"code": code, "message": message}}).to_string()
}
