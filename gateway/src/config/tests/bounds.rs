//! The settings that bound state whatever clients send: the breaker registry's cap on keys and
//! its state gauge's labels (`[breakers]`), the pool's totals and write-stall deadline
//! (`[routes.pool]`), mapped onto the layers' builders, which own their defaults and checks.

use std::time::Duration;

use super::{FULL, assert_errors, route_with};
use crate::config::Config;

#[test]
fn the_reference_document_sets_every_bound() {
    let config = Config::from_toml_str(FULL).unwrap();
    assert_eq!(config.breakers.max_keys, Some(10_000));
    assert_eq!(config.breakers.state_gauge_per_credential, Some(false));
    let pool = &config.routes[0].pool;
    assert_eq!(pool.max_connections, Some(512));
    assert_eq!(pool.max_idle_connections, Some(128));
    assert_eq!(pool.write_stall_timeout, Some(Duration::from_secs(60)));
}

#[test]
fn breaker_bounds_reach_the_registry() {
    let config =
        Config::from_toml_str("[breakers]\nmax_keys = 500\nstate_gauge_per_credential = true\n")
            .unwrap();
    let registry = config.layers().unwrap().registry;
    assert_eq!(registry.max_keys(), 500);
    assert!(format!("{registry:?}").contains("per_credential: true"));

    // Left out: the registry's defaults.
    let registry = Config::from_toml_str("")
        .unwrap()
        .layers()
        .unwrap()
        .registry;
    assert_eq!(
        registry.max_keys(),
        wsfirst_breaker::BreakerRegistry::DEFAULT_MAX_KEYS
    );
    assert!(format!("{registry:?}").contains("per_credential: false"));
}

#[test]
fn pool_bounds_reach_the_route_pool() {
    let config = Config::from_toml_str(&route_with(
        "[routes.pool]\nmax_connections = 10\nmax_idle_connections = 5\nwrite_stall_timeout = \"30s\"",
    ))
    .unwrap();
    let layers = config.layers().unwrap();
    let pool = layers.routes[0]
        .pool
        .as_ref()
        .expect("the route has a pool of its own")
        .to_builder()
        .build()
        .unwrap();
    let debug = format!("{pool:?}");
    for field in [
        "max_connections: 10",
        "max_idle_connections: 5",
        "write_stall_timeout: 30s",
        // The per-key maximum stays the layer's default.
        "max_connections_per_key: 32",
    ] {
        assert!(debug.contains(field), "{field} not in {debug}");
    }
}

#[test]
fn invalid_bounds_name_their_field() {
    assert_errors(&[
        (
            "[breakers]\nmax_keys = 0".to_owned(),
            "breakers.max_keys: invalid breaker config: max_keys must not be zero",
        ),
        (
            "[breakers]\nmax_keys = -1".to_owned(),
            "breakers.max_keys: invalid value: integer `-1`, expected usize",
        ),
        (
            "[breakers]\nstate_gauge_per_credential = \"yes\"".to_owned(),
            "breakers.state_gauge_per_credential: invalid type: string \"yes\", expected a boolean",
        ),
        (
            route_with("[routes.pool]\nmax_connections = 0"),
            "routes[0].pool.max_connections: invalid websocket config: max_connections must not be zero",
        ),
        (
            route_with("[routes.pool]\nmax_idle_connections = 0"),
            "routes[0].pool.max_idle_connections: invalid websocket config: max_idle_connections must not be zero",
        ),
        (
            route_with("[routes.pool]\nwrite_stall_timeout = \"0s\""),
            "routes[0].pool.write_stall_timeout: invalid websocket config: write_stall_timeout must not be zero",
        ),
    ]);
}

#[test]
fn min_idle_reaches_the_route_pool() {
    let config = Config::from_toml_str(&route_with("[routes.pool]\nmin_idle = 2")).unwrap();
    let layers = config.layers().unwrap();
    let pool = layers.routes[0]
        .pool
        .as_ref()
        .expect("min_idle alone gives the route a pool of its own")
        .to_builder()
        .build()
        .unwrap();
    assert_eq!(pool.min_idle(), 2);
}

#[test]
fn min_idle_above_the_per_key_maximum_names_its_field() {
    assert_errors(&[
        (
            route_with("[routes.pool]\nmax_connections_per_key = 2\nmin_idle = 3"),
            "routes[0].pool.min_idle: invalid websocket config: min_idle must be at most 2, got 3",
        ),
        (
            route_with("[routes.pool]\nmin_idle = -1"),
            "routes[0].pool.min_idle: invalid value: integer `-1`, expected u32",
        ),
    ]);
}
