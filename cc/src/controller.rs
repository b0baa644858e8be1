//! The controller: feedback in, target out (draft-ietf-rmcat-gcc-02 §4 architecture).
//!
//! target = clamp(min(delay-based, loss-based), min, max). The delay-based half is the
//! trendline over-use detector driving AIMD, capped by the acknowledged rate and by ALR; probe
//! results raise it during start-up and in short windows (after ALR, and periodically when
//! stable). Without feedback for [`FEEDBACK_TIMEOUT`] the target backs off by
//! [`TIMEOUT_BACKOFF`] per timeout: silence is not evidence that the path is fine.

use crate::acked_bitrate::AckedBitrate;
use crate::aimd::{Aimd, AimdInput, RateControlState};
use crate::alr::AlrDetector;
use crate::inter_arrival::InterArrival;
use crate::loss_based::{LossAction, LossBased};
use crate::overuse::{OveruseDetector, Usage};
use crate::probe::{ProbeDetector, ProbeReason, ProbeRequest, ProbeResult};
use crate::rtt::{Rtt, RttSource};
use crate::trendline::{TrendSample, Trendline};
use rtc::interceptor::{BandwidthEstimator, EstimatorStats, PacketReport};
use serde::Serialize;
use std::time::{Duration, Instant};

/// No feedback for this long → back off (and again every this long).
pub const FEEDBACK_TIMEOUT: Duration = Duration::from_millis(500);
/// Factor applied to the target at each feedback timeout (libwebrtc's feedback-timeout
/// reduction is 0.8).
pub const TIMEOUT_BACKOFF: f64 = 0.8;
/// Stable this long since the last over-use before a periodic probe window opens.
const PERIODIC_STABLE: Duration = Duration::from_secs(3);
/// Periodic probe windows are at least this far apart (libwebrtc probes in ALR every 5 s).
/// Each one forces a keyframe; 3 s raised utilisation a little but made the jittery loop less
/// stable (see cc/README.md).
const PERIODIC_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe window accepts results: a request must become a keyframe, reach the
/// receiver and come back in feedback.
const PROBE_WINDOW: Duration = Duration::from_millis(1500);
/// Start-up ends at the first over-use or loss cut, or this long after the first feedback.
const STARTUP_MAX: Duration = Duration::from_secs(5);
/// How long an applied probe stands in for the acked rate, which lags it.
const PROBE_FLOOR: Duration = Duration::from_secs(1);
/// Start-up probe rate, × start (libwebrtc's first probe is 3 × start).
const STARTUP_PROBE_FACTOR: f64 = 3.0;
/// How long a cluster's measurement of the link stands as the ceiling. Short: a ceiling measured
/// before the capacity grew would otherwise hold the rate down until a probe lifts it, and at
/// 360p a probe keyframe is often too small to be measured (closed loop: 6 s left the
/// 80-100 s phase at 80 %, 3 s at 90 %).
const LINK_CEILING_TTL: Duration = Duration::from_secs(3);
/// Over-use with the acked rate below this × the ceiling drops the ceiling.
const CEILING_INVALID: f64 = 0.8;
/// Under-use this long after the last over-use is not the drain of our own decrease.
const DRAIN_UNEXPLAINED_AFTER: Duration = Duration::from_secs(2);
/// Probes on a drained queue are at least this far apart.
const DRAIN_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Later probe rate, × target (libwebrtc's second probe factor is 2).
const PROBE_FACTOR: f64 = 2.0;

/// Rates the controller works within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CcConfig {
    /// Initial target, bps.
    pub start_bps: f64,
    /// Lowest target, bps.
    pub min_bps: f64,
    /// Highest target, bps.
    pub max_bps: f64,
}

impl CcConfig {
    /// `start`, `min`, `max` in bps (the order of webrtc-rs's `Gcc::new`).
    pub fn new(start_bps: f64, min_bps: f64, max_bps: f64) -> Self {
        CcConfig {
            start_bps,
            min_bps,
            max_bps,
        }
    }
}

