//! Delay-based rate control (draft-ietf-rmcat-gcc-02 §5.5; libwebrtc `AimdRateControl`).
//!
//! A three-state machine driven by the over-use signal: over-use → decrease to
//! [`BETA`] × the acknowledged rate; normal → increase; under-use → hold (a queue is draining).
//! The increase is multiplicative (8 %/s) while the link capacity is unknown and additive (about
//! one packet per response time) near the capacity measured at the last over-uses. The increase
//! is capped at [`ACKED_CAP_FACTOR`] × acked + [`ACKED_CAP_OFFSET_BPS`]: the estimate must stay
//! tied to what the path has actually delivered (webrtc-rs's stock `Gcc` climbed to 4.3 Mbps
//! while 0.55 Mbps was being sent).

use serde::Serialize;
use std::time::{Duration, Instant};

/// Decrease factor on over-use (draft §5.5: beta in [0.8, 0.95]; libwebrtc 0.85). rtclab's
/// trendline catches over-use while the queue is still ~30-50 ms (on rfc8867-5.1), so a 10 %
/// cut drains it within a few hundred ms; 0.85 left the 1 Mbps phase at 86-87 % utilisation
/// (the sawtooth's trough) against 89-90 % with 0.9, for a p95 queue delay ~5 ms higher.
pub const BETA: f64 = 0.9;
/// Multiplicative increase per second far from convergence (draft §5.5: eta = 1.08).
pub const MULTIPLICATIVE_PER_S: f64 = 1.08;
/// The increase is capped at this × acked (libwebrtc `AimdRateControl`: 1.5).
pub const ACKED_CAP_FACTOR: f64 = 1.5;
/// … plus this, so a nearly idle sender can still grow (libwebrtc: 10 kbps).
pub const ACKED_CAP_OFFSET_BPS: f64 = 10_000.0;
/// Minimum additive increase per second (libwebrtc: 4 kbps/s).
const MIN_ADDITIVE_BPS_PER_S: f64 = 4_000.0;
/// Frame rate assumed for the additive step (libwebrtc assumes 30 fps).
const ASSUMED_FPS: f64 = 30.0;
/// Packet size assumed for the additive step, bytes.
const PACKET_BYTES: f64 = 1200.0;

/// Below a measured link ceiling the rate closes the gap at this time constant: the link was
/// seen carrying it seconds ago, so the slow additive search near convergence is not needed.
pub const CEILING_APPROACH: Duration = Duration::from_secs(1);

/// Rate-control state (draft §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateControlState {
    /// Keep the rate.
    #[default]
    Hold,
    /// Raise the rate.
    Increase,
    /// Lower the rate.
    Decrease,
}

/// Capacity seen at over-uses, as a mean and a normalised variance (libwebrtc
/// `LinkCapacityEstimator`, all in kbps).
#[derive(Debug, Default, Clone, Copy)]
struct LinkCapacity {
    estimate_kbps: Option<f64>,
    deviation: f64,
}

impl LinkCapacity {
    fn update(&mut self, sample_bps: f64, alpha: f64) {
        let s = sample_bps / 1000.0;
        let est = match self.estimate_kbps {
            None => s,
            Some(e) => (1.0 - alpha) * e + alpha * s,
        };
        let err = est - s;
        self.deviation =
            ((1.0 - alpha) * self.deviation + alpha * err * err / est.max(1.0)).clamp(0.4, 2.5);
        self.estimate_kbps = Some(est);
    }

    fn dev_kbps(&self, est: f64) -> f64 {
        (self.deviation * est).sqrt()
    }

    fn upper_bps(&self) -> Option<f64> {
        self.estimate_kbps
            .map(|e| (e + 3.0 * self.dev_kbps(e)) * 1000.0)
    }

    fn lower_bps(&self) -> Option<f64> {
        self.estimate_kbps
            .map(|e| (e - 3.0 * self.dev_kbps(e)).max(0.0) * 1000.0)
    }
}

/// What the rate control is told per feedback.
#[derive(Debug, Clone, Copy)]
pub struct AimdInput {
    /// The detector's signal.
    pub usage: crate::overuse::Usage,
    /// Smoothed acknowledged rate, bps.
    pub acked_bps: Option<f64>,
    /// Latest raw acknowledged window, bps.
    pub acked_sample_bps: Option<f64>,
    /// Round-trip time.
    pub rtt: Option<Duration>,
    /// Application-limited: the sender is using well under the target.
    pub in_alr: bool,
    /// The newest probe result that may serve as an ALR ceiling, bps.
    pub probed_bps: Option<f64>,
    /// What the link carried when a recent cluster saturated it, bps: the increase stops there
    /// and, below it, closes the gap within about [`CEILING_APPROACH`].
    pub link_ceiling_bps: Option<f64>,
}

