// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rate limits for log lines that a peer can repeat at will (a refused membership, a forged
//! netlink message, a malformed report): a burst is logged, the rest of the window only
//! counted, and the count given with the next line logged. Time is passed in.

use std::time::{Duration, Instant};

/// Lines logged per window at most.
pub const BURST: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One kind of line's budget.
#[derive(Debug, Default)]
pub struct LogLimit {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new() -> Self {
        Self { start: None, logged: 0, suppressed: 0 }
    }

    /// Whether a line may be logged `now`: `Some(n)`, `n` being how many were suppressed since
    /// the last one logged; `None` counts this one as suppressed.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.start.is_none_or(|s| now.saturating_duration_since(s) >= WINDOW) {
            self.start = Some(now);
            self.logged = 0;
        }
        if self.logged >= BURST {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_window_with_the_count() {
        let t0 = Instant::now();
        let mut l = LogLimit::new();
        let allowed: Vec<Option<u64>> = (0..1000).map(|_| l.allow(t0)).collect();
        assert_eq!(allowed.iter().filter(|a| a.is_some()).count(), BURST as usize);
        assert!(allowed[..BURST as usize].iter().all(|a| *a == Some(0)));
        // Within the window: still counted only.
        assert_eq!(l.allow(t0 + WINDOW / 2), None);
        // The next window logs again and says how many were not.
        assert_eq!(l.allow(t0 + WINDOW), Some(1000 - BURST as u64 + 1));
        assert_eq!(l.allow(t0 + WINDOW), Some(0));
    }
}
