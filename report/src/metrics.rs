//! [`RunReport`]: the per-second time series and the figures of one run, from its records.

use crate::ice::{IceCandidateRow, SelectedPairRow};
use crate::impair::{self, CapacityStep, ImpairData, ImpairSample};
use rtclab_events::{Direction, Event, MediaStats, PeerRole, Record, Rtcp};
use serde::Serialize;
use std::collections::BTreeMap;

/// Longest per-second series kept: one day.
const MAX_SECONDS: usize = 86_400;

/// A rise counts as recovered once the target is back to this share of its goal.
const RECOVERED_SHARE: f64 = 0.9;

/// One second `[t_s, t_s + 1)` of the run; rates are the last value logged in that second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecondSample {
    /// Start of the second, s since the session started.
    pub t_s: f64,
    /// Downlink capacity (`impair.stats`), bps; `None` when unlimited or not impaired.
    pub capacity_bps: Option<f64>,
    /// Congestion-controller target (`bwe.estimate`), bps.
    pub target_bps: Option<f64>,
    /// Sender RTP bitrate (`media.stats`), bps.
    pub send_bps: Option<f64>,
    /// Receiver RTP bitrate (`media.stats`), bps.
    pub recv_bps: Option<f64>,
    /// Bits the impaired downlink delivered (`impair.stats` bytes out), bps.
    pub delivered_bps: Option<f64>,
    /// Downlink queuing delay median (`impair.stats`), ms.
    pub queue_delay_p50_ms: Option<f64>,
    /// Downlink queuing delay 95th percentile (`impair.stats`), ms.
    pub queue_delay_p95_ms: Option<f64>,
    /// Round-trip time (`bwe.estimate`), ms.
    pub rtt_ms: Option<f64>,
    /// Packets the receiver newly counted as lost.
    pub lost_packets: u64,
    /// Packets the impairment dropped on the downlink, all causes.
    pub impair_dropped_packets: u64,
    /// NACK packets the receiver sent.
    pub nacks: u64,
    /// Sequence numbers those NACKs asked for.
    pub nacked_packets: u64,
    /// PLIs the receiver sent.
    pub plis: u64,
    /// FIRs the receiver sent.
    pub firs: u64,
    /// Retransmissions the sender sent.
    pub retransmissions: u64,
    /// Frames per second the receiver decoded.
    pub recv_fps: Option<f64>,
    /// Frames per second the sender encoded.
    pub send_fps: Option<f64>,
    /// Time within this second the picture was frozen, ms.
    pub frozen_ms: f64,
}

/// One `video.freeze`: the picture stood still from `start_s` to `end_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freeze {
    /// When the last frame before the freeze was shown, s.
    pub start_s: f64,
    /// When the next frame arrived (the event's `t`), s.
    pub end_s: f64,
    /// Length of the freeze, ms.
    pub duration_ms: f64,
}

/// A downlink capacity decrease and how long the controller took to get under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityDrop {
    /// When the capacity dropped, s.
    pub t_s: f64,
    /// Capacity before, bps (`None` = unlimited).
    pub from_bps: Option<f64>,
    /// Capacity after, bps (0 for an outage).
    pub to_bps: f64,
    /// Time from the drop to the first target below `to_bps` (0 if it already was); `None` if
    /// the target never got below it. For an outage, where no target is below zero: the time
    /// to the first target cut by at least [`OUTAGE_NOTICED`] (the controller noticed that
    /// feedback stopped).
    pub reaction_s: Option<f64>,
}

/// An outage counts as noticed once the target is this share of its level at the outage or
/// lower (rtclab's controller cuts 20 % per 500 ms without feedback; libwebrtc likewise).
pub const OUTAGE_NOTICED: f64 = 0.95;

/// A downlink capacity increase and how long the controller took to use it again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityRise {
    /// When the capacity rose, s.
    pub t_s: f64,
    /// Capacity before, bps.
    pub from_bps: f64,
    /// Capacity after, bps (`None` = unlimited).
    pub to_bps: Option<f64>,
    /// The target level that counts as recovered: 90 % of the lower of the new capacity and the
    /// target just before the preceding drop; `None` when neither is known.
    pub goal_bps: Option<f64>,
    /// Time from the rise to the first target ≥ `goal_bps`; `None` if never reached.
    pub recovery_s: Option<f64>,
}

/// RTCP packets of one type that one peer sent or received.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RtcpCount {
    /// The peer that logged them.
    pub peer: String,
    /// `in` or `out`.
    pub direction: String,
    /// SR, RR, NACK, PLI, FIR, TWCC, REMB, ...
    pub rtcp_type: String,
    /// How many.
    pub count: u64,
}

/// What the impairment engine did to one direction over the whole run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ImpairTotals {
    /// `downlink` or `uplink`.
    pub direction: String,
    /// Packets that entered.
    pub packets_in: u64,
    /// Packets delivered.
    pub packets_out: u64,
    /// Bytes that entered.
    pub bytes_in: u64,
    /// Bytes delivered.
    pub bytes_out: u64,
    /// Packets dropped per cause.
    pub dropped: BTreeMap<String, u64>,
    /// Packets dropped, all causes.
    pub dropped_total: u64,
    /// Seconds the capacity was limited.
    pub capacity_limited_s: f64,
    /// Largest queuing delay seen, ms.
    pub queue_delay_max_ms: Option<f64>,
}

/// Time-stamped points behind the plots, at the resolution they were logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Raw {
    pub target: Vec<(f64, f64)>,
    pub rtt: Vec<(f64, f64)>,
    pub send: Vec<(f64, f64)>,
    pub recv: Vec<(f64, f64)>,
    pub send_fps: Vec<(f64, f64)>,
    pub recv_fps: Vec<(f64, f64)>,
    pub queue_p50: Vec<(f64, f64)>,
    pub queue_p95: Vec<(f64, f64)>,
    pub capacity_steps: Vec<CapacityStep>,
    /// Events drawn on every plot (resolution, keyframes, impairment, over-use).
    pub markers: Vec<crate::markers::Marker>,
    /// Time of the last record.
    pub end_t: f64,
}

