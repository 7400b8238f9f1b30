//! The shared set of breakers, one per key, with the settings of each key, the eviction of
//! idle keys and the cap on their number.
//!
//! # Example
//!
//! One registry for two routes: the chat endpoint's keys use the default settings, the batch
//! endpoint's keys (whatever the credential) an override; both layers share the breakers.
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_breaker::{BreakerConfig, BreakerRegistry, CircuitBreakerLayer};
//! use wsfirst_core::Route;
//!
//! let chat = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://chat.example/v1/responses")
//!     .http_url("https://chat.example/v1/responses")
//!     .build()?;
//! let batch = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://batch.example/v1/responses")
//!     .http_url("https://batch.example/v1/responses")
//!     .build()?;
//! let registry = BreakerRegistry::builder()
//!     .config(BreakerConfig::default())
//!     .config_for(batch.breaker_key(), BreakerConfig::builder().consecutive_failures(10).build()?)
//!     .idle_timeout(Duration::from_secs(3600))
//!     .on_transition(|t| println!("{} went {} -> {}", t.key, t.from, t.to))
//!     .build();
//! assert_eq!(registry.config_for(chat.breaker_key()).consecutive_failures(), Some(3));
//! assert_eq!(registry.config_for(batch.breaker_key()).consecutive_failures(), Some(10));
//!
//! let chat_layer = CircuitBreakerLayer::from_registry(registry.clone());
//! let batch_layer = CircuitBreakerLayer::from_registry(registry.clone());
//! assert!(registry.handle().snapshot().is_empty());
//! # drop((chat_layer, batch_layer));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    cmp::Reverse,
    collections::HashMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

use crate::{
    BreakerConfig, BreakerStore, ConfigError, StoreEvent, StoreLink, Transition,
    slot::{Entry, Eviction, Home, Map, Slot},
    store::SharedStore,
    transition::{Callback, Events},
};

/// The breakers of all keys and their settings, shared by every layer and handle made from it.
///
/// Cloning a registry (or a [`CircuitBreakerLayer`](crate::CircuitBreakerLayer)) shares the
/// breakers: all clones see and steer the same keys.
///
/// # Settings
///
/// The registry owns the settings of its keys: a default ([`BreakerRegistryBuilder::config`])
/// and overrides by provider and WebSocket endpoint ([`BreakerRegistryBuilder::config_for`]).
/// A key's settings are fixed when it is created, from the registry alone, so they do not depend
/// on which service or handle reaches the key first.
///
/// # Memory
///
/// A key costs about 440 bytes (its 192-byte state in a 256-byte `Arc`, the shared key with its
/// text, its map entry, and one bit per sliding-window attempt rounded up to 8 bytes: 8 for the
/// default window of 20), plus its last failure once it has one (about 110 bytes and the
/// failure's message); `benches/memory.rs` measures it. The registry holds at most
/// [`max_keys`](BreakerRegistryBuilder::max_keys) keys (default
/// [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS), 10,000: about 4.5 MB), whatever clients send,
/// and a sweep that leaves the map mostly empty gives its room back.
///
/// **Idle keys.** Keys idle for the idle timeout (default 1 hour) are evicted when they are
/// closed, their pin (automatic or by hand for a period) has expired, or they are half-open
/// with no probe in flight; keys whose pin is still running (including pins by hand until
/// unpinned) and keys with a probe in flight are kept. A key whose only outcome is a refused
/// credential (an upgrade answered 401 or 403 that the classifier ignores) is removed at once
/// (see the [crate docs](crate)). A sweep runs when a new key is added and the last sweep is at
/// least half the idle timeout old, or on
/// [`BreakerHandle::evict_idle`](crate::BreakerHandle::evict_idle).
///
/// **The cap.** When a new key would make more than `max_keys` keys, a sweep evicts the idle
/// keys, then the least recently used keys are evicted down to seven eighths of the cap (at
/// least one key under it), so that one pass over the keys pays for an eighth of the cap's new
/// keys. Recent use is what sweeps see, so that requests do no more
/// work than before: a request on a key sets its "used" mark (one load, and a store the first
/// time), and a sweep that finds the mark set takes the sweep's time as the key's last use and
/// clears the mark. Keys last seen at the same sweep go newest first, so that a flood of new
/// credentials evicts its own keys before the keys in regular use. The cap evicts keys that
/// idle eviction keeps only for their age: a key pinned after failures is evicted with its pin
/// (its next request finds a fresh closed key and tries the WebSocket again), but a key pinned
/// by hand whose pin is running and a half-open key with a probe in flight are kept. When every
/// key is one of those, the new key is added all the same: the registry then holds more than
/// `max_keys` keys, by at most the keys pinned by hand plus the probes in flight (each one a
/// request in flight), and the next new key evicts down again as soon as they can go.
///
/// Eviction drops the registry's reference to the key's state, which is freed as soon as the
/// last request in flight for that key ends (outcomes of those requests are ignored) and the
/// services and threads that remembered the key as their last one have moved on to another (a
/// thread lets such a key go the next time it looks any key up, or when it ends); dropping the
/// last clone of the registry frees every key the same way.
#[derive(Clone)]
pub struct BreakerRegistry {
    inner: Arc<Home>,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.inner.map.read().map_or(0, |map| map.entries.len());
        f.debug_struct("BreakerRegistry")
            .field("epoch", &self.inner.epoch)
            .field("idle_timeout", &self.inner.idle_timeout)
            .field("max_keys", &self.inner.max_keys)
            .field("events", &self.inner.events)
            .field("config", &self.inner.config)
            .field("overrides", &self.inner.overrides)
            .field("keys", &keys)
            .finish()
    }
}

