//! The default policy: a table of (provider, API) pairs allowed on the WebSocket, with a deny
//! list, registered hosts per provider, a message size limit and an opt-in override header.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::{Route, TransportMode};
//! use wsfirst_eligibility::{EligibilityTable, Policy, RequestHead};
//!
//! let table = EligibilityTable::builder()
//!     .allow("openai", "openai-responses")
//!     .deny("openai-codex", "openai-codex-responses")
//!     .provider_host("openai", "api.openai.com")
//!     .override_header(http::HeaderName::from_static("x-wsfirst-transport"))
//!     .build();
//!
//! let route = |provider: &str, api: &str, ws_url: &str| {
//!     Route::builder(provider, api)
//!         .ws_url(ws_url)
//!         .http_url("https://api.openai.com/v1/responses")
//!         .build()
//! };
//! let request = http::Request::new(());
//! let head = RequestHead::new(&request);
//!
//! let ok = route("openai", "openai-responses", "wss://api.openai.com/v1/responses")?;
//! assert!(table.decide(&ok, &head).is_websocket());
//!
//! // The incident: an eligible provider whose WebSocket URL points at another host.
//! let wrong = route("openai", "openai-responses", "wss://chatgpt.com/backend-api/codex/responses")?;
//! assert_eq!(table.decide(&wrong, &head).reason_label(), "foreign_host");
//!
//! let codex = route("openai-codex", "openai-codex-responses", "wss://chatgpt.com/backend-api/codex/responses")?;
//! assert_eq!(table.decide(&codex, &head).reason_label(), "denied");
//!
//! // The override header can force HTTP, never the WebSocket.
//! let forced = http::Request::builder().header("x-wsfirst-transport", "http").body(())?;
//! assert_eq!(table.decide(&ok, &RequestHead::new(&forced)).reason_label(), "request_override");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use http::HeaderName;
use wsfirst_core::{HttpReason, Ineligible, Intent, Route, TransportMode};

use crate::{Policy, RequestHead};

/// The default WebSocket message size limit: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;

/// The default policy: which (provider, API) pairs may try the WebSocket, and on which hosts.
///
/// Built with [`EligibilityTable::builder`]; cloning is cheap (the table is shared by `Arc`).
/// For a request it decides, in this order (the first "no" wins):
///
/// 1. the route's mode is [`TransportMode::Http`]: HTTP, [`HttpReason::ModeHttp`];
/// 2. the override header (opt-in, see [`EligibilityTableBuilder::override_header`]) has the
///    value `http` (any ASCII case, surrounding spaces ignored): HTTP,
///    [`Ineligible::RequestOverride`]. Any other value is ignored: the header can only narrow;
/// 3. the route's mode is [`TransportMode::WebSocket`] (strict): the WebSocket, without the
///    table, endpoint or size checks (the operator asked for it);
/// 4. the provider is empty: [`Ineligible::EmptyProvider`];
/// 5. the pair is on the deny list (which wins over the allow list): [`Ineligible::Denied`];
/// 6. the provider appears in no allowed pair: [`Ineligible::UnknownProvider`];
/// 7. the pair is not allowed: [`Ineligible::PairNotAllowed`];
/// 8. the route has no WebSocket URL: [`Ineligible::MissingWebSocketUrl`];
/// 9. the URL's scheme is not `ws` or `wss`: [`Ineligible::NotWebSocketScheme`];
/// 10. the provider has registered hosts and the URL's host is none of them (ASCII case
///     ignored, port not compared): [`Ineligible::ForeignHost`];
/// 11. the request's declared body size (its `Content-Length`, or the body's exact size hint)
///     exceeds the message limit: [`Ineligible::BodyTooLarge`];
///
/// and otherwise allows the WebSocket.
#[derive(Clone, Debug)]
pub struct EligibilityTable {
    inner: Arc<Table>,
}

#[derive(Clone, Debug, Default)]
struct Table {
    /// provider -> allowed APIs
    allowed: HashMap<Box<str>, HashSet<Box<str>>>,
    /// provider -> denied APIs
    denied: HashMap<Box<str>, HashSet<Box<str>>>,
    /// provider -> registered WebSocket hosts
    hosts: HashMap<Box<str>, Vec<Box<str>>>,
    override_header: Option<HeaderName>,
    max_message_size: u64,
}

impl EligibilityTable {
    /// An empty builder: nothing allowed, no deny list, no hosts, no override header, a 16 MiB
    /// message limit.
    pub fn builder() -> EligibilityTableBuilder {
        EligibilityTableBuilder {
            table: Table {
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                ..Table::default()
            },
        }
    }