/// AIMD rate control.
#[derive(Debug)]
pub struct Aimd {
    rate: f64,
    min: f64,
    max: f64,
    state: RateControlState,
    capacity: LinkCapacity,
    last_change: Option<Instant>,
    last_decrease: Option<Instant>,
    last_action: RateControlState,
}

impl Aimd {
    /// Starts at `start` bps, kept in `[min, max]`.
    pub fn new(start: f64, min: f64, max: f64) -> Self {
        Aimd {
            rate: start.clamp(min, max),
            min,
            max,
            state: RateControlState::Hold,
            capacity: LinkCapacity::default(),
            last_change: None,
            last_decrease: None,
            last_action: RateControlState::Hold,
        }
    }

    /// The delay-based estimate, bps.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// What the last update did (a decrease leaves the state machine in hold, so this is
    /// what is worth logging).
    pub fn last_action(&self) -> RateControlState {
        self.last_action
    }

    /// Link capacity measured at over-uses, bps, if any.
    pub fn link_capacity_bps(&self) -> Option<f64> {
        self.capacity.estimate_kbps.map(|k| k * 1000.0)
    }

    /// Sets the estimate (a probe result, a start-up value): the capacity is then known to be
    /// at least this.
    pub fn set_estimate(&mut self, now: Instant, bps: f64, from_probe: bool) {
        self.rate = bps.clamp(self.min, self.max);
        if from_probe {
            // libwebrtc `OnProbeRate`: the capacity moves half way to what the probe measured.
            if self.capacity.estimate_kbps.is_some() {
                self.capacity.update(bps, 0.5);
            }
        }
        self.last_change = Some(now);
    }

