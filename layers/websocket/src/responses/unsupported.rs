//! The request fields that the Responses API's WebSocket mode does not support: a request that
//! sets one goes over HTTP, body unchanged, instead of being sent without it.
//!
//! What the sources say about the `response.create` message, compared with the body of
//! `POST /v1/responses`:
//!
//! - OpenAI's WebSocket-mode guide (<https://developers.openai.com/api/docs/guides/websocket-mode>):
//!   "The payload mirrors the normal Responses create body, except that transport-specific
//!   fields like `stream` and `background` are not used."
//! - The official Python SDK's type of the message (`openai` package,
//!   `src/openai/types/responses/responses_client_event_param.py`, `ResponseCreate`, used by
//!   `client.responses.connect()`): "`stream` is implicit over WebSocket and should not be
//!   sent. `background` is not supported over WebSocket. `stream_id` is WebSocket-only"; it
//!   keeps `stream_options` (obfuscation of streamed deltas, which a WebSocket answer streams
//!   too).
//! - OpenAI's Codex client (`openai/codex`, `codex-rs/codex-api/src/common.rs`,
//!   `ResponseCreateWsRequest`): sends the HTTP fields (`stream` and `stream_options`
//!   included) and has no `background` field at all.
//!
//! So:
//!
//! | field | over the WebSocket |
//! |---|---|
//! | `stream` | the transport switch: read (streaming or JSON answer) and not sent, as before |
//! | `background` `false` or `null` (the default) | not sent: nothing is lost |
//! | `background` with any other value | **unsupported**: the request goes over HTTP |
//! | `stream_options`, every other field | sent unchanged |
//!
//! A background response runs after its request returns and is polled or cancelled later by id
//! (`GET /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`); a WebSocket exchange ends with
//! its answer, so the only faithful transport for it is HTTP. Sending it without the field
//! would run it in the foreground instead, silently.
//!
//! [`ResponsesCodec::unsupported`](crate::Codec::unsupported) names the field before the
//! WebSocket is tried; [`ResponsesCodec::encode`](crate::Codec::encode) refuses such a body too
//! (a replay-safe failure, so a fallback layer sends it over HTTP), rather than drop the field.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use wsfirst_websocket::{Codec, ResponsesCodec, responses::unsupported::UNSUPPORTED_FIELDS};
//!
//! assert_eq!(UNSUPPORTED_FIELDS, ["background"]);
//! let codec = ResponsesCodec::new();
//! let (parts, ()) = http::Request::post("/v1/responses").body(()).unwrap().into_parts();
//! let asks = |body: &'static str| codec.unsupported(&parts, &Bytes::from_static(body.as_bytes()));
//! assert_eq!(asks(r#"{"model":"m","background":true,"input":"hi"}"#), Some("background"));
//! assert_eq!(asks(r#"{"model":"m","background":false,"input":"hi"}"#), None);
//! // Only a top-level field counts, not the word in the input.
//! assert_eq!(asks(r#"{"model":"m","input":"\"background\":true"}"#), None);
//! ```

use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level request fields that the WebSocket mode does not support: a request that sets
/// one to anything but `false` or `null` (the field's default) goes over HTTP.
pub const UNSUPPORTED_FIELDS: &[&str] = &["background"];

/// Whether `value` (raw JSON text) is `false` or `null`: the default of every field in
/// [`UNSUPPORTED_FIELDS`], which leaving the field out means as well.
pub(super) fn is_default(value: &RawValue) -> bool {
    matches!(value.get().trim(), "false" | "null")
}

/// The field of [`UNSUPPORTED_FIELDS`] that `key` names, if any.
pub(super) fn listed(key: &str) -> Option<&'static str> {
    UNSUPPORTED_FIELDS
        .iter()
        .copied()
        .find(|field| *field == key)
}

/// The first field of [`UNSUPPORTED_FIELDS`] that the JSON object `body` sets to something other
/// than its default, if any. A body that is not a JSON object has none (the codec's `encode`
/// reports it).
pub(super) fn find(body: &[u8]) -> Option<&'static str> {
    // Most bodies never mention a field: a substring search (no parsing) answers for them. A key
    // written with escapes (`"b\u0061ckground"`) is missed here, and `encode` refuses it.
    let text = std::str::from_utf8(body).ok()?;
    if !UNSUPPORTED_FIELDS.iter().any(|field| text.contains(field)) {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = deserializer.deserialize_map(Finder).ok()?;
    deserializer.end().ok()?;
    found
}

/// Walks the top-level fields of an object, remembering the first unsupported one that is set.
struct Finder;

impl<'de> Visitor<'de> for Finder {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            match listed(&key) {
                Some(field) if found.is_none() => {
                    let value: &'de RawValue = map.next_value()?;
                    if !is_default(value) {
                        found = Some(field);
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_set_to_anything_but_its_default_is_unsupported() {
        for body in [
            r#"{"background":true}"#,
            r#"{"model":"m","background" : true ,"input":"hi"}"#,
            r#"{"background":"yes"}"#,
            r#"{"background":1}"#,
            r#"{"background":{}}"#,
            // A repeated key: any setting counts, whichever one the upstream would read.
            r#"{"background":false,"background":true}"#,
            r#"{"background":true,"background":false}"#,
            "{\n  \"background\": true\n}",
        ] {
            assert_eq!(find(body.as_bytes()), Some("background"), "{body}");
        }
    }

    #[test]
    fn the_default_or_no_field_is_supported() {
        for body in [
            r#"{"model":"m","input":"hi"}"#,
            r#"{"background":false}"#,
            r#"{"background":null}"#,
            r#"{"background" :  false }"#,
            // The word elsewhere: in a value, nested, as part of another key.
            r#"{"input":"background"}"#,
            r#"{"input":"{\"background\":true}"}"#,
            r#"{"metadata":{"background":"true"}}"#,
            r#"{"input":[{"background":true}]}"#,
            r#"{"backgrounds":true}"#,
        ] {
            assert_eq!(find(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects_have_none() {
        for body in [
            &b"background"[..],
            b"[\"background\",true]",
            b"{\"background\":true",
            b"{\"background\":true} trailing",
            b"\xff\"background\":true",
        ] {
            assert_eq!(find(body), None, "{body:?}");
        }
    }
}
