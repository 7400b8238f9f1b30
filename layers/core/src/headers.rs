//! Which request headers reach the upstream: the headers no layer ever forwards, and the
//! [`HeaderPolicy`] that decides the rest, the same way for both transports.
//!
//! Hop-by-hop headers describe one connection, not the request (RFC 9110 §7.6.1), so they are
//! never copied from a client's request to an upstream request, over HTTP or WebSocket. The
//! WebSocket handshake's own headers are set by the WebSocket client, and `Host` and
//! `Content-Length` by whichever client sends the upstream request (from the URL and the body),
//! so they cannot be forwarded or configured either. Every layer and the facade's configuration
//! ask these functions, so they cannot disagree.
//!
//! A [`HeaderPolicy`] is an allowlist: the request headers it names (for the Responses API
//! `authorization`, `openai-beta`, `openai-organization`, `openai-project`), then its static
//! headers, which replace the client's (a gateway that holds the API key sets `authorization`
//! here). The WebSocket handshake and the HTTP request get exactly these; the HTTP request adds
//! the [`BODY_HEADERS`] that describe the body it carries and the policy's session headers,
//! which route one session or turn (Codex's `session-id`, `x-codex-turn-state`...,
//! [`RESPONSES_SESSION_HEADERS`]) and so never go on the handshake of a pooled connection that
//! serves every session. Nothing else is forwarded: no `cookie`, no header that a layer reads
//! for itself (such as the eligibility override header), no header the policy does not name.
//!
//! The other way, an HTTP upstream's response headers reach the client as they are; of a
//! WebSocket handshake's answer, only the policy's answer headers do
//! ([`RESPONSES_ANSWER_HEADERS`], such as `x-codex-turn-state`), on the response of each
//! request the connection serves.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderName, HeaderValue, header::{AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_PROTOCOL}};
//! use wsfirst_core::{Transport, headers::{self, HeaderPolicy}};
//!
//! assert!(headers::is_hop_by_hop(&CONNECTION));
//! assert!(headers::is_reserved_for_websocket(&SEC_WEBSOCKET_PROTOCOL));
//! assert!(!headers::is_reserved_for_websocket(&AUTHORIZATION));
//!
//! let policy = HeaderPolicy::builder()
//!     .forward_header(HeaderName::from_static("openai-project"))
//!     .static_header(AUTHORIZATION, HeaderValue::from_static("Bearer sk-gateway"))
//!     .build()?;
//! let mut request = HeaderMap::new();
//! request.insert("authorization", HeaderValue::from_static("Bearer sk-client"));
//! request.insert("openai-project", HeaderValue::from_static("proj_1"));
//! request.insert("content-type", HeaderValue::from_static("application/json"));
//! request.insert("cookie", HeaderValue::from_static("session=1"));
//!
//! let handshake = policy.headers_for(&request, Transport::WebSocket);
//! assert_eq!(handshake["authorization"], "Bearer sk-gateway");
//! assert_eq!(handshake["openai-project"], "proj_1");
//! assert_eq!(handshake.len(), 2);
//! // Over HTTP: the same, plus the body's content type.
//! let http = policy.headers_for(&request, Transport::Http);
//! assert_eq!(http.len(), 3);
//! assert_eq!(http["content-type"], "application/json");
//!
//! // Hop-by-hop and handshake headers can be neither forwarded nor set.
//! let error = HeaderPolicy::builder().forward_header(CONNECTION).build().unwrap_err();
//! assert_eq!(error.field(), "forward_headers");
//! # Ok::<(), headers::ReservedHeader>(())
//! ```

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{self, GetAll},
};

use crate::Transport;

mod names;

pub use names::{
    BODY_HEADERS, HOP_BY_HOP, RESPONSES_ANSWER_HEADERS, RESPONSES_FORWARD_HEADERS,
    RESPONSES_LIST_HEADERS, RESPONSES_SESSION_HEADERS, WEBSOCKET_HANDSHAKE, is_hop_by_hop,
    is_reserved_for_websocket,
};

