//! A Redis (or Valkey) store that shares the circuit breakers of `wsfirst-breaker` across the
//! replicas of a gateway.
//!
//! Without a store each replica learns on its own: N replicas pay N x `threshold` failed
//! handshakes before a dead WebSocket endpoint is pinned everywhere, a pin by hand on one means
//! nothing to the others, and N replicas probe a recovering endpoint. With a [`RedisStore`]
//! given to each replica's registry
//! ([`BreakerRegistryBuilder::store`](wsfirst_breaker::BreakerRegistryBuilder::store)):
//!
//! - **Failures are counted by the fleet.** Every counted failure of a closed key is added to
//!   the key's count in Redis; at the key's
//!   [`consecutive_failures`](wsfirst_breaker::BreakerConfigBuilder::consecutive_failures) in
//!   total within [`failure_window`](RedisStoreConfigBuilder::failure_window) (default 10 s)
//!   the key is pinned for the whole fleet. A success on one replica does not take the count
//!   back (the closed-state success path never talks to the store), which is why the count is
//!   forgotten after the window. The slack: requests already in flight across the fleet when the
//!   threshold is reached, and those sent in the milliseconds the pin takes to reach each
//!   replica, still pay their handshake. The failure-rate rule stays each replica's own, and each
//!   replica's own breaker still trips on its own counts as before.
//! - **A pin reaches every replica within milliseconds.** Every change is appended to a Redis
//!   stream that each replica follows with a blocking `XREAD` (not pub/sub: a replica that was
//!   away for a moment reads what it missed from its position in the stream). The pin carries
//!   until when (wall-clock milliseconds: replicas' clocks are assumed in step, as NTP keeps
//!   them) and why (the failure's message).
//! - **Half-open admits K probes across the fleet.** A replica whose key goes half-open asks
//!   Redis for probe slots (a lease each, [`probe_lease`](RedisStoreConfigBuilder::probe_lease),
//!   default 60 s): the fleet holds at most
//!   [`half_open_probes`](wsfirst_breaker::BreakerConfigBuilder::half_open_probes) at once, and
//!   the slot of a replica that died is free again when its lease ends. A probe's success
//!   closes the key everywhere; its failure pins it again with the fleet's next backoff.
//! - **Pins by hand apply to all.** [`BreakerHandle::pin`](wsfirst_breaker::BreakerHandle::pin),
//!   `unpin` and `reset` on any replica (its admin endpoint) reach every replica, and each
//!   replica's snapshot shows the state it mirrors from the fleet.
//! - **Redis down, slow or restarted: local breakers.** No request waits on Redis at all: the
//!   registry hands events to a bounded queue ([`queue`](RedisStoreConfigBuilder::queue)) that a
//!   background task drains; a full queue drops failures (counted in
//!   `wsfirst_breaker_store_dropped_total`). A command slower than
//!   [`timeout`](RedisStoreConfigBuilder::timeout) (default 250 ms) or a lost connection counts
//!   as an outage: the replica logs one WARN, keeps deciding with its own breakers (half-open
//!   probes are granted locally), reconnects with backoff (100 ms doubling up to
//!   [`reconnect_max`](RedisStoreConfigBuilder::reconnect_max)), and when Redis is back tells
//!   it what changed meanwhile, restores pins Redis lost (a restart without persistence), reads
//!   the fleet's state of its keys and logs one INFO.
//! - **What is stored.** Per key, under a digest of its provider, shown endpoint and credential
//!   fingerprint: a versioned record (`v`, `rev`, state, until, trips, cause, the key as shown,
//!   the writing replica), a failure count and probe leases, each with a TTL
//!   ([`key_ttl`](RedisStoreConfigBuilder::key_ttl) after the pin ends), plus one capped stream
//!   of changes (with a TTL too). Never a credential: keys hold a keyed fingerprint of it, and
//!   endpoints lose their userinfo and query string. Replicas must share the fingerprint key
//!   (`fingerprint_key_env` in the gateway's file) for keys scoped to a credential to match.
//!   All writes are Lua scripts, atomic on the server. Keys are not hash-tagged: use one Redis
//!   (or a primary with replicas), not a cluster.
//!
//! - **Redis is validated, not trusted.** Every record is read through a script that returns
//!   its known fields only, each cut to a bounded length, and checked (`rev` an integer in
//!   range, a known `state`, `cause` at most 1 KiB); a malformed one is skipped with one WARN per
//!   replica (then DEBUG, counted in `wsfirst_breaker_store_malformed_total`). The scripts replace
//!   keys of the wrong type and out-of-range numbers before they use them, so no record written by
//!   hand makes every later call fail. A stream entry only names the key that changed: the record
//!   is read, so a forged entry cannot freeze a key.
//!
//! A replica that has never seen a key learns its shared state when it makes the key (its first
//! request for it, which may still try the WebSocket once).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use wsfirst_breaker::{BreakerConfig, BreakerRegistry, CircuitBreakerLayer};
//! use wsfirst_breaker_redis::{RedisStore, RedisStoreConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisStoreConfig::builder("redis://127.0.0.1:6379/0")
//!     .prefix("gateway:breaker")
//!     .build()?;
//! let store = RedisStore::new(config)?;
//! let registry = BreakerRegistry::builder()
//!     .config(BreakerConfig::default())
//!     .store(Arc::new(store.clone()))
//!     .build();
//! let layer = CircuitBreakerLayer::from_registry(registry);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```
//!
//! # Why `redis`
//!
//! The `redis` crate (redis-rs) is the most used Redis client for Rust, kept up by the Redis
//! organisation, speaks to Valkey alike, and has what this needs with few dependencies:
//! multiplexed tokio connections with connect and response timeouts, `EVALSHA` scripts that
//! load themselves, and stream replies. Reconnecting is this crate's own loop rather than
//! redis-rs's `ConnectionManager`, because catching up must happen at the moment the connection
//! is back, before anything else is read.
//!
//! # Feature flags
//!
//! - `testing`: [`testing::RedisServer`] starts a throwaway `redis-server` for tests.
//!
//! Minimum supported Rust version: 1.85.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod config;
mod record;
mod scripts;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use config::{RedisStoreConfig, RedisStoreConfigBuilder};
pub use store::RedisStore;
pub use wsfirst_core::{ConfigError, ConfigErrorKind};
