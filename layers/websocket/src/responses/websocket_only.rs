//! The request fields that only the Responses API's WebSocket mode knows, and that make a
//! request WebSocket-only ([`WebSocketOnly`](wsfirst_core::WebSocketOnly)).
//!
//! `"generate": false` (a warm-up: the `openai` SDK's `ResponseCreate.generate`, "prepares
//! request state without generating model output"; Codex's prewarm before the first turn) is
//! a field of the `response.create` message only: `POST /v1/responses` refuses it as an unknown
//! parameter. Answered over HTTP in any other way, the next turn's `previous_response_id` would
//! name a response the upstream never had. So the WebSocket layer marks such a request and it is
//! never sent over HTTP ([`ResponsesCodec::websocket_only`](crate::Codec::websocket_only)).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use wsfirst_websocket::{Codec, ResponsesCodec};
//!
//! let codec = ResponsesCodec::new();
//! let (parts, ()) = http::Request::post("/v1/responses").body(()).unwrap().into_parts();
//! let only = |body: &'static str| codec.websocket_only(&parts, &Bytes::from_static(body.as_bytes()));
//! assert_eq!(only(r#"{"model":"m","generate":false,"input":"hi"}"#), Some("generate"));
//! assert_eq!(only(r#"{"model":"m","input":"hi"}"#), None);
//! assert_eq!(only(r#"{"model":"m","input":"\"generate\":false"}"#), None);
//! ```

use serde_json::value::RawValue;

/// The field that makes a request WebSocket-only when it is `false`.
pub const WARM_UP_FIELD: &str = "generate";

/// `Some("generate")` when the JSON object `body` sets `generate` to `false` at its top level.
pub(super) fn find(body: &[u8]) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct Fields<'a> {
        #[serde(borrow, default)]
        generate: Option<&'a RawValue>,
    }
    // Most bodies never mention the field: a substring search answers for them.
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains(WARM_UP_FIELD) {
        return None;
    }
    let fields: Fields<'_> = serde_json::from_str(text).ok()?;
    (fields.generate?.get().trim() == "false").then_some(WARM_UP_FIELD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_top_level_false_makes_a_warm_up() {
        for body in [
            r#"{"generate":false}"#,
            r#"{"model":"m", "generate" : false ,"input":"hi"}"#,
        ] {
            assert_eq!(find(body.as_bytes()), Some("generate"), "{body}");
        }
        for body in [
            r#"{"generate":true}"#,
            r#"{"generate":null}"#,
            r#"{"input":"generate"}"#,
            r#"{"metadata":{"generate":false}}"#,
            r#"{"generates":false}"#,
            "generate",
            r#"{"generate":false"#,
        ] {
            assert_eq!(find(body.as_bytes()), None, "{body}");
        }
    }
}
