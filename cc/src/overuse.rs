//! Over-use detector with an adaptive threshold (draft-ietf-rmcat-gcc-02 §5.4).
//!
//! The modified trend is compared with a threshold γ that follows it (draft §5.4, eq. for
//! `del_var_th`): γ grows by `k_up` when |m| is above it and shrinks by `k_down` when below, so
//! the detector neither starves against a concurrent loss-based flow nor fires on jitter. The
//! constants are libwebrtc's for the trendline filter (`TrendlineEstimatorSettings`), not the
//! draft's, which were tuned for its Kalman filter.

use serde::Serialize;

/// γ grows this fast (per ms) when |m| > γ (libwebrtc `k_up_`).
pub const K_UP: f64 = 0.0087;
/// γ shrinks this fast (per ms) when |m| < γ (libwebrtc `k_down_`).
pub const K_DOWN: f64 = 0.039;
/// Over-use must last this long before it is signalled (draft §5.4 `overuse_time_th`, 10 ms).
pub const OVERUSE_TIME_MS: f64 = 10.0;
/// Initial threshold, ms (libwebrtc `threshold_`).
pub const INITIAL_THRESHOLD_MS: f64 = 12.5;
/// γ is kept in this range, ms (libwebrtc).
const THRESHOLD_RANGE: (f64, f64) = (6.0, 600.0);
/// A sample this far beyond γ is an outlier (a delay spike) and does not move it (libwebrtc
/// `kMaxAdaptOffsetMs`).
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
/// The threshold update uses at most this much time per step (libwebrtc `kMaxTimeDeltaMs`).
const MAX_TIME_DELTA_MS: f64 = 100.0;

/// The detector's signal (draft §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// Delay stable.
    #[default]
    Normal,
    /// Delay growing: the path is over-used.
    Overuse,
    /// Delay shrinking: a queue is draining.
    Underuse,
}

impl Usage {
    /// Lower-case name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Normal => "normal",
            Usage::Overuse => "overuse",
            Usage::Underuse => "underuse",
        }
    }
}

/// Detector state.
#[derive(Debug)]
pub struct OveruseDetector {
    threshold: f64,
    time_over_using: Option<f64>,
    overuse_count: u32,
    prev_trend: f64,
    last_update_ms: Option<f64>,
    usage: Usage,
}

impl Default for OveruseDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl OveruseDetector {
    /// A detector at the initial threshold, signalling normal.
    pub fn new() -> Self {
        OveruseDetector {
            threshold: INITIAL_THRESHOLD_MS,
            time_over_using: None,
            overuse_count: 0,
            prev_trend: 0.0,
            last_update_ms: None,
            usage: Usage::Normal,
        }
    }

    /// The current threshold γ, ms.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The current signal.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One group: `trend` and `modified_trend` from the trendline, the group's send delta and
    /// its arrival time (receiver clock, ms). Returns the signal.
    pub fn detect(
        &mut self,
        trend: f64,
        modified_trend: f64,
        num_deltas: usize,
        send_delta_ms: f64,
        arrival_ms: f64,
    ) -> Usage {
        if num_deltas < 2 {
            self.usage = Usage::Normal;
            return self.usage;
        }
        if modified_trend > self.threshold {
            let t = match self.time_over_using {
                None => send_delta_ms / 2.0,
                Some(t) => t + send_delta_ms,
            };
            self.time_over_using = Some(t);
            self.overuse_count += 1;
            if t > OVERUSE_TIME_MS && self.overuse_count > 1 && trend >= self.prev_trend {
                self.time_over_using = Some(0.0);
                self.overuse_count = 0;
                self.usage = Usage::Overuse;
            }
        } else if modified_trend < -self.threshold {
            self.time_over_using = None;
            self.overuse_count = 0;
            self.usage = Usage::Underuse;
        } else {
            self.time_over_using = None;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.prev_trend = trend;
        self.update_threshold(modified_trend, arrival_ms);
        self.usage
    }

    fn update_threshold(&mut self, modified_trend: f64, now_ms: f64) {
        let last = *self.last_update_ms.get_or_insert(now_ms);
        let m = modified_trend.abs();
        if m > self.threshold + MAX_ADAPT_OFFSET_MS {
            self.last_update_ms = Some(now_ms);
            return;
        }
        let k = if m < self.threshold { K_DOWN } else { K_UP };
        let dt = (now_ms - last).clamp(0.0, MAX_TIME_DELTA_MS);
        self.threshold += k * (m - self.threshold) * dt;
        self.threshold = self.threshold.clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1);
        self.last_update_ms = Some(now_ms);
    }
}
