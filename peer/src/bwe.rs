//! Congestion-control logging: a `BandwidthEstimator` wrapper that publishes every estimate.
//!
//! `configure_congestion_control` moves the estimator into the interceptor chain, out of the
//! application's reach, so the number is pushed rather than pulled: this wrapper forwards every
//! call to the real estimator, stores the target where the encoder loop reads it, and logs a
//! `bwe.estimate` event after every feedback report and every change of the target.

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};
use rtclab_events::{BweDetail, Event, EventSink, PeerRole};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The target bitrate as the encoder loop reads it (an `f64` stored as bits), and the
/// controller's requests for a probe.
#[derive(Debug, Clone)]
pub struct TargetHandle {
    /// The target, bits per second, as `f64` bits (atomics hold no floats).
    target_bps: Arc<AtomicU64>,
    /// Set when the controller asks for a probe; cleared by [`TargetHandle::take_probe`].
    probe_requested: Arc<AtomicBool>,
    /// The controller's latest RTT in microseconds; 0 while it has none.
    rtt_us: Arc<AtomicU64>,
}

impl TargetHandle {
    /// A handle starting at `bps`.
    pub fn new(bps: f64) -> Self {
        TargetHandle {
            target_bps: Arc::new(AtomicU64::new(bps.to_bits())),
            probe_requested: Arc::new(AtomicBool::new(false)),
            rtt_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The controller's latest round-trip time, if it measures one (rtclab-cc does, from TWCC).
    pub fn rtt(&self) -> Option<std::time::Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us)),
        }
    }

    /// The latest target, bits per second.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.target_bps.load(Ordering::Relaxed))
    }

    fn set(&self, bps: f64) {
        self.target_bps.store(bps.to_bits(), Ordering::Relaxed);
    }

    /// True once per probe the controller asked for since the last call. rtclab probes with
    /// media: the sender answers with a keyframe, which the pacer sends at 2.5 × the target, a
    /// cluster the controller measures (see `rtclab_cc::probe`).
    pub fn take_probe(&self) -> bool {
        self.probe_requested.swap(false, Ordering::Relaxed)
    }
}

/// What an estimator can say about an estimate beyond `stats()`, for the `bwe.estimate` line.
pub trait Explain {
    /// The detail of the latest estimate (all `None` when the estimator exposes nothing).
    fn detail(&self) -> BweDetail {
        BweDetail::default()
    }

    /// Whether the estimator wants a probe cluster now (asked once per request).
    fn poll_probe(&mut self) -> bool {
        false
    }
}

/// webrtc-rs's `Gcc` keeps its detector state private.
impl Explain for Gcc {}

impl Explain for rtclab_cc::RtclabCc {
    fn detail(&self) -> BweDetail {
        let st = self.state();
        BweDetail {
            state: Some(st.usage.as_str().to_owned()),
            rate_control: Some(
                match st.rate_control {
                    rtclab_cc::RateControlState::Hold => "hold",
                    rtclab_cc::RateControlState::Increase => "increase",
                    rtclab_cc::RateControlState::Decrease => "decrease",
                }
                .to_owned(),
            ),
            trend: Some(round3(st.modified_trend)),
            threshold: Some(round3(st.threshold_ms)),
            acked_bps: st.acked_bps.map(f64::round),
            alr: Some(st.in_alr),
            probe_bps: st.last_probe.map(|p| p.bps.round()),
            probe_packets: st.last_probe.map(|p| p.packets),
            probe_saturated: st.last_probe.map(|p| p.saturated),
            link_ceiling_bps: st.link_ceiling_bps.map(f64::round),
        }
    }

    fn poll_probe(&mut self) -> bool {
        self.poll_probe_request().is_some()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wraps an estimator, publishing and logging each estimate.
pub struct ObservedEstimator<E: BandwidthEstimator + Explain> {
    inner: E,
    name: &'static str,
    target: TargetHandle,
    sink: EventSink,
    last_logged: f64,
}

impl<E: BandwidthEstimator + Explain> ObservedEstimator<E> {
    /// Wraps `inner`; `name` goes into the log (`stock` for webrtc-rs's `Gcc`, `rtclab` for
    /// rtclab-cc).
    pub fn new(inner: E, name: &'static str, sink: EventSink) -> (Self, TargetHandle) {
        let target = TargetHandle::new(inner.target_bitrate());
        (
            ObservedEstimator {
                inner,
                name,
                target: target.clone(),
                sink,
                last_logged: f64::NAN,
            },
            target,
        )
    }

    fn publish(&mut self, force_log: bool) {
        let bps = self.inner.target_bitrate();
        self.target.set(bps);
        if self.inner.poll_probe() {
            self.target.probe_requested.store(true, Ordering::Relaxed);
        }
        if let Some(rtt) = self.inner.stats().round_trip_time {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
            self.target.rtt_us.store(us, Ordering::Relaxed);
        }
        if force_log || bps != self.last_logged {
            self.last_logged = bps;
            let stats: EstimatorStats = self.inner.stats();
            self.sink.emit(
                PeerRole::Sender,
                Event::BweEstimate {
                    estimator: self.name.to_owned(),
                    target_bps: bps.round(),
                    delay_based_bps: stats.delay_based_bitrate.map(f64::round),
                    loss_based_bps: stats.loss_based_bitrate.map(f64::round),
                    loss_ratio: stats.packet_loss,
                    rtt_ms: stats.round_trip_time.map(|d| d.as_secs_f64() * 1000.0),
                    detail: self.inner.detail(),
                },
            );
        }
    }
}

impl<E: BandwidthEstimator + Explain> BandwidthEstimator for ObservedEstimator<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish(true);
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish(false);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}