    /// The table for OpenAI's public endpoints: `openai` / `openai-responses` allowed on host
    /// `api.openai.com`; `openai-codex` / `openai-codex-responses` denied (the incident: its
    /// WebSocket endpoint answered 500 on every upgrade). No override header.
    ///
    /// ```
    /// use wsfirst_eligibility::EligibilityTable;
    ///
    /// let table = EligibilityTable::openai_default();
    /// assert!(table.is_allowed("openai", "openai-responses"));
    /// assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
    /// ```
    pub fn openai_default() -> Self {
        Self::builder()
            .allow("openai", "openai-responses")
            .deny("openai-codex", "openai-codex-responses")
            .provider_host("openai", "api.openai.com")
            .build()
    }

    /// A builder holding this table's settings, to extend it.
    ///
    /// ```
    /// use wsfirst_eligibility::EligibilityTable;
    ///
    /// let table = EligibilityTable::openai_default().to_builder().allow("openai", "openai-chat").build();
    /// assert!(table.is_allowed("openai", "openai-chat"));
    /// assert!(table.is_allowed("openai", "openai-responses"));
    /// ```
    pub fn to_builder(&self) -> EligibilityTableBuilder {
        EligibilityTableBuilder {
            table: (*self.inner).clone(),
        }
    }

    /// Whether the pair is allowed and not denied (endpoint and request checks aside).
    pub fn is_allowed(&self, provider: &str, api: &str) -> bool {
        contains(&self.inner.allowed, provider, api) && !contains(&self.inner.denied, provider, api)
    }

    /// The WebSocket hosts registered for `provider` (empty when any host is accepted).
    pub fn provider_hosts(&self, provider: &str) -> impl Iterator<Item = &str> {
        self.inner
            .hosts
            .get(provider)
            .into_iter()
            .flatten()
            .map(|host| &**host)
    }

    /// The override header, if enabled.
    pub fn override_header(&self) -> Option<&HeaderName> {
        self.inner.override_header.as_ref()
    }

    /// The WebSocket message size limit in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.inner.max_message_size
    }

    fn table_says(&self, route: &Route, request: &RequestHead<'_>) -> Result<(), Ineligible> {
        let table = &*self.inner;
        let (provider, api) = (route.provider(), route.api());
        if provider.is_empty() {
            return Err(Ineligible::EmptyProvider);
        }
        if contains(&table.denied, provider, api) {
            return Err(Ineligible::Denied);
        }
        let Some(apis) = table.allowed.get(provider) else {
            return Err(Ineligible::UnknownProvider);
        };
        if !apis.contains(api) {
            return Err(Ineligible::PairNotAllowed);
        }
        let url = route.ws_url().ok_or(Ineligible::MissingWebSocketUrl)?;
        match url.scheme_str() {
            Some(scheme)
                if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("wss") => {}
            other => {
                return Err(Ineligible::NotWebSocketScheme {
                    scheme: other.unwrap_or_default().to_owned(),
                });
            }
        }
        if let Some(hosts) = table.hosts.get(provider) {
            let host = url.host().unwrap_or_default();
            if !hosts.iter().any(|known| known.eq_ignore_ascii_case(host)) {
                return Err(Ineligible::ForeignHost {
                    host: host.to_owned(),
                    expected: hosts.join(" or "),
                });
            }
        }
        if let Some(declared) = request.declared_body_size() {
            if declared > table.max_message_size {
                return Err(Ineligible::BodyTooLarge {
                    declared,
                    limit: table.max_message_size,
                });
            }
        }
        Ok(())
    }

    fn override_says_http(&self, request: &RequestHead<'_>) -> bool {
        let Some(name) = &self.inner.override_header else {
            return false;
        };
        request.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("http"))
        })
    }
}

fn contains(map: &HashMap<Box<str>, HashSet<Box<str>>>, provider: &str, api: &str) -> bool {
    map.get(provider).is_some_and(|apis| apis.contains(api))
}

impl Policy for EligibilityTable {
    fn decide(&self, route: &Route, request: &RequestHead<'_>) -> Intent {
        if route.mode() == TransportMode::Http {
            return Intent::Http(HttpReason::ModeHttp);
        }
        if self.override_says_http(request) {
            return Intent::Http(HttpReason::Ineligible(Ineligible::RequestOverride));
        }
        if route.mode() == TransportMode::WebSocket {
            return Intent::WebSocket;
        }
        match self.table_says(route, request) {
            Ok(()) => Intent::WebSocket,
            Err(why) => Intent::Http(HttpReason::Ineligible(why)),
        }
    }
}

/// Builds an [`EligibilityTable`]; see [`EligibilityTable::builder`].
#[derive(Clone, Debug)]
pub struct EligibilityTableBuilder {
    table: Table,
}

impl EligibilityTableBuilder {
    /// Allows `provider`'s `api` on the WebSocket (unless also denied).
    pub fn allow(mut self, provider: impl Into<String>, api: impl Into<String>) -> Self {
        insert(&mut self.table.allowed, provider.into(), api.into());
        self
    }