/// Which request headers reach the upstream, over either transport: one value per route,
/// handed to the WebSocket handshake and to the HTTP request alike, so the two cannot differ.
///
/// - The headers of the [forward list](HeaderPolicyBuilder::forward_header) are copied from the
///   request (every value), unless the request's `Connection` header names them.
/// - Then each [static header](HeaderPolicyBuilder::static_header) is set, replacing the
///   request's header of that name, except for the [list headers](HeaderPolicyBuilder::list_header)
///   (the Responses API's `openai-beta`), whose items it adds to the request's own,
///   comma-separated and without duplicates.
/// - Over HTTP only, the [session headers](HeaderPolicyBuilder::session_header) and the
///   [`BODY_HEADERS`] present in the request are copied too.
///
/// Nothing else is forwarded. `Host` and `Content-Length` are set by the client that sends the
/// upstream request, from the URL and the body. The default forwards nothing but the body
/// headers over HTTP; a [`Route`](crate::Route)'s default is [`HeaderPolicy::responses`].
///
/// Cheap to clone (one `Arc`); `Debug` shows static header names, never their values. See the
/// [module docs](self) for an example.
#[derive(Clone, Default)]
pub struct HeaderPolicy(Arc<PolicyInner>);

#[derive(Clone, Default)]
struct PolicyInner {
    forward: Vec<HeaderName>,
    session: Vec<HeaderName>,
    answer: Vec<HeaderName>,
    fixed: Vec<(HeaderName, HeaderValue)>,
    lists: Vec<HeaderName>,
}

impl HeaderPolicy {
    /// Starts an empty policy.
    pub fn builder() -> HeaderPolicyBuilder {
        HeaderPolicyBuilder::default()
    }

    /// The OpenAI Responses API's policy, the default of every [`Route`](crate::Route): it
    /// forwards [`RESPONSES_FORWARD_HEADERS`], with `openai-beta` a list header
    /// ([`RESPONSES_LIST_HEADERS`]), forwards the [`RESPONSES_SESSION_HEADERS`] over HTTP,
    /// passes the [`RESPONSES_ANSWER_HEADERS`] of a handshake's answer on to the client, and
    /// sets nothing.
    ///
    /// ```
    /// use wsfirst_core::headers::{HeaderPolicy, RESPONSES_FORWARD_HEADERS};
    ///
    /// let policy = HeaderPolicy::responses();
    /// assert_eq!(policy.forward_headers(), &RESPONSES_FORWARD_HEADERS);
    /// // Add to it, such as a gateway's own key:
    /// let gateway = policy
    ///     .to_builder()
    ///     .static_header(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer sk-gateway"))
    ///     .build()?;
    /// assert!(gateway.static_value(&http::header::AUTHORIZATION).is_some());
    /// # Ok::<(), wsfirst_core::headers::ReservedHeader>(())
    /// ```
    pub fn responses() -> Self {
        static RESPONSES: OnceLock<HeaderPolicy> = OnceLock::new();
        RESPONSES
            .get_or_init(|| {
                HeaderPolicy(Arc::new(PolicyInner {
                    forward: RESPONSES_FORWARD_HEADERS.to_vec(),
                    session: RESPONSES_SESSION_HEADERS.to_vec(),
                    answer: RESPONSES_ANSWER_HEADERS.to_vec(),
                    fixed: Vec::new(),
                    lists: RESPONSES_LIST_HEADERS.to_vec(),
                }))
            })
            .clone()
    }

    /// A builder holding this policy's lists, to add to them.
    pub fn to_builder(&self) -> HeaderPolicyBuilder {
        HeaderPolicyBuilder {
            forward: self.0.forward.clone(),
            session: self.0.session.clone(),
            answer: self.0.answer.clone(),
            fixed: self.0.fixed.clone(),
            lists: self.0.lists.clone(),
        }
    }

    /// The request headers forwarded to both transports, in order, without duplicates.
    pub fn forward_headers(&self) -> &[HeaderName] {
        &self.0.forward
    }

