//! Application-limited region detection (libwebrtc `AlrDetector`).
//!
//! A budget fills at [`USAGE_RATIO`] × target and drains with every byte sent, capped at
//! [`WINDOW`] worth of budget either way. When more than [`START_RATIO`] of it is unused the
//! sender is application-limited (ALR: sending well under the target, e.g. a static scene);
//! below [`STOP_RATIO`] it is not. In ALR the delay gradient says nothing about rates above
//! what is being sent, so the controller must not raise the target on it.

use std::time::{Duration, Instant};

/// Fraction of the target the budget fills at (libwebrtc `bandwidth_usage_ratio`).
pub const USAGE_RATIO: f64 = 0.65;
/// ALR starts when the unused budget exceeds this fraction (libwebrtc `start_budget_level_ratio`).
pub const START_RATIO: f64 = 0.80;
/// ALR ends when the unused budget falls below this fraction (libwebrtc `stop_budget_level_ratio`).
pub const STOP_RATIO: f64 = 0.50;
/// Budget window (libwebrtc `IntervalBudget` `kWindowMs`).
pub const WINDOW: Duration = Duration::from_millis(500);

/// ALR detector.
#[derive(Debug)]
pub struct AlrDetector {
    target_bps: f64,
    remaining_bytes: f64,
    last: Option<Instant>,
    in_alr: bool,
    started: Option<Instant>,
    ended: Option<Instant>,
}

impl AlrDetector {
    /// Not in ALR; the budget follows `target_bps`.
    pub fn new(target_bps: f64) -> Self {
        AlrDetector {
            target_bps,
            remaining_bytes: 0.0,
            last: None,
            in_alr: false,
            started: None,
            ended: None,
        }
    }

    fn max_bytes(&self) -> f64 {
        self.target_bps * USAGE_RATIO / 8.0 * WINDOW.as_secs_f64()
    }

    /// The target changed.
    pub fn set_target(&mut self, bps: f64) {
        self.target_bps = bps;
        let max = self.max_bytes();
        self.remaining_bytes = self.remaining_bytes.clamp(-max, max);
    }

    /// `bytes` left at `at` (instants non-decreasing; an older one counts its bytes only).
    pub fn on_sent(&mut self, at: Instant, bytes: usize) {
        let max = self.max_bytes();
        if let Some(last) = self.last {
            let dt = at
                .saturating_duration_since(last)
                .min(Duration::from_secs(2));
            self.remaining_bytes += self.target_bps * USAGE_RATIO / 8.0 * dt.as_secs_f64();
        }
        if self.last.is_none_or(|l| at > l) {
            self.last = Some(at);
        }
        self.remaining_bytes = (self.remaining_bytes.min(max) - bytes as f64).max(-max);
        let ratio = if max > 0.0 {
            self.remaining_bytes / max
        } else {
            0.0
        };
        if !self.in_alr && ratio > START_RATIO {
            self.in_alr = true;
            self.started = Some(at);
        } else if self.in_alr && ratio < STOP_RATIO {
            self.in_alr = false;
            self.ended = Some(at);
        }
    }

    /// Whether the sender is application-limited.
    pub fn in_alr(&self) -> bool {
        self.in_alr
    }

    /// When ALR last ended (send clock).
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `bps` for `secs` in 1200-byte packets; returns whether ALR was on at the end.
    fn send(alr: &mut AlrDetector, t0: Instant, from_s: f64, secs: f64, bps: f64) -> bool {
        let gap = 1200.0 * 8.0 / bps;
        let n = (secs / gap) as u64;
        for i in 0..n {
            alr.on_sent(t0 + Duration::from_secs_f64(from_s + i as f64 * gap), 1200);
        }
        alr.in_alr()
    }

    #[test]
    fn sending_well_under_the_target_is_alr_and_at_the_target_is_not() {
        let t0 = Instant::now();
        let mut alr = AlrDetector::new(1_000_000.0);
        assert!(
            !send(&mut alr, t0, 0.0, 2.0, 950_000.0),
            "at 95 % of target"
        );
        // From an overdrawn budget, 30 % of target needs ~1.7 s to reach the start level.
        assert!(send(&mut alr, t0, 2.0, 3.0, 300_000.0), "at 30 % of target");
        assert!(!send(&mut alr, t0, 5.0, 2.0, 1_000_000.0), "back at target");
        assert!(alr.ended_at().is_some());
    }
}