/// Everything the controller knows after an update, for the `bwe.estimate` log line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CcState {
    /// The target, bps.
    pub target_bps: f64,
    /// Over-use detector signal.
    pub usage: Usage,
    /// What the delay-based rate control did last.
    pub rate_control: RateControlState,
    /// Trendline slope (ms of delay per ms).
    pub trend: f64,
    /// Modified trend compared with the threshold, ms.
    pub modified_trend: f64,
    /// Adaptive threshold, ms.
    pub threshold_ms: f64,
    /// Acknowledged bitrate, bps.
    pub acked_bps: Option<f64>,
    /// Delay-based estimate, bps.
    pub delay_based_bps: f64,
    /// Loss-based estimate, bps.
    pub loss_based_bps: f64,
    /// Loss fraction of the last loss window.
    pub loss_ratio: f64,
    /// Link capacity measured at over-uses, bps.
    pub link_capacity_bps: Option<f64>,
    /// RTT in use, ms.
    pub rtt_ms: Option<f64>,
    /// Where `rtt_ms` comes from.
    pub rtt_source: Option<RttSource>,
    /// Smoothed RTT from transport-wide feedback, ms.
    pub rtt_twcc_ms: Option<f64>,
    /// RTT from RTCP receiver reports, ms.
    pub rtt_rr_ms: Option<f64>,
    /// Application-limited.
    pub in_alr: bool,
    /// In start-up (until the first over-use or loss cut).
    pub startup: bool,
    /// The newest probe cluster measured.
    pub last_probe: Option<ProbeResult>,
    /// A probe result would be used now.
    pub wants_probe: bool,
    /// What a recent cluster saw the link carry, bps (the increase stops there).
    pub link_ceiling_bps: Option<f64>,
}

/// rtclab's congestion controller (a webrtc-rs [`BandwidthEstimator`]).
#[derive(Debug)]
pub struct RtclabCc {
    config: CcConfig,
    inter_arrival: InterArrival,
    trendline: Trendline,
    overuse: OveruseDetector,
    acked: AckedBitrate,
    aimd: Aimd,
    loss: LossBased,
    alr: AlrDetector,
    probe: ProbeDetector,
    rtt: Rtt,
    trend: Option<TrendSample>,
    usage: Usage,
    target: f64,
    last_feedback: Option<Instant>,
    last_backoff: Option<Instant>,
    last_overuse: Option<Instant>,
    first_feedback: Option<Instant>,
    startup: bool,
    window_until: Option<Instant>,
    window_opened: Option<Instant>,
    pending: Option<ProbeRequest>,
    last_probe: Option<ProbeResult>,
    applied_probe: Option<(Instant, f64)>,
    /// When a cluster last measured the link, and the rate the link carried then.
    link_ceiling: Option<(Instant, f64)>,
    probe_hold_used: bool,
    external_sent: bool,
}

impl RtclabCc {
    /// A controller starting at `config.start_bps`.
    pub fn new(config: CcConfig) -> Self {
        let CcConfig {
            start_bps,
            min_bps,
            max_bps,
        } = config;
        let start = start_bps.clamp(min_bps, max_bps);
        RtclabCc {
            config,
            inter_arrival: InterArrival::new(),
            trendline: Trendline::new(),
            overuse: OveruseDetector::new(),
            acked: AckedBitrate::new(),
            aimd: Aimd::new(start, min_bps, max_bps),
            loss: LossBased::new(start, min_bps, max_bps),
            alr: AlrDetector::new(start),
            probe: ProbeDetector::new(),
            rtt: Rtt::new(),
            trend: None,
            usage: Usage::Normal,
            target: start,
            last_feedback: None,
            last_backoff: None,
            last_overuse: None,
            first_feedback: None,
            startup: true,
            window_until: None,
            window_opened: None,
            pending: Some(ProbeRequest {
                bps: (STARTUP_PROBE_FACTOR * start).min(max_bps),
                reason: ProbeReason::Startup,
            }),
            last_probe: None,
            applied_probe: None,
            link_ceiling: None,
            probe_hold_used: false,
            external_sent: false,
        }
    }

    /// The rates it was built with.
    pub fn config(&self) -> CcConfig {
        self.config
    }

    /// The RTT from RTCP receiver reports (used when there is no transport-wide feedback).
    pub fn set_rr_rtt(&mut self, rtt: Duration) {
        self.rtt.set_rr(rtt);
    }

    /// A packet of `bytes` left at `now`. Optional: without it, ALR is judged from the
    /// departures in feedback, one RTT late and blind to packets whose feedback was lost.
    pub fn observe_sent(&mut self, now: Instant, bytes: usize) {
        self.external_sent = true;
        self.on_sent(now, bytes);
    }

