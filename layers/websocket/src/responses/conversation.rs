//! Conversations of the Responses API: which requests continue an earlier response, and which
//! response an answer belongs to, so that a conversation keeps its socket.
//!
//! In WebSocket mode the upstream keeps each connection's recent responses in memory. With
//! `store: false` (and under Zero Data Retention) that memory is the only place where a
//! `previous_response_id` can be found: another connection answers `previous_response_not_found`,
//! and so does the HTTP endpoint. With `store: true` (the API's default) any connection, and
//! the HTTP endpoint, can load the response from storage, but the connection that produced it
//! continues faster. (OpenAI's WebSocket-mode guide,
//! <https://developers.openai.com/api/docs/guides/websocket-mode>: "With `store=false` ...
//! there is no persisted fallback. If the ID is uncached, the request returns
//! `previous_response_not_found`", and "When a connection closes ... its connection-local
//! cache disappears".)
//!
//! So the [`ResponsesCodec`](super::ResponsesCodec) tells the [`Pool`](crate::Pool):
//!
//! - **which requests follow their conversation** ([`Codec::continues`](crate::Codec::continues)):
//!   every request whose body has a non-empty string `previous_response_id`, whatever its
//!   `store`, streaming or not; see [`previous_response_id`];
//! - **which response an answer produced** ([`Codec::response_id`](crate::Codec::response_id)):
//!   the `response.id` of its first event (`response.created`, which the API sends first); see
//!   [`response_id`].
//!
//! The pool sends a following request to the connection that produced its previous response,
//! waiting (a bounded time, [`PoolBuilder::conversation_wait`](crate::PoolBuilder::conversation_wait))
//! while that connection serves another request. When that connection has died (the upstream
//! closed it, it expired, or an answer on it was cut short), or the wait ran out, the request
//! takes another connection like any other request, and the upstream's answer, whatever it is
//! (`previous_response_not_found` with `store: false`, the continued answer with `store: true`),
//! reaches the client unchanged. Nothing is rewritten: the request is never stripped of its
//! `previous_response_id` nor replayed with the full history, which only the client has.
//!
//! # Example
//!
//! ```
//! use wsfirst_websocket::{Message, responses::conversation};
//!
//! let turn = br#"{"model":"gpt-5","store":false,"previous_response_id":"resp_1","input":"and then?"}"#;
//! assert_eq!(conversation::previous_response_id(turn).as_deref(), Some("resp_1"));
//! assert_eq!(conversation::previous_response_id(br#"{"model":"gpt-5","input":"hi"}"#), None);
//!
//! let created = Message::text(r#"{"type":"response.created","response":{"id":"resp_2","status":"in_progress"}}"#);
//! assert_eq!(conversation::response_id(&created).as_deref(), Some("resp_2"));
//! ```

use std::borrow::Cow;

use serde::Deserialize;

use crate::Message;

/// The `previous_response_id` of a Responses API request body: a non-empty JSON string at the
/// top level of the object. `None` for a body that is not a JSON object, has no such field, or
/// has `null` or an empty string there (the API's way of starting a new chain).
pub fn previous_response_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(default, borrow)]
        previous_response_id: Option<Cow<'a, str>>,
    }
    // A derived struct also reads a JSON array, field by field: only an object is a request.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let request: Request<'_> = serde_json::from_slice(body).ok()?;
    request
        .previous_response_id
        .filter(|id| !id.is_empty())
        .map(Cow::into_owned)
}

/// Whether a Responses API request body asks for `"store": false` (a top-level JSON `false`):
/// the response then lives only in the memory of the connection that produces it, so the pool
/// holds that connection for the conversation's next turn
/// ([`Codec::holds`](crate::Codec::holds)).
pub fn unstored(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Request {
        #[serde(default)]
        store: Option<bool>,
    }
    // Most bodies say nothing of `store`: a search is cheaper than parsing them.
    const STORE: &[u8] = br#""store""#;
    if !body.windows(STORE.len()).any(|window| window == STORE) {
        return false;
    }
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    serde_json::from_slice::<Request>(body).is_ok_and(|request| request.store == Some(false))
}

/// The id of the response that this message of an answer belongs to: the non-empty
/// `response.id` of a `response.*` event that carries the response object (`response.created`,
/// `response.in_progress`, `response.completed`, ...). `None` for any other message.
pub fn response_id(message: &Message) -> Option<String> {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(default, borrow)]
        response: Option<Response<'a>>,
    }
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(default, borrow)]
        id: Option<Cow<'a, str>>,
    }
    let Message::Text(text) = message else {
        return None;
    };
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let event: Event<'_> = serde_json::from_str(text.as_str()).ok()?;
    if !event.kind.starts_with("response.") {
        return None;
    }
    event
        .response?
        .id
        .filter(|id| !id.is_empty())
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_response_id_is_a_top_level_non_empty_string() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (
                br#"{"previous_response_id":"resp_a","input":"x"}"#,
                Some("resp_a"),
            ),
            (
                br#"{"store":false,"previous_response_id":"r\u0031"}"#,
                Some("r1"),
            ),
            (br#"{"previous_response_id":null}"#, None),
            (br#"{"previous_response_id":""}"#, None),
            (br#"{"input":{"previous_response_id":"nested"}}"#, None),
            (br#"{"input":"previous_response_id"}"#, None),
            (br#"{"previous_response_id":42}"#, None),
            (b"not json", None),
            (br#"["previous_response_id"]"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                previous_response_id(body).as_deref(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn unstored_is_a_top_level_false_store() {
        assert!(unstored(br#"{"model":"m","store":false,"input":"x"}"#));
        assert!(!unstored(br#"{"model":"m","store":true}"#));
        assert!(!unstored(br#"{"model":"m"}"#));
        assert!(!unstored(br#"{"input":{"store":false}}"#));
        assert!(!unstored(br#"["store",false]"#));
        assert!(!unstored(b"\"store\" not json"));
    }

    #[test]
    fn response_id_comes_from_response_events_only() {
        let cases = [
            (
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response"}}"#,
                Some("resp_1"),
            ),
            (
                r#"{"type":"response.completed","response":{"output":[],"id":"resp_2"}}"#,
                Some("resp_2"),
            ),
            (
                r#"{"type":"response.output_text.delta","item_id":"msg_1","delta":"hi"}"#,
                None,
            ),
            (
                r#"{"type":"error","status":400,"error":{"code":"previous_response_not_found"}}"#,
                None,
            ),
            (r#"{"type":"other","response":{"id":"resp_3"}}"#, None),
            (r#"{"type":"response.created","response":{"id":""}}"#, None),
            (r#"{"type":"response.created","response":null}"#, None),
            ("not json", None),
            (r#"["response.created",{"id":"resp_4"}]"#, None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                response_id(&Message::text(text)).as_deref(),
                expected,
                "{text}"
            );
        }
        assert_eq!(
            response_id(&Message::binary(bytes::Bytes::from_static(
                br#"{"type":"response.created","response":{"id":"r"}}"#
            ))),
            None
        );
    }
}
