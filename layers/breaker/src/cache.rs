//! The key a service remembers: the last key it looked up, with the route and credential header
//! value it came from, so that the next request with the same ones skips hashing the credential
//! and looking the key up in the registry.

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use http::{HeaderMap, HeaderValue};
use wsfirst_core::{BreakerKey, Fingerprint, Route};

use crate::{BreakerRegistry, slot::Slot};

/// The last key a service looked up: its own (no shared writes when it hits), and the one all
/// clones made from one service share (so that clones made for a single request, as axum's
/// `Router` makes them, skip the registry too). Cloning keeps the own key and shares the other.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyCache {
    own: Option<Arc<Cached>>,
    shared: Arc<RwLock<Option<Arc<Cached>>>>,
}

impl KeyCache {
    /// The key this service remembers, if any (it may be retired).
    #[inline]
    pub(crate) fn remembered(&self) -> Option<&Cached> {
        self.own.as_deref()
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
        let credential = route.credential_header().and_then(|name| headers.get(name));
        let remembered = self.own.take().filter(|cached| !cached.slot.is_retired());
        let fresh = match remembered {
            Some(cached) if cached.matches(base, credential) => cached,
            // Re-based once, so that the next request on this route object matches by pointer.
            Some(cached) if cached.matches_equal(base, credential) => {
                Arc::new(cached.rebased(base))
            }
            _ => shared_or_lookup(&self.shared, registry, route, credential),
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
    /// The value of the route's credential header the key was derived from (`None`: the route
    /// reads no header, or the request had none). A clone of the request's value (a reference
    /// count), kept to compare bytes with the next request's; never logged.
    credential: Option<HeaderValue>,
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
    /// object: a pointer comparison) with this credential header value.
    #[inline]
    pub(crate) fn matches(&self, base: &BreakerKey, credential: Option<&HeaderValue>) -> bool {
        self.base.ptr_eq(base) && self.same_credential(credential)
    }

    /// [`Cached::matches`] for a route whose key is equal but another object (another route
    /// with the same provider and endpoint, or the same route built again).
    fn matches_equal(&self, base: &BreakerKey, credential: Option<&HeaderValue>) -> bool {
        self.base == *base && self.same_credential(credential)
    }

    #[inline]
    fn same_credential(&self, credential: Option<&HeaderValue>) -> bool {
        self.credential.as_ref().map(HeaderValue::as_bytes) == credential.map(HeaderValue::as_bytes)
    }

    /// The same key and breaker, remembered for `base` (so that the next request on that route
    /// matches by pointer).
    fn rebased(&self, base: &BreakerKey) -> Cached {
        Cached {
            base: base.clone(),
            credential: self.credential.clone(),
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
    credential: Option<&HeaderValue>,
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
    let fresh = Arc::new(rebased.unwrap_or_else(|| lookup(registry, route, credential)));
    *shared.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
    fresh
}

/// Builds the key of a request on `route` whose credential header holds `credential` (what
/// [`Route::breaker_key_for`] does) and finds its breaker in the registry.
#[cold]
#[inline(never)]
fn lookup(registry: &BreakerRegistry, route: &Route, credential: Option<&HeaderValue>) -> Cached {
    let base = route.breaker_key();
    let key = match credential {
        Some(value) => base.with_credential(Some(Fingerprint::of(value.as_bytes()))),
        None => base.clone(),
    };
    let slot = registry.slot_for(&key);
    Cached {
        base: base.clone(),
        credential: credential.cloned(),
        key,
        slot,
    }
}
