//! The sender's congestion-control chain: estimator, pacer and TWCC, with the pacer running
//! faster than the target.
//!
//! webrtc-rs's `configure_congestion_control` hands the pacer the raw target. An encoder that
//! meets its target exactly then fills the pacer as fast as it drains, so whatever the first
//! keyframe put in the queue stays there for the whole call (measured: a constant ~0.7 s of
//! latency at 1 Mbps). libwebrtc paces at 2.5 × the target (`kDefaultPaceMultiplier`,
//! modules/pacing/pacing_controller.h) so that bursts drain within a few frames; rtclab does the
//! same by rewriting the estimate on its way from the controller to the pacer, and raises the
//! rate when the queue would otherwise take longer than `MAX_QUEUE_TIME` to drain.

use super::inspect::Inspect;
use super::send_queue::{MAX_QUEUE_TIME, SendQueue};
use rtc::interceptor::{Attribute, Interceptor, PacerBuilder, TaggedPacket};

/// Pacing rate over target rate (libwebrtc `kDefaultPaceMultiplier`).
pub const PACING_FACTOR: f64 = 2.5;

/// The pacer's burst: one full-size packet. webrtc-rs derives it from the rate (a tenth of a
/// second's worth), which after an idle moment lets a whole keyframe out at line rate: the
/// cluster then leaves far faster than 2.5 × target, and the probe detector rightly discards
/// it (send/receive ratio above 3), so no probe ever measured the path (rfc8867-5.1: one
/// result in 100 s). One packet keeps every cluster at the pacing rate; the cost is a wake-up
/// per packet (~300/s at 3 Mbps).
const PACER_BURST_BITS: f64 = rtc::interceptor::PACER_MIN_BURST_BITS;

/// A new pacing rate is handed to the pacer only if it differs from the last by more than this
/// share (the queue-drain term moves with every packet).
const RATE_HYSTERESIS: f64 = 0.1;

/// Sets the pacer's rate: [`PACING_FACTOR`] × the controller's target, raised when needed so that
/// the queue drains within [`MAX_QUEUE_TIME`]. The controller's `TargetBitrateChanged` is
/// rewritten on its way to the pacer; between changes, the attribute is added to whatever RTCP
/// passes (feedback arrives every 50–100 ms) when the queue calls for a different rate.
pub struct PacingFactor {
    queue: SendQueue,
    target: f64,
    set: f64,
}

impl PacingFactor {
    /// Starts at `initial_bps` (the target the pacer was built with).
    pub fn new(queue: SendQueue, initial_bps: f64) -> Self {
        PacingFactor {
            queue,
            target: initial_bps,
            set: initial_bps * PACING_FACTOR,
        }
    }

    /// The pacing rate for `target` with `queued_bytes` waiting.
    pub fn rate(target: f64, queued_bytes: u64) -> f64 {
        let drain = queued_bytes as f64 * 8.0 / MAX_QUEUE_TIME.as_secs_f64();
        (target * PACING_FACTOR).max(drain)
    }
}

impl Inspect for PacingFactor {
    fn on_read(&mut self, mut msg: TaggedPacket) -> Option<TaggedPacket> {
        let mut carried = false;
        for a in &msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = a {
                self.target = *bits_per_second;
                carried = true;
            }
        }
        let rate = Self::rate(self.target, self.queue.queued_bytes());
        if carried {
            for a in &mut msg.message.attributes {
                if let Attribute::TargetBitrateChanged { bits_per_second } = a {
                    *bits_per_second = rate;
                }
            }
            self.set = rate;
        } else if (rate - self.set).abs() > RATE_HYSTERESIS * self.set {
            msg.message.add(Attribute::TargetBitrateChanged {
                bits_per_second: rate,
            });
            self.set = rate;
        }
        Some(msg)
    }
}

/// webrtc-rs's pacer, started at [`PACING_FACTOR`] × `initial_bps` and releasing one packet at a
/// time ([`PACER_BURST_BITS`]); [`PacingFactor`] keeps its rate up to date.
pub fn pacer(initial_bps: f64) -> impl Interceptor {
    PacerBuilder::new()
        .with_target_bitrate(initial_bps * PACING_FACTOR)
        .with_burst_bits(PACER_BURST_BITS)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_runs_at_2_5_x_target_unless_the_queue_needs_more() {
        assert_eq!(PacingFactor::rate(1e6, 0), 2.5e6);
        // 100 kB queued must drain in MAX_QUEUE_TIME: 800 kbit / 0.4 s = 2 Mbps > 2.5 × 100 k.
        let r = PacingFactor::rate(100e3, 100_000);
        assert!(
            (r - 800e3 / MAX_QUEUE_TIME.as_secs_f64()).abs() < 1.0,
            "{r}"
        );
    }
}
