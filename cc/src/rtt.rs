//! Round-trip time, from transport-wide feedback and from RTCP receiver reports.
//!
//! TWCC: the feedback's arrival here minus the departure of the newest packet it acknowledges
//! (libwebrtc `TransportFeedbackAdapter`). It includes the receiver's feedback delay (up to one
//! feedback interval) and the queueing on the path, which is what rate control needs to time
//! its reactions. RR (RFC 3550 §6.4.1: now − LSR − DLSR) is set by the caller when it has one.

use serde::Serialize;
use std::time::{Duration, Instant};

/// Weight of a new TWCC sample in the smoothed RTT (RFC 6298 §2: alpha = 1/8).
const ALPHA: f64 = 0.125;

/// Where the RTT in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RttSource {
    /// Transport-wide feedback.
    Twcc,
    /// RTCP receiver report.
    Rr,
}

/// RTT state.
#[derive(Debug, Default)]
pub struct Rtt {
    twcc_smoothed: Option<f64>,
    twcc_latest: Option<Duration>,
    rr: Option<Duration>,
}

impl Rtt {
    /// No measurement yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feedback arrived at `now` acknowledging, newest, a packet that left at `departure`.
    pub fn on_feedback(&mut self, now: Instant, departure: Instant) {
        let Some(sample) = now.checked_duration_since(departure) else {
            return;
        };
        self.twcc_latest = Some(sample);
        let s = sample.as_secs_f64();
        self.twcc_smoothed = Some(match self.twcc_smoothed {
            None => s,
            Some(prev) => (1.0 - ALPHA) * prev + ALPHA * s,
        });
    }

    /// The RTT from an RTCP receiver report.
    pub fn set_rr(&mut self, rtt: Duration) {
        self.rr = Some(rtt);
    }

    /// Smoothed TWCC RTT.
    pub fn twcc(&self) -> Option<Duration> {
        self.twcc_smoothed.map(Duration::from_secs_f64)
    }

    /// Latest RR RTT.
    pub fn rr(&self) -> Option<Duration> {
        self.rr
    }

    /// The RTT in use: TWCC when there is feedback (it is per-feedback and current), else RR.
    pub fn get(&self) -> Option<(Duration, RttSource)> {
        self.twcc()
            .map(|d| (d, RttSource::Twcc))
            .or(self.rr.map(|d| (d, RttSource::Rr)))
    }
}