    /// Denies `provider`'s `api` the WebSocket; the deny list wins over the allow list.
    pub fn deny(mut self, provider: impl Into<String>, api: impl Into<String>) -> Self {
        insert(&mut self.table.denied, provider.into(), api.into());
        self
    }

    /// Registers a WebSocket host for `provider` (a host name or IP address, without port).
    /// Once a provider has a registered host, a WebSocket URL on any other host is
    /// [`Ineligible::ForeignHost`]. Call again to register more hosts.
    pub fn provider_host(mut self, provider: impl Into<String>, host: impl Into<String>) -> Self {
        let hosts = self
            .table
            .hosts
            .entry(provider.into().into_boxed_str())
            .or_default();
        let host = host.into().into_boxed_str();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
        self
    }

    /// Enables the per-request override header (for example `x-wsfirst-transport`). A request
    /// whose header has the value `http` (any ASCII case) goes to HTTP with
    /// [`Ineligible::RequestOverride`]; any other value is ignored (not an error), so the
    /// header can never widen a request onto the WebSocket. Off by default.
    pub fn override_header(mut self, name: HeaderName) -> Self {
        self.table.override_header = Some(name);
        self
    }

    /// The WebSocket message size limit in bytes (default 16 MiB): a request that declares a
    /// larger body goes to HTTP with [`Ineligible::BodyTooLarge`].
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.table.max_message_size = bytes;
        self
    }

    /// Builds the table.
    pub fn build(self) -> EligibilityTable {
        EligibilityTable {
            inner: Arc::new(self.table),
        }
    }
}

