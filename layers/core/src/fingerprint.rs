//! Credential fingerprints: a keyed MAC (BLAKE3 in keyed mode) that tells credentials apart
//! without holding them, and the [`FingerprintKey`] it is keyed with.
//!
//! Whoever sees a fingerprint (in a log line, a metric label, the admin JSON) cannot check a
//! guessed credential against it without the key. The key is random for each process unless the
//! application gives one ([`FingerprintKey::from_secret`], the gateway's `fingerprint_key_env`),
//! which keeps fingerprints stable across restarts and replicas.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::{Fingerprint, FingerprintKey};
//!
//! let key = FingerprintKey::from_secret("a secret of at least 16 bytes")?;
//! let fingerprint = Fingerprint::of_keyed(&key, "Bearer sk-alice");
//! assert_eq!(fingerprint, key.fingerprint("Bearer sk-alice"));
//! assert_ne!(fingerprint, Fingerprint::of_keyed(&FingerprintKey::random(), "Bearer sk-alice"));
//! // Shown truncated: 12 hex digits.
//! assert_eq!(fingerprint.to_string().len(), 12);
//! # Ok::<(), wsfirst_core::FingerprintKeyError>(())
//! ```

use std::{fmt, sync::OnceLock};

/// The BLAKE3 key-derivation context that turns a configured secret into a [`FingerprintKey`]
/// (it must never change: fingerprints would change with it).
const DERIVE_CONTEXT: &str = "wsfirst 2026 credential fingerprint key v1";

/// How many bytes of the MAC a [`Fingerprint`] keeps (128 bits: collisions between credentials
/// are out of reach).
const FINGERPRINT_BYTES: usize = 16;

/// How many bytes of a fingerprint `Display` shows (12 hex digits, 48 bits).
const SHOWN_BYTES: usize = 6;

/// The key that credential fingerprints are computed with.
///
/// Without it a fingerprint cannot be checked against a guessed credential. Get one from a
/// secret ([`FingerprintKey::from_secret`], such as the value of the gateway's
/// `fingerprint_key_env` variable) to keep fingerprints the same across restarts and replicas,
/// or a random one ([`FingerprintKey::random`]). [`FingerprintKey::process_default`] is the
/// random key of this process, used by [`Fingerprint::of`] and by routes built without a key
/// ([`RouteBuilder::fingerprint_key`](crate::RouteBuilder::fingerprint_key)).
///
/// `Debug` never shows the key.
///
/// ```
/// use wsfirst_core::FingerprintKey;
///
/// let a = FingerprintKey::from_secret("0123456789abcdef")?;
/// let b = FingerprintKey::from_secret("0123456789abcdef")?;
/// assert_eq!(a.fingerprint("Bearer sk-1"), b.fingerprint("Bearer sk-1"));
/// assert_eq!(format!("{a:?}"), "FingerprintKey(..)");
///
/// let error = FingerprintKey::from_secret("short").unwrap_err();
/// assert_eq!(error.to_string(), "fingerprint key too short: at least 16 bytes needed, got 5");
/// # Ok::<(), wsfirst_core::FingerprintKeyError>(())
/// ```
#[derive(Clone)]
pub struct FingerprintKey([u8; blake3::KEY_LEN]);

impl FingerprintKey {
    /// The fewest bytes [`FingerprintKey::from_secret`] accepts.
    pub const MIN_SECRET_LEN: usize = 16;

    /// A key from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the operating system has no random source to read (as `std`'s hash maps do).
    pub fn random() -> Self {
        let mut key = [0; blake3::KEY_LEN];
        if let Err(error) = getrandom::fill(&mut key) {
            panic!("cannot read the operating system's random source: {error}");
        }
        FingerprintKey(key)
    }

    /// A key derived from `secret` (at least [`MIN_SECRET_LEN`](Self::MIN_SECRET_LEN) bytes, of
    /// any content) with BLAKE3's key derivation: the same secret always gives the same key.
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Result<Self, FingerprintKeyError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(FingerprintKeyError::TooShort {
                len: secret.len(),
                min: Self::MIN_SECRET_LEN,
            });
        }
        Ok(FingerprintKey(blake3::derive_key(DERIVE_CONTEXT, secret)))
    }

    /// The random key of this process, made on first use: what [`Fingerprint::of`] and routes
    /// built without a key use.
    pub fn process_default() -> &'static FingerprintKey {
        static DEFAULT: OnceLock<FingerprintKey> = OnceLock::new();
        DEFAULT.get_or_init(FingerprintKey::random)
    }

    /// The fingerprint of `secret` under this key.
    pub fn fingerprint(&self, secret: impl AsRef<[u8]>) -> Fingerprint {
        let mac = blake3::keyed_hash(&self.0, secret.as_ref());
        let mut bytes = [0; FINGERPRINT_BYTES];
        bytes.copy_from_slice(&mac.as_bytes()[..FINGERPRINT_BYTES]);
        Fingerprint(bytes)
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// A [`FingerprintKey`] could not be made from a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FingerprintKeyError {
    /// The secret is shorter than [`FingerprintKey::MIN_SECRET_LEN`].
    TooShort {
        /// The secret's length in bytes.
        len: usize,
        /// The fewest bytes accepted.
        min: usize,
    },
}

