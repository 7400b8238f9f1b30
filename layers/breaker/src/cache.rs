//! The key a service remembers: the last key it looked up, with the route and a keyed hash of
//! the credential header value it came from, so that the next request with the same ones skips
//! fingerprinting the credential and looking the key up in the registry.
//!
//! The header value itself is never kept: the cache outlives requests, and shares its entries
//! with every clone of the service, so a copy of the credential would stay in memory as long as
//! the service does.

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{Arc, PoisonError, RwLock},
};

use http::{HeaderMap, HeaderValue};
use wsfirst_core::{BreakerKey, Route};

use crate::{BreakerRegistry, slot::Slot};

/// The last key a service looked up: its own (no shared writes when it hits), and the one all
/// clones made from one service share (so that clones made for a single request, as axum's
/// `Router` makes them, skip the registry too). Cloning keeps the own key and shares the other,
/// and copies the hash key, so that clones compare credentials alike.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyCache {
    own: Option<Arc<Cached>>,
    shared: Arc<RwLock<Option<Arc<Cached>>>>,
    hasher: CredentialHasher,
}

/// A keyed SipHash-1-3 (std's `RandomState`: a random 128-bit key per service) of a credential
/// header value: what the cache compares instead of the value. Cheap enough for every request
/// (about a nanosecond per 2 bytes, no allocation), and without the key it tells nothing about
/// the credential; the key never leaves this process, unlike the fingerprint, which is shown.
#[derive(Clone, Default)]
pub(crate) struct CredentialHasher(RandomState);

impl CredentialHasher {
    #[inline]
    pub(crate) fn digest(&self, credential: Option<&HeaderValue>) -> Option<u64> {
        credential.map(|value| self.0.hash_one(value.as_bytes()))
    }
}

impl fmt::Debug for CredentialHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialHasher(..)")
    }
}

impl KeyCache {
    /// The key this service remembers, if any (it may be retired).
    #[inline]
    pub(crate) fn remembered(&self) -> Option<&Cached> {
        self.own.as_deref()
    }

    /// What credential header values are compared by.
    #[inline]
    pub(crate) fn hasher(&self) -> &CredentialHasher {
        &self.hasher
    }

    /// The key of a request on `route` with these headers, and its breaker: the remembered one
    /// when it matches, else looked up (and remembered).
    #[inline]
    pub(crate) fn get(
        &mut self,
        registry: &BreakerRegistry,
        route: &Route,
        headers: &HeaderMap,
    ) -> &Cached {
        let base = route.breaker_key();
        let value = route.credential_header().and_then(|name| headers.get(name));
        let credential = self.hasher.digest(value);
        let remembered = self.own.take().filter(|cached| !cached.slot.is_retired());
        let fresh = match remembered {
            Some(cached) if cached.matches(base, credential) => cached,
            // Re-based once, so that the next request on this route object matches by pointer.
            Some(cached) if cached.matches_equal(base, credential) => {
                Arc::new(cached.rebased(base))
            }
            _ => shared_or_lookup(&self.shared, registry, route, value, credential),
        };
        self.own.insert(fresh)
    }

    /// The keys this service and its clones remember (tests).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> (Option<BreakerKey>, Option<BreakerKey>) {
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        (
            self.own.as_ref().map(|cached| cached.key.clone()),
            shared.as_ref().map(|cached| cached.key.clone()),
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
        }
    }
}

/// The key the clones of this service share if it matches, else a new lookup (then shared).
#[cold]
#[inline(never)]
fn shared_or_lookup(
    shared: &RwLock<Option<Arc<Cached>>>,
    registry: &BreakerRegistry,
    route: &Route,
    value: Option<&HeaderValue>,
    credential: Option<u64>,
) -> Arc<Cached> {
    let base = route.breaker_key();
    let rebased = {
        let last = shared.read().unwrap_or_else(PoisonError::into_inner);
        match last.as_ref().filter(|c| !c.slot.is_retired()) {
            Some(cached) if cached.matches(base, credential) => return cached.clone(),
            // Shared again below, so that the next clones match it by pointer.
            Some(cached) if cached.matches_equal(base, credential) => Some(cached.rebased(base)),
            _ => None,
        }
    };
    let fresh = Arc::new(rebased.unwrap_or_else(|| lookup(registry, route, value, credential)));
    *shared.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
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
    }
}
