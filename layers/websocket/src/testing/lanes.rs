//! The WebSocket mode's messages beyond `response.create` answers, as the test upstream sends
//! them: the lane (`stream_id`) echoed on every event, the warm-up answer of `generate: false`,
//! the three steering events, and the HTTP endpoint's refusal of the WebSocket-only fields.
//!
//! Shapes: the `openai` Python SDK's types (`openai/types/responses/responses_client_event.py`
//! `ResponseCreate.stream_id` / `.generate`, `response_steer_*_event.py`,
//! `response_steer_error_code.py`) and OpenAI's WebSocket-mode guide
//! (<https://developers.openai.com/api/docs/guides/websocket-mode>).

use serde_json::{Value, json};

use super::{Answer, shared::Lane};

/// `text` (an event's JSON object) with `"stream_id":<lane>` added at its end; the text
/// unchanged on the default lane or when it is not a JSON object.
pub(super) fn with_lane(text: &str, lane: &Lane) -> String {
    crate::responses::lanes::with_stream_id(text.to_owned(), lane.as_deref())
}

/// The answer to a `generate: false` request: `response.created` and `response.completed` with
/// an empty output, as Codex's own test upstream answers its warm-up
/// (`codex-rs/core/tests/suite`, `ev_response_created` then `ev_completed`): the response id
/// is kept as the lane's latest response, so the next turn can continue it.
pub(super) fn warm_up(id: &str, model: Option<&str>) -> Answer {
    let response = |status: &str, usage: Value| {
        json!({
            "id": id,
            "object": "response",
            "created_at": 1_700_000_000_u64,
            "status": status,
            "model": model.unwrap_or(Answer::MODEL),
            "output": [],
            "usage": usage,
        })
    };
    Answer::events(vec![
        json!({"type": "response.created", "sequence_number": 0,
               "response": response("in_progress", Value::Null)}),
        json!({"type": "response.completed", "sequence_number": 1,
               "response": response("completed",
                   json!({"input_tokens": 8, "output_tokens": 0, "total_tokens": 8}))}),
    ])
}

/// `response.steer.accepted`: the steering input `id` is queued for `target`.
pub(super) fn steer_accepted(id: &str, target: &str, lane: &Lane) -> String {
    let event = json!({
        "type": "response.steer.accepted",
        "sequence_number": 0,
        "steer": {"id": id, "previous_response_id": target},
    });
    with_lane(&event.to_string(), lane)
}

/// `response.steer.failed` before an id was allocated, with the input returned.
pub(super) fn steer_failed(code: &str, message: &str, steer: &Value, lane: &Lane) -> String {
    crate::responses::lanes::steer_failed(steer, code, message, lane.as_deref())
}

/// The WebSocket mode's 400 error event about a request's parameter.
pub(super) fn invalid_request_event(code: &str, message: &str, param: &str, lane: &Lane) -> String {
    let event = json!({
        "type": "error",
        "status": 400,
        "error": {"type": "invalid_request_error", "code": code, "message": message, "param": param},
    });
    with_lane(&event.to_string(), lane)
}

/// The first top-level field of a `POST` body that the HTTP endpoint does not know: the
/// WebSocket-only `stream_id` and `generate` ("`stream_id` is WebSocket-only and is not part
/// of `POST /v1/responses`", the SDK's `ResponseCreate`).
pub(super) fn websocket_only_field(body: &Value) -> Option<&'static str> {
    ["stream_id", "generate"]
        .into_iter()
        .find(|field| body.get(field).is_some())
}

/// The HTTP endpoint's `400` body for an unknown parameter.
pub(super) fn unknown_parameter_body(field: &str) -> String {
    json!({
        "error": {
            "message": format!("Unknown parameter: '{field}'."),
            "type": "invalid_request_error",
            "param": field,
            "code": "unknown_parameter",
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_up_is_created_then_completed_without_output() {
        let answer = warm_up("resp_w", Some("gpt-x"));
        assert_eq!(answer.event_type(0), Some("response.created"));
        assert_eq!(answer.event_type(1), Some("response.completed"));
        let json: Value = serde_json::from_str(answer.final_json().unwrap()).unwrap();
        assert_eq!(
            (json["id"].as_str(), json["output"].as_array().map(Vec::len)),
            (Some("resp_w"), Some(0))
        );
    }

    #[test]
    fn websocket_only_fields_are_found() {
        assert_eq!(
            websocket_only_field(&json!({"stream_id": "a"})),
            Some("stream_id")
        );
        assert_eq!(
            websocket_only_field(&json!({"generate": false})),
            Some("generate")
        );
        assert_eq!(websocket_only_field(&json!({"input": "x"})), None);
    }
}
