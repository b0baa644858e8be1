//! The loss and duplication decisions, taken by str0m-netem.
//!
//! str0m-netem's `Netem` decides loss (Bernoulli or Gilbert-Elliott) and duplication, but it
//! reports neither why a packet vanished nor which of two models took it. rtclab therefore runs
//! one zero-delay, unlimited-rate `Netem` per loss cause and reads each one's verdict from how
//! many copies come out: 0 = lost, 1 = passed, 2 = passed and duplicated. Delay, jitter, the
//! rate queue and the schedule are rtclab's own (README.md says why).

use crate::config::BurstLoss;
use std::time::Instant;
use str0m_netem::{
    GilbertElliot, Input, LossModel, Netem, NetemConfig, Output, Probability, RandomLoss,
};

/// One str0m-netem instance used as a per-packet oracle.
pub(crate) struct Stage {
    netem: Netem<[u8; 0]>,
}

impl Stage {
    fn new(loss: LossModel, duplicate: f64, seed: u64) -> Stage {
        let config = NetemConfig::new()
            .loss(loss)
            .duplicate(probability(duplicate))
            .seed(seed);
        Stage {
            netem: Netem::new(config),
        }
    }

    /// A Gilbert-Elliott stage (no duplication).
    pub fn burst(ge: &BurstLoss, seed: u64) -> Stage {
        // str0m-netem takes p and r as mean sojourn lengths (1/p, 1/r packets); p = 0 means
        // "never enter the bad state", which `good_duration(0.0)` encodes.
        let p = ge.p_pct / 100.0;
        let r = ge.r_pct / 100.0;
        let model = GilbertElliot::new()
            .good_duration(if p > 0.0 { (1.0 / p) as f32 } else { 0.0 })
            .bad_duration((1.0 / r) as f32)
            .loss_in_bad(probability(ge.loss_in_bad_pct / 100.0))
            .loss_in_good(probability(ge.loss_in_good_pct / 100.0));
        Stage::new(LossModel::GilbertElliot(model), 0.0, seed)
    }

    /// A Bernoulli loss stage that also duplicates survivors with probability `duplicate`.
    pub fn random(loss: f64, duplicate: f64, seed: u64) -> Stage {
        let model = if loss > 0.0 {
            LossModel::Random(RandomLoss::new(probability(loss)))
        } else {
            LossModel::None
        };
        Stage::new(model, duplicate, seed)
    }

    /// How many copies of a packet arriving at `now` survive: 0, 1 or 2.
    pub fn copies(&mut self, now: Instant) -> u8 {
        self.netem.handle_input(Input::Packet(now, []));
        let mut n = 0;
        // With zero latency and no link every surviving copy is due at `now`; draining keeps
        // the instance's internal queue empty.
        while let Some(out) = self.netem.poll_output() {
            if let Output::Packet(_) = out {
                n += 1;
            }
        }
        n
    }
}

fn probability(p: f64) -> Probability {
    // Validated to 0..=1 already; the clamp keeps str0m-netem's debug assertion quiet about
    // rounding at the ends.
    Probability::new((p as f32).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::runtime::{Runtime, TokioRuntime};

    #[test]
    fn copies_reflect_the_verdict() {
        let now = TokioRuntime.now();
        let mut all_lost = Stage::random(1.0, 0.0, 1);
        let mut none_lost = Stage::random(0.0, 0.0, 1);
        let mut doubled = Stage::random(0.0, 1.0, 1);
        for _ in 0..100 {
            assert_eq!(all_lost.copies(now), 0);
            assert_eq!(none_lost.copies(now), 1);
            assert_eq!(doubled.copies(now), 2);
        }
    }
}
