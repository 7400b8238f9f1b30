//! What a pooled connection is pooled under: the WebSocket URL, a fingerprint of the
//! credentials sent in the handshake, and the optional affinity value.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use http::{HeaderMap, HeaderName, Uri};
use wsfirst_core::{Fingerprint, Route};

/// What a pool key is made of: the WebSocket URL, a fingerprint of the credentials sent in the
/// handshake, and the optional affinity value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    url: Arc<str>,
    credential: Option<Fingerprint>,
    affinity: Option<Fingerprint>,
}

impl PoolKey {
    /// The key of a request to `url` whose handshake carries `handshake` headers.
    ///
    /// The credential fingerprint covers the route's fixed credential (if any) and every header
    /// forwarded to the handshake (`Authorization`, organization, project...), so a connection
    /// opened for one credential is never used for another.
    pub(crate) fn new(
        url: &Uri,
        route: &Route,
        handshake: &HeaderMap,
        affinity_header: Option<&HeaderName>,
        request: &HeaderMap,
    ) -> Self {
        let fixed = route.breaker_key().credential();
        let credential = if fixed.is_none() && handshake.is_empty() {
            None
        } else {
            let mut hasher = std::hash::DefaultHasher::new();
            fixed.hash(&mut hasher);
            for (name, value) in handshake {
                name.as_str().hash(&mut hasher);
                value.as_bytes().hash(&mut hasher);
            }
            Some(Fingerprint::of(hasher.finish().to_le_bytes()))
        };
        let affinity = affinity_header
            .and_then(|name| request.get(name))
            .map(|value| Fingerprint::of(value.as_bytes()));
        Self {
            url: url.to_string().into(),
            credential,
            affinity,
        }
    }

    /// Whether the key carries an affinity value (a session's own connections).
    pub(crate) fn has_affinity(&self) -> bool {
        self.affinity.is_some()
    }

    #[cfg(test)]
    pub(crate) fn for_test(url: &str, affinity: Option<&str>) -> Self {
        Self {
            url: url.into(),
            credential: None,
            affinity: affinity.map(Fingerprint::of),
        }
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKey")
            .field("url", &self.url)
            .field("credential", &self.credential)
            .field("affinity", &self.affinity)
            .finish()
    }
}