    /// The request headers forwarded with each HTTP request but not on a WebSocket handshake
    /// (see [`session_header`](HeaderPolicyBuilder::session_header)), in order, without
    /// duplicates.
    pub fn session_headers(&self) -> &[HeaderName] {
        &self.0.session
    }

    /// The headers of an upstream's WebSocket handshake answer that reach the client with each
    /// response served on that connection (see
    /// [`answer_header`](HeaderPolicyBuilder::answer_header)).
    pub fn answer_headers(&self) -> &[HeaderName] {
        &self.0.answer
    }

    /// The headers of a WebSocket handshake's answer that the policy passes on to the client:
    /// every value of each [answer header](Self::answer_headers) present.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use wsfirst_core::headers::HeaderPolicy;
    ///
    /// let mut handshake = HeaderMap::new();
    /// handshake.insert("x-codex-turn-state", HeaderValue::from_static("ts-1"));
    /// handshake.insert("set-cookie", HeaderValue::from_static("lb=1"));
    /// let answer = HeaderPolicy::responses().answer_for(&handshake);
    /// assert_eq!(answer["x-codex-turn-state"], "ts-1");
    /// assert_eq!(answer.len(), 1);
    /// ```
    pub fn answer_for(&self, handshake: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::new();
        for name in &self.0.answer {
            for value in handshake.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept
    }

    /// The headers set on every upstream request, over both transports.
    pub fn static_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0.fixed
    }

    /// The headers whose static value is added to the request's items instead of replacing
    /// them.
    pub fn list_headers(&self) -> &[HeaderName] {
        &self.0.lists
    }

    /// The value the policy sets for `name` in place of the request's, if any: its last static
    /// value of that name, unless `name` is a list header (whose value the request's items
    /// join).
    pub fn static_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        if self.0.lists.contains(name) {
            return None;
        }
        self.0
            .fixed
            .iter()
            .rev()
            .find(|(fixed, _)| fixed == name)
            .map(|(_, value)| value)
    }

    /// Whether the policy forwards or sets `name` (on either transport, [session
    /// headers](Self::session_headers) included; the [`BODY_HEADERS`] that only HTTP carries
    /// are not counted).
    pub fn forwards_or_sets(&self, name: &HeaderName) -> bool {
        self.0.forward.contains(name)
            || self.0.session.contains(name)
            || self.0.fixed.iter().any(|(fixed, _)| fixed == name)
    }

    /// The same policy without `name`: neither forwarded nor set. The facade removes the
    /// eligibility override header this way, which a layer reads and the upstream never sees.
    ///
    /// ```
    /// use http::{HeaderName, HeaderValue};
    /// use wsfirst_core::headers::HeaderPolicy;
    ///
    /// let name = HeaderName::from_static("x-wsfirst-transport");
    /// let policy = HeaderPolicy::builder().forward_header(name.clone()).build()?;
    /// assert!(policy.forwards_or_sets(&name));
    /// assert!(!policy.without(&name).forwards_or_sets(&name));
    /// # Ok::<(), wsfirst_core::headers::ReservedHeader>(())
    /// ```
    pub fn without(&self, name: &HeaderName) -> Self {
        let mut inner = PolicyInner::clone(&self.0);
        inner.forward.retain(|forwarded| forwarded != name);
        inner.session.retain(|forwarded| forwarded != name);
        inner.fixed.retain(|(fixed, _)| fixed != name);
        Self(Arc::new(inner))
    }

    /// The headers of the upstream request sent over `transport` for a request with these
    /// headers (see the [type docs](Self)).
    pub fn headers_for(&self, request: &HeaderMap, transport: Transport) -> HeaderMap {
        // A header that `Connection` names is hop-by-hop for this request (RFC 9110 §7.6.1).
        let named_by_connection: Vec<HeaderName> = request
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        let inner = &*self.0;
        // Per request: the session's headers and the body's, over HTTP only.
        let per_request: &[HeaderName] = match transport {
            Transport::Http => &inner.session,
            Transport::WebSocket => &[],
        };
        let body: &[HeaderName] = match transport {
            Transport::Http => &BODY_HEADERS,
            Transport::WebSocket => &[],
        };
        let names = inner.forward.iter().chain(
            per_request
                .iter()
                .chain(body.iter().filter(|name| !per_request.contains(name)))
                .filter(|name| !inner.forward.contains(name)),
        );
        let mut headers = HeaderMap::with_capacity(inner.forward.len() + inner.fixed.len());
        for name in names {
            if named_by_connection.contains(name) {
                continue;
            }
            for value in request.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &inner.fixed {
            let value = if inner.lists.contains(name) {
                merge_list(headers.get_all(name), value)
            } else {
                value.clone()
            };
            headers.insert(name.clone(), value);
        }
        headers
    }
}