impl Default for BreakerRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl BreakerRegistry {
    /// The default cap on the number of keys ([`BreakerRegistryBuilder::max_keys`]).
    pub const DEFAULT_MAX_KEYS: usize = 10_000;

    /// An empty registry with the default settings for every key
    /// ([`BreakerConfig::default`]), the default idle timeout (1 hour), the default cap on keys
    /// ([`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS)), one state gauge series per provider and
    /// endpoint, and no callback.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a registry with settings.
    pub fn builder() -> BreakerRegistryBuilder {
        BreakerRegistryBuilder {
            idle_timeout: Duration::from_secs(3600),
            max_keys: Self::DEFAULT_MAX_KEYS,
            per_credential: false,
            on_transition: None,
            config: BreakerConfig::default(),
            overrides: HashMap::new(),
            store: None,
        }
    }

    /// How long a key may stay unused before it is evicted.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    /// The cap on the number of keys (see "Memory" above).
    pub fn max_keys(&self) -> usize {
        self.inner.max_keys
    }

    /// The settings of keys without an override
    /// ([`BreakerRegistryBuilder::config`]).
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// The settings `key` gets: the override for its provider and endpoint
    /// ([`BreakerRegistryBuilder::config_for`]), whatever its credential, or else the default.
    ///
    /// ```
    /// use wsfirst_breaker::{BreakerConfig, BreakerRegistry};
    /// use wsfirst_core::{BreakerKey, Fingerprint};
    ///
    /// let batch = BreakerKey::new("openai", "wss://batch.example/v1/responses", None);
    /// let registry = BreakerRegistry::builder()
    ///     .config_for(&batch, BreakerConfig::builder().consecutive_failures(10).build()?)
    ///     .build();
    /// let alice = batch.with_credential(Some(Fingerprint::of("Bearer sk-alice")));
    /// assert_eq!(registry.config_for(&alice).consecutive_failures(), Some(10));
    /// let chat = BreakerKey::new("openai", "wss://chat.example/v1/responses", None);
    /// assert_eq!(registry.config_for(&chat).consecutive_failures(), Some(3));
    /// # Ok::<(), wsfirst_breaker::ConfigError>(())
    /// ```
    pub fn config_for(&self, key: &BreakerKey) -> &BreakerConfig {
        self.inner.config_for(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether the registry has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.inner
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.inner
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many hold the registry (tests).
    #[cfg(test)]
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// A reference that does not hold the registry (tests).
    #[cfg(test)]
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Home> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn existing(&self, key: &BreakerKey) -> Option<Arc<Slot>> {
        self.inner.existing(key)
    }

    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.inner.slots()
    }

    /// Tells the registry's store, if it has one, about `event`; whether it took it.
    pub(crate) fn report(&self, event: impl FnOnce() -> StoreEvent) -> bool {
        self.inner.events.report(event)
    }

    pub(crate) fn keys(&self) -> Vec<BreakerKey> {
        self.read().entries.keys().cloned().collect()
    }

    /// The slot of `key`, created with the key's settings ([`Self::config_for`]) if missing.
    pub(crate) fn slot_for(&self, key: &BreakerKey) -> Arc<Slot> {
        if let Some(entry) = self.read().entries.get(key) {
            return entry.slot.clone();
        }
        let now = Instant::now();
        let mut map = self.write();
        if let Some(entry) = map.entries.get(key) {
            return entry.slot.clone();
        }
        let half = self.inner.idle_timeout / 2;
        let full = map.entries.len() >= self.inner.max_keys;
        if full || now.saturating_duration_since(map.last_sweep) >= half {
            // When full, the sweep also records which keys were used, for the eviction below.
            self.sweep_locked(&mut map, now);
        }
        if full {
            // Down to seven eighths of the cap even when the sweep evicted a few idle keys, so
            // that the next pass over the keys waits for an eighth of the cap's new keys.
            self.evict_least_recent(&mut map, now);
        }
        let born = map.next_born;
        map.next_born += 1;
        let config = self.config_for(key);
        let slot = Slot::new(
            key.clone(),
            config,
            self.inner.events.clone(),
            Arc::downgrade(&self.inner),
            self.inner.epoch,
            now,
        );
        map.entries.insert(
            key.clone(),
            Entry {
                slot: slot.clone(),
                last_seen: now,
                born,
            },
        );
        drop(map);
        // The fleet may know this key already: the store tells the new slot (not on the
        // closed-state path: only when a key is made).
        self.report(|| StoreEvent::Created(key.clone()));
        slot
    }

    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut map = self.write();
        self.sweep_locked(&mut map, now)
    }

