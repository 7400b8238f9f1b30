//! The key a circuit breaker tracks: provider + WebSocket endpoint (as it may be shown) +
//! credential fingerprint.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use crate::{Fingerprint, FingerprintKey, redact};

/// The key a circuit breaker tracks: provider + WebSocket endpoint + credential fingerprint.
///
/// Routes that reach the same upstream with the same credential share a key, and so a breaker.
/// Cloning is cheap, hashing uses a precomputed value, and equality first compares pointers, so
/// looking a key up costs little on the hot path.
///
/// The key holds its endpoint as it may be shown ([`BreakerKey::endpoint`]): without userinfo,
/// query string or fragment (see [`redact`]). When the URL had any of them they are replaced by
/// `?redacted:` and a keyed [`Fingerprint`] of the whole URL, so that endpoints that differ only
/// in those parts (another `api-version`, another key in the query) stay apart without showing
/// them. Build a route's keys from [`Route::breaker_key`](crate::Route::breaker_key), which uses
/// the route's [`FingerprintKey`].
///
/// ```
/// use wsfirst_core::{BreakerKey, Fingerprint};
///
/// let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
/// let with_credential = key.with_credential(Some(Fingerprint::of("Bearer sk-1")));
/// assert_ne!(key, with_credential);
/// assert_eq!(key.to_string(), "openai wss://api.openai.com/v1/responses");
///
/// let signed = BreakerKey::new("live", "wss://user:pw@live.example/ws?key=sk-2", None);
/// assert!(signed.endpoint().starts_with("wss://live.example/ws?redacted:"));
/// assert!(!signed.to_string().contains("sk-2") && !signed.to_string().contains("pw"));
/// assert_ne!(signed, BreakerKey::new("live", "wss://live.example/ws?key=sk-3", None));
/// ```
#[derive(Clone)]
pub struct BreakerKey(Arc<KeyInner>);

#[derive(PartialEq, Eq)]
struct KeyInner {
    provider: Box<str>,
    /// As shown: see [`shown_endpoint`].
    endpoint: Box<str>,
    credential: Option<Fingerprint>,
    hash: u64,
}

/// `url` as a key shows it: [`redact::url`], followed by `?redacted:` and the keyed fingerprint
/// of the whole URL when that removed anything.
fn shown_endpoint(url: &str, key: &FingerprintKey) -> Box<str> {
    if !redact::hides_parts(url) {
        return url.into();
    }
    let fingerprint = key.fingerprint(url);
    format!("{}?redacted:{fingerprint}", redact::url(url)).into()
}

impl BreakerKey {
    /// A key for `provider`'s WebSocket `endpoint`, optionally scoped to a credential. Hidden
    /// parts of the endpoint (userinfo, query, fragment) are fingerprinted with this process's
    /// key ([`FingerprintKey::process_default`]); see [`BreakerKey::new_keyed`].
    pub fn new(
        provider: impl Into<Box<str>>,
        endpoint: impl AsRef<str>,
        credential: Option<Fingerprint>,
    ) -> Self {
        Self::new_keyed(
            FingerprintKey::process_default(),
            provider,
            endpoint,
            credential,
        )
    }

    /// [`BreakerKey::new`], with hidden parts of the endpoint fingerprinted under `key` (the
    /// same key gives the same key text in every process).
    pub fn new_keyed(
        key: &FingerprintKey,
        provider: impl Into<Box<str>>,
        endpoint: impl AsRef<str>,
        credential: Option<Fingerprint>,
    ) -> Self {
        Self::from_parts(
            provider.into(),
            shown_endpoint(endpoint.as_ref(), key),
            credential,
        )
    }

    fn from_parts(provider: Box<str>, endpoint: Box<str>, credential: Option<Fingerprint>) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        (&*provider, &*endpoint, credential).hash(&mut hasher);
        let hash = hasher.finish();
        BreakerKey(Arc::new(KeyInner {
            provider,
            endpoint,
            credential,
            hash,
        }))
    }

    /// The same provider and endpoint with another credential.
    pub fn with_credential(&self, credential: Option<Fingerprint>) -> Self {
        if credential == self.0.credential {
            return self.clone();
        }
        Self::from_parts(self.0.provider.clone(), self.0.endpoint.clone(), credential)
    }

    /// The provider id.
    pub fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The WebSocket endpoint as it may be shown (empty when the route has none): without
    /// userinfo, query string or fragment, which are replaced by `?redacted:<fingerprint>` (see
    /// [`BreakerKey`]).
    pub fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    /// The credential's fingerprint, if the key is scoped to one.
    pub fn credential(&self) -> Option<Fingerprint> {
        self.0.credential
    }

    /// Whether both are the same key object (clones of one another), a single pointer
    /// comparison. Keys built separately from equal parts are equal (`==`) but not the same.
    ///
    /// ```
    /// use wsfirst_core::BreakerKey;
    ///
    /// let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
    /// let twin = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
    /// assert!(key.ptr_eq(&key.clone()));
    /// assert!(key == twin && !key.ptr_eq(&twin));
    /// ```
    #[inline]
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for BreakerKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for BreakerKey {}

impl Hash for BreakerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl fmt::Display for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.provider, self.0.endpoint)?;
        if let Some(credential) = self.0.credential {
            write!(f, " credential:{credential}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BreakerKey({self})")
    }
}
