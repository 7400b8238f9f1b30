//! What the store keeps per key, and how it maps to the breaker's vocabulary: the Redis keys of
//! a breaker key, the stored record (versioned), and wall-clock deadlines.
//!
//! A breaker key is stored under a digest of its non-secret parts (provider, shown endpoint,
//! credential fingerprint): `{prefix}:state:{id}` (a hash, the record), `{prefix}:count:{id}`
//! (the fleet's failure count), `{prefix}:probes:{id}` (a sorted set of probe leases), and one
//! stream `{prefix}:events` of changes. The record's fields:
//!
//! | Field | Meaning |
//! |---|---|
//! | `v` | the record's format, [`VERSION`] |
//! | `rev` | the record's revision, one more with each change |
//! | `state` | `open` or `closed` |
//! | `until` | open: the end of the pin, Unix milliseconds; `0`: until unpinned |
//! | `manual` | `1`: pinned by hand |
//! | `trips` | consecutive trips (the next pin's backoff) |
//! | `since` | when it entered this state, Unix milliseconds |
//! | `cause` | the message of the failure that tripped it (never a credential) |
//! | `provider`, `endpoint`, `credential` | the key as shown: the endpoint without userinfo or query, 12 hex digits of the credential's keyed fingerprint |
//! | `by` | the replica that made the change |

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;
use wsfirst_breaker::Shared;
use wsfirst_core::BreakerKey;

/// The format of records and stream entries this crate writes; a later format can still read
/// these by their `v`.
pub(crate) const VERSION: u32 = 1;

/// The largest revision accepted: the largest integer a Lua number (a double) holds exactly.
pub(crate) const MAX_REV: u64 = (1 << 53) - 1;

/// The longest `cause` written or accepted, in bytes (a failure's message, not a document).
pub(crate) const MAX_CAUSE: usize = 1024;

/// The most consecutive trips accepted (the backoff is capped long before).
pub(crate) const MAX_TRIPS: u64 = 1_000_000;

/// `cause` cut to at most [`MAX_CAUSE`] bytes, on a character boundary.
pub(crate) fn bounded_cause(cause: &str) -> &str {
    if cause.len() <= MAX_CAUSE {
        return cause;
    }
    let mut end = MAX_CAUSE;
    while !cause.is_char_boundary(end) {
        end -= 1;
    }
    &cause[..end]
}

/// A stored record (or stream entry) of this crate's format with a field that is not one this
/// crate writes: someone wrote it by hand, or the store is corrupt. It is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) field: &'static str,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "breaker record field `{}` is missing or out of range",
            self.field
        )
    }
}

/// Whether `id` is a key id as [`id_of`] makes them (32 lower-case hex digits).
pub(crate) fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The digest that names a breaker key in the store: 32 hex digits of a BLAKE3 hash of its
/// provider, shown endpoint and credential fingerprint (itself a keyed MAC: the credential
/// never reaches the store).
pub(crate) fn id_of(key: &BreakerKey) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.provider().as_bytes());
    hasher.update(&[0]);
    hasher.update(key.endpoint().as_bytes());
    hasher.update(&[0]);
    if let Some(credential) = key.credential() {
        hasher.update(&credential.to_bytes());
    }
    let hash = hasher.finalize();
    hash.to_hex()[..32].to_owned()
}

/// The Redis keys of one breaker key.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) state: String,
    pub(crate) count: String,
    pub(crate) probes: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, id: &str) -> Self {
        Keys {
            state: format!("{prefix}:state:{id}"),
            count: format!("{prefix}:count:{id}"),
            probes: format!("{prefix}:probes:{id}"),
        }
    }
}

/// The stream of changes.
pub(crate) fn stream(prefix: &str) -> String {
    format!("{prefix}:events")
}

/// A stored record, or a stream entry (which also says whether it was a reset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) rev: u64,
    pub(crate) open: bool,
    /// Unix milliseconds; 0: until unpinned.
    pub(crate) until: u64,
    pub(crate) manual: bool,
    pub(crate) trips: u32,
    pub(crate) cause: Option<String>,
    pub(crate) reset: bool,
}

