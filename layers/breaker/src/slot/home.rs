//! [`Home`]: the map that owns a registry's slots, with the registry's settings; the slots and
//! the store link reach it weakly (a slot to forget a key that a refused credential created).

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

use super::Slot;
use crate::{BreakerConfig, KeySnapshot, Shared, store::Steer, transition::Events};

/// A key in the map: its slot and what eviction orders keys by.
pub(crate) struct Entry {
    pub(crate) slot: Arc<Slot>,
    /// The last sweep that found the key used since the one before (or its creation).
    pub(crate) last_seen: Instant,
    /// The key's rank in creation order, to break ties between keys last seen at one sweep.
    pub(crate) born: u64,
}

/// The keys, behind the home's lock.
pub(crate) struct Map {
    pub(crate) entries: HashMap<BreakerKey, Entry>,
    pub(crate) last_sweep: Instant,
    /// The `born` of the next key.
    pub(crate) next_born: u64,
}

/// A registry's keys and their settings: what [`BreakerRegistry`](crate::BreakerRegistry)
/// shares between its clones, and what its slots and its [`StoreLink`](crate::StoreLink) point
/// back to (weakly).
pub(crate) struct Home {
    /// The instant slots count their deadlines from.
    pub(crate) epoch: Instant,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_keys: usize,
    pub(crate) events: Arc<Events>,
    /// The settings of every key without an override.
    pub(crate) config: BreakerConfig,
    /// Overrides by provider and endpoint: the keys have no credential.
    pub(crate) overrides: HashMap<BreakerKey, BreakerConfig>,
    pub(crate) map: RwLock<Map>,
}

impl Home {
    /// The slot of `key`, if the map has it.
    pub(crate) fn existing(&self, key: &BreakerKey) -> Option<Arc<Slot>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.entries.get(key).map(|entry| entry.slot.clone())
    }

    /// Every slot of the map.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.entries
            .values()
            .map(|entry| entry.slot.clone())
            .collect()
    }

    /// See [`BreakerRegistry::config_for`].
    pub(crate) fn config_for(&self, key: &BreakerKey) -> &BreakerConfig {
        if self.overrides.is_empty() {
            return &self.config;
        }
        self.overrides
            .get(&key.with_credential(None))
            .unwrap_or(&self.config)
    }

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

impl Drop for Home {
    fn drop(&mut self) {
        // Requests still in flight may hold slots: nothing more is reported for them.
        let map = self.map.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (key, entry) in map.entries.drain() {
            let state = entry.slot.retire();
            self.events.removed(&key, state);
        }
    }
}

impl Steer for Home {
    fn apply(&self, key: &BreakerKey, shared: &Shared) -> bool {
        match self.existing(key) {
            Some(slot) => {
                slot.adopt(shared, Instant::now());
                true
            }
            None => false,
        }
    }

    fn grant_probes(&self, key: &BreakerKey, generation: u32, probes: u32) -> bool {
        self.existing(key)
            .is_some_and(|slot| slot.grant_probes(generation, probes))
    }

    fn settings_of(&self, key: &BreakerKey) -> BreakerConfig {
        self.config_for(key).clone()
    }

    fn contains(&self, key: &BreakerKey) -> bool {
        self.existing(key).is_some()
    }

    fn snapshot(&self) -> Vec<KeySnapshot> {
        let now = Instant::now();
        self.slots().iter().map(|slot| slot.snapshot(now)).collect()
    }
}