/// The figures and time series of one run. Field names are flat and carry their unit, so the
/// caller can merge [`RunReport::figures_json`] into `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Scenario name from `session.start`.
    pub scenario: Option<String>,
    /// Scenario description from `session.start`'s config, if it carries one.
    pub scenario_description: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Wall-clock start, RFC 3339.
    pub started_at: Option<String>,
    /// `session.start` config as logged.
    pub config: serde_json::Value,
    /// Time of the last record, s.
    pub log_duration_s: f64,
    /// Per-second series.
    pub timeseries: Vec<SecondSample>,

    /// Bits the downlink delivered ÷ bits its capacity allowed, over the limited seconds;
    /// `None` when the capacity was never limited.
    pub link_utilisation_pct: Option<f64>,
    /// Seconds the downlink capacity was limited.
    pub capacity_limited_s: f64,
    /// Downlink queuing delay median over the run (≈ packet-weighted median of per-second p50s).
    pub queue_delay_p50_ms: Option<f64>,
    /// Downlink queuing delay p95 over the run (≈ packet-weighted p95 of per-second p95s).
    pub queue_delay_p95_ms: Option<f64>,
    /// Largest downlink queuing delay, ms.
    pub queue_delay_max_ms: Option<f64>,
    /// Mean of the RTTs the controller logged, ms.
    pub rtt_mean_ms: Option<f64>,
    /// Largest RTT the controller logged, ms.
    pub rtt_max_ms: Option<f64>,

    /// Number of `video.freeze` events.
    pub freeze_count: u64,
    /// Sum of their durations, ms.
    pub freeze_total_ms: f64,
    /// Longest one, ms.
    pub freeze_longest_ms: f64,
    /// Frozen time as a share of the media duration.
    pub frozen_pct: Option<f64>,
    /// The freezes.
    pub freezes_list: Vec<Freeze>,
    /// Seconds in which the receiver decoded under a third of the sender's frame rate (a
    /// freeze indicator that needs no `video.freeze` events).
    pub low_fps_s: u64,

    /// Downlink capacity drops and the controller's reaction.
    pub capacity_drops: Vec<CapacityDrop>,
    /// Downlink capacity rises and the controller's recovery.
    pub capacity_rises: Vec<CapacityRise>,
    /// Slowest reaction to a drop, s (`None`: no drop, or no reaction).
    pub reaction_time_max_s: Option<f64>,
    /// Mean reaction over the drops the controller reacted to, s.
    pub reaction_time_mean_s: Option<f64>,
    /// Drops the controller never got under within the run.
    pub reactions_missed: u64,
    /// Slowest recovery after a rise, s.
    pub recovery_time_max_s: Option<f64>,

    /// Media duration: first to last sender statistics, plus the first second, s.
    pub media_duration_s: f64,
    /// Frames the sender encoded.
    pub frames_sent: u64,
    /// Frames the receiver decoded.
    pub frames_decoded: u64,
    /// frames_decoded ÷ frames_sent.
    pub frames_decoded_pct: Option<f64>,
    /// Packets the receiver never got (its own accounting, after retransmission).
    pub packets_lost: u64,
    /// Packets the impairment dropped on the downlink (`None` without impairment stats).
    pub network_lost_packets: Option<u64>,
    /// Retransmissions the sender sent.
    pub retransmissions: u64,
    /// retransmissions ÷ lost packets (see `retransmissions_per_lost_basis`).
    pub retransmissions_per_lost: Option<f64>,
    /// Which loss count divides: `impair downlink drops` or `receiver lost`.
    pub retransmissions_per_lost_basis: String,
    /// NACK packets the receiver sent.
    pub nacks: u64,
    /// Sequence numbers they asked for.
    pub nacked_packets: u64,
    /// PLIs the receiver sent.
    pub plis: u64,
    /// FIRs the receiver sent.
    pub firs: u64,

    /// RTCP packets per peer, direction and type.
    pub rtcp_counts: Vec<RtcpCount>,
    /// Every candidate each peer logged.
    pub ice_candidates: Vec<IceCandidateRow>,
    /// Every selected pair each peer logged, in time order (the last per peer is in use).
    pub ice_selected_pairs: Vec<SelectedPairRow>,
    /// Impairment per direction; empty for a clean run.
    pub impairment: Vec<ImpairTotals>,
    /// RTP streams a TURN relay carried (`rtclab relay` logs); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relay_streams: Vec<crate::relay::RelayStream>,
    /// How to read approximate figures, and warnings/errors the run logged.
    pub report_notes: Vec<String>,
    /// The ICE path per peer (candidates by type, the chosen pair and why, time to connect)
    /// and the TURN server's totals.
    pub ice_path: crate::path::PathReport,
    /// "What happened": the run told in a few timed sentences ([`crate::account`]); empty
    /// when the report was computed without [`RunReport::from_records`].
    pub what_happened: Vec<crate::account::Sentence>,
    /// First join → first decoded frame, in four phases ([`crate::sequence::startup_delay`]);
    /// `None` when the call never showed a picture.
    pub startup_delay: Option<crate::sequence::StartupDelay>,
    /// Median interarrival jitter of the receiver reports (RFC 3550 §6.4.1), ms.
    pub rr_jitter_p50_ms: Option<f64>,
    /// The session's flow, drawn in `report.html` and `plots/sequence.svg`; not in
    /// `summary.json` (a diagram, not a figure).
    #[serde(skip)]
    pub session_flow: crate::sequence::SessionFlow,

    #[serde(skip)]
    pub(crate) raw: Raw,
}