impl fmt::Debug for HeaderPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderPolicy")
            .field("forward_headers", &self.0.forward)
            .field("session_headers", &self.0.session)
            .field("answer_headers", &self.0.answer)
            .field(
                "static_headers",
                &self
                    .0
                    .fixed
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("list_headers", &self.0.lists)
            .finish()
    }
}

/// The items of every `values` (comma-separated, trimmed, empty ones dropped), then those of
/// `added` that are not among them, as one comma-separated value; no item twice.
fn merge_list(values: GetAll<'_, HeaderValue>, added: &HeaderValue) -> HeaderValue {
    let mut items: Vec<&[u8]> = Vec::new();
    for value in values.iter().chain([added]) {
        for item in value.as_bytes().split(|byte| *byte == b',') {
            let item = item.trim_ascii();
            if !item.is_empty() && !items.contains(&item) {
                items.push(item);
            }
        }
    }
    // Items of valid values, joined by ", ": a valid value too.
    HeaderValue::from_bytes(&items.join(&b", "[..])).unwrap_or_else(|_| added.clone())
}

/// Builds a [`HeaderPolicy`]; see [`HeaderPolicy::builder`].
#[derive(Clone, Default)]
pub struct HeaderPolicyBuilder {
    forward: Vec<HeaderName>,
    session: Vec<HeaderName>,
    answer: Vec<HeaderName>,
    fixed: Vec<(HeaderName, HeaderValue)>,
    lists: Vec<HeaderName>,
}

impl HeaderPolicyBuilder {
    /// Forwards this request header (every value) to both transports.
    pub fn forward_header(mut self, name: HeaderName) -> Self {
        if !self.forward.contains(&name) {
            self.forward.push(name);
        }
        self
    }

