//! `[breakers]`: the registry's settings per provider + endpoint, set once (`[breakers.default]`,
//! `[[breakers.keys]]`), and the file's names, the breaker builders' own (old names still read).

use super::ROUTE;
use crate::config::Config;

/// Two routes to one endpoint, one to another, none with a breaker table of its own.
fn routes(breakers: &str) -> String {
    format!(
        r#"
{breakers}
[[routes]]
path = "/a"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"

[[routes]]
path = "/b"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://api.openai.com/v1/responses"

[[routes]]
path = "/c"
provider = "openai"
api = "openai-responses"
http_url = "https://api.openai.com/v1/responses"
ws_url = "wss://eu.api.openai.com/v1/responses"
"#
    )
}

#[test]
fn a_key_s_settings_are_set_once_for_every_route_that_reaches_it() {
    let config = Config::from_toml_str(&routes(
        r#"
[breakers.default]
consecutive_failures = 7

[[breakers.keys]]
provider = "openai"
ws_url = "wss://api.openai.com/v1/responses"
[breakers.keys.config]
consecutive_failures = 2
open_duration = "45s"
"#,
    ))
    .unwrap();
    let layers = config.layers().unwrap();
    let consecutive = |index: usize| {
        let key = layers.routes[index].route.breaker_key();
        layers.registry.config_for(key).consecutive_failures()
    };
    assert_eq!(consecutive(0), Some(2));
    assert_eq!(consecutive(1), Some(2));
    // Another endpoint: the default.
    assert_eq!(consecutive(2), Some(7));
    let key = layers.routes[0].route.breaker_key();
    assert_eq!(
        layers.registry.config_for(key).open_duration(),
        std::time::Duration::from_secs(45)
    );
}

#[test]
fn a_key_set_in_two_places_is_an_error_naming_both() {
    let keys = r#"
[[breakers.keys]]
provider = "openai"
ws_url = "wss://api.openai.com/v1/responses"
[breakers.keys.config]
consecutive_failures = 2
"#;
    let twice = Config::from_toml_str(&routes(&format!("{keys}{keys}"))).unwrap_err();
    assert_eq!(
        twice.to_string(),
        "breakers.keys[1]: the same provider and endpoint as breakers.keys[0]: set a key's settings once"
    );
    let route_too = Config::from_toml_str(
        &format!(
            "{}\n[routes.breaker]\nconsecutive_failures = 3\n",
            routes(keys)
        )
        // The table goes to the last route; move it to the first, which has the key.
        .replace("/c", "/c-unused")
        .replace(
            "ws_url = \"wss://eu.api.openai.com/v1/responses\"",
            "ws_url = \"wss://api.openai.com/v1/responses\"",
        ),
    )
    .unwrap_err();
    assert_eq!(
        route_too.to_string(),
        r#"routes[2].breaker: breakers.keys[0] sets the settings of this provider and endpoint ("openai", "wss://api.openai.com/v1/responses"): set them in one place"#
    );
    let enabled = Config::from_toml_str("[breakers.default]\nenabled = false\n").unwrap_err();
    assert_eq!(
        enabled.to_string(),
        "breakers.default.enabled: only a route's breaker can be turned off ([routes.breaker] enabled = false)"
    );
    let bad = Config::from_toml_str(&routes(
        "[[breakers.keys]]\nprovider = \"openai\"\nws_url = \"wss://api.openai.com/v1/responses\"\n[breakers.keys.config]\nhalf_open_probes = 0\n",
    ))
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "breakers.keys[0].config.half_open_probes: invalid breaker config: half_open_probes must not be zero"
    );
}

#[test]
fn the_old_names_still_read_as_the_new_ones() {
    let old = Config::from_toml_str(&format!(
        "[breakers]\nidle_evict = \"10m\"\ngauge_per_credential = true\n{ROUTE}\
         [routes.timeouts]\nconnect = \"3s\"\nfirst_event = \"20s\"\nidle = \"60s\"\n\
         [routes.breaker]\nfailure_rate = 0.4\nwindow = 30\nmin_calls = 5\nopen_for = \"20s\"\nmax_open_for = \"5m\"\nprobes = 2\n\
         [routes.pool]\nmax_total_connections = 100\n"
    ))
    .unwrap();
    let new = Config::from_toml_str(&format!(
        "[breakers]\nidle_timeout = \"10m\"\nstate_gauge_per_credential = true\n{ROUTE}\
         [routes.timeouts]\nhandshake_timeout = \"3s\"\nfirst_event_timeout = \"20s\"\nidle_timeout = \"60s\"\n\
         [routes.breaker]\nfailure_rate_threshold = 0.4\nfailure_rate_window = 30\nfailure_rate_min_calls = 5\nopen_duration = \"20s\"\nmax_open_duration = \"5m\"\nhalf_open_probes = 2\n\
         [routes.pool]\nmax_connections = 100\n"
    ))
    .unwrap();
    assert_eq!(old, new);
    // Both names at once is an error, not a silent choice.
    let both = Config::from_toml_str(&format!(
        "{ROUTE}[routes.breaker]\nopen_for = \"20s\"\nopen_duration = \"30s\"\n"
    ))
    .unwrap_err();
    assert!(
        both.to_string().contains("duplicate field `open_duration`"),
        "{both}"
    );
}
