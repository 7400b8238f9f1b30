//! The encodings of a slot's hot fields: the summary word that the closed-state path reads with
//! one atomic load, and the open deadline.
//!
//! | Bits | Meaning |
//! |---|---|
//! | 0-1 | the state: [`CLOSED`], [`OPEN`] or [`HALF_OPEN`] |
//! | 2 | [`DIRTY`]: a closed key whose successes must be recorded (it has recent failures, or its window is not yet full) |
//! | 3 | [`RETIRED`]: the key was evicted (or its registry dropped) |
//! | 8-23 | the free half-open probe slots, taken and given back by compare-and-swap |
//! | 32-63 | the generation, which changes with every transition |

use std::time::Duration;

use tokio::time::Instant;

use crate::BreakerState;

pub(super) const STATE_MASK: u64 = 0b11;
pub(super) const CLOSED: u64 = 0;
pub(super) const OPEN: u64 = 1;
pub(super) const HALF_OPEN: u64 = 2;
pub(super) const DIRTY: u64 = 0b100;
/// The key was evicted (or its registry dropped): services must look the key up again.
pub(super) const RETIRED: u64 = 0b1000;
const PROBE_SHIFT: u32 = 8;
pub(super) const PROBE_ONE: u64 = 1 << PROBE_SHIFT;
pub(super) const PROBE_MASK: u64 = 0xFFFF << PROBE_SHIFT;
const GEN_SHIFT: u32 = 32;

/// `until` value of a key pinned until unpinned.
pub(super) const FOREVER: u64 = u64::MAX;
/// `until` value of a deadline too far from the registry's epoch to count in nanoseconds (over
/// 584 years): the machine holds the real one.
pub(super) const FAR: u64 = FOREVER - 1;

#[inline]
pub(super) fn generation_of(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32
}

pub(super) fn free_probes(word: u64) -> u32 {
    ((word & PROBE_MASK) >> PROBE_SHIFT) as u32
}

/// The word for these parts.
pub(super) fn encode(
    state: BreakerState,
    dirty: bool,
    retired: bool,
    free_probes: u32,
    generation: u32,
) -> u64 {
    let state = match state {
        BreakerState::Closed => CLOSED,
        BreakerState::Open => OPEN,
        BreakerState::HalfOpen => HALF_OPEN,
    };
    let dirty = if dirty { DIRTY } else { 0 };
    let retired = if retired { RETIRED } else { 0 };
    state
        | dirty
        | retired
        | (u64::from(free_probes) << PROBE_SHIFT)
        | (u64::from(generation) << GEN_SHIFT)
}

/// The `until` value of a deadline: nanoseconds after `epoch`, [`FAR`] when they do not fit, or
/// [`FOREVER`] for none.
pub(super) fn encode_until(until: Option<Instant>, epoch: Instant) -> u64 {
    match until {
        Some(until) => u64::try_from(until.saturating_duration_since(epoch).as_nanos())
            .map_or(FAR, |nanos| nanos.min(FAR)),
        None => FOREVER,
    }
}

/// The deadline of an `until` value other than [`FOREVER`] and [`FAR`].
pub(super) fn decode_until(nanos: u64, epoch: Instant) -> Instant {
    epoch + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_out() {
        let word = encode(BreakerState::HalfOpen, false, true, 0xFFFF, u32::MAX);
        assert_eq!(word & STATE_MASK, HALF_OPEN);
        assert_eq!(word & (DIRTY | RETIRED), RETIRED);
        assert_eq!(free_probes(word), 0xFFFF);
        assert_eq!(generation_of(word), u32::MAX);
        assert_eq!(free_probes(word - PROBE_ONE), 0xFFFE);
        let closed = encode(BreakerState::Closed, true, false, 0, 7);
        assert_eq!(closed & (STATE_MASK | DIRTY), CLOSED | DIRTY);
        assert_eq!(generation_of(closed), 7);
    }

    #[test]
    fn deadlines_fit_or_say_so() {
        let epoch = Instant::now();
        let soon = epoch + Duration::from_secs(30);
        assert_eq!(decode_until(encode_until(Some(soon), epoch), epoch), soon);
        assert_eq!(encode_until(None, epoch), FOREVER);
        let far = epoch + Duration::from_secs(600 * 365 * 24 * 3600);
        assert_eq!(encode_until(Some(far), epoch), FAR);
    }
}
