//! Loss-based control (draft-ietf-rmcat-gcc-02 §6).
//!
//! Over each window of at least [`MIN_PACKETS`] reported packets the loss fraction p decides:
//! p < 2 % → increase by 5 % or by a quarter of the gap to the delay-based rate, whichever is more; p > 10 % → decrease to (1 − 0.5 p) × the rate; in between → hold
//! (draft §6, equation for As). Two pacing rules from libwebrtc's `SendSideBandwidthEstimation`
//! keep it from running away on frequent feedback: at most one increase per
//! [`INCREASE_INTERVAL`], one decrease per [`DECREASE_INTERVAL`] + RTT. The loss-based rate never
//! rises above the delay-based one, so `min(delay, loss)` reads "the delay-based rate, cut by
//! loss", and a cut starts from what was actually the target.

use std::time::{Duration, Instant};

/// Below this loss the rate increases (draft §6: 2 %).
pub const LOW_LOSS: f64 = 0.02;
/// Above this loss the rate decreases (draft §6: 10 %).
pub const HIGH_LOSS: f64 = 0.10;
/// Increase factor per step (draft §6: 1.05).
pub const INCREASE_FACTOR: f64 = 1.05;
/// Share of the gap to the delay-based rate closed per low-loss window (rtclab's choice: four
/// low-loss windows close two thirds of it).
pub const RECOVERY_SHARE: f64 = 0.25;
/// Packets needed for a loss measurement (libwebrtc `kLimitNumPackets`).
pub const MIN_PACKETS: u32 = 20;
/// At most one increase per this (keeps 1.05 per step near libwebrtc's ~8 %/s at 1 s; here 5 %
/// per 200 ms ≈ 28 %/s at most, still capped by the delay-based rate).
pub const INCREASE_INTERVAL: Duration = Duration::from_millis(200);
/// At most one decrease per this plus an RTT (libwebrtc `kBweDecreaseInterval`).
pub const DECREASE_INTERVAL: Duration = Duration::from_millis(300);

/// What the last loss window decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossAction {
    /// p < 2 %.
    Increase,
    /// 2 % ≤ p ≤ 10 %.
    Hold,
    /// p > 10 %.
    Decrease,
}

/// Loss-based controller.
#[derive(Debug)]
pub struct LossBased {
    rate: f64,
    min: f64,
    max: f64,
    lost: u32,
    total: u32,
    loss_ratio: f64,
    last_increase: Option<Instant>,
    last_decrease: Option<Instant>,
    last_action: Option<LossAction>,
}

impl LossBased {
    /// Starts at `start` bps, kept in `[min, max]`.
    pub fn new(start: f64, min: f64, max: f64) -> Self {
        LossBased {
            rate: start.clamp(min, max),
            min,
            max,
            lost: 0,
            total: 0,
            loss_ratio: 0.0,
            last_increase: None,
            last_decrease: None,
            last_action: None,
        }
    }

    /// The loss-based rate, bps.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Raises the rate to at least `bps` (a probe showed the path carries it).
    pub fn raise_to(&mut self, bps: f64) {
        self.rate = self.rate.max(bps).clamp(self.min, self.max);
    }

    /// Lowers the rate to at most `bps` (feedback timeout).
    pub fn cap(&mut self, bps: f64) {
        self.rate = self.rate.min(bps).clamp(self.min, self.max);
    }

    /// Loss fraction of the last complete window.
    pub fn loss_ratio(&self) -> f64 {
        self.loss_ratio
    }

    /// What the last complete window decided.
    pub fn last_action(&self) -> Option<LossAction> {
        self.last_action
    }

    /// Counts one feedback's packets; when a window is complete, applies draft §6.
    /// `delay_based` is the ceiling.
    pub fn update(
        &mut self,
        now: Instant,
        lost: u32,
        total: u32,
        rtt: Option<Duration>,
        delay_based: f64,
    ) -> f64 {
        self.lost += lost;
        self.total += total;
        if self.total >= MIN_PACKETS {
            let p = f64::from(self.lost) / f64::from(self.total);
            self.loss_ratio = p;
            self.lost = 0;
            self.total = 0;
            if p < LOW_LOSS {
                self.last_action = Some(LossAction::Increase);
                if self
                    .last_increase
                    .is_none_or(|t| now.saturating_duration_since(t) >= INCREASE_INTERVAL)
                {
                    // Not loss-limited: close part of the gap to the delay-based rate as well,
                    // so that a cut made during a burst of loss does not hold the target for
                    // tens of seconds at 5 % a step (libwebrtc's loss-based v2 likewise stops
                    // limiting once the path is not loss-limited).
                    let gap = (delay_based - self.rate).max(0.0);
                    self.rate = (self.rate * INCREASE_FACTOR).max(self.rate + RECOVERY_SHARE * gap);
                    self.last_increase = Some(now);
                }
            } else if p > HIGH_LOSS {
                self.last_action = Some(LossAction::Decrease);
                let wait = DECREASE_INTERVAL + rtt.unwrap_or(Duration::from_millis(100));
                if self
                    .last_decrease
                    .is_none_or(|t| now.saturating_duration_since(t) >= wait)
                {
                    // From what was really the target, not from a ceiling far above it.
                    self.rate = self.rate.min(delay_based) * (1.0 - 0.5 * p);
                    self.last_decrease = Some(now);
                }
            } else {
                self.last_action = Some(LossAction::Hold);
            }
        }
        self.rate = self.rate.min(delay_based).clamp(self.min, self.max);
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 10 s of feedback (100 packets every 100 ms) at `loss`, starting at 500 kbps under
    /// a 1 Mbps delay-based ceiling, so an increase is visible but bounded.
    fn run(loss: f64) -> (f64, Option<LossAction>) {
        let t0 = Instant::now();
        let mut lb = LossBased::new(500_000.0, 50_000.0, 10_000_000.0);
        let lost = (100.0 * loss).round() as u32;
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(100 * i);
            lb.update(
                now,
                lost,
                100,
                Some(Duration::from_millis(100)),
                1_000_000.0,
            );
        }
        (lb.rate(), lb.last_action())
    }

    #[test]
    fn one_percent_increases_five_holds_twenty_decreases() {
        let (r1, a1) = run(0.01);
        assert_eq!(a1, Some(LossAction::Increase));
        assert_eq!(r1, 1_000_000.0, "1 % climbs to the delay-based ceiling");
        let (r5, a5) = run(0.05);
        assert_eq!(a5, Some(LossAction::Hold));
        assert_eq!(r5, 500_000.0, "5 % must hold");
        let (r20, a20) = run(0.20);
        assert_eq!(a20, Some(LossAction::Decrease));
        assert!(r20 < 100_000.0, "20 %: {r20}");
    }
}