    /// Forwards these request headers too (see [`forward_header`](Self::forward_header)).
    pub fn forward_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        names.into_iter().fold(self, Self::forward_header)
    }

    /// Forwards this request header (every value) with each HTTP request, but never on a
    /// WebSocket handshake: a header that routes one session or turn (such as Codex's
    /// `session-id`, see [`RESPONSES_SESSION_HEADERS`]), which a pooled connection, shared by
    /// sessions and keyed by its handshake headers, must not carry. A header also
    /// [forwarded](Self::forward_header) goes to both transports.
    pub fn session_header(mut self, name: HeaderName) -> Self {
        if !self.session.contains(&name) {
            self.session.push(name);
        }
        self
    }

    /// Forwards these request headers with each HTTP request too (see
    /// [`session_header`](Self::session_header)).
    pub fn session_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        names.into_iter().fold(self, Self::session_header)
    }

    /// Passes this header of an upstream's WebSocket handshake answer on to the client, on the
    /// response of each request served on that connection (the HTTP upstream's response
    /// headers reach the client as they are).
    pub fn answer_header(mut self, name: HeaderName) -> Self {
        if !self.answer.contains(&name) {
            self.answer.push(name);
        }
        self
    }

    /// Sets this header on every upstream request, over both transports, replacing the
    /// request's header of the same name (or, for a [list header](Self::list_header), adding
    /// its items to the request's). A later value of the same name replaces an earlier one.
    pub fn static_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.fixed.push((name, value));
        self
    }

    /// Makes `name` a list header: its static value's comma-separated items are added to the
    /// request's own, without duplicates, instead of replacing them (the Responses API's
    /// `openai-beta` flags).
    pub fn list_header(mut self, name: HeaderName) -> Self {
        if !self.lists.contains(&name) {
            self.lists.push(name);
        }
        self
    }

    /// Checks the names and builds the policy: a hop-by-hop or handshake header
    /// ([`is_reserved_for_websocket`]) in any list is a [`ReservedHeader`] error.
    pub fn build(self) -> Result<HeaderPolicy, ReservedHeader> {
        let reserved = |field: &'static str, name: &HeaderName| {
            is_reserved_for_websocket(name).then(|| ReservedHeader {
                field,
                name: name.clone(),
            })
        };
        if let Some(error) = self
            .forward
            .iter()
            .find_map(|name| reserved("forward_headers", name))
            .or_else(|| {
                self.session
                    .iter()
                    .find_map(|name| reserved("session_headers", name))
            })
            .or_else(|| {
                self.answer
                    .iter()
                    .find_map(|name| reserved("answer_headers", name))
            })
            .or_else(|| {
                self.fixed
                    .iter()
                    .find_map(|(name, _)| reserved("static_headers", name))
            })
        {
            return Err(error);
        }
        Ok(HeaderPolicy(Arc::new(PolicyInner {
            forward: self.forward,
            session: self.session,
            answer: self.answer,
            fixed: self.fixed,
            lists: self.lists,
        })))
    }
}

impl fmt::Debug for HeaderPolicyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderPolicyBuilder")
            .field("forward_headers", &self.forward)
            .field("session_headers", &self.session)
            .field("answer_headers", &self.answer)
            .field(
                "static_headers",
                &self.fixed.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("list_headers", &self.lists)
            .finish()
    }
}

/// A hop-by-hop or handshake header ([`is_reserved_for_websocket`]) given to a
/// [`HeaderPolicyBuilder`]: no policy may forward or set it.
///
/// ```
/// use http::header::{HOST, HeaderValue};
/// use wsfirst_core::headers::HeaderPolicy;
///
/// let error = HeaderPolicy::builder()
///     .static_header(HOST, HeaderValue::from_static("example.com"))
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "static_headers");
/// assert_eq!(error.to_string(), "static_headers: host is a hop-by-hop or handshake header and is never forwarded");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedHeader {
    field: &'static str,
    name: HeaderName,
}

impl ReservedHeader {
    /// The list it was given to: `forward_headers`, `session_headers`, `answer_headers` or
    /// `static_headers`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The header.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl fmt::Display for ReservedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} is a hop-by-hop or handshake header and is never forwarded",
            self.field, self.name
        )
    }
}

