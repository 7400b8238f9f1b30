//! The key a service remembers: the last key it looked up, with the route and a keyed hash of
//! the credential header value it came from, so that the next request with the same ones skips
//! fingerprinting the credential and looking the key up in the registry.
//!
//! The header value itself is never kept: the cache outlives requests, and shares its entries
//! with the other clones of the service on the same thread, so a copy of the credential would
//! stay in memory as long as the service does.
//!
//! Requests in flight hold their key through the remembered entry ([`SlotRef`]), whose count
//! only the remembering thread writes, rather than through the key's shared state, whose count
//! every thread would write.

use std::{
    cell::RefCell,
    fmt,
    hash::{BuildHasher, Hasher, RandomState},
    ops::Deref,
    sync::Arc,
};

use http::{HeaderMap, HeaderValue};
use rapidhash::v3::{RapidSecrets, rapidhash_v3_seeded};
use wsfirst_core::{BreakerKey, Route};

use crate::{
    BreakerRegistry,
    local::{Local, thread_tag},
    slot::Slot,
};

/// The last key a service looked up: its own (no shared writes when it hits), and the one the
/// running thread last looked up for any clone of the service (so that clones made for a single
/// request, as axum's `Router` makes them, skip the registry too). Cloning keeps the own key,
/// copies the hash key, so that clones compare credentials alike, and takes the registry through
/// the running thread's shard ([`Local`]).
#[derive(Clone, Debug)]
pub(crate) struct KeyCache {
    own: Option<Arc<Cached>>,
    local: Local,
    hasher: CredentialHasher,
}

/// A keyed hash (rapidhash v3, with a random seed per service) of a credential header value:
/// what the cache compares instead of the value. Cheap enough for every request (a few
/// 64-bit multiplications per 48 bytes, no allocation; SipHash-1-3 cost the closed-state path
/// more than everything else it does), and it keeps no copy of the credential: 64 bits of a
/// keyed hash do not give back a header value. It is never shown, and two values that collide
/// under an unknown random seed are as unlikely as any two 64-bit values: an attacker could only
/// aim at another client's credential that they already know. The fingerprint in the key, which
/// is shown, stays a keyed BLAKE3 ([`FingerprintKey`](wsfirst_core::FingerprintKey)).
///
/// Its state is rapidhash's whole: a random seed and random secrets (a random seed alone over
/// rapidhash's published secrets would leave it open to collisions made without the seed), made
/// once per service and copied by its clones (64 bytes).
#[derive(Clone)]
pub(crate) struct CredentialHasher(RapidSecrets);

impl Default for CredentialHasher {
    /// Secrets derived from a random seed (std's `RandomState` hashes nothing with its random
    /// keys).
    fn default() -> Self {
        let seed = RandomState::new().build_hasher().finish();
        CredentialHasher(RapidSecrets::seed(seed))
    }
}

impl CredentialHasher {
    #[inline]
    pub(crate) fn digest(&self, credential: Option<&HeaderValue>) -> Option<u64> {
        credential.map(|value| rapidhash_v3_seeded(value.as_bytes(), &self.0))
    }
}

impl fmt::Debug for CredentialHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialHasher(..)")
    }
}

impl KeyCache {
    /// A new service's cache, with the registry it looks keys up in.
    pub(crate) fn new(registry: BreakerRegistry) -> Self {
        KeyCache {
            own: None,
            local: Local::new(registry),
            hasher: CredentialHasher::default(),
        }
    }

    /// The registry keys are looked up in.
    #[inline]
    pub(crate) fn registry(&self) -> &BreakerRegistry {
        self.local.registry()
    }

    /// The key this service remembers, if any (it may be retired), unless it was remembered on
    /// another thread (whose count it would write).
    #[inline]
    pub(crate) fn remembered(&self) -> Option<&Arc<Cached>> {
        self.own
            .as_ref()
            .filter(|cached| cached.thread == thread_tag())
    }

    /// What credential header values are compared by.
    #[inline]
    pub(crate) fn hasher(&self) -> &CredentialHasher {
        &self.hasher
    }

