//! The sliding window of a closed key's last attempts, for the failure-rate rule.

/// A sliding window of the last `size` attempts, one bit per attempt (1 = failed).
#[derive(Debug, Default)]
pub(super) struct Window {
    bits: Vec<u64>,
    size: u32,
    cursor: u32,
    pub(super) filled: u32,
    pub(super) failures: u32,
}

impl Window {
    pub(super) fn new(size: u32) -> Self {
        Window {
            bits: vec![0; size.div_ceil(64) as usize],
            size,
            cursor: 0,
            filled: 0,
            failures: 0,
        }
    }

    pub(super) fn push(&mut self, failed: bool) {
        let (word, bit) = ((self.cursor / 64) as usize, self.cursor % 64);
        let mask = 1u64 << bit;
        if self.filled == self.size {
            if self.bits[word] & mask != 0 {
                self.failures -= 1;
            }
        } else {
            self.filled += 1;
        }
        if failed {
            self.bits[word] |= mask;
            self.failures += 1;
        } else {
            self.bits[word] &= !mask;
        }
        self.cursor = (self.cursor + 1) % self.size;
    }

    /// Whether a success changes the window: it is not full yet, or a failure is still in it.
    /// (Pushing a success into a full window of successes changes nothing.)
    pub(super) fn needs_success(&self) -> bool {
        self.filled < self.size || self.failures > 0
    }

    pub(super) fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.cursor = 0;
        self.filled = 0;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_one_attempt_at_a_time() {
        let mut w = Window::new(3);
        assert!(w.needs_success());
        w.push(true);
        w.push(false);
        w.push(false);
        assert_eq!((w.filled, w.failures), (3, 1));
        assert!(w.needs_success());
        w.push(false); // the failure slides out
        assert_eq!((w.filled, w.failures), (3, 0));
        assert!(!w.needs_success());
        w.push(true);
        w.push(true);
        w.push(true);
        w.push(true);
        assert_eq!((w.filled, w.failures), (3, 3));
        w.clear();
        assert_eq!((w.filled, w.failures, w.cursor), (0, 0, 0));
    }

    #[test]
    fn wide_window_uses_several_words() {
        let mut w = Window::new(130);
        for i in 0..300 {
            w.push(i % 10 == 0);
        }
        // the last 130 attempts are 170..300: failures at 170, 180, ..., 290
        assert_eq!((w.filled, w.failures), (130, 13));
    }
}