impl std::error::Error for ReservedHeader {}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        headers.keys().map(HeaderName::as_str).collect()
    }

    fn responses() -> HeaderPolicyBuilder {
        HeaderPolicy::responses().to_builder()
    }

    #[test]
    fn static_values_are_the_last_set_and_never_a_list_header_s() {
        let policy = responses()
            .static_header(header::AUTHORIZATION, HeaderValue::from_static("first"))
            .static_header(header::AUTHORIZATION, HeaderValue::from_static("last"))
            .static_header(
                HeaderName::from_static("openai-beta"),
                HeaderValue::from_static("flag"),
            )
            .build()
            .unwrap();
        assert_eq!(policy.static_value(&header::AUTHORIZATION).unwrap(), "last");
        assert!(
            policy
                .static_value(&HeaderName::from_static("openai-beta"))
                .is_none()
        );
        assert!(
            HeaderPolicy::responses()
                .static_value(&header::AUTHORIZATION)
                .is_none()
        );
    }

    #[test]
    fn the_lists_do_not_overlap_and_hold_lower_case_names() {
        for name in HOP_BY_HOP
            .iter()
            .chain(&WEBSOCKET_HANDSHAKE)
            .chain(&BODY_HEADERS)
        {
            assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
        }
        assert!(HOP_BY_HOP.iter().all(|n| !WEBSOCKET_HANDSHAKE.contains(n)));
        assert!(BODY_HEADERS.iter().all(|n| !is_reserved_for_websocket(n)));
    }

    #[test]
    fn end_to_end_headers_are_not_reserved() {
        for name in [
            "authorization",
            "openai-beta",
            "x-session-id",
            "content-type",
        ] {
            let name = HeaderName::from_static(name);
            assert!(!is_reserved_for_websocket(&name), "{name}");
        }
    }

    #[test]
    fn only_listed_headers_reach_either_transport() {
        let policy = responses().build().unwrap();
        let incoming = request(&[
            ("host", "gateway.local"),
            ("authorization", "Bearer sk-1"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("upgrade", "h2c"),
            ("content-length", "17"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("accept-encoding", "gzip"),
            ("cookie", "session=1"),
            ("x-wsfirst-transport", "http"),
            ("x-custom", "1"),
            ("user-agent", "client/1"),
            ("openai-beta", "a"),
            ("openai-beta", "b"),
        ]);
        let handshake = policy.headers_for(&incoming, Transport::WebSocket);
        assert_eq!(names(&handshake), ["authorization", "openai-beta"]);
        assert_eq!(handshake.get_all("openai-beta").iter().count(), 2);
        let http = policy.headers_for(&incoming, Transport::Http);
        assert_eq!(
            names(&http),
            ["authorization", "openai-beta", "content-type", "accept"]
        );
        // The default policy forwards nothing but the body headers, and only over HTTP.
        let empty = HeaderPolicy::default();
        assert!(
            empty
                .headers_for(&incoming, Transport::WebSocket)
                .is_empty()
        );
        assert_eq!(
            names(&empty.headers_for(&incoming, Transport::Http)),
            ["content-type", "accept"]
        );
    }

    #[test]
    fn session_headers_go_with_http_requests_only() {
        let incoming = request(&[
            ("authorization", "Bearer sk-1"),
            ("session-id", "s-1"),
            ("x-codex-turn-state", "ts-1"),
            ("x-codex-turn-metadata", "{}"),
            ("originator", "codex_exec"),
            ("x-codex-unknown", "1"),
            ("content-type", "application/json"),
        ]);
        let policy = HeaderPolicy::responses();
        assert_eq!(
            names(&policy.headers_for(&incoming, Transport::WebSocket)),
            ["authorization"]
        );
        assert_eq!(
            names(&policy.headers_for(&incoming, Transport::Http)),
            [
                "authorization",
                "session-id",
                "originator",
                "x-codex-turn-state",
                "x-codex-turn-metadata",
                "content-type"
            ]
        );
        // Also forwarded: on the handshake too, once.
        let both = responses()
            .forward_header(HeaderName::from_static("session-id"))
            .build()
            .unwrap();
        assert_eq!(
            names(&both.headers_for(&incoming, Transport::WebSocket)),
            ["authorization", "session-id"]
        );
        let http = both.headers_for(&incoming, Transport::Http);
        assert_eq!(http.get_all("session-id").iter().count(), 1);
        // Removed like any other.
        let name = HeaderName::from_static("x-codex-turn-state");
        assert!(policy.forwards_or_sets(&name));
        assert!(!policy.without(&name).forwards_or_sets(&name));
        let error = HeaderPolicy::builder()
            .session_header(header::TE)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "session_headers");
    }

    #[test]
    fn only_answer_headers_of_a_handshake_reach_the_client() {
        let handshake = request(&[
            ("x-codex-turn-state", "ts-1"),
            ("openai-model", "gpt-kit"),
            ("x-models-etag", "e1"),
            ("x-reasoning-included", "true"),
            ("set-cookie", "lb=1"),
            ("sec-websocket-accept", "abc"),
            ("x-request-id", "req_1"),
        ]);
        let answer = HeaderPolicy::responses().answer_for(&handshake);
        assert_eq!(
            names(&answer),
            [
                "x-codex-turn-state",
                "x-models-etag",
                "x-reasoning-included",
                "openai-model"
            ]
        );
        assert!(HeaderPolicy::default().answer_for(&handshake).is_empty());
        let error = HeaderPolicy::builder()
            .answer_header(header::SEC_WEBSOCKET_ACCEPT)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "answer_headers");
    }

    #[test]
    fn headers_named_by_connection_are_not_forwarded() {
        let policy = responses()
            .forward_header(HeaderName::from_static("x-hop"))
            .build()
            .unwrap();
        let incoming = request(&[
            ("connection", "keep-alive, X-Hop, content-type"),
            ("x-hop", "1"),
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-1"),
        ]);
        for transport in [Transport::WebSocket, Transport::Http] {
            let forwarded = policy.headers_for(&incoming, transport);
            assert_eq!(names(&forwarded), ["authorization"], "{transport}");
        }
    }

    #[test]
    fn static_headers_replace_the_request_s_except_list_headers() {
        let policy = responses()
            .static_header(
                header::AUTHORIZATION,
                HeaderValue::from_static("Bearer sk-route"),
            )
            .static_header(
                HeaderName::from_static("openai-beta"),
                HeaderValue::from_static("responses_websockets=2026-02-06, assistants=v2"),
            )
            .static_header(
                HeaderName::from_static("x-gateway"),
                HeaderValue::from_static("1"),
            )
            .build()
            .unwrap();
        let incoming = request(&[
            ("authorization", "Bearer sk-client"),
            ("openai-beta", "assistants=v2,realtime=v1"),
            ("openai-beta", " , responses_websockets=2026-02-06"),
        ]);
        for transport in [Transport::WebSocket, Transport::Http] {
            let forwarded = policy.headers_for(&incoming, transport);
            assert_eq!(forwarded.get_all("authorization").iter().count(), 1);
            assert_eq!(forwarded["authorization"], "Bearer sk-route");
            assert_eq!(forwarded.get_all("openai-beta").iter().count(), 1);
            assert_eq!(
                forwarded["openai-beta"],
                "assistants=v2, realtime=v1, responses_websockets=2026-02-06"
            );
            assert_eq!(forwarded["x-gateway"], "1");
        }
        // Without client flags, the route's value alone.
        let alone = policy.headers_for(&HeaderMap::new(), Transport::WebSocket);
        assert_eq!(
            alone["openai-beta"],
            "responses_websockets=2026-02-06, assistants=v2"
        );
    }

    #[test]
    fn reserved_headers_fail_the_build_and_without_removes_a_name() {
        let error = HeaderPolicy::builder()
            .forward_header(header::TRANSFER_ENCODING)
            .build()
            .unwrap_err();
        assert_eq!(
            (error.field(), error.name()),
            ("forward_headers", &header::TRANSFER_ENCODING)
        );
        let error = HeaderPolicy::builder()
            .static_header(header::CONTENT_LENGTH, HeaderValue::from_static("1"))
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "static_headers");

        let name = HeaderName::from_static("x-override");
        let policy = responses()
            .forward_header(name.clone())
            .static_header(name.clone(), HeaderValue::from_static("http"))
            .build()
            .unwrap();
        let without = policy.without(&name);
        assert!(policy.forwards_or_sets(&name));
        assert!(!without.forwards_or_sets(&name));
        assert_eq!(without.forward_headers(), &responses().forward[..]);
        let incoming = request(&[("x-override", "http")]);
        assert!(
            without
                .headers_for(&incoming, Transport::WebSocket)
                .is_empty()
        );
    }

    #[test]
    fn debug_hides_static_header_values() {
        let policy = HeaderPolicy::builder()
            .static_header(
                header::AUTHORIZATION,
                HeaderValue::from_static("Bearer sk-secret"),
            )
            .build()
            .unwrap();
        let debug = format!("{policy:?}");
        assert!(debug.contains("authorization"), "{debug}");
        assert!(!debug.contains("sk-secret"), "{debug}");
    }
}
