//! Acknowledged bitrate: what the receiver actually got (libwebrtc `BitrateEstimator`).
//!
//! Bytes are summed over windows of receiver time (500 ms for the first sample, 150 ms after);
//! each window's rate is a sample, combined into the estimate by a scalar Bayesian update whose
//! sample variance grows with the distance from the estimate, so one odd window does not move
//! it far. The latest raw window is kept too: under over-use the bottleneck is saturated and the
//! raw rate *is* its capacity, sooner than the smoothed estimate admits it.

/// First window, ms (libwebrtc `initial_window_ms`).
const INITIAL_WINDOW_MS: f64 = 500.0;
/// Later windows, ms (libwebrtc `noninitial_window_ms`).
const WINDOW_MS: f64 = 150.0;
/// Sample uncertainty scale (libwebrtc `uncertainty_scale`).
const UNCERTAINTY_SCALE: f64 = 10.0;
/// Sample uncertainty scale in ALR, for samples below the estimate (libwebrtc
/// `uncertainty_scale_in_alr`): an application-limited window says little about the path.
const UNCERTAINTY_SCALE_ALR: f64 = 20.0;
/// Process noise added to the variance per sample, kbps² (libwebrtc: 5).
const PROCESS_VARIANCE: f64 = 5.0;
/// Initial variance (libwebrtc: 50).
const INITIAL_VARIANCE: f64 = 50.0;

/// Acknowledged-bitrate estimator.
#[derive(Debug)]
pub struct AckedBitrate {
    sum_bytes: f64,
    window_ms: f64,
    prev_ms: Option<f64>,
    estimate_kbps: Option<f64>,
    variance: f64,
    last_sample_kbps: Option<f64>,
}

impl Default for AckedBitrate {
    fn default() -> Self {
        Self::new()
    }
}

impl AckedBitrate {
    /// No estimate yet.
    pub fn new() -> Self {
        AckedBitrate {
            sum_bytes: 0.0,
            window_ms: 0.0,
            prev_ms: None,
            estimate_kbps: None,
            variance: INITIAL_VARIANCE,
            last_sample_kbps: None,
        }
    }

    /// One acknowledged packet: arrival on the receiver's clock (ms) and its size.
    pub fn update(&mut self, arrival_ms: f64, bytes: usize, in_alr: bool) {
        let window = if self.estimate_kbps.is_none() {
            INITIAL_WINDOW_MS
        } else {
            WINDOW_MS
        };
        let Some(sample) = self.update_window(arrival_ms, bytes as f64, window) else {
            return;
        };
        self.last_sample_kbps = Some(sample);
        let Some(est) = self.estimate_kbps else {
            self.estimate_kbps = Some(sample);
            return;
        };
        let scale = if in_alr && sample < est {
            UNCERTAINTY_SCALE_ALR
        } else {
            UNCERTAINTY_SCALE
        };
        let uncertainty = scale * (est - sample).abs() / est.max(1.0);
        let sample_var = uncertainty * uncertainty;
        let pred_var = self.variance + PROCESS_VARIANCE;
        let new = (sample_var * est + pred_var * sample) / (sample_var + pred_var);
        self.estimate_kbps = Some(new.max(0.0));
        self.variance = sample_var * pred_var / (sample_var + pred_var);
    }

    fn update_window(&mut self, now_ms: f64, bytes: f64, window: f64) -> Option<f64> {
        if let Some(prev) = self.prev_ms {
            if now_ms < prev {
                // Reordered arrival: count the bytes, not the time.
                self.sum_bytes += bytes;
                return None;
            }
            self.window_ms += now_ms - prev;
            if now_ms - prev > window {
                // A gap longer than a window: the bytes before it belong to no window.
                self.sum_bytes = 0.0;
                self.window_ms %= window;
            }
        }
        self.prev_ms = Some(now_ms);
        let mut sample = None;
        if self.window_ms >= window {
            sample = Some(8.0 * self.sum_bytes / window);
            self.window_ms -= window;
            self.sum_bytes = 0.0;
        }
        self.sum_bytes += bytes;
        sample
    }

    /// The smoothed estimate, bps.
    pub fn estimate_bps(&self) -> Option<f64> {
        self.estimate_kbps.map(|k| k * 1000.0)
    }

    /// The latest raw window, bps.
    pub fn last_sample_bps(&self) -> Option<f64> {
        self.last_sample_kbps.map(|k| k * 1000.0)
    }

    /// Widen the variance: the rate is about to change on purpose (end of ALR, a probe).
    pub fn expect_fast_change(&mut self) {
        self.variance += 200.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_is_measured_at_its_rate() {
        let mut a = AckedBitrate::new();
        // 1200 bytes every 10 ms = 960 kbps, for 3 s.
        for i in 0..300 {
            a.update(i as f64 * 10.0, 1200, false);
        }
        let bps = a.estimate_bps().unwrap_or_default();
        assert!((bps - 960_000.0).abs() < 0.05 * 960_000.0, "{bps}");
    }
}