fn insert(map: &mut HashMap<Box<str>, HashSet<Box<str>>>, provider: String, api: String) {
    map.entry(provider.into_boxed_str())
        .or_default()
        .insert(api.into_boxed_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(provider: &str, api: &str, ws_url: Option<&str>, mode: TransportMode) -> Route {
        let mut builder = Route::builder(provider, api)
            .http_url("https://api.openai.com/v1/responses")
            .mode(mode);
        if let Some(url) = ws_url {
            builder = builder.ws_url(url);
        }
        builder.build().unwrap()
    }

    fn ineligible(why: Ineligible) -> Intent {
        Intent::Http(HttpReason::Ineligible(why))
    }

    const OPENAI_WS: &str = "wss://api.openai.com/v1/responses";
    const CODEX_WS: &str = "wss://chatgpt.com/backend-api/codex/responses";

    /// The incident, as a regression table: each route goes where it should, for its own reason.
    #[test]
    fn incident_regression_table() {
        let table = EligibilityTable::openai_default();
        let auto = TransportMode::Auto;
        let cases: Vec<(&str, Route, Intent)> = vec![
            (
                "openai responses over its own endpoint",
                route("openai", "openai-responses", Some(OPENAI_WS), auto),
                Intent::WebSocket,
            ),
            (
                "host case does not matter",
                route(
                    "openai",
                    "openai-responses",
                    Some("wss://API.OpenAI.com/v1/responses"),
                    auto,
                ),
                Intent::WebSocket,
            ),
            (
                "the incident pair is not eligible by default",
                route(
                    "openai-codex",
                    "openai-codex-responses",
                    Some(CODEX_WS),
                    auto,
                ),
                ineligible(Ineligible::Denied),
            ),
            (
                "mismatched pair: known provider, other provider's api",
                route("openai", "openai-codex-responses", Some(OPENAI_WS), auto),
                ineligible(Ineligible::PairNotAllowed),
            ),
            (
                "mismatched pair: codex provider, openai api",
                route("openai-codex", "openai-responses", Some(CODEX_WS), auto),
                ineligible(Ineligible::UnknownProvider),
            ),
            (
                "unknown provider",
                route(
                    "anthropic",
                    "messages",
                    Some("wss://api.anthropic.com/v1"),
                    auto,
                ),
                ineligible(Ineligible::UnknownProvider),
            ),
            (
                "empty provider",
                route("", "openai-responses", Some(OPENAI_WS), auto),
                ineligible(Ineligible::EmptyProvider),
            ),
            (
                "missing websocket url",
                route("openai", "openai-responses", None, auto),
                ineligible(Ineligible::MissingWebSocketUrl),
            ),
            (
                "http:// websocket url",
                route(
                    "openai",
                    "openai-responses",
                    Some("http://api.openai.com/v1/responses"),
                    auto,
                ),
                ineligible(Ineligible::NotWebSocketScheme {
                    scheme: "http".into(),
                }),
            ),
            (
                "websocket url on another provider's host",
                route("openai", "openai-responses", Some(CODEX_WS), auto),
                ineligible(Ineligible::ForeignHost {
                    host: "chatgpt.com".into(),
                    expected: "api.openai.com".into(),
                }),
            ),
            (
                "mode http",
                route(
                    "openai",
                    "openai-responses",
                    Some(OPENAI_WS),
                    TransportMode::Http,
                ),
                Intent::Http(HttpReason::ModeHttp),
            ),
            (
                "strict websocket skips the table",
                route(
                    "openai-codex",
                    "openai-codex-responses",
                    Some(CODEX_WS),
                    TransportMode::WebSocket,
                ),
                Intent::WebSocket,
            ),
        ];
        let request = http::Request::new(());
        let head = RequestHead::new(&request);
        for (name, route, expected) in cases {
            assert_eq!(table.decide(&route, &head), expected, "case: {name}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let table = EligibilityTable::builder()
            .allow("p", "a")
            .deny("p", "a")
            .build();
        let r = route("p", "a", Some("wss://h/x"), TransportMode::Auto);
        let request = http::Request::new(());
        assert_eq!(
            table.decide(&r, &RequestHead::new(&request)),
            ineligible(Ineligible::Denied)
        );
        assert!(!table.is_allowed("p", "a"));
    }

    #[test]
    fn any_host_when_none_registered_and_several_hosts_when_registered() {
        let open = EligibilityTable::builder().allow("p", "a").build();
        let r = route("p", "a", Some("ws://127.0.0.1:9000/x"), TransportMode::Auto);
        let request = http::Request::new(());
        let head = RequestHead::new(&request);
        assert_eq!(open.decide(&r, &head), Intent::WebSocket);

        let two = open
            .to_builder()
            .provider_host("p", "a.example")
            .provider_host("p", "b.example")
            .build();
        assert_eq!(
            two.decide(&r, &head),
            ineligible(Ineligible::ForeignHost {
                host: "127.0.0.1".into(),
                expected: "a.example or b.example".into(),
            })
        );
        let b = route("p", "a", Some("wss://b.example/x"), TransportMode::Auto);
        assert_eq!(two.decide(&b, &head), Intent::WebSocket);
    }

    #[test]
    fn body_size_limit_is_inclusive() {
        let table = EligibilityTable::builder()
            .allow("p", "a")
            .max_message_size(10)
            .build();
        let r = route("p", "a", Some("wss://h/x"), TransportMode::Auto);
        let request = http::Request::new(());
        let head = RequestHead::new(&request);
        assert_eq!(
            table.decide(&r, &head.with_declared_body_size(Some(10))),
            Intent::WebSocket
        );
        assert_eq!(
            table.decide(&r, &head.with_declared_body_size(Some(11))),
            ineligible(Ineligible::BodyTooLarge {
                declared: 11,
                limit: 10
            })
        );
        // strict mode skips the size rule
        let strict = route("p", "a", Some("wss://h/x"), TransportMode::WebSocket);
        assert_eq!(
            table.decide(&strict, &head.with_declared_body_size(Some(11))),
            Intent::WebSocket
        );
        assert_eq!(
            EligibilityTable::builder().build().max_message_size(),
            16 << 20
        );
    }

    #[test]
    fn override_header_only_narrows() {
        let table = EligibilityTable::openai_default()
            .to_builder()
            .override_header(HeaderName::from_static("x-wsfirst-transport"))
            .build();
        let ok = route(
            "openai",
            "openai-responses",
            Some(OPENAI_WS),
            TransportMode::Auto,
        );
        let strict = route(
            "openai",
            "openai-responses",
            Some(OPENAI_WS),
            TransportMode::WebSocket,
        );
        let codex = route(
            "openai-codex",
            "openai-codex-responses",
            Some(CODEX_WS),
            TransportMode::Auto,
        );
        let with = |value: &str| {
            http::Request::builder()
                .header("x-wsfirst-transport", value)
                .body(())
                .unwrap()
        };
        for value in ["http", " HTTP "] {
            let request = with(value);
            let head = RequestHead::new(&request);
            assert_eq!(
                table.decide(&ok, &head),
                ineligible(Ineligible::RequestOverride),
                "{value:?}"
            );
            assert_eq!(
                table.decide(&strict, &head),
                ineligible(Ineligible::RequestOverride),
                "{value:?}"
            );
        }
        for value in ["websocket", "ws", "garbage", ""] {
            let request = with(value);
            let head = RequestHead::new(&request);
            assert_eq!(table.decide(&ok, &head), Intent::WebSocket, "{value:?}");
            assert_eq!(
                table.decide(&codex, &head),
                ineligible(Ineligible::Denied),
                "{value:?}"
            );
        }
        // Not enabled: the header means nothing.
        let request = with("http");
        assert_eq!(
            EligibilityTable::openai_default().decide(&ok, &RequestHead::new(&request)),
            Intent::WebSocket
        );
    }
}