impl Record {
    /// Reads a record from its fields (a hash or a stream entry): `Ok(None)` when there is
    /// none or it is of another format (left alone), an error naming the first field out of
    /// range when it claims this crate's format but is not what this crate writes.
    pub(crate) fn parse(fields: &HashMap<String, String>) -> Result<Option<Record>, Malformed> {
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        let malformed = |field| Err(Malformed { field });
        if number("v") != Some(u64::from(VERSION)) {
            return Ok(None);
        }
        let open = match fields.get("state").map(String::as_str) {
            Some("open") => true,
            Some("closed") => false,
            _ => return malformed("state"),
        };
        let rev = match number("rev") {
            Some(rev @ 1..=MAX_REV) => rev,
            _ => return malformed("rev"),
        };
        let optional = |name: &'static str, max: u64| match fields.get(name) {
            None => Ok(0),
            Some(value) => match value.parse::<u64>() {
                Ok(value) if value <= max => Ok(value),
                _ => Err(Malformed { field: name }),
            },
        };
        let until = optional("until", u64::MAX)?;
        let trips = optional("trips", MAX_TRIPS)?;
        let cause = fields.get("cause").filter(|c| !c.is_empty());
        if cause.is_some_and(|cause| cause.len() > MAX_CAUSE) {
            return malformed("cause");
        }
        Ok(Some(Record {
            rev,
            open,
            until,
            manual: number("manual") == Some(1),
            trips: u32::try_from(trips).unwrap_or(u32::MAX),
            cause: cause.cloned(),
            reset: number("reset") == Some(1),
        }))
    }

    /// The breaker's view of it, with deadlines on this replica's clock.
    pub(crate) fn to_shared(&self) -> Shared {
        if self.open {
            Shared::Open {
                until: (self.until != 0).then(|| instant_of(self.until)),
                manual: self.manual,
                trips: self.trips,
                cause: self.cause.clone(),
            }
        } else {
            Shared::Closed {
                trips: self.trips,
                reset: self.reset,
            }
        }
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A deadline on this replica's clock as Unix milliseconds (clocks of replicas are assumed in
/// step, as NTP keeps them).
pub(crate) fn unix_of(instant: Instant) -> u64 {
    let now = Instant::now();
    let unix = unix_now();
    if instant >= now {
        let ahead = u64::try_from((instant - now).as_millis()).unwrap_or(u64::MAX);
        unix.saturating_add(ahead).max(1)
    } else {
        let behind = u64::try_from((now - instant).as_millis()).unwrap_or(u64::MAX);
        unix.saturating_sub(behind).max(1)
    }
}

/// Unix milliseconds as a deadline on this replica's clock.
pub(crate) fn instant_of(unix: u64) -> Instant {
    let now = Instant::now();
    let current = unix_now();
    if unix >= current {
        let ahead = Duration::from_millis(unix - current).min(wsfirst_core::MAX_DURATION);
        now + ahead
    } else {
        now.checked_sub(Duration::from_millis(current - unix))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_keys_apart_and_hold_no_secret() {
        let key = BreakerKey::new("openai", "wss://api.example/v1", None);
        let alice = key.with_credential(Some(wsfirst_core::Fingerprint::of("sk-alice")));
        let bob = key.with_credential(Some(wsfirst_core::Fingerprint::of("sk-bob")));
        let ids = [id_of(&key), id_of(&alice), id_of(&bob)];
        assert_eq!(ids[0].len(), 32);
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_eq!(id_of(&alice), id_of(&alice.clone()));
    }

    #[test]
    fn records_of_another_format_are_left_alone() {
        let mut fields: HashMap<String, String> = [
            ("v", "1"),
            ("rev", "4"),
            ("state", "open"),
            ("until", "0"),
            ("manual", "1"),
            ("trips", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let record = Record::parse(&fields).unwrap().unwrap();
        assert!(record.open && record.manual && record.until == 0 && record.rev == 4);
        assert!(matches!(
            record.to_shared(),
            Shared::Open {
                until: None,
                manual: true,
                trips: 2,
                ..
            }
        ));
        fields.insert("v".into(), "2".into());
        assert_eq!(Record::parse(&fields), Ok(None));
        assert_eq!(Record::parse(&HashMap::new()), Ok(None));
    }

    #[test]
    fn records_out_of_range_name_their_field() {
        let base: HashMap<String, String> = [("v", "1"), ("rev", "4"), ("state", "closed")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(Record::parse(&base).unwrap().is_some());
        let huge_rev = (MAX_REV + 1).to_string();
        let long_cause = "x".repeat(MAX_CAUSE + 1);
        for (field, value) in [
            ("rev", "abc"),
            ("rev", "0"),
            ("rev", huge_rev.as_str()),
            ("rev", "-1"),
            ("state", "half"),
            ("until", "soon"),
            ("trips", "1000001"),
            ("cause", long_cause.as_str()),
        ] {
            let mut fields = base.clone();
            fields.insert(field.to_owned(), value.to_owned());
            assert_eq!(
                Record::parse(&fields),
                Err(Malformed { field }),
                "{field}={value}"
            );
        }
    }

    #[test]
    fn causes_are_cut_on_a_character_boundary() {
        let cause = "é".repeat(MAX_CAUSE);
        let cut = bounded_cause(&cause);
        assert!(cut.len() <= MAX_CAUSE && cut.len() >= MAX_CAUSE - 1);
        assert_eq!(bounded_cause("short"), "short");
        assert!(is_id(&"a1".repeat(16)));
        assert!(!is_id("A1"));
    }

    #[test]
    fn deadlines_cross_the_wall_clock_and_back() {
        let soon = Instant::now() + Duration::from_secs(30);
        let back = instant_of(unix_of(soon));
        let gap = if back > soon {
            back - soon
        } else {
            soon - back
        };
        assert!(gap < Duration::from_secs(2), "{gap:?}");
    }
}
