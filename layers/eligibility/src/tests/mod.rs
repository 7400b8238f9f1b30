//! Unit tests by topic; the routes and the OpenAI Responses table they share are here.

mod builder;
mod completion;
mod service;
mod table;

use wsfirst_core::{HttpReason, Ineligible, Intent, Route, TransportMode};

use crate::{EligibilityTable, EligibilityTableBuilder};

const OPENAI_WS: &str = "wss://api.openai.com/v1/responses";
const CODEX_WS: &str = "wss://chatgpt.com/backend-api/codex/responses";

/// The OpenAI Responses pairs and hosts, as the API's module hands them to the builder.
const ALLOW: [(&str, &str); 1] = [("openai", "openai-responses")];
/// The incident: the Codex WebSocket endpoint answered 500 on every upgrade.
const DENY: [(&str, &str); 1] = [("openai-codex", "openai-codex-responses")];
const HOSTS: [(&str, &str); 1] = [("openai", "api.openai.com")];

/// A builder holding the OpenAI Responses table: `openai` / `openai-responses` allowed on host
/// `api.openai.com`, `openai-codex` / `openai-codex-responses` denied, no override header.
fn openai_builder() -> EligibilityTableBuilder {
    EligibilityTable::builder()
        .allow_pairs(ALLOW)
        .deny_pairs(DENY)
        .provider_hosts(HOSTS)
}

/// The OpenAI Responses table (see [`openai_builder`]).
fn openai_table() -> EligibilityTable {
    openai_builder().build().unwrap()
}

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