    fn sweep_locked(&self, map: &mut Map, now: Instant) -> usize {
        map.last_sweep = now;
        // Keys last seen at or before this are idle (none when it is before the clock began):
        // one comparison per key rather than a subtraction.
        let idle_since = now.checked_sub(self.inner.idle_timeout);
        let before = map.entries.len();
        map.entries.retain(|key, entry| {
            if entry.slot.take_used() {
                entry.last_seen = now;
                return true;
            }
            if idle_since.is_none_or(|since| entry.last_seen > since) {
                return true;
            }
            let Some(state) = entry.slot.retire_if(Eviction::Idle, now) else {
                return true;
            };
            tracing::debug!(key = %key, "idle breaker key evicted");
            // The key starts closed if it comes back; the gauge must not say open forever.
            self.inner.events.removed(key, state);
            false
        });
        // A map never gives its room back by itself: after a burst of keys, what it held
        // would stay (about 5 MB per 100,000 keys).
        if map.entries.capacity() / 4 > map.entries.len().max(64) {
            map.entries.shrink_to(map.entries.len() * 2);
        }
        before - map.entries.len()
    }

    /// Evicts the least recently used keys that the cap may evict, down to seven eighths of
    /// the cap (see "Memory" above); the caller has just swept, so `last_seen` is up to date.
    /// Returns how many were evicted.
    fn evict_least_recent(&self, map: &mut Map, now: Instant) -> usize {
        let max = self.inner.max_keys;
        let target = max - (max / 8).max(1);
        let excess = map.entries.len().saturating_sub(target);
        if excess == 0 {
            return 0;
        }
        // Least recently seen first; among keys seen at the same sweep, the newest first.
        let mut order: Vec<(Instant, Reverse<u64>, BreakerKey)> = map
            .entries
            .iter()
            .map(|(key, entry)| (entry.last_seen, Reverse(entry.born), key.clone()))
            .collect();
        order.sort_unstable_by_key(|&(last_seen, born, _)| (last_seen, born));
        let mut evicted = 0;
        for (.., key) in order {
            if evicted == excess {
                break;
            }
            let Some(entry) = map.entries.get(&key) else {
                continue;
            };
            let Some(state) = entry.slot.retire_if(Eviction::Room, now) else {
                continue;
            };
            map.entries.remove(&key);
            tracing::debug!(key = %key, "least recently used breaker key evicted: too many keys");
            self.inner.events.removed(&key, state);
            evicted += 1;
        }
        evicted
    }
}

/// Builds a [`BreakerRegistry`]; see [`BreakerRegistry::builder`].
pub struct BreakerRegistryBuilder {
    idle_timeout: Duration,
    max_keys: usize,
    per_credential: bool,
    on_transition: Option<Callback>,
    config: BreakerConfig,
    overrides: HashMap<BreakerKey, BreakerConfig>,
    store: SharedStore,
}