    fn on_sent(&mut self, at: Instant, bytes: usize) {
        let was = self.alr.in_alr();
        self.alr.on_sent(at, bytes);
        if was && !self.alr.in_alr() {
            // Leaving ALR: the estimate was not tested while idle; let the acked rate move
            // quickly and ask for a probe.
            self.acked.expect_fast_change();
            self.open_window(at, ProbeReason::AlrEnded);
        }
    }

    fn request_probe(&mut self, now: Instant, reason: ProbeReason) {
        if !self.startup {
            self.window_until = Some(now + PROBE_WINDOW);
        }
        self.pending = Some(ProbeRequest {
            bps: (PROBE_FACTOR * self.aimd.rate()).min(self.config.max_bps),
            reason,
        });
    }

    fn open_window(&mut self, now: Instant, reason: ProbeReason) {
        self.window_until = Some(now + PROBE_WINDOW);
        self.window_opened = Some(now);
        self.pending = Some(ProbeRequest {
            bps: (PROBE_FACTOR * self.target).min(self.config.max_bps),
            reason,
        });
    }

    /// Whether a probe cluster arriving now would be used (start-up or an open window).
    pub fn wants_probe(&self, now: Instant) -> bool {
        self.startup || self.window_until.is_some_and(|t| now < t)
    }

    /// A probe request, once: the application may force a keyframe or send padding so a
    /// cluster leaves at about `bps` (rtclab's pacer sends at 2.5 × target).
    pub fn poll_probe_request(&mut self) -> Option<ProbeRequest> {
        self.pending.take()
    }

    /// The detailed state after the last update.
    pub fn state(&self) -> CcState {
        let rtt = self.rtt.get();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        CcState {
            target_bps: self.target,
            usage: self.usage,
            rate_control: self.aimd.last_action(),
            trend: self.trend.map_or(0.0, |t| t.trend),
            modified_trend: self.trend.map_or(0.0, |t| t.modified_trend),
            threshold_ms: self.overuse.threshold(),
            acked_bps: self.acked.estimate_bps(),
            delay_based_bps: self.aimd.rate(),
            loss_based_bps: self.loss.rate(),
            loss_ratio: self.loss.loss_ratio(),
            link_capacity_bps: self.aimd.link_capacity_bps(),
            rtt_ms: rtt.map(|(d, _)| ms(d)),
            rtt_source: rtt.map(|(_, s)| s),
            rtt_twcc_ms: self.rtt.twcc().map(ms),
            rtt_rr_ms: self.rtt.rr().map(ms),
            in_alr: self.alr.in_alr(),
            startup: self.startup,
            last_probe: self.last_probe,
            wants_probe: self.startup
                || self
                    .window_until
                    .is_some_and(|t| Some(t) > self.last_feedback),
            link_ceiling_bps: self.last_feedback.and_then(|now| self.fresh_ceiling(now)),
        }
    }

    fn fresh_ceiling(&self, now: Instant) -> Option<f64> {
        self.link_ceiling
            .filter(|&(t, _)| now.saturating_duration_since(t) < LINK_CEILING_TTL)
            .map(|(_, c)| c)
    }

    fn set_target(&mut self, now: Instant) {
        let t = self
            .aimd
            .rate()
            .min(self.loss.rate())
            .clamp(self.config.min_bps, self.config.max_bps);
        self.target = t;
        self.alr.set_target(t);
        self.probe.on_target(now, t);
    }

    fn feedback_deadline(&self) -> Option<Instant> {
        let last = self.last_feedback?;
        Some(self.last_backoff.unwrap_or(last).max(last) + FEEDBACK_TIMEOUT)
    }
}

