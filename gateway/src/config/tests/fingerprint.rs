//! `fingerprint_key_env`: the key credential fingerprints are computed with, from the
//! environment or random per process. No test sets a variable (`set_var` is unsafe and races
//! other tests): they name one that is surely unset, or one that cargo sets for every test run.

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use wsfirst_core::{Fingerprint, FingerprintKey};

use super::ROUTE;
use crate::config::Config;

const UNSET: &str = "WSFIRST_TEST_SURELY_UNSET_FINGERPRINT_KEY";

fn credential() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
    headers
}

/// `ROUTE` with `fingerprint_key_env` set to `name`, built in code (parsing it would read the
/// variable already).
fn config_with_variable(name: &str) -> Config {
    Config {
        fingerprint_key_env: Some(name.to_owned()),
        ..Config::from_toml_str(ROUTE).unwrap()
    }
}

#[test]
fn a_missing_variable_is_an_error_naming_the_field() {
    let config = config_with_variable(UNSET);
    let expected = format!(r#"fingerprint_key_env: environment variable "{UNSET}" is not set"#);
    assert_eq!(config.fingerprint_key().unwrap_err().to_string(), expected);
    assert_eq!(config.layers().unwrap_err().to_string(), expected);
    assert_eq!(
        config.fingerprint_key().unwrap_err().path(),
        Some("fingerprint_key_env")
    );
}

#[test]
fn a_short_key_is_an_error_naming_the_field() {
    // Cargo sets the package's version parts for each test run: "0" is one byte.
    let config = config_with_variable("CARGO_PKG_VERSION_MAJOR");
    assert_eq!(
        config.fingerprint_key().unwrap_err().to_string(),
        r#"fingerprint_key_env: environment variable "CARGO_PKG_VERSION_MAJOR": fingerprint key too short: at least 16 bytes needed, got 1"#
    );
}

#[test]
fn the_key_comes_from_the_variable() {
    // Cargo sets the package's description for each test run, as at build time.
    let text = format!("fingerprint_key_env = \"CARGO_PKG_DESCRIPTION\"\n{ROUTE}");
    let config = Config::from_toml_str(&text).unwrap();
    assert_eq!(
        config.fingerprint_key_env.as_deref(),
        Some("CARGO_PKG_DESCRIPTION")
    );
    let expected = FingerprintKey::from_secret(env!("CARGO_PKG_DESCRIPTION")).unwrap();
    let key = config.fingerprint_key().unwrap();
    assert_eq!(key.fingerprint("x"), expected.fingerprint("x"));
    // The routes' breaker keys use it.
    let layers = config.layers().unwrap();
    let route = &layers.routes[0].route;
    assert_eq!(
        route.credential_for(&credential()),
        Some(expected.fingerprint("Bearer sk-1"))
    );
    assert_ne!(
        route.credential_for(&credential()),
        Some(Fingerprint::of("Bearer sk-1"))
    );
}

#[test]
fn without_a_variable_the_key_is_random_per_process() {
    let config = Config::from_toml_str(ROUTE).unwrap();
    assert_eq!(config.fingerprint_key_env, None);
    let layers = config.layers().unwrap();
    assert_eq!(
        layers.routes[0].route.credential_for(&credential()),
        Some(Fingerprint::of("Bearer sk-1"))
    );
}

#[test]
fn routes_take_the_key_they_are_given() {
    let config = Config::from_toml_str(ROUTE).unwrap();
    let one = FingerprintKey::from_secret("the first secret key").unwrap();
    let two = FingerprintKey::from_secret("the second secret key").unwrap();
    let route = |key: &FingerprintKey| config.routes[0].to_route_with_key(key).unwrap();
    assert_eq!(
        route(&one).credential_for(&credential()),
        Some(one.fingerprint("Bearer sk-1"))
    );
    assert_ne!(
        route(&one).breaker_key_for(&credential()),
        route(&two).breaker_key_for(&credential())
    );
    let layers = config.layers_with_key(&two).unwrap();
    assert_eq!(
        layers.routes[0].route.breaker_key_for(&credential()),
        route(&two).breaker_key_for(&credential())
    );
}
