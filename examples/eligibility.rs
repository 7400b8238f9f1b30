//! Prints the transport decision and its reason for a table of routes, the incident's included.
//!
//! Run with `cargo run --example eligibility`. No network is used: the inner service only echoes
//! the `Intent` that the eligibility layer set.

use std::convert::Infallible;

use http::{HeaderName, Request, header::CONTENT_LENGTH};
use tower::{Service, ServiceBuilder, ServiceExt};
use wsfirst_core::{BoxError, Intent, Route, TransportMode};
use wsfirst_eligibility::EligibilityLayer;

const OPENAI_HTTP: &str = "https://api.openai.com/v1/responses";
const OPENAI_WS: &str = "wss://api.openai.com/v1/responses";
const CODEX_HTTP: &str = "https://chatgpt.com/backend-api/codex/responses";
const CODEX_WS: &str = "wss://chatgpt.com/backend-api/codex/responses";

struct Case {
    what: &'static str,
    provider: &'static str,
    api: &'static str,
    ws_url: Option<&'static str>,
    http_url: &'static str,
    mode: TransportMode,
    header: Option<(&'static str, &'static str)>,
}

const fn case(
    what: &'static str,
    provider: &'static str,
    api: &'static str,
    ws_url: Option<&'static str>,
    http_url: &'static str,
) -> Case {
    Case {
        what,
        provider,
        api,
        ws_url,
        http_url,
        mode: TransportMode::Auto,
        header: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // The OpenAI Responses table, wsfirst's default (openai / openai-responses on api.openai.com;
    // the incident's openai-codex pair denied), with the opt-in override header and a 1 MiB message limit.
    let table = wsfirst::openai_responses_table()
        .to_builder()
        .override_header(HeaderName::from_static("x-wsfirst-transport"))
        .max_message_size(1024 * 1024)
        .build()?;

    let mut service = ServiceBuilder::new()
        .layer(EligibilityLayer::new(table))
        .service_fn(|request: Request<String>| async move {
            Ok::<_, Infallible>(request.extensions().get::<Intent>().cloned())
        });

    let cases = [
        case(
            "openai responses",
            "openai",
            "openai-responses",
            Some(OPENAI_WS),
            OPENAI_HTTP,
        ),
        case(
            "the incident: codex pair",
            "openai-codex",
            "openai-codex-responses",
            Some(CODEX_WS),
            CODEX_HTTP,
        ),
        case(
            "eligible pair, codex host",
            "openai",
            "openai-responses",
            Some(CODEX_WS),
            OPENAI_HTTP,
        ),
        case(
            "mismatched pair",
            "openai",
            "openai-codex-responses",
            Some(OPENAI_WS),
            OPENAI_HTTP,
        ),
        case(
            "unknown provider",
            "anthropic",
            "messages",
            Some("wss://api.anthropic.com/v1/messages"),
            "https://api.anthropic.com/v1/messages",
        ),
        case(
            "empty provider",
            "",
            "openai-responses",
            Some(OPENAI_WS),
            OPENAI_HTTP,
        ),
        case(
            "no websocket url",
            "openai",
            "openai-responses",
            None,
            OPENAI_HTTP,
        ),
        case(
            "http:// websocket url",
            "openai",
            "openai-responses",
            Some("http://api.openai.com/v1/responses"),
            OPENAI_HTTP,
        ),
        Case {
            mode: TransportMode::Http,
            ..case(
                "route mode http",
                "openai",
                "openai-responses",
                Some(OPENAI_WS),
                OPENAI_HTTP,
            )
        },
        Case {
            mode: TransportMode::WebSocket,
            ..case(
                "strict websocket, codex pair",
                "openai-codex",
                "openai-codex-responses",
                Some(CODEX_WS),
                CODEX_HTTP,
            )
        },
        Case {
            header: Some(("x-wsfirst-transport", "http")),
            ..case(
                "request override: http",
                "openai",
                "openai-responses",
                Some(OPENAI_WS),
                OPENAI_HTTP,
            )
        },
        Case {
            header: Some(("x-wsfirst-transport", "websocket")),
            ..case(
                "request override cannot widen",
                "openai-codex",
                "openai-codex-responses",
                Some(CODEX_WS),
                CODEX_HTTP,
            )
        },
        Case {
            header: Some((CONTENT_LENGTH.as_str(), "2097152")),
            ..case(
                "2 MiB body, 1 MiB limit",
                "openai",
                "openai-responses",
                Some(OPENAI_WS),
                OPENAI_HTTP,
            )
        },
    ];

    println!(
        "{:<32} {:<14} {:<24} {:<10} {:<22} reason",
        "case", "provider", "api", "verdict", "label"
    );
    for case in cases {
        let mut route = Route::builder(case.provider, case.api)
            .http_url(case.http_url)
            .mode(case.mode);
        if let Some(url) = case.ws_url {
            route = route.ws_url(url);
        }
        let mut request = Request::new(String::new());
        request.extensions_mut().insert(route.build()?);
        if let Some((name, value)) = case.header {
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), value.parse()?);
        }
        let intent = service
            .ready()
            .await?
            .call(request)
            .await?
            .ok_or("the eligibility layer set no intent")?;
        println!(
            "{:<32} {:<14} {:<24} {:<10} {:<22} {}",
            case.what,
            case.provider,
            case.api,
            intent.verdict(),
            intent.reason_label(),
            intent,
        );
    }

    // A request without a Route is an error, not a panic.
    match service
        .ready()
        .await?
        .call(Request::new(String::new()))
        .await
    {
        Ok(_) => return Err("a request without a route was served".into()),
        Err(error) => println!("\nwithout a route: {error}"),
    }
    Ok(())
}