impl BandwidthEstimator for RtclabCc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        if self.first_feedback.is_none() {
            self.first_feedback = Some(now);
            // Clusters sent before the first feedback were sent under the start target.
            self.probe.on_target(reports[0].departure, self.target);
        }
        self.last_feedback = Some(now);
        self.last_backoff = None;

        let mut newest_arrived: Option<Instant> = None;
        let (mut lost, mut total) = (0u32, 0u32);
        let mut overused = false;
        let mut probe_result = None;
        for r in reports {
            total += 1;
            if !self.external_sent {
                self.on_sent(r.departure, r.size);
            }
            if let Some(p) = self.probe.on_report(r) {
                probe_result = Some(p);
            }
            let Some(arrival) = r.arrival.filter(|_| r.arrived) else {
                lost += u32::from(!r.arrived);
                continue;
            };
            newest_arrived = Some(newest_arrived.map_or(r.departure, |n| n.max(r.departure)));
            let arrival_ms = arrival.as_secs_f64() * 1000.0;
            self.acked.update(arrival_ms, r.size, self.alr.in_alr());
            if let Some(d) = self.inter_arrival.add(r.departure, arrival, r.size) {
                let t = self.trendline.update(&d);
                self.trend = Some(t);
                let u = self.overuse.detect(
                    t.trend,
                    t.modified_trend,
                    t.num_deltas,
                    d.send_delta_ms,
                    d.arrival_ms,
                );
                overused |= u == Usage::Overuse;
            }
        }
        if let Some(dep) = newest_arrived {
            self.rtt.on_feedback(now, dep);
        }
        // One over-use signal in the batch is enough to act on: waiting for the batch's last
        // group to say it again would cost a feedback interval.
        self.usage = if overused {
            Usage::Overuse
        } else {
            self.overuse.usage()
        };
        if self.usage == Usage::Overuse {
            self.last_overuse = Some(now);
        }
        if self
            .first_feedback
            .is_some_and(|t| now.saturating_duration_since(t) >= STARTUP_MAX)
        {
            self.startup = false;
        }
        let rtt = self.rtt.get().map(|(d, _)| d);

        let mut usage_for_rate = self.usage;
        let mut follow_up = false;
        if let Some(mut p) = probe_result {
            let bps = p.bps.min(self.config.max_bps);
            if p.saturated {
                // The link, not the sender, set this cluster's receive rate: that is what the
                // path carries now. Small clusters count too: rtclab's 720p keyframes at
                // ~1 Mbps are 5-8 packets (rfc8867-5.1), and a jitter-inflated reading only
                // makes the ceiling too high to matter. Climbing past it only builds the queue
                // that the next over-use cuts by 10 %; holding below it keeps the rate at the
                // capacity.
                self.link_ceiling = Some((now, p.recv_bps.min(self.config.max_bps)));
            } else if self.fresh_ceiling(now).is_none_or(|c| bps > c) {
                // The path carried all of the cluster, faster than the ceiling (or with none):
                // it carries at least that much now.
                self.link_ceiling = Some((now, bps));
            }
            if self.wants_probe(now) {
                if self.usage != Usage::Overuse && bps > self.aimd.rate() {
                    self.aimd.set_estimate(now, bps, true);
                    p.applied = true;
                    // The path carried all of it: probe higher (libwebrtc's further probing
                    // while results keep up with the probe rate).
                    follow_up = !p.saturated;
                } else if self.usage == Usage::Overuse
                    && p.saturated
                    && p.packets >= 2 * crate::probe::MIN_PACKETS
                {
                    // The cluster itself filled the queue (a keyframe at 2.5 × target), and
                    // its receive rate measured the link: take that measurement rather than
                    // BETA × a stale acked rate. Only clusters large enough to have passed
                    // the consistency check: a jitter-inflated small one must not override
                    // an over-use.
                    self.aimd.set_estimate(now, bps, true);
                    usage_for_rate = Usage::Underuse;
                    p.applied = true;
                }
                if p.applied {
                    if !self.startup {
                        // One result per window: later clusters in it are measured against a
                        // rate the first one set, and each applied result suspends decreases.
                        self.window_until = None;
                    }
                    if follow_up {
                        self.request_probe(now, ProbeReason::Startup.or_window(self.startup));
                    }
                    self.applied_probe = Some((now, bps));
                    self.probe_hold_used = false;
                    if self.loss.loss_ratio() <= crate::loss_based::HIGH_LOSS {
                        self.loss.raise_to(bps);
                    }
                }
            }
            self.last_probe = Some(p);
        }

        if self.usage == Usage::Overuse
            && let Some((_, c)) = self.link_ceiling
            && [self.acked.estimate_bps(), self.acked.last_sample_bps()]
                .into_iter()
                .flatten()
                .any(|a| a < CEILING_INVALID * c)
        {
            // Over-use while the path delivers clearly less than the ceiling: the capacity fell,
            // and a stale ceiling would pull the rate back up as soon as a full queue stops
            // showing a delay gradient.
            self.link_ceiling = None;
        }
        if self.usage == Usage::Overuse {
            // Over-use ends start-up. A probe window stays open: the keyframe that is the probe
            // often signals over-use before its cluster is complete, and its saturated receive
            // rate is then exactly the measurement wanted.
            self.startup = false;
        }
        // For a second after a probe was used the acked rate still describes the rate before
        // it: the probe is the better measure of what the path carries.
        let floor = self
            .applied_probe
            .filter(|&(t, _)| now.saturating_duration_since(t) < PROBE_FLOOR)
            .map(|(_, bps)| bps);
        let lift = |v: Option<f64>| match (v, floor) {
            (Some(a), Some(f)) => Some(a.max(f)),
            (a, f) => a.or(f),
        };
        if usage_for_rate == Usage::Overuse
            && !self.probe_hold_used
            && self
                .applied_probe
                .is_some_and(|(t, _)| now.saturating_duration_since(t) < PROBE_FLOOR)
            && self.last_probe.is_some_and(|p| p.saturated && p.applied)
        {
            // The rate was just set to 0.95 × the link's measured rate; the first over-use
            // after it is most likely the probe's own queue: hold once instead of cutting. Only
            // once: if the capacity really fell, the next over-use report cuts as usual.
            self.probe_hold_used = true;
            usage_for_rate = Usage::Underuse;
        }
        let input = AimdInput {
            // A saturated probe already set the rate for this over-use: hold.
            usage: usage_for_rate,
            acked_bps: lift(self.acked.estimate_bps()),
            acked_sample_bps: lift(self.acked.last_sample_bps()),
            rtt,
            in_alr: self.alr.in_alr(),
            probed_bps: self.last_probe.map(|p| p.bps),
            link_ceiling_bps: self.fresh_ceiling(now),
        };
        let delay_based = self.aimd.update(now, &input);
        let before = self.loss.last_action();
        self.loss.update(now, lost, total, rtt, delay_based);
        if self.loss.last_action() == Some(LossAction::Decrease)
            && before != self.loss.last_action()
        {
            self.startup = false;
        }
        self.set_target(now);

        let stable = self
            .last_overuse
            .or(self.first_feedback)
            .is_some_and(|t| now.saturating_duration_since(t) >= PERIODIC_STABLE);
        let due = self
            .window_opened
            .is_none_or(|t| now.saturating_duration_since(t) >= PERIODIC_INTERVAL);
        if !self.startup && stable && due && self.usage == Usage::Normal {
            self.open_window(now, ProbeReason::Periodic);
        }
        // Under-use is the queue draining. Right after a decrease of ours that is expected;
        // long after one, the path got faster (a capacity step up, cross traffic leaving):
        // probe now rather than at the next periodic window, up to PERIODIC_INTERVAL away.
        // Within one RTT of the decrease the feedback still describes packets sent before it,
        // so that drain is not its doing either (rfc8867-5.1: the step to 2.5 Mbps showed as
        // an over-use and then, 0.15 s later, as under-use).
        let unexplained = self.last_overuse.is_none_or(|t| {
            let since = now.saturating_duration_since(t);
            since >= DRAIN_UNEXPLAINED_AFTER || rtt.is_some_and(|r| since < r)
        });
        let drain_due = self
            .window_opened
            .is_none_or(|t| now.saturating_duration_since(t) >= DRAIN_PROBE_INTERVAL);
        if !self.startup && self.usage == Usage::Underuse && unexplained && drain_due {
            self.open_window(now, ProbeReason::QueueDrained);
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.feedback_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        let backed_off = self.target * TIMEOUT_BACKOFF;
        self.aimd
            .set_estimate(now, backed_off.min(self.aimd.rate()), false);
        self.loss.cap(backed_off);
        self.last_backoff = Some(now);
        self.set_target(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.feedback_deadline()
    }

    fn stats(&self) -> EstimatorStats {
        let mut s = EstimatorStats::default();
        s.delay_based_bitrate = Some(self.aimd.rate());
        s.loss_based_bitrate = Some(self.loss.rate());
        s.packet_loss = Some(self.loss.loss_ratio());
        s.round_trip_time = self.rtt.get().map(|(d, _)| d);
        s
    }
}