    /// One feedback: updates and returns the estimate.
    pub fn update(&mut self, now: Instant, input: &AimdInput) -> f64 {
        use crate::overuse::Usage;
        self.state = match (input.usage, self.state) {
            (Usage::Overuse, _) => RateControlState::Decrease,
            (Usage::Underuse, _) => RateControlState::Hold,
            (Usage::Normal, RateControlState::Hold) => RateControlState::Increase,
            (Usage::Normal, s) => s,
        };
        let dt = self
            .last_change
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(1));
        self.last_action = self.state;
        match self.state {
            RateControlState::Hold => {}
            RateControlState::Increase => self.increase(now, dt, input),
            RateControlState::Decrease => self.decrease(now, input),
        }
        self.last_change = Some(now);
        self.rate
    }

    fn increase(&mut self, _now: Instant, dt: Duration, input: &AimdInput) {
        if let (Some(acked), Some(upper)) = (input.acked_bps, self.capacity.upper_bps())
            && acked > upper
        {
            // The path delivers more than the capacity we measured: it changed, forget it.
            self.capacity = LinkCapacity::default();
        }
        let dt_s = dt.as_secs_f64();
        let step = if self.capacity.estimate_kbps.is_some() {
            // Near convergence: about one packet per response time (libwebrtc
            // `AdditiveRateIncrease`).
            let rtt = input.rtt.unwrap_or(Duration::from_millis(100));
            let response_s = (rtt + Duration::from_millis(100)).as_secs_f64();
            let bits_per_frame = self.rate / ASSUMED_FPS;
            let packets = (bits_per_frame / (8.0 * PACKET_BYTES)).ceil().max(1.0);
            let per_s = (bits_per_frame / packets / response_s).max(MIN_ADDITIVE_BPS_PER_S);
            per_s * dt_s
        } else {
            (self.rate * (MULTIPLICATIVE_PER_S.powf(dt_s) - 1.0)).max(1000.0 * dt_s)
        };
        let Some(acked) = input.acked_bps else {
            // Nothing acknowledged yet (the first acked window is 500 ms): no evidence for
            // more than the start rate; probes may still raise it.
            return;
        };
        let mut ceiling = match input.link_ceiling_bps {
            // A cluster saw the link carry this a moment ago: that bounds the increase, and
            // stopping there avoids the queue the next over-use would cut 10 % for. Not 1.5 ×
            // acked: after a capacity step up the acked rate lags by its averaging window, and
            // held the climb to 2.5 Mbps at ~300 kbps/s (rfc8867-5.1 at 40 s).
            Some(link) => link,
            None => ACKED_CAP_FACTOR * acked + ACKED_CAP_OFFSET_BPS,
        }
        .min(self.max);
        if input.in_alr {
            // Application-limited: nothing says the path carries more than what was acked or
            // probed, so the delay-based path does not raise the target beyond that.
            ceiling = ceiling.min(acked.max(input.probed_bps.unwrap_or(0.0)));
        }
        let mut step = step;
        if let Some(link) = input.link_ceiling_bps {
            // Below what the link was seen carrying: close the gap quickly.
            let approach = (dt_s / CEILING_APPROACH.as_secs_f64()).min(1.0);
            step = step.max((link - self.rate) * approach);
        }
        if self.rate < ceiling {
            self.rate = (self.rate + step).min(ceiling);
        }
        self.rate = self.rate.clamp(self.min, self.max);
    }

    fn decrease(&mut self, now: Instant, input: &AimdInput) {
        let throughput = match (input.acked_bps, input.acked_sample_bps) {
            (Some(a), Some(s)) => Some(a.min(s)),
            (a, s) => a.or(s),
        };
        // Once per response time at most (libwebrtc `TimeToReduceFurther`), unless what
        // arrives is under half the rate: the first decrease was not nearly enough.
        let interval = input
            .rtt
            .unwrap_or(Duration::from_millis(200))
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        let recent = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < interval);
        let collapsed = throughput.is_some_and(|t| t < self.rate / 2.0);
        if recent && !collapsed {
            self.state = RateControlState::Hold;
            self.last_action = RateControlState::Hold;
            return;
        }
        let base = throughput.unwrap_or(self.rate);
        let mut new = BETA * base;
        if new > self.rate
            && let Some(cap) = self.capacity.estimate_kbps
        {
            new = BETA * cap * 1000.0;
        }
        if let (Some(t), Some(lower)) = (throughput, self.capacity.lower_bps())
            && t < lower
        {
            // Far below what was measured before: that measurement no longer applies.
            self.capacity = LinkCapacity::default();
        }
        if let Some(t) = throughput {
            self.capacity.update(t, 0.05);
        }
        self.rate = new.min(self.rate).clamp(self.min, self.max);
        self.last_decrease = Some(now);
        // After a decrease, wait for the signal to clear before increasing (draft §5.5).
        self.state = RateControlState::Hold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overuse::Usage;

    fn input(usage: Usage, acked: f64, ceiling: Option<f64>) -> AimdInput {
        AimdInput {
            usage,
            acked_bps: Some(acked),
            acked_sample_bps: Some(acked),
            rtt: Some(Duration::from_millis(100)),
            in_alr: false,
            probed_bps: None,
            link_ceiling_bps: ceiling,
        }
    }

    /// An over-use at 1 Mbps (the capacity is then known: additive increase), then `secs` of
    /// normal feedback every 100 ms; returns the rates seen.
    fn after_cut(ceiling: Option<f64>, secs: u32) -> Vec<f64> {
        let t0 = Instant::now();
        let mut a = Aimd::new(1_000_000.0, 100_000.0, 5_000_000.0);
        a.update(t0, &input(Usage::Overuse, 1_000_000.0, ceiling));
        assert!((a.rate() - BETA * 1_000_000.0).abs() < 1.0, "{}", a.rate());
        (1..=secs * 10)
            .map(|i| {
                let now = t0 + Duration::from_millis(100 * u64::from(i));
                a.update(now, &input(Usage::Normal, 1_000_000.0, ceiling))
            })
            .collect()
    }

    #[test]
    fn below_a_measured_ceiling_the_rate_closes_the_gap_within_about_a_second() {
        // Additive near convergence: ~37.5 kbps/s at 900 kbps, 30 fps, 200 ms response time.
        let plain = after_cut(None, 1);
        assert!(*plain.last().unwrap() < 950_000.0, "{plain:?}");
        // A cluster saw the link carry 1.2 Mbps: 1 s later the gap is down to about 1/e.
        let fast = after_cut(Some(1_200_000.0), 1);
        assert!(*fast.last().unwrap() > 1_080_000.0, "{fast:?}");
    }

    #[test]
    fn a_measured_ceiling_lifts_the_acked_cap() {
        // The capacity stepped from 1 to 2.5 Mbps: acked still says 1 Mbps (its window lags),
        // a cluster says the link carries 2.4 Mbps. 1.5 × acked + 10 kbps would stop at
        // 1.51 Mbps; the ceiling lets the rate close most of the gap within 2 s.
        let rates = after_cut(Some(2_400_000.0), 2);
        assert!(*rates.last().unwrap() > 2_000_000.0, "{rates:?}");
        assert!(rates.iter().all(|&r| r <= 2_400_000.0), "{rates:?}");
    }

    #[test]
    fn the_increase_stops_at_the_ceiling() {
        let capped = after_cut(Some(950_000.0), 5);
        assert!(capped.iter().all(|&r| r <= 950_000.0), "{capped:?}");
        assert!(*capped.last().unwrap() > 940_000.0, "{capped:?}");
        // Without it the additive search passes that rate within the same 5 s.
        let plain = after_cut(None, 5);
        assert!(*plain.last().unwrap() > 1_000_000.0, "{plain:?}");
    }
}