fn peer_name(p: PeerRole) -> String {
    p.to_string()
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

/// Percentile `q` (0..=1) of weighted values: the smallest value whose cumulative weight
/// reaches `q` of the total.
fn weighted_percentile(mut values: Vec<(f64, f64)>, q: f64) -> Option<f64> {
    values.retain(|(v, w)| v.is_finite() && *w > 0.0);
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mut cum = 0.0;
    for (v, w) in &values {
        cum += w;
        if cum >= q * total - 1e-9 {
            return Some(*v);
        }
    }
    values.last().map(|(v, _)| *v)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// Seconds of `[a, b]` during which the capacity was limited, and the bits it allowed then.
fn capacity_over(steps: &[CapacityStep], a: f64, b: f64) -> (f64, f64) {
    let (mut limited_s, mut bits) = (0.0, 0.0);
    for (i, step) in steps.iter().enumerate() {
        let start = if i == 0 { f64::NEG_INFINITY } else { step.t };
        let end = steps.get(i + 1).map_or(f64::INFINITY, |n| n.t);
        let overlap = end.min(b) - start.max(a);
        if let (Some(c), true) = (step.capacity_bps, overlap > 0.0) {
            limited_s += overlap;
            bits += c * overlap;
        }
    }
    (limited_s, bits)
}

/// The target in force at `t` (last estimate at or before it).
fn target_at(target: &[(f64, f64)], t: f64) -> Option<f64> {
    target
        .iter()
        .take_while(|(tt, _)| *tt <= t)
        .last()
        .map(|(_, v)| *v)
}

fn sender_stats(r: &Record, sending: PeerRole) -> Option<&MediaStats> {
    match &r.event {
        Event::MediaStats(m)
            if r.peer == sending && m.direction == rtclab_events::MediaDirection::Send =>
        {
            Some(m)
        }
        _ => None,
    }
}

fn receiver_stats(r: &Record, receiving: PeerRole) -> Option<&MediaStats> {
    match &r.event {
        Event::MediaStats(m)
            if r.peer == receiving && m.direction == rtclab_events::MediaDirection::Recv =>
        {
            Some(m)
        }
        _ => None,
    }
}

impl RunReport {
    /// Computes the report from a session's records (any order of peers; time-ordered log).
    pub fn from_records(records: &[Record]) -> RunReport {
        let impair = impair::extract(records);
        let mut report = Self::compute(records, &impair);
        report.ice_path = crate::path::extract(records);
        report.relay_streams = crate::relay::streams(records);
        report.startup_delay = crate::sequence::startup_delay(records);
        report.rr_jitter_p50_ms = crate::qoe_qos::rr_jitter_ms(records);
        report.session_flow = crate::sequence::session_flow(records);
        // Last: the account reuses the figures computed above.
        report.what_happened = crate::account::account(records, &report);
        report
    }

    /// Adds what [`rtclab_events::read_log_lenient`] found wrong with the log (skipped lines,
    /// a missing `session.start` or `session.end`) to [`RunReport::report_notes`], first, so
    /// that the terminal tables and `report.html` say the figures come from a damaged log.
    pub fn note_damage(&mut self, damage: &rtclab_events::LogDamage) {
        let notes = damage.notes();
        self.report_notes.splice(0..0, notes);
    }

    /// The report without `timeseries`, as a JSON object to merge into `summary.json`.
    pub fn figures_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("timeseries");
            m.remove("config");
        }
        v
    }

    pub(crate) fn compute(records: &[Record], impair: &ImpairData) -> RunReport {
        let mut rep = RunReport {
            config: serde_json::Value::Null,
            ..Default::default()
        };
        rep.ice_candidates = crate::ice::candidate_rows(records);
        rep.ice_selected_pairs = crate::ice::selected_pairs(records);
        let end_t = records.iter().map(|r| r.t).fold(0.0_f64, f64::max);
        rep.log_duration_s = end_t;
        rep.raw.end_t = end_t;
        // A corrupt timestamp must not make us allocate a series of billions of seconds.
        let n_seconds = (end_t.max(0.0).floor() as usize + 1).min(MAX_SECONDS);
        if n_seconds == MAX_SECONDS {
            rep.report_notes.push(format!(
                "the log spans {end_t:.0} s; the per-second series stops at {MAX_SECONDS} s"
            ));
        }
        let mut ts: Vec<SecondSample> = (0..n_seconds)
            .map(|i| SecondSample {
                t_s: i as f64,
                ..Default::default()
            })
            .collect();
        let bucket = |t: f64| (t.max(0.0).floor() as usize).min(n_seconds - 1);
        // The bucket of a once-a-second statistics line's counts: the second it closes.
        let interval = |t: f64| bucket(t - 0.5);

        let mut rtcp: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let receiving = rtclab_events::receiving_peer(records);
        let sending = rtclab_events::sending_peer(records);
        let (fb_peer, fb_dir) = rtclab_events::feedback_seen_at(receiving);
        let mut prev_send: Option<&MediaStats> = None;
        let mut prev_recv: Option<&MediaStats> = None;
        let mut rtts = Vec::new();
        let mut sender_times = Vec::new();
        // (t, freezes, freeze_ms) of the receiving peer's statistics lines.
        let mut stats_freezes: Vec<(f64, u64, f64)> = Vec::new();

        for r in records {
            let b = bucket(r.t);
            match &r.event {
                Event::SessionStart {
                    scenario,
                    config,
                    session_id,
                    started_at,
                    ..
                } => {
                    rep.scenario = scenario.clone();
                    rep.session_id = Some(session_id.clone());
                    rep.started_at = Some(started_at.clone());
                    rep.config = config.clone();
                    rep.scenario_description = config
                        .get("description")
                        .and_then(|d| d.as_str())
                        .map(str::to_owned);
                }
                Event::Rtcp { direction, packet } => {
                    *rtcp
                        .entry((
                            peer_name(r.peer),
                            dir_name(*direction).to_owned(),
                            packet.type_name().to_owned(),
                        ))
                        .or_default() += 1;
                    if r.peer == fb_peer && *direction == fb_dir {
                        match packet {
                            Rtcp::Nack { seqs, .. } => {
                                ts[b].nacks += 1;
                                ts[b].nacked_packets += seqs.len() as u64;
                            }
                            Rtcp::Pli { .. } => ts[b].plis += 1,
                            Rtcp::Fir { .. } => ts[b].firs += 1,
                            _ => {}
                        }
                    }
                }
                Event::BweEstimate {
                    target_bps, rtt_ms, ..
                } => {
                    ts[b].target_bps = Some(*target_bps);
                    rep.raw.target.push((r.t, *target_bps));
                    if let Some(rtt) = rtt_ms {
                        ts[b].rtt_ms = Some(*rtt);
                        rep.raw.rtt.push((r.t, *rtt));
                        rtts.push(*rtt);
                    }
                }
                Event::MediaStats(_) => {
                    if let Some(m) = sender_stats(r, sending) {
                        ts[b].send_bps = Some(m.bitrate_bps);
                        ts[b].send_fps = Some(m.fps);
                        // Counts in a statistics line cover the second before it: they go
                        // in that second's bucket, next to the NACKs that asked for them.
                        ts[interval(r.t)].retransmissions += m
                            .retransmitted
                            .saturating_sub(prev_send.map_or(0, |p| p.retransmitted));
                        rep.raw.send.push((r.t, m.bitrate_bps));
                        rep.raw.send_fps.push((r.t, m.fps));
                        sender_times.push(r.t);
                        prev_send = Some(m);
                    } else if let Some(m) = receiver_stats(r, receiving) {
                        ts[b].recv_bps = Some(m.bitrate_bps);
                        ts[b].recv_fps = Some(m.fps);
                        ts[interval(r.t)].lost_packets +=
                            m.lost.saturating_sub(prev_recv.map_or(0, |p| p.lost));
                        rep.raw.recv.push((r.t, m.bitrate_bps));
                        rep.raw.recv_fps.push((r.t, m.fps));
                        stats_freezes.push((r.t, m.freezes, m.freeze_ms));
                        prev_recv = Some(m);
                    }
                }
                Event::VideoFreeze { duration_ms } => {
                    let d = duration_ms.max(0.0);
                    rep.freezes_list.push(Freeze {
                        start_s: r.t - d / 1000.0,
                        end_s: r.t,
                        duration_ms: d,
                    });
                }
                Event::Note { level, message } if *level != rtclab_events::NoteLevel::Info => {
                    rep.report_notes
                        .push(format!("{level} at {:.1} s ({}): {message}", r.t, r.peer));
                }
                _ => {}
            }
        }

        rep.rtcp_counts = rtcp
            .into_iter()
            .map(|((peer, direction, rtcp_type), count)| RtcpCount {
                peer,
                direction,
                rtcp_type,
                count,
            })
            .collect();

        // Totals, as summary.json counts them.
        for s in &ts {
            rep.nacks += s.nacks;
            rep.nacked_packets += s.nacked_packets;
            rep.plis += s.plis;
            rep.firs += s.firs;
        }
        if let Some(m) = prev_send {
            rep.frames_sent = m.frames;
            rep.retransmissions = m.retransmitted;
        }
        if let Some(m) = prev_recv {
            rep.frames_decoded = m.frames;
            rep.packets_lost = m.lost;
        }
        rep.frames_decoded_pct = (rep.frames_sent > 0)
            .then(|| 100.0 * rep.frames_decoded as f64 / rep.frames_sent as f64);
        if let (Some(first), Some(last)) = (sender_times.first(), sender_times.last()) {
            // The first statistics line closes the first second of media.
            rep.media_duration_s = last - first + 1.0;
        }
        rep.rtt_mean_ms = mean(&rtts);
        rep.rtt_max_ms = max(rtts.iter().copied());

        let browser_count = if rep.freezes_list.is_empty() {
            rep.freezes_from_stats(&stats_freezes)
        } else {
            None
        };
        rep.add_freezes(&mut ts);
        if let Some(n) = browser_count {
            // The receiver's own count: the list may have merged freezes of one second.
            rep.freeze_count = n;
        }
        rep.add_impairment(impair, &mut ts, &bucket);
        rep.raw.markers = crate::markers::markers(records);
        rep.add_capacity_reactions();

        let network_lost = rep.network_lost_packets;
        let (lost, basis) = match network_lost {
            Some(n) => (n, "impair downlink drops"),
            None => (rep.packets_lost, "receiver lost"),
        };
        rep.retransmissions_per_lost_basis = basis.to_owned();
        rep.retransmissions_per_lost = (lost > 0).then(|| rep.retransmissions as f64 / lost as f64);

        rep.timeseries = ts;
        rep
    }

    /// A receiver that logs no `video.freeze` (a browser: `getStats()` gives only running
    /// totals) still counts its freezes in `media.stats`: each rise of `freeze_ms` between two
    /// lines becomes one freeze ending at the later line (several freezes within one second
    /// merge into one there). Returns the receiver's own freeze count, which the report then
    /// shows, so it agrees with the terminal; `None` if the statistics saw no freeze. Without
    /// this the report said 0 freezes where the terminal said 1 (issue 14 #7).
    fn freezes_from_stats(&mut self, stats: &[(f64, u64, f64)]) -> Option<u64> {
        let mut prev = (0u64, 0.0f64);
        for &(t, freezes, freeze_ms) in stats {
            let grew = freeze_ms - prev.1;
            if freezes > prev.0 && grew > 0.0 {
                self.freezes_list.push(Freeze {
                    start_s: t - grew / 1000.0,
                    end_s: t,
                    duration_ms: grew,
                });
            }
            prev = (freezes, freeze_ms);
        }
        (prev.0 > 0).then_some(prev.0)
    }

    fn add_freezes(&mut self, ts: &mut [SecondSample]) {
        self.freeze_count = self.freezes_list.len() as u64;
        // fold, not sum: an empty f64 sum is -0.0, which prints as "-0".
        self.freeze_total_ms = self.freezes_list.iter().fold(0.0, |a, f| a + f.duration_ms);
        self.freeze_longest_ms =
            max(self.freezes_list.iter().map(|f| f.duration_ms)).unwrap_or(0.0);
        self.frozen_pct = (self.media_duration_s > 0.0)
            .then(|| 100.0 * self.freeze_total_ms / 1000.0 / self.media_duration_s);
        for f in &self.freezes_list {
            for s in ts.iter_mut() {
                let overlap = f.end_s.min(s.t_s + 1.0) - f.start_s.max(s.t_s);
                if overlap > 0.0 {
                    s.frozen_ms += overlap * 1000.0;
                }
            }
        }
        self.low_fps_s = ts
            .iter()
            .filter(|s| match (s.recv_fps, s.send_fps) {
                (Some(r), Some(sf)) => sf > 0.0 && r < sf / 3.0,
                _ => false,
            })
            .count() as u64;
    }

    fn add_impairment(
        &mut self,
        impair: &ImpairData,
        ts: &mut [SecondSample],
        bucket: &dyn Fn(f64) -> usize,
    ) {
        self.raw.capacity_steps = impair.capacity_steps();
        for dir in ["downlink", "uplink"] {
            let samples: Vec<&ImpairSample> = impair.direction(dir).collect();
            if samples.is_empty() {
                continue;
            }
            let mut tot = ImpairTotals {
                direction: dir.to_owned(),
                ..Default::default()
            };
            let mut delivered_bits = 0.0;
            let mut capacity_bits = 0.0;
            let mut p50s = Vec::new();
            let mut p95s = Vec::new();
            for s in &samples {
                // Counters are deltas over [t_start, t] (the log's totals since the start,
                // differenced in `impair::extract`).
                let dt = (s.t - s.t_start).max(0.0);
                if let Some(m) = s.queue_delay_max_ms {
                    tot.queue_delay_max_ms = Some(tot.queue_delay_max_ms.map_or(m, |x| x.max(m)));
                }
                // The downlink's capacity over the interval comes from its steps (exact times
                // from impair.change); the uplink has only the capacity its lines report.
                let (limited_s, cap_bits) = if dir == "downlink" {
                    capacity_over(&self.raw.capacity_steps, s.t_start, s.t)
                } else {
                    s.capacity_bps.map_or((0.0, 0.0), |c| (dt, c * dt))
                };
                tot.capacity_limited_s += limited_s;
                if limited_s > 0.0 && dt > 0.0 {
                    delivered_bits += s.bytes_out as f64 * 8.0 * (limited_s / dt).min(1.0);
                    capacity_bits += cap_bits;
                }
                if dir != "downlink" {
                    continue;
                }
                let b = bucket(s.t);
                ts[b].capacity_bps = s.capacity_bps;
                ts[b].delivered_bps = (dt > 0.0).then(|| s.bytes_out as f64 * 8.0 / dt);
                ts[b].queue_delay_p50_ms = s.queue_delay_p50_ms;
                ts[b].queue_delay_p95_ms = s.queue_delay_p95_ms;
                // The drops happened during the interval the line closes, not after it (they
                // were drawn a second late, issue 14 #7).
                ts[bucket((s.t_start + s.t) / 2.0)].impair_dropped_packets += s.dropped_total();
                // A second without delivered packets says nothing about their delay.
                let w = s.packets_out as f64;
                if let Some(v) = s.queue_delay_p50_ms {
                    p50s.push((v, w));
                    self.raw.queue_p50.push((s.t, v));
                }
                if let Some(v) = s.queue_delay_p95_ms {
                    p95s.push((v, w));
                    self.raw.queue_p95.push((s.t, v));
                }
            }
            // Totals since the start: the last line's.
            if let Some(last) = samples.last() {
                let t = &last.total;
                tot.packets_in = t.packets_in;
                tot.packets_out = t.packets_out;
                tot.bytes_in = t.bytes_in;
                tot.bytes_out = t.bytes_out;
                tot.dropped = impair::drops_by_cause(&t.dropped_packets);
            }
            tot.dropped_total = tot.dropped.values().sum();
            if dir == "downlink" {
                self.capacity_limited_s = tot.capacity_limited_s;
                // To 0.01 points: the delivered bits include the DTLS handshake, whose size
                // varies by a byte or two from run to run (random ECDSA signatures), which
                // must not make two virtual-time runs of one seed disagree in the 7th digit.
                self.link_utilisation_pct = (capacity_bits > 0.0)
                    .then(|| (100.0 * delivered_bits / capacity_bits * 100.0).round() / 100.0);
                self.queue_delay_p50_ms = weighted_percentile(p50s, 0.5);
                self.queue_delay_p95_ms = weighted_percentile(p95s, 0.95);
                self.queue_delay_max_ms = tot.queue_delay_max_ms;
                self.network_lost_packets = Some(tot.dropped_total);
                if self.queue_delay_p50_ms.is_some() {
                    self.report_notes.push(
                        "queue delay p50/p95 over the run are approximated from the per-second \
                         percentiles, weighted by packets delivered in each second"
                            .to_owned(),
                    );
                }
                if impair.changes.is_empty() && self.raw.capacity_steps.len() > 1 {
                    self.report_notes.push(
                        "capacity changes are dated from impair.stats (no impair.change), at the \
                         start of the interval that first shows them: reaction and recovery \
                         times may be up to one interval long"
                            .to_owned(),
                    );
                }
            }
            self.impairment.push(tot);
        }
    }

    fn add_capacity_reactions(&mut self) {
        let target = &self.raw.target;
        let steps = &self.raw.capacity_steps;
        // Target just before the latest drop, the level a later rise should bring back.
        let mut before_drop: Option<f64> = None;
        for w in steps.windows(2) {
            let (prev, step) = (w[0], w[1]);
            let t = step.t;
            match (prev.capacity_bps, step.capacity_bps) {
                // An outage (capacity 0) is a drop too (a learner sees the link go dead), but no
                // target is below zero: its reaction is the controller's first cut. Its end
                // counts as a rise, recovered against the target before it.
                (from, Some(to)) if from.is_none_or(|f| to < f) => {
                    let at_drop = target_at(target, t);
                    before_drop = at_drop;
                    let below = if to > 0.0 {
                        to
                    } else {
                        at_drop.map_or(0.0, |x| x * OUTAGE_NOTICED)
                    };
                    let reacted = |v: f64| {
                        if to > 0.0 {
                            v < to
                        } else {
                            below > 0.0 && v <= below
                        }
                    };
                    let reaction_s = if at_drop.is_some_and(reacted) {
                        Some(0.0)
                    } else {
                        target
                            .iter()
                            .find(|(tt, v)| *tt > t && reacted(*v))
                            .map(|(tt, _)| tt - t)
                    };
                    self.capacity_drops.push(CapacityDrop {
                        t_s: t,
                        from_bps: from,
                        to_bps: to,
                        reaction_s,
                    });
                }
                (Some(from), to) if to.is_none_or(|x| x > from) => {
                    let goal = match (to, before_drop) {
                        (Some(c), Some(b)) => Some(c.min(b)),
                        (Some(c), None) => Some(c),
                        (None, b) => b,
                    }
                    .map(|g| g * RECOVERED_SHARE);
                    let recovery_s = goal.and_then(|g| {
                        if target_at(target, t).is_some_and(|x| x >= g) {
                            Some(0.0)
                        } else {
                            target
                                .iter()
                                .find(|(tt, v)| *tt > t && *v >= g)
                                .map(|(tt, _)| tt - t)
                        }
                    });
                    self.capacity_rises.push(CapacityRise {
                        t_s: t,
                        from_bps: from,
                        to_bps: to,
                        goal_bps: goal,
                        recovery_s,
                    });
                }
                _ => {}
            }
        }
        let reactions: Vec<f64> = self
            .capacity_drops
            .iter()
            .filter_map(|d| d.reaction_s)
            .collect();
        self.reaction_time_max_s = max(reactions.iter().copied());
        self.reaction_time_mean_s = mean(&reactions);
        self.reactions_missed = self
            .capacity_drops
            .iter()
            .filter(|d| d.reaction_s.is_none())
            .count() as u64;
        self.recovery_time_max_s = max(self.capacity_rises.iter().filter_map(|r| r.recovery_s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::test_records::{StatsLog, change};
    use serde_json::json;

    fn rec(t: f64, peer: PeerRole, event: Event) -> Record {
        Record { t, peer, event }
    }

    fn bwe(t: f64, target: f64) -> Record {
        rec(
            t,
            PeerRole::Sender,
            Event::BweEstimate {
                estimator: "stock".into(),
                target_bps: target,
                delay_based_bps: None,
                loss_based_bps: None,
                loss_ratio: None,
                rtt_ms: Some(40.0),
                detail: Default::default(),
            },
        )
    }

    fn stats(t: f64, peer: PeerRole, frames: u64, lost: u64, rtx: u64, fps: f64) -> Record {
        rec(
            t,
            peer,
            Event::MediaStats(MediaStats {
                direction: if peer == PeerRole::Sender {
                    rtclab_events::MediaDirection::Send
                } else {
                    rtclab_events::MediaDirection::Recv
                },
                frames,
                lost,
                retransmitted: rtx,
                bitrate_bps: 1e6,
                fps,
                ..Default::default()
            }),
        )
    }

    fn nack(t: f64, seqs: Vec<u16>) -> Record {
        rec(
            t,
            PeerRole::Receiver,
            Event::Rtcp {
                direction: Direction::Out,
                packet: Rtcp::Nack {
                    media_ssrc: 1,
                    seqs,
                },
            },
        )
    }

    /// 3 Mbps until t=20, then 500 kbps until t=30, then 3 Mbps again.
    fn drop_and_rise() -> (Vec<Record>, ImpairData) {
        let mut records = Vec::new();
        let mut t = 0.5;
        while t < 40.0 {
            let target = if t < 20.8 {
                2.5e6
            } else if t < 30.0 {
                4.5e5
            } else if t < 33.0 {
                1.5e6
            } else {
                2.8e6
            };
            records.push(bwe(t, target));
            t = ((t + 0.1) * 10.0_f64).round() / 10.0;
        }
        // The scenario's base rate shows in the statistics before the first change.
        let mut log = StatsLog::new("downlink");
        records.push(log.second(1.0, Some(3e6), 200, 250_000, 0, 0, None));
        records.push(change("downlink", 20.0, None, json!({"rate_kbps": 500.0})));
        records.push(change("downlink", 30.0, None, json!({"rate_kbps": 3000.0})));
        records.sort_by(|a, b| a.t.total_cmp(&b.t));
        let impair = impair::extract(&records);
        (records, impair)
    }

    #[test]
    fn reaction_to_a_drop_is_the_first_target_under_the_new_capacity() {
        let (records, impair) = drop_and_rise();
        let rep = RunReport::compute(&records, &impair);
        assert_eq!(rep.capacity_drops.len(), 1);
        let d = &rep.capacity_drops[0];
        assert_eq!((d.t_s, d.from_bps, d.to_bps), (20.0, Some(3e6), 5e5));
        let reaction = d.reaction_s.expect("the target went under");
        assert!((reaction - 0.8).abs() < 1e-9, "{reaction}");
        assert_eq!(rep.reaction_time_max_s, Some(reaction));
        assert_eq!(rep.reactions_missed, 0);
    }

    #[test]
    fn recovery_is_measured_against_the_level_before_the_drop() {
        let (records, impair) = drop_and_rise();
        let rep = RunReport::compute(&records, &impair);
        let r = &rep.capacity_rises[0];
        // min(3 Mbps, 2.5 Mbps before the drop) × 0.9 = 2.25 Mbps, reached at t=33.
        assert_eq!(r.goal_bps, Some(2.25e6));
        assert!((r.recovery_s.expect("recovered") - 3.0).abs() < 1e-9);
    }

    #[test]
    fn an_outage_is_a_drop_whose_reaction_is_the_first_cut_and_its_end_a_rise() {
        let records = vec![
            bwe(0.5, 2e6),
            bwe(9.9, 2e6),
            change("downlink", 10.0, Some(13.0), json!({"outage": true})),
            // No feedback: the controller cuts 20 % per 500 ms from 10.5 s on.
            bwe(10.3, 2e6),
            bwe(10.6, 1.6e6),
            bwe(11.1, 1.28e6),
            change("downlink", 13.0, None, json!({"outage": null})),
            bwe(14.0, 1.5e6),
            bwe(15.2, 1.9e6),
        ];
        let rep = RunReport::from_records(&records);
        let d = &rep.capacity_drops[0];
        assert_eq!((d.t_s, d.from_bps, d.to_bps), (10.0, None, 0.0));
        assert!((d.reaction_s.expect("noticed") - 0.6).abs() < 1e-9);
        let r = &rep.capacity_rises[0];
        // Recovered against 90 % of the 2 Mbps before the outage: 1.9 Mbps at 15.2 s.
        assert_eq!(r.goal_bps, Some(1.8e6));
        assert!((r.recovery_s.expect("recovered") - 2.2).abs() < 1e-9);
    }

    #[test]
    fn a_drop_never_followed_counts_as_missed() {
        let records = vec![
            bwe(0.5, 2e6),
            change("downlink", 20.0, None, json!({"rate_kbps": 500.0})),
            bwe(25.0, 2e6),
        ];
        let rep = RunReport::from_records(&records);
        assert_eq!(rep.capacity_drops[0].from_bps, None);
        assert_eq!(rep.capacity_drops[0].reaction_s, None);
        assert_eq!(rep.reactions_missed, 1);
        assert_eq!(rep.reaction_time_max_s, None);
    }

    #[test]
    fn freezes_are_counted_and_spread_over_seconds() {
        let records = vec![
            stats(1.0, PeerRole::Sender, 30, 0, 0, 30.0),
            stats(1.0, PeerRole::Receiver, 30, 0, 0, 30.0),
            rec(
                2.7,
                PeerRole::Receiver,
                Event::VideoFreeze { duration_ms: 400.0 },
            ),
            rec(
                5.2,
                PeerRole::Receiver,
                Event::VideoFreeze { duration_ms: 150.0 },
            ),
            stats(10.0, PeerRole::Sender, 300, 0, 0, 30.0),
            stats(10.0, PeerRole::Receiver, 285, 0, 0, 5.0),
        ];
        let rep = RunReport::from_records(&records);
        assert_eq!(rep.freeze_count, 2);
        assert!((rep.freeze_total_ms - 550.0).abs() < 1e-9);
        assert!((rep.freeze_longest_ms - 400.0).abs() < 1e-9);
        // 2.3..2.7 lies in second 2; 5.05..5.2 in second 5.
        assert!((rep.timeseries[2].frozen_ms - 400.0).abs() < 1e-6);
        assert!((rep.timeseries[5].frozen_ms - 150.0).abs() < 1e-6);
        assert_eq!(rep.frames_decoded_pct, Some(95.0));
        assert_eq!(rep.low_fps_s, 1);
        // 550 ms of a 10 s media duration.
        assert!((rep.frozen_pct.expect("duration known") - 5.5).abs() < 1e-9);
    }

    #[test]
    fn a_browsers_freezes_come_from_its_statistics_totals() {
        // A browser logs no video.freeze; its media.stats carry getStats()'s running totals.
        let browser = |t: f64, freezes: u64, freeze_ms: f64| {
            let mut r = stats(t, PeerRole::Browser, (t * 30.0) as u64, 0, 0, 30.0);
            if let Event::MediaStats(m) = &mut r.event {
                m.freezes = freezes;
                m.freeze_ms = freeze_ms;
            }
            r
        };
        let records = vec![
            stats(1.0, PeerRole::Sender, 30, 0, 0, 30.0),
            browser(1.0, 0, 0.0),
            browser(2.0, 0, 0.0),
            // Two freezes in one second (700 ms), then one of 235 ms.
            browser(3.0, 2, 700.0),
            browser(4.0, 2, 700.0),
            browser(5.0, 3, 935.0),
            stats(5.0, PeerRole::Sender, 150, 0, 0, 30.0),
        ];
        let rep = RunReport::from_records(&records);
        // The browser's own count and time, as the terminal shows them.
        assert_eq!(rep.freeze_count, 3);
        assert!((rep.freeze_total_ms - 935.0).abs() < 1e-9);
        assert!((rep.timeseries[4].frozen_ms - 235.0).abs() < 1e-6);
    }

    #[test]
    fn nacks_plis_and_retransmissions_per_second() {
        let records = vec![
            stats(1.0, PeerRole::Sender, 30, 0, 0, 30.0),
            stats(1.0, PeerRole::Receiver, 30, 0, 0, 30.0),
            nack(1.2, vec![10, 11]),
            nack(1.4, vec![12]),
            nack(3.1, vec![40]),
            rec(
                3.2,
                PeerRole::Receiver,
                Event::Rtcp {
                    direction: Direction::Out,
                    packet: Rtcp::Pli { media_ssrc: 1 },
                },
            ),
            // The sender sees the same NACK arrive: counted in RTCP counts, not as sent.
            rec(
                3.15,
                PeerRole::Sender,
                Event::Rtcp {
                    direction: Direction::In,
                    packet: Rtcp::Nack {
                        media_ssrc: 1,
                        seqs: vec![40],
                    },
                },
            ),
            stats(2.0, PeerRole::Sender, 60, 0, 3, 30.0),
            stats(2.0, PeerRole::Receiver, 60, 1, 0, 30.0),
            stats(4.0, PeerRole::Sender, 120, 0, 4, 30.0),
            stats(4.0, PeerRole::Receiver, 120, 1, 0, 30.0),
        ];
        let rep = RunReport::from_records(&records);
        assert_eq!((rep.nacks, rep.nacked_packets, rep.plis), (3, 4, 1));
        assert_eq!(rep.timeseries[1].nacks, 2);
        assert_eq!(rep.timeseries[1].nacked_packets, 3);
        assert_eq!(rep.timeseries[3].nacks, 1);
        assert_eq!(rep.timeseries[3].plis, 1);
        // A statistics line's counts belong to the second it closes: the retransmissions
        // logged at 2.0 s answered the NACKs of second 1 and are drawn beside them.
        assert_eq!(rep.timeseries[1].retransmissions, 3);
        assert_eq!(rep.timeseries[3].retransmissions, 1);
        assert_eq!(rep.timeseries[1].lost_packets, 1);
        // No impairment stats: divide by what the receiver lost.
        assert_eq!(rep.retransmissions_per_lost, Some(4.0));
        assert_eq!(rep.retransmissions_per_lost_basis, "receiver lost");
        let counts: Vec<(&str, &str, &str, u64)> = rep
            .rtcp_counts
            .iter()
            .map(|c| {
                (
                    c.peer.as_str(),
                    c.direction.as_str(),
                    c.rtcp_type.as_str(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("receiver", "out", "NACK", 3),
                ("receiver", "out", "PLI", 1),
                ("sender", "in", "NACK", 1)
            ]
        );
    }

    #[test]
    fn utilisation_counts_only_limited_seconds() {
        // 1 s unlimited (not counted), then 4 s at 1 Mbps delivering 100 kB/s = 0.8 Mbps.
        let mut log = StatsLog::new("downlink");
        let q = Some((5.0, 20.0, 30.0));
        let records = vec![
            log.second(1.0, None, 100, 500_000, 0, 0, q),
            change("downlink", 1.0, None, json!({"rate_kbps": 1000.0})),
            log.second(2.0, Some(1e6), 100, 100_000, 2, 0, q),
            log.second(3.0, Some(1e6), 100, 100_000, 1, 2, q),
            log.second(4.0, Some(1e6), 100, 100_000, 0, 0, q),
            log.second(5.0, Some(1e6), 100, 100_000, 0, 0, q),
            stats(6.0, PeerRole::Sender, 150, 0, 10, 30.0),
        ];
        let rep = RunReport::from_records(&records);
        let u = rep.link_utilisation_pct.expect("limited");
        assert!((u - 80.0).abs() < 1e-9, "{u}");
        assert!((rep.capacity_limited_s - 4.0).abs() < 1e-9);
        assert_eq!(rep.network_lost_packets, Some(5));
        assert_eq!(
            rep.impairment[0].dropped,
            BTreeMap::from([("random".to_owned(), 3), ("queue_overflow".to_owned(), 2)])
        );
        assert_eq!(rep.impairment[0].packets_out, 500);
        // The line at 3.0 s closes the second 2..3.
        assert_eq!(rep.timeseries[2].impair_dropped_packets, 3);
        assert_eq!(rep.retransmissions_per_lost, Some(2.0));
        assert_eq!(rep.retransmissions_per_lost_basis, "impair downlink drops");
        assert_eq!(rep.queue_delay_p50_ms, Some(5.0));
        assert_eq!(rep.queue_delay_p95_ms, Some(20.0));
        assert_eq!(rep.timeseries[2].capacity_bps, Some(1e6));
        assert_eq!(rep.timeseries[2].delivered_bps, Some(800_000.0));
        assert_eq!(rep.capacity_drops.len(), 1, "unlimited → 1 Mbps is a drop");
    }

    #[test]
    fn no_impairment_means_no_utilisation() {
        let rep = RunReport::from_records(&[bwe(1.0, 1e6)]);
        assert_eq!(rep.link_utilisation_pct, None);
        assert!(rep.impairment.is_empty());
        assert!(rep.capacity_drops.is_empty());
        assert_eq!(rep.queue_delay_p95_ms, None);
        assert_eq!(rep.network_lost_packets, None);
    }

    #[test]
    fn weighted_percentiles() {
        let v = vec![(1.0, 1.0), (2.0, 1.0), (10.0, 98.0)];
        assert_eq!(weighted_percentile(v.clone(), 0.5), Some(10.0));
        assert_eq!(
            weighted_percentile(vec![(1.0, 50.0), (2.0, 50.0)], 0.5),
            Some(1.0)
        );
        assert_eq!(weighted_percentile(vec![], 0.5), None);
    }

    #[test]
    fn figures_json_is_flat_and_without_timeseries() {
        let rep = RunReport::from_records(&[bwe(1.0, 1e6)]);
        let v = rep.figures_json();
        assert!(v.get("timeseries").is_none());
        assert!(v.get("link_utilisation_pct").is_some());
        assert!(v.get("raw").is_none());
    }
}