impl fmt::Display for FingerprintKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintKeyError::TooShort { len, min } => write!(
                f,
                "fingerprint key too short: at least {min} bytes needed, got {len}"
            ),
        }
    }
}

impl std::error::Error for FingerprintKeyError {}

/// A fingerprint of a credential: a keyed MAC (BLAKE3, 128 bits kept) that tells credentials
/// apart without holding them and cannot be checked against a guess without its
/// [`FingerprintKey`].
///
/// `Display` (and `Debug`) show the first 12 hex digits only.
///
/// ```
/// use wsfirst_core::{Fingerprint, FingerprintKey};
///
/// let key = FingerprintKey::random();
/// let fingerprint = Fingerprint::of_keyed(&key, "Bearer sk-secret");
/// let shown = fingerprint.to_string();
/// assert_eq!(shown.len(), 12);
/// assert!(shown.chars().all(|c| c.is_ascii_hexdigit()));
/// assert!(!format!("{fingerprint:?}").contains("sk-secret"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_BYTES]);

impl Fingerprint {
    /// The fingerprint of a secret (for example an `Authorization` header's value) under this
    /// process's random key ([`FingerprintKey::process_default`]). Use
    /// [`Fingerprint::of_keyed`] (or a route's key) for fingerprints that must match across
    /// processes.
    pub fn of(secret: impl AsRef<[u8]>) -> Self {
        FingerprintKey::process_default().fingerprint(secret)
    }

    /// The fingerprint of a secret under `key`.
    pub fn of_keyed(key: &FingerprintKey, secret: impl AsRef<[u8]>) -> Self {
        key.fingerprint(secret)
    }

    /// The MAC's first 16 bytes, all of the fingerprint.
    pub fn to_bytes(self) -> [u8; FINGERPRINT_BYTES] {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..SHOWN_BYTES] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_depends_on_the_key() {
        let one = FingerprintKey::from_secret("the first secret key").unwrap();
        let two = FingerprintKey::from_secret("the second secret key").unwrap();
        let again = FingerprintKey::from_secret("the first secret key").unwrap();
        assert_eq!(
            one.fingerprint("Bearer sk-1"),
            again.fingerprint("Bearer sk-1")
        );
        assert_ne!(
            one.fingerprint("Bearer sk-1"),
            two.fingerprint("Bearer sk-1")
        );
        assert_ne!(
            one.fingerprint("Bearer sk-1"),
            one.fingerprint("Bearer sk-2")
        );
        // Two random keys differ, and so do their fingerprints.
        assert_ne!(
            FingerprintKey::random().fingerprint("Bearer sk-1"),
            FingerprintKey::random().fingerprint("Bearer sk-1")
        );
        // `of` uses the process's key, every time.
        assert_eq!(
            Fingerprint::of("Bearer sk-1"),
            Fingerprint::of("Bearer sk-1")
        );
        assert_eq!(
            Fingerprint::of("Bearer sk-1"),
            FingerprintKey::process_default().fingerprint("Bearer sk-1")
        );
    }

    #[test]
    fn it_is_keyed_blake3() {
        // Pinned: the fingerprint of a configured key must not change between releases.
        let key = FingerprintKey::from_secret("0123456789abcdef").unwrap();
        let expected = blake3::keyed_hash(
            &blake3::derive_key(DERIVE_CONTEXT, b"0123456789abcdef"),
            b"x",
        );
        assert_eq!(key.fingerprint("x").to_bytes(), expected.as_bytes()[..16]);
    }

    #[test]
    fn display_is_truncated_and_never_the_secret() {
        let key = FingerprintKey::from_secret("0123456789abcdef").unwrap();
        let secret = "Bearer sk-0123456789abcdef";
        let fingerprint = key.fingerprint(secret);
        let shown = fingerprint.to_string();
        assert_eq!(shown.len(), 12);
        assert!(shown.chars().all(|c| c.is_ascii_hexdigit()), "{shown}");
        let full: String = fingerprint
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(full.starts_with(&shown) && full.len() == 32);
        let debug = format!("{fingerprint:?} {key:?}");
        assert_eq!(debug, format!("Fingerprint({shown}) FingerprintKey(..)"));
        assert!(!debug.contains("sk-") && !debug.contains("0123456789abcdef"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            FingerprintKey::from_secret("15 bytes secret").unwrap_err(),
            FingerprintKeyError::TooShort { len: 15, min: 16 }
        );
        assert!(FingerprintKey::from_secret("16 bytes secret!").is_ok());
        // Any bytes, not only text.
        assert!(FingerprintKey::from_secret([0xff; 32]).is_ok());
    }
}