impl fmt::Debug for BreakerRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistryBuilder")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_keys", &self.max_keys)
            .field("state_gauge_per_credential", &self.per_credential)
            .field(
                "on_transition",
                &self.on_transition.as_ref().map(|_| "Fn(&Transition)"),
            )
            .field("config", &self.config)
            .field("overrides", &self.overrides)
            .field("store", &self.store)
            .finish()
    }
}

impl BreakerRegistryBuilder {
    /// Shares the breakers' state with other replicas through `store` (default: none, every
    /// replica learns on its own). See [`BreakerStore`]: the registry keeps deciding every
    /// request from its own breakers, and tells the store only about new keys, counted
    /// failures, transitions and changes by hand; with a store, half-open probes wait for the
    /// store to grant them.
    pub fn store(mut self, store: Arc<dyn BreakerStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The settings of every key without an override (default [`BreakerConfig::default`]).
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings of every key with the same provider and WebSocket endpoint as `key`, whatever
    /// its credential fingerprint (`key`'s own is not looked at). A later call for the same
    /// provider and endpoint replaces the earlier one.
    ///
    /// Settings are fixed when a key is created (by its first request, or by a
    /// [`BreakerHandle::pin`](crate::BreakerHandle::pin) before any traffic), so they are the
    /// same whichever service or handle reaches the key first.
    pub fn config_for(mut self, key: &BreakerKey, config: BreakerConfig) -> Self {
        self.overrides.insert(key.with_credential(None), config);
        self
    }

    /// Evicts keys not used for this long (default 1 hour); see [`BreakerRegistry`].
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The most keys the registry holds (default
    /// [`BreakerRegistry::DEFAULT_MAX_KEYS`], 10,000; must not be zero): a new key past it
    /// evicts the least recently used ones. See [`BreakerRegistry`], "Memory".
    ///
    /// ```
    /// use wsfirst_breaker::BreakerRegistry;
    ///
    /// let registry = BreakerRegistry::builder().max_keys(1_000).try_build()?;
    /// assert_eq!(registry.max_keys(), 1_000);
    /// let error = BreakerRegistry::builder().max_keys(0).try_build().unwrap_err();
    /// assert_eq!(error.to_string(), "invalid breaker config: max_keys must not be zero");
    /// # Ok::<(), wsfirst_breaker::ConfigError>(())
    /// ```
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// Gives the `wsfirst_breaker_state` gauge one series per key, labelled with the key's
    /// credential fingerprint (`credential`) besides `provider` and `endpoint` (default
    /// `false`: one series per provider and endpoint, showing the state of its worst key).
    ///
    /// A series is never deleted (the `metrics` facade cannot), so with per-credential keys
    /// every credential whose key ever changed state adds one for the life of the process: turn
    /// this on only where the credentials are few and known (a gateway that holds the keys).
    pub fn state_gauge_per_credential(mut self, per_credential: bool) -> Self {
        self.per_credential = per_credential;
        self
    }

    /// Calls `callback` on every state change, after logging and metrics, outside the key's lock.
    pub fn on_transition(mut self, callback: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.on_transition = Some(Arc::new(callback));
        self
    }

    /// Checks the values and builds the registry; the error names the field
    /// ([`max_keys`](Self::max_keys) of zero).
    pub fn try_build(self) -> Result<BreakerRegistry, ConfigError> {
        ConfigError::check_not_zero("breaker config", "max_keys", self.max_keys as u64)?;
        let epoch = Instant::now();
        let store = self.store.clone();
        let registry = BreakerRegistry {
            inner: Arc::new(Home {
                epoch,
                idle_timeout: self.idle_timeout,
                max_keys: self.max_keys,
                events: Arc::new(Events::new(
                    self.on_transition,
                    self.per_credential,
                    self.store,
                )),
                config: self.config,
                overrides: self.overrides,
                map: RwLock::new(Map {
                    entries: HashMap::new(),
                    last_sweep: epoch,
                    next_born: 0,
                }),
            }),
        };
        if let Some(store) = store {
            store.attach(StoreLink::new(Arc::downgrade(&registry.inner) as _));
        }
        Ok(registry)
    }

    /// Builds the registry.
    ///
    /// # Panics
    ///
    /// If a value is invalid ([`max_keys`](Self::max_keys) of zero); [`try_build`](Self::try_build)
    /// returns the error instead.
    pub fn build(self) -> BreakerRegistry {
        self.try_build().unwrap_or_else(|error| panic!("{error}"))
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;
    use wsfirst_core::{FailureKind, Phase, WsFailure};

    use super::*;
    use crate::{BreakerState, slot::Admission};

    fn server_error() -> WsFailure {
        WsFailure::new(
            Phase::Handshake,
            FailureKind::UpgradeStatus {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                body: Default::default(),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_with_a_probe_in_flight_is_kept_when_full() {
        let config = BreakerConfig::builder()
            .consecutive_failures(1)
            .jitter(0.0)
            .build()
            .unwrap();
        let registry = BreakerRegistry::builder()
            .config(config)
            .max_keys(2)
            .build();
        let probing = BreakerKey::new("p", "wss://p", None);
        let slot = registry.slot_for(&probing);
        let Admission::Closed { generation } = slot.admit(false) else {
            panic!("expected a closed key");
        };
        slot.closed_failure(generation, &server_error(), Instant::now());
        advance(Duration::from_secs(30)).await;
        let Admission::Probe { generation } = slot.admit(false) else {
            panic!("expected a probe");
        };
        // The probing key is the least recently used one from now on.
        registry.sweep(Instant::now());
        advance(Duration::from_secs(1)).await;
        for i in 0..10 {
            registry.slot_for(&BreakerKey::new(format!("k{i}"), "wss://k", None));
            assert!(registry.len() <= 2);
        }
        let kept = registry
            .existing(&probing)
            .expect("the probing key is kept");
        assert!(Arc::ptr_eq(&kept, &slot));
        assert_eq!(
            registry.handle().get(&probing).unwrap().state,
            BreakerState::HalfOpen
        );
        // Once the probe gives its slot back, the key is the first to go.
        slot.release_probe(generation);
        registry.slot_for(&BreakerKey::new("last", "wss://k", None));
        assert!(registry.existing(&probing).is_none());
        assert!(slot.is_retired());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_registry_makes_room_for_an_eighth_of_the_cap_at_once() {
        let registry = BreakerRegistry::builder()
            .idle_timeout(Duration::from_secs(60))
            .max_keys(16)
            .build();
        let key = |i: usize| BreakerKey::new(format!("k{i}"), "wss://k", None);
        registry.slot_for(&key(0));
        registry.sweep(Instant::now());
        advance(Duration::from_secs(40)).await;
        for i in 1..16 {
            registry.slot_for(&key(i));
        }
        assert_eq!(registry.len(), 16);
        // The sweep of the next new key evicts the one idle key; the cap then makes room down
        // to 14 all the same, so that the next 2 new keys need no pass over the keys.
        advance(Duration::from_secs(25)).await;
        registry.slot_for(&key(16));
        assert!(registry.existing(&key(0)).is_none(), "idle");
        assert_eq!(registry.len(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_that_evicts_most_keys_gives_their_room_back() {
        let registry = BreakerRegistry::builder()
            .idle_timeout(Duration::from_secs(60))
            .build();
        for i in 0..1_000 {
            registry.slot_for(&BreakerKey::new(format!("k{i}"), "wss://k", None));
        }
        let room = || registry.read().entries.capacity();
        assert!(room() >= 1_000);
        registry.sweep(Instant::now());
        advance(Duration::from_secs(60)).await;
        let kept = BreakerKey::new("kept", "wss://k", None);
        registry.slot_for(&kept);
        assert_eq!(
            registry.len(),
            1,
            "the sweep of the new key evicted the idle ones"
        );
        assert!(room() < 256, "room for {} keys kept", room());
        assert!(registry.existing(&kept).is_some());
    }

    #[test]
    fn a_cap_of_zero_is_refused() {
        let error = BreakerRegistry::builder()
            .max_keys(0)
            .try_build()
            .unwrap_err();
        assert_eq!(error.field(), "max_keys");
        let registry = BreakerRegistry::new();
        assert_eq!(registry.max_keys(), BreakerRegistry::DEFAULT_MAX_KEYS);
        assert!(format!("{registry:?}").contains("max_keys: 10000"));
    }

    #[test]
    #[should_panic(expected = "max_keys must not be zero")]
    fn build_panics_on_a_cap_of_zero() {
        let _ = BreakerRegistry::builder().max_keys(0).build();
    }
}
