//! An optional store that shares breaker state between replicas of a gateway: the trait a store
//! implements ([`BreakerStore`]), what a registry tells it ([`StoreEvent`]) and how it steers the
//! registry back ([`StoreLink`], [`Shared`]).

use std::{
    fmt,
    sync::{Arc, Weak},
};

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

use crate::{BreakerConfig, KeySnapshot, Transition};

/// A store that shares breaker state between the replicas of a gateway; give one to
/// [`BreakerRegistryBuilder::store`](crate::BreakerRegistryBuilder::store).
///
/// The registry stays the source of every request's decision: each replica keeps its own
/// breakers (a local mirror of the shared state) and the closed-state success path never talks
/// to the store. The registry tells the store only about keys it creates, failures it counts,
/// transitions it makes, pins, unpins and resets by hand, and keys that went half-open; the
/// store tells the registry what the fleet decided through [`StoreLink::apply`]. A store must
/// never block: [`BreakerStore::report`] is called on request paths (failures, transitions),
/// so it hands the event to a background task (a bounded channel) and returns.
///
/// With a store, a half-open key admits no probe until the store grants probe slots
/// ([`StoreLink::grant_probes`]), so that the whole fleet sends
/// [`half_open_probes`](crate::BreakerConfigBuilder::half_open_probes) probes, not each replica;
/// a store that cannot ask the fleet (it is down) grants them at once. While a key waits for its
/// grant, its snapshot counts the slots not granted yet in `probes_in_flight`, and it is kept
/// by eviction as a key with a probe in flight is.
///
/// The crate `wsfirst-breaker-redis` is a store on Redis or Valkey.
///
/// # Example
///
/// A store that shares nothing but counts what it hears, and grants probes at once:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use wsfirst_breaker::{BreakerRegistry, BreakerStore, StoreEvent, StoreLink};
/// use wsfirst_core::BreakerKey;
///
/// #[derive(Debug, Default)]
/// struct Counting {
///     link: Mutex<Option<StoreLink>>,
///     heard: Mutex<Vec<String>>,
/// }
///
/// impl BreakerStore for Counting {
///     fn attach(&self, link: StoreLink) {
///         *self.link.lock().unwrap() = Some(link);
///     }
///
///     fn report(&self, event: StoreEvent) -> bool {
///         if let StoreEvent::ProbesWanted { key, generation, probes } = &event {
///             let link = self.link.lock().unwrap();
///             link.as_ref().unwrap().grant_probes(key, *generation, *probes);
///         }
///         self.heard.lock().unwrap().push(format!("{event:?}"));
///         true
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(Counting::default());
/// let registry = BreakerRegistry::builder().store(store.clone()).build();
/// let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
/// registry.handle().pin(&key, Some(Duration::from_secs(60)));
/// let heard = store.heard.lock().unwrap();
/// assert!(heard[0].starts_with("Created"));
/// assert!(heard[1].starts_with("Pinned"));
/// # }
/// ```
pub trait BreakerStore: Send + Sync + fmt::Debug + 'static {
    /// Called once, when the registry is built: `link` applies the fleet's decisions to it. The
    /// link holds the registry weakly; a store outlives its registry harmlessly.
    fn attach(&self, link: StoreLink);

    /// Something the fleet must hear of happened on this replica. Must return at once (hand it
    /// to a background task). Returns `false` if the event was not taken (a full queue): for
    /// [`StoreEvent::ProbesWanted`] the registry then grants the probes itself.
    fn report(&self, event: StoreEvent) -> bool;
}

/// What a registry tells its [`BreakerStore`]. Keys hold no credential: a keyed fingerprint of it
/// at most (see [`BreakerKey`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreEvent {
    /// The registry created `key` (a first request, or a pin by hand): the store should tell it
    /// the key's shared state, if the fleet has one.
    Created(BreakerKey),
    /// A closed key counted a failure that did not trip it.
    Failure {
        /// The key.
        key: BreakerKey,
        /// The failure, as its message (never a credential: see
        /// [`WsFailure`](wsfirst_core::WsFailure)).
        cause: String,
    },
    /// The key tripped (closed or half-open to open), or a probe closed it. Going half-open is
    /// [`StoreEvent::ProbesWanted`] instead.
    Transition(Transition),
    /// The key went half-open and admits no probe until the store grants some with
    /// [`StoreLink::grant_probes`].
    ProbesWanted {
        /// The key.
        key: BreakerKey,
        /// The half-open state's generation, to give back to [`StoreLink::grant_probes`].
        generation: u32,
        /// How many probes the key's settings allow across the fleet.
        probes: u32,
    },
    /// Pinned by hand ([`BreakerHandle::pin`](crate::BreakerHandle::pin)).
    Pinned {
        /// The key.
        key: BreakerKey,
        /// Until when (`None`: until unpinned).
        until: Option<Instant>,
    },
    /// Unpinned by hand ([`BreakerHandle::unpin`](crate::BreakerHandle::unpin)).
    Unpinned(BreakerKey),
    /// Reset by hand ([`BreakerHandle::reset`](crate::BreakerHandle::reset)).
    Reset(BreakerKey),
}

