//! The sender's rate limit on keyframe requests (PLI, FIR).
//!
//! Under heavy loss a receiver may ask for a keyframe again before the first one has even
//! reached it, and every keyframe is several times a normal frame: answering each request
//! would fill the link with keyframes that are lost in turn. libwebrtc's sender answers at most
//! one request per 300 ms (`kMinKeyframeSendIntervalMs` in `video/encoder_rtcp_feedback.cc`);
//! rtclab does the same. The receiver has its own, RTT-aware limit (see `jitter`); this one
//! protects the link from any receiver, Chromium included.
//!
//! Sans-I/O: time is passed in.

use std::time::{Duration, Instant};

/// Shortest time between two keyframe requests the sender acts on (libwebrtc's
/// `kMinKeyframeSendIntervalMs`, `video/encoder_rtcp_feedback.cc`).
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// Decides which keyframe requests the encoder acts on.
#[derive(Debug, Clone)]
pub struct KeyframeGate {
    min_interval: Duration,
    last_admitted: Option<Instant>,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        Self::new(MIN_KEYFRAME_REQUEST_INTERVAL)
    }
}

impl KeyframeGate {
    /// A gate that admits at most one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        KeyframeGate {
            min_interval,
            last_admitted: None,
        }
    }

    /// Whether a request arriving at `now` should make a keyframe. A request within
    /// `min_interval` of the last admitted one is held back: the keyframe that one asked for is
    /// already on its way.
    pub fn admit(&mut self, now: Instant) -> bool {
        if self
            .last_admitted
            .is_some_and(|last| now.saturating_duration_since(last) < self.min_interval)
        {
            return false;
        }
        self.last_admitted = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_is_admitted() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut gate = KeyframeGate::default();
        assert!(gate.admit(ms(0)), "the first request is answered");
        // A burst of PLIs from a receiver that lost the keyframe's first packets: held.
        assert!(!gate.admit(ms(20)));
        assert!(!gate.admit(ms(299)));
        assert!(
            gate.admit(ms(300)),
            "300 ms on, a request is answered again"
        );
        // Held requests do not push the window forward.
        assert!(!gate.admit(ms(450)));
        assert!(gate.admit(ms(600)));
    }

    #[test]
    fn requests_spaced_wider_than_the_interval_are_all_admitted() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        for i in 0..10 {
            assert!(
                gate.admit(t0 + Duration::from_millis(301 * i)),
                "request {i}"
            );
        }
    }
}
