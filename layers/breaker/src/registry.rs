//! The shared set of breakers, one per key, with the settings of each key and the eviction of
//! idle keys.
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
    collections::HashMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

use crate::{
    BreakerConfig, BreakerState, Transition,
    slot::Slot,
    transition::{Callback, Events},
};

struct Entry {
    slot: Arc<Slot>,
    last_seen: Instant,
}

struct Map {
    entries: HashMap<BreakerKey, Entry>,
    last_sweep: Instant,
}

/// What the slots of a registry point back to (weakly): the map they are in.
pub(crate) type Home = Inner;

pub(crate) struct Inner {
    /// The instant slots count their deadlines from.
    epoch: Instant,
    idle_timeout: Duration,
    events: Arc<Events>,
    /// The settings of every key without an override.
    config: BreakerConfig,
    /// Overrides by provider and endpoint: the keys have no credential.
    overrides: HashMap<BreakerKey, BreakerConfig>,
    map: RwLock<Map>,
}

impl Inner {
    /// Removes `slot` from the map if `retire` retires it (it returns the slot's key then); the
    /// map's lock is held around it, so no request finds the slot between the two.
    pub(crate) fn forget(&self, slot: &Slot, retire: impl FnOnce(&Slot) -> Option<BreakerKey>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let Some(key) = retire(slot) else {
            return;
        };
        if map
            .entries
            .get(&key)
            .is_some_and(|entry| std::ptr::eq(Arc::as_ptr(&entry.slot), slot))
        {
            map.entries.remove(&key);
            tracing::debug!(key = %key, "breaker key forgotten: its credential was refused");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Requests still in flight may hold slots: nothing more is reported for them.
        let map = self.map.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, entry) in map.entries.drain() {
            entry.slot.retire();
        }
    }
}

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
/// A key costs about 550 bytes (its 384-byte state behind an `Arc`, its map entry and the shared
/// key), plus one bit per sliding-window attempt rounded up to 8 bytes (8 bytes for the default
/// window of 20), plus the key's text and the last failure's message. Keys idle for the idle
/// timeout (default 1 hour) are evicted when they are closed, their pin (automatic or by hand
/// for a period) has expired, or they are half-open with no probe in flight; keys whose pin is
/// still running (including pins by hand until unpinned) and keys with a probe in flight are
/// kept. A key whose only outcome is a refused credential (an upgrade answered 401 or 403 that
/// the classifier ignores) is removed at once (see the [crate docs](crate)). A sweep runs when a
/// new key is added and the last sweep is at least half the idle
/// timeout old, or on [`BreakerHandle::evict_idle`](crate::BreakerHandle::evict_idle). Eviction
/// drops the registry's reference to the key's state, which is freed as soon as the last request in flight for that key ends (outcomes of those
/// requests are ignored) and the services that remembered the key as their last one have moved
/// on to another; dropping the last clone of the registry frees every key the same way.
#[derive(Clone)]
pub struct BreakerRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.inner.map.read().map_or(0, |map| map.entries.len());
        f.debug_struct("BreakerRegistry")
            .field("epoch", &self.inner.epoch)
            .field("idle_timeout", &self.inner.idle_timeout)
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
    /// An empty registry with the default settings for every key
    /// ([`BreakerConfig::default`]), the default idle timeout (1 hour) and no callback.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a registry with settings.
    pub fn builder() -> BreakerRegistryBuilder {
        BreakerRegistryBuilder {
            idle_timeout: Duration::from_secs(3600),
            on_transition: None,
            config: BreakerConfig::default(),
            overrides: HashMap::new(),
        }
    }

    /// How long a key may stay unused before it is evicted.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
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
        if self.inner.overrides.is_empty() {
            return &self.inner.config;
        }
        self.inner
            .overrides
            .get(&key.with_credential(None))
            .unwrap_or(&self.inner.config)
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

    pub(crate) fn existing(&self, key: &BreakerKey) -> Option<Arc<Slot>> {
        self.read().entries.get(key).map(|entry| entry.slot.clone())
    }

    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.read()
            .entries
            .values()
            .map(|entry| entry.slot.clone())
            .collect()
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
        if now.saturating_duration_since(map.last_sweep) >= half {
            self.sweep_locked(&mut map, now);
        }
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
            },
        );
        slot
    }

    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut map = self.write();
        self.sweep_locked(&mut map, now)
    }

    fn sweep_locked(&self, map: &mut Map, now: Instant) -> usize {
        map.last_sweep = now;
        let idle = self.inner.idle_timeout;
        let before = map.entries.len();
        map.entries.retain(|key, entry| {
            if entry.slot.take_used() {
                entry.last_seen = now;
                return true;
            }
            if now.saturating_duration_since(entry.last_seen) < idle {
                return true;
            }
            let Some(state) = entry.slot.retire_if_evictable(now) else {
                return true;
            };
            tracing::debug!(key = %key, "idle breaker key evicted");
            if state != BreakerState::Closed {
                // The key starts closed if it comes back; its gauge must not say open forever.
                metrics::gauge!("wsfirst_breaker_state", "key" => key.to_string())
                    .set(BreakerState::Closed.gauge_value());
            }
            false
        });
        before - map.entries.len()
    }
}

/// Builds a [`BreakerRegistry`]; see [`BreakerRegistry::builder`].
pub struct BreakerRegistryBuilder {
    idle_timeout: Duration,
    on_transition: Option<Callback>,
    config: BreakerConfig,
    overrides: HashMap<BreakerKey, BreakerConfig>,
}

impl fmt::Debug for BreakerRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistryBuilder")
            .field("idle_timeout", &self.idle_timeout)
            .field(
                "on_transition",
                &self.on_transition.as_ref().map(|_| "Fn(&Transition)"),
            )
            .field("config", &self.config)
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl BreakerRegistryBuilder {
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

    /// Calls `callback` on every state change, after logging and metrics, outside the key's lock.
    pub fn on_transition(mut self, callback: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.on_transition = Some(Arc::new(callback));
        self
    }

    /// Builds the registry.
    pub fn build(self) -> BreakerRegistry {
        let epoch = Instant::now();
        BreakerRegistry {
            inner: Arc::new(Inner {
                epoch,
                idle_timeout: self.idle_timeout,
                events: Arc::new(Events::new(self.on_transition)),
                config: self.config,
                overrides: self.overrides,
                map: RwLock::new(Map {
                    entries: HashMap::new(),
                    last_sweep: epoch,
                }),
            }),
        }
    }
}