    /// The key of a request on `route` with these headers, and its breaker: the remembered one
    /// when it matches, else looked up (and remembered).
    #[inline]
    pub(crate) fn get(&mut self, route: &Route, headers: &HeaderMap) -> &Arc<Cached> {
        let base = route.breaker_key();
        let value = route.credential_header().and_then(|name| headers.get(name));
        let credential = self.hasher.digest(value);
        let here = thread_tag();
        let remembered = self
            .own
            .take()
            .filter(|cached| cached.thread == here && !cached.slot.is_retired());
        let fresh = match remembered {
            Some(cached) if cached.matches(base, credential) => cached,
            // Re-based once, so that the next request on this route object matches by pointer.
            Some(cached) if cached.matches_equal(base, credential) => {
                Arc::new(cached.rebased(base))
            }
            _ => last_or_lookup(&self.local, route, value, credential),
        };
        self.own.insert(fresh)
    }

    /// The keys this service and its clones on this thread remember (tests).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> (Option<BreakerKey>, Option<BreakerKey>) {
        let last = LAST.with_borrow(|last| last.get(self.local.service()));
        (
            self.own.as_ref().map(|cached| cached.key.clone()),
            last.map(|cached| cached.key.clone()),
        )
    }
}

/// The last key looked up, and what it was looked up for.
pub(crate) struct Cached {
    /// The route's own key (compared by pointer first).
    base: BreakerKey,
    /// The keyed hash ([`CredentialHasher`]) of the route's credential header value the key was
    /// derived from (`None`: the route reads no header, or the request had none): compared with
    /// the next request's. Never the value itself.
    credential: Option<u64>,
    pub(crate) key: BreakerKey,
    pub(crate) slot: Arc<Slot>,
    /// The [`thread_tag`] of the thread that made it: only that thread uses it, so that its
    /// count is written by one thread.
    thread: usize,
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key shows the credential's fingerprint only; the header value stays out.
        f.debug_struct("Cached")
            .field("key", &self.key)
            .field("from_credential_header", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

impl Cached {
    /// Whether this is the key of a request on the route whose key is `base` (the same key
    /// object: a pointer comparison) with a credential header value of this hash.
    #[inline]
    pub(crate) fn matches(&self, base: &BreakerKey, credential: Option<u64>) -> bool {
        self.same_route(base) && self.same_credential(credential)
    }

    /// Whether `base` is the remembered route's key object (a pointer comparison).
    #[inline]
    pub(crate) fn same_route(&self, base: &BreakerKey) -> bool {
        self.base.ptr_eq(base)
    }

    /// Whether the credential header value had this hash.
    #[inline]
    pub(crate) fn same_credential(&self, credential: Option<u64>) -> bool {
        self.credential == credential
    }

    /// [`Cached::matches`] for a route whose key is equal but another object (another route
    /// with the same provider and endpoint, or the same route built again).
    fn matches_equal(&self, base: &BreakerKey, credential: Option<u64>) -> bool {
        self.base == *base && self.credential == credential
    }

    /// The same key and breaker, remembered for `base` (so that the next request on that route
    /// matches by pointer).
    fn rebased(&self, base: &BreakerKey) -> Cached {
        Cached {
            base: base.clone(),
            credential: self.credential,
            key: self.key.clone(),
            slot: self.slot.clone(),
            thread: thread_tag(),
        }
    }
}

/// A request's hold on its key's breaker: a clone of the entry that the service remembers, so
/// that taking and dropping it writes only the count of the running thread's entry, not the
/// count of the key's state, which all threads share.
#[derive(Debug)]
pub(crate) struct SlotRef(Arc<Cached>);

impl SlotRef {
    #[inline]
    pub(crate) fn new(cached: &Arc<Cached>) -> Self {
        SlotRef(cached.clone())
    }
}

impl Deref for SlotRef {
    type Target = Slot;

    #[inline]
    fn deref(&self) -> &Slot {
        &self.0.slot
    }
}

thread_local! {
    /// The last key each service (with all its clones) looked up on this thread.
    static LAST: RefCell<LastKeys> = const { RefCell::new(LastKeys([const { None }; LastKeys::WAYS])) };
}

/// One thread's last keys, by service (the [`Local::service`] of its clones): a table with one
/// place per service number modulo its size, so that finding a service's key costs the same
/// however many services a thread runs (services are numbered in order: the last
/// [`LastKeys::WAYS`] made never share a place).
struct LastKeys([Option<(u64, Arc<Cached>)>; LastKeys::WAYS]);

impl LastKeys {
    /// The places in the table.
    const WAYS: usize = 64;

    fn place(service: u64) -> usize {
        (service % Self::WAYS as u64) as usize
    }

    fn get(&self, service: u64) -> Option<Arc<Cached>> {
        match &self.0[Self::place(service)] {
            Some((of, cached)) if *of == service => Some(cached.clone()),
            _ => None,
        }
    }

    /// Remembers `cached` for `service` (in place of the key of a service in the same place),
    /// and forgets the keys that were evicted (or whose registry was dropped). Returns what it
    /// forgot, for the caller to drop.
    fn set(&mut self, service: u64, cached: Arc<Cached>) -> Vec<(u64, Arc<Cached>)> {
        let mut forget: Vec<_> = self
            .0
            .iter_mut()
            .filter(|entry| entry.as_ref().is_some_and(|(_, c)| c.slot.is_retired()))
            .filter_map(Option::take)
            .collect();
        forget.extend(self.0[Self::place(service)].replace((service, cached)));
        forget
    }
}

/// The key this thread last looked up for the service if it matches, else a new lookup (then
/// remembered for the thread).
#[cold]
#[inline(never)]
fn last_or_lookup(
    local: &Local,
    route: &Route,
    value: Option<&HeaderValue>,
    credential: Option<u64>,
) -> Arc<Cached> {
    let base = route.breaker_key();
    let service = local.service();
    // The thread is ending (its keys are gone): look up.
    let last = LAST
        .try_with(|last| last.borrow().get(service))
        .ok()
        .flatten();
    let fresh = match last.filter(|cached| !cached.slot.is_retired()) {
        Some(cached) if cached.matches(base, credential) => return cached,
        // Remembered again below, so that the next clones match it by pointer.
        Some(cached) if cached.matches_equal(base, credential) => cached.rebased(base),
        _ => lookup(local.registry(), route, value, credential),
    };
    let fresh = Arc::new(fresh);
    // Dropped outside the borrow: the last reference to a key's state may go with it.
    let forgotten = LAST.try_with(|last| last.borrow_mut().set(service, fresh.clone()));
    drop(forgotten);
    fresh
}

/// Builds the key of a request on `route` whose credential header holds `value` (what
/// [`Route::breaker_key_for`] does, with the route's fingerprint key) and finds its breaker in
/// the registry; `credential` is the value's hash.
#[cold]
#[inline(never)]
fn lookup(
    registry: &BreakerRegistry,
    route: &Route,
    value: Option<&HeaderValue>,
    credential: Option<u64>,
) -> Cached {
    let base = route.breaker_key();
    let key = match value {
        Some(value) => {
            base.with_credential(Some(route.fingerprint_key().fingerprint(value.as_bytes())))
        }
        None => base.clone(),
    };
    let slot = registry.slot_for(&key);
    Cached {
        base: base.clone(),
        credential,
        key,
        slot,
        thread: thread_tag(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_remembers_one_key_per_service_in_a_table_of_64() {
        let route = Route::builder("openai", "openai-responses")
            .ws_url("wss://api.openai.com/v1/responses")
            .http_url("https://api.openai.com/v1/responses")
            .build()
            .unwrap();
        let headers = HeaderMap::new();
        // 65 services: two of them share a place (tests running alongside take numbers too).
        let mut caches: Vec<KeyCache> = (0..=LastKeys::WAYS)
            .map(|_| KeyCache::new(BreakerRegistry::new()))
            .collect();
        for cache in &mut caches {
            cache.get(&route, &headers);
        }
        let place = |cache: &KeyCache| LastKeys::place(cache.local.service());
        let later = (1..caches.len())
            .find(|&i| (0..i).any(|j| place(&caches[j]) == place(&caches[i])))
            .unwrap();
        let earlier = (0..later)
            .find(|&j| place(&caches[j]) == place(&caches[later]))
            .unwrap();
        assert_eq!(
            caches[earlier].keys().1,
            None,
            "replaced by the later service"
        );
        assert_eq!(caches[later].keys().1.as_ref(), Some(route.breaker_key()));
        // A service whose thread forgot its key looks it up again.
        let (own, _) = caches[earlier].keys();
        caches[earlier].own = None;
        assert_eq!(caches[earlier].get(&route, &headers).key, own.unwrap());
    }
}