/// A key's state as the fleet decided it, for [`StoreLink::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Shared {
    /// Pinned to HTTP.
    Open {
        /// Until when (`None`: until unpinned). A deadline already past lets the key go
        /// half-open at its next request.
        until: Option<Instant>,
        /// Pinned by hand.
        manual: bool,
        /// The fleet's consecutive trips (drives the next backoff).
        trips: u32,
        /// Why, for logs (the failure's message).
        cause: Option<String>,
    },
    /// Closed.
    Closed {
        /// The fleet's consecutive trips.
        trips: u32,
        /// Reset by hand: counts, trips and the last failure are forgotten too.
        reset: bool,
    },
}

/// How a [`BreakerStore`] steers the registry it was attached to. Cheap to clone; holds the
/// registry weakly.
#[derive(Clone)]
pub struct StoreLink {
    home: Weak<dyn Steer>,
}

impl fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLink")
            .field("live", &self.is_live())
            .finish()
    }
}

impl StoreLink {
    pub(crate) fn new(home: Weak<dyn Steer>) -> Self {
        StoreLink { home }
    }

    /// Whether the registry still exists (a store's task ends when it does not).
    pub fn is_live(&self) -> bool {
        self.home.strong_count() > 0
    }

    /// Applies the fleet's state to `key` without reporting it back to the store; logs and
    /// counts the transition it makes, if any. Returns whether the registry has the key (a key
    /// it does not have is left alone: it asks with [`StoreEvent::Created`] when it is made).
    pub fn apply(&self, key: &BreakerKey, shared: &Shared) -> bool {
        self.home
            .upgrade()
            .is_some_and(|home| home.apply(key, shared))
    }

    /// Lets the half-open key of `generation` admit `probes` more probes (at most its
    /// settings' number in all). Returns `false` if the key no longer waits for them (it left
    /// that half-open state, or the registry no longer has it): the store may take the probe
    /// slots back.
    pub fn grant_probes(&self, key: &BreakerKey, generation: u32, probes: u32) -> bool {
        self.home
            .upgrade()
            .is_some_and(|home| home.grant_probes(key, generation, probes))
    }

    /// The settings of `key` (see
    /// [`BreakerRegistry::config_for`](crate::BreakerRegistry::config_for)).
    pub fn config_for(&self, key: &BreakerKey) -> Option<BreakerConfig> {
        Some(self.home.upgrade()?.settings_of(key))
    }

    /// Whether the registry has `key`.
    pub fn contains(&self, key: &BreakerKey) -> bool {
        self.home.upgrade().is_some_and(|home| home.contains(key))
    }

    /// The state of every key of this replica (to resynchronise after the store was away).
    pub fn snapshot(&self) -> Vec<KeySnapshot> {
        self.home
            .upgrade()
            .map_or_else(Vec::new, |home| home.snapshot())
    }
}

/// What a [`StoreLink`] steers: a registry's keys, through what the link asks of them (so that
/// the store's types do not depend on the registry's).
pub(crate) trait Steer: Send + Sync {
    /// See [`StoreLink::apply`].
    fn apply(&self, key: &BreakerKey, shared: &Shared) -> bool;
    /// See [`StoreLink::grant_probes`].
    fn grant_probes(&self, key: &BreakerKey, generation: u32, probes: u32) -> bool;
    /// See [`StoreLink::config_for`].
    fn settings_of(&self, key: &BreakerKey) -> BreakerConfig;
    /// See [`StoreLink::contains`].
    fn contains(&self, key: &BreakerKey) -> bool;
    /// See [`StoreLink::snapshot`].
    fn snapshot(&self) -> Vec<KeySnapshot>;
}

/// The store of a registry, if it has one (in the registry's [`Events`](crate::transition)).
pub(crate) type SharedStore = Option<Arc<dyn BreakerStore>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn _obj_safe(_: Box<dyn BreakerStore>) {}
}
