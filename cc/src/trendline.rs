//! The trendline filter: slope of the smoothed accumulated delay over arrival time.
//!
//! libwebrtc's `TrendlineEstimator` (GoogCC), which replaced the Kalman filter of
//! draft-ietf-rmcat-gcc-02 §5.3: the one-way delay variation of each group is accumulated,
//! exponentially smoothed, and a least-squares line is fitted over the last [`WINDOW`] groups.
//! A positive slope means the queue is growing.

use crate::inter_arrival::GroupDelta;
use std::collections::VecDeque;

/// Groups in the regression window (libwebrtc `kDefaultTrendlineWindowSize`).
pub const WINDOW: usize = 20;
/// Exponential smoothing of the accumulated delay (libwebrtc `kDefaultTrendlineSmoothingCoeff`).
pub const SMOOTHING: f64 = 0.9;
/// Gain applied to the slope before it is compared with the threshold
/// (libwebrtc `kDefaultTrendlineThresholdGain`).
pub const GAIN: f64 = 4.0;
/// The slope is scaled by the number of deltas seen, up to this (libwebrtc `kMinNumDeltas`).
const MAX_DELTAS_SCALE: usize = 60;

/// What one group told the filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendSample {
    /// Slope of the delay (ms of delay per ms of time; 0 = stable, > 0 = queue growing).
    pub trend: f64,
    /// `min(deltas, 60) × trend × gain`, the value compared with the adaptive threshold (ms).
    pub modified_trend: f64,
    /// Number of group deltas seen so far (capped at 1000).
    pub num_deltas: usize,
}

/// Trendline filter state.
#[derive(Debug)]
pub struct Trendline {
    num_deltas: usize,
    first_arrival_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    history: VecDeque<(f64, f64)>,
    trend: f64,
}

impl Default for Trendline {
    fn default() -> Self {
        Self::new()
    }
}

impl Trendline {
    /// A filter with no history.
    pub fn new() -> Self {
        Trendline {
            num_deltas: 0,
            first_arrival_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            history: VecDeque::with_capacity(WINDOW + 1),
            trend: 0.0,
        }
    }

    /// Feeds one group delta; returns the current slope.
    pub fn update(&mut self, delta: &GroupDelta) -> TrendSample {
        let delay_ms = delta.arrival_delta_ms - delta.send_delta_ms;
        self.num_deltas = (self.num_deltas + 1).min(1000);
        let first = *self.first_arrival_ms.get_or_insert(delta.arrival_ms);
        self.accumulated_ms += delay_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        self.history
            .push_back((delta.arrival_ms - first, self.smoothed_ms));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        if self.history.len() == WINDOW
            && let Some(slope) = linear_fit_slope(&self.history)
        {
            self.trend = slope;
        }
        TrendSample {
            trend: self.trend,
            modified_trend: self.num_deltas.min(MAX_DELTAS_SCALE) as f64 * self.trend * GAIN,
            num_deltas: self.num_deltas,
        }
    }
}

/// Least-squares slope of y over x; `None` when all x are equal.
fn linear_fit_slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(i: usize, extra_ms: f64) -> GroupDelta {
        GroupDelta {
            send_delta_ms: 10.0,
            arrival_delta_ms: 10.0 + extra_ms,
            arrival_ms: 10.0 * i as f64,
            size_bytes: 1200,
        }
    }

    #[test]
    fn constant_delay_has_zero_slope_and_growing_delay_a_positive_one() {
        let mut t = Trendline::new();
        let mut last = None;
        for i in 0..40 {
            last = Some(t.update(&delta(i, 0.0)));
        }
        assert_eq!(last.map(|s| s.trend), Some(0.0));
        let mut t = Trendline::new();
        for i in 0..40 {
            last = Some(t.update(&delta(i, 1.0)));
        }
        // 1 ms more delay per 10 ms group: the smoothed slope tends to 0.1.
        let trend = last.map(|s| s.trend).unwrap_or_default();
        assert!((0.08..0.11).contains(&trend), "trend {trend}");
    }
}
