//! The table's decisions: the incident's regression table, the deny list, registered hosts, the
//! size limit and the override header.

use http::HeaderName;
use wsfirst_core::{HttpReason, Ineligible, Intent, Route, TransportMode};

use super::{CODEX_WS, OPENAI_WS, ineligible, openai_table, route};
use crate::{EligibilityTable, Policy, RequestHead};

/// The incident, as a regression table: each route goes where it should, for its own reason.
#[test]
fn incident_regression_table() {
    let table = openai_table();
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
        .build()
        .unwrap();
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
    let open = EligibilityTable::builder().allow("p", "a").build().unwrap();
    let r = route("p", "a", Some("ws://127.0.0.1:9000/x"), TransportMode::Auto);
    let request = http::Request::new(());
    let head = RequestHead::new(&request);
    assert_eq!(open.decide(&r, &head), Intent::WebSocket);

    let two = open
        .to_builder()
        .provider_host("p", "a.example")
        .provider_host("p", "b.example")
        .build()
        .unwrap();
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
        .build()
        .unwrap();
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
        EligibilityTable::builder()
            .build()
            .unwrap()
            .max_message_size(),
        16 << 20
    );
}

#[test]
fn override_header_only_narrows() {
    let table = openai_table()
        .to_builder()
        .override_header(HeaderName::from_static("x-wsfirst-transport"))
        .build()
        .unwrap();
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
        openai_table().decide(&ok, &RequestHead::new(&request)),
        Intent::WebSocket
    );
}
