//! At most one WARN per key per interval about falling back.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use wsfirst_core::BreakerKey;

/// When each key last warned, shared by every service made from one layer.
///
/// Keys are routes' breaker keys without the per-request credential, so the map holds at most
/// one entry per configured upstream endpoint.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    keys: Mutex<HashMap<BreakerKey, KeyState>>,
}

#[derive(Debug)]
struct KeyState {
    last_warned: Instant,
    /// Fallbacks since the last WARN that were not warned about.
    quiet: u64,
}

impl Warnings {
    /// Whether a fallback on `key` at `now` is warned about: `Some(n)` with the number of
    /// fallbacks since the previous WARN that were not, `None` to stay quiet.
    pub(crate) fn check(&self, key: &BreakerKey, interval: Duration, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock cannot leave the map inconsistent.
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        match keys.get_mut(key) {
            Some(state) if now.saturating_duration_since(state.last_warned) < interval => {
                state.quiet += 1;
                None
            }
            Some(state) => {
                let quiet = state.quiet;
                state.last_warned = now;
                state.quiet = 0;
                Some(quiet)
            }
            None => {
                keys.insert(
                    key.clone(),
                    KeyState {
                        last_warned: now,
                        quiet: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_warning_per_key_per_interval() {
        let warnings = Warnings::default();
        let a = BreakerKey::new("a", "wss://a", None);
        let b = BreakerKey::new("b", "wss://b", None);
        let interval = Duration::from_secs(60);

        assert_eq!(warnings.check(&a, interval, Instant::now()), Some(0));
        assert_eq!(warnings.check(&a, interval, Instant::now()), None);
        assert_eq!(warnings.check(&b, interval, Instant::now()), Some(0));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(warnings.check(&a, interval, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(warnings.check(&a, interval, Instant::now()), Some(2));
        assert_eq!(warnings.check(&a, interval, Instant::now()), None);
    }
}
