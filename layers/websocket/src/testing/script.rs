//! What the test upstream does with a WebSocket connection or an HTTP request.

use std::time::Duration;

use http::StatusCode;

/// What the [`TestUpstream`](super::TestUpstream) does with one WebSocket connection.
///
/// A script is taken when an upgrade request arrives (the next one queued with
/// [`push_ws_script`](super::TestUpstream::push_ws_script), else the default set with
/// [`set_default_ws_script`](super::TestUpstream::set_default_ws_script), which starts as
/// [`WsScript::Accept`]) and applies to every request served on that connection.
///
/// "Events" are the events of the current [`Answer`](super::Answer); each is sent as one text
/// message. A request is a `{"type":"response.create",...}` text message; it is counted in
/// [`ws_requests`](super::TestUpstream::ws_requests) and captured as soon as it is received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsScript {
    /// Accept the upgrade and answer every request with all the answer's events (the default).
    #[default]
    Accept,
    /// Answer the upgrade with this status and body instead of `101 Switching Protocols`.
    Refuse {
        /// The status, such as `500` (the incident) or `426`.
        status: StatusCode,
        /// The body of the answer.
        body: String,
    },
    /// Never answer the upgrade (until the upstream shuts down).
    Hang,
    /// Accept the upgrade, receive the request, then close the connection with this close code
    /// before sending any event. Code `1006` (abnormal closure, which is never sent in a frame)
    /// drops the TCP connection without a close frame; so does `1006` in
    /// [`WsScript::CloseAfterEvents`].
    CloseBeforeFirstEvent {
        /// The close code, such as `1011`.
        code: u16,
    },
    /// Accept the upgrade and answer every request with all the answer's events, except the
    /// `request`-th one on this connection (counting from 1): receive it, then close the
    /// connection with `code` before any event, as an upstream that goes away with a request
    /// in hand. `request: 2` closes a connection that a pool reuses after our message was
    /// written.
    CloseOnRequest {
        /// Which request of the connection is met with the close (1 = the first).
        request: usize,
        /// The close code, such as `1001`.
        code: u16,
    },
    /// Accept the upgrade, receive the request, send the first `events` events, then close the
    /// connection with this close code.
    CloseAfterEvents {
        /// How many events to send before closing.
        events: usize,
        /// The close code.
        code: u16,
    },
    /// Accept the upgrade; for each request send the first `after_events` events, then the
    /// error event `{"type":"error","error":{"code":<code>,"message":<message>}}`, without a
    /// `status` (the shape of older upstreams). The connection stays open. With
    /// `after_events: 0` the error comes before any output.
    ///
    /// For an error event as the real API sends it, with its `status` (and the rate-limit
    /// headers of a 429), serve an answer built by [`Answer::error`](super::Answer::error),
    /// [`Answer::rate_limited`](super::Answer::rate_limited),
    /// [`Answer::previous_response_not_found`](super::Answer::previous_response_not_found),
    /// [`Answer::connection_limit_reached`](super::Answer::connection_limit_reached) or
    /// [`Answer::error_event`](super::Answer::error_event), and
    /// [`Answer::interrupted`](super::Answer::interrupted) for one after output.
    ErrorEvent {
        /// The error code, such as `websocket_connection_limit_reached`.
        code: String,
        /// The error message.
        message: String,
        /// How many of the answer's events to send first.
        after_events: usize,
    },
    /// Accept the upgrade and answer every request with all events, waiting `delay` before
    /// each event, the first one included (`tokio::time::sleep`, so paused time drives it).
    SlowEvents {
        /// The wait before each event.
        delay: Duration,
    },
    /// Accept the upgrade, receive the request, send the first `after_events` events, then stay
    /// silent with the connection open (until the client goes away or the upstream shuts down).
    /// With `after_events: 0` no event ever comes: a first-event timeout; otherwise an idle
    /// timeout.
    Stall {
        /// How many events to send before going silent.
        after_events: usize,
    },
    /// A non-Responses upstream, for raw codecs: accept the upgrade, take the first message of
    /// any kind as the request, send all the answer's events, then close with code `1000`.
    Raw,
}

impl WsScript {
    /// [`WsScript::Refuse`] with this status and body.
    pub fn refuse(status: StatusCode, body: impl Into<String>) -> Self {
        WsScript::Refuse {
            status,
            body: body.into(),
        }
    }

    /// [`WsScript::ErrorEvent`] with this code and message, before any output.
    pub fn error_event(code: impl Into<String>, message: impl Into<String>) -> Self {
        WsScript::ErrorEvent {
            code: code.into(),
            message: message.into(),
            after_events: 0,
        }
    }
}

/// What the [`TestUpstream`](super::TestUpstream) does with one HTTP request.
///
/// A script is taken when a request arrives (the next one queued with
/// [`push_http_script`](super::TestUpstream::push_http_script), else the default set with
/// [`set_default_http_script`](super::TestUpstream::set_default_http_script), which starts as
/// [`HttpScript::Answer`]). The request is counted and captured in every case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpScript {
    /// Answer with the current [`Answer`](super::Answer): SSE when the body asks for
    /// `"stream": true`, else the final response JSON (the default).
    #[default]
    Answer,
    /// Answer with this status and body (`content-type: application/json`).
    Status {
        /// The status.
        status: StatusCode,
        /// The body.
        body: String,
    },
    /// Like [`HttpScript::Answer`], but a streaming answer waits `delay` before each SSE frame
    /// (and a non-streaming one waits `delay` once).
    SlowEvents {
        /// The wait before each frame.
        delay: Duration,
    },
    /// Start a streaming answer (status 200, SSE headers), send the first `events` frames,
    /// then abort the body: the client sees a body error.
    AbortAfterEvents {
        /// How many frames to send before aborting.
        events: usize,
    },
}

impl HttpScript {
    /// [`HttpScript::Status`] with this status and a small JSON error body naming it.
    pub fn status(status: StatusCode) -> Self {
        HttpScript::Status {
            status,
            body: serde_json::json!({
                "error": {
                    "type": "server_error",
                    "code": null,
                    "message": format!("scripted status {}", status.as_u16()),
                }
            })
            .to_string(),
        }
    }
}
