//! The run summary, computed from the event log alone so that `summary.json` always agrees with
//! `events.jsonl` and `rtclab report` can recompute it from any log.

use crate::RunReport;
use crate::ice::PathSummary;
use rtclab_events::{Direction, Event, MediaDirection, MediaStats, PeerRole, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name, if any.
    pub scenario: Option<String>,
    /// Codec used.
    pub codec: String,
    /// Media duration in seconds (first to last sender statistics).
    pub duration_s: f64,
    /// Frames the sender encoded and sent.
    pub frames_sent: u64,
    /// Frames the receiver decoded.
    pub frames_decoded: u64,
    /// Frames the receiver could not decode.
    pub decode_errors: u64,
    /// Video freezes at the receiver (W3C `freezeCount` rule).
    pub freezes: u64,
    /// Total frozen time at the receiver, ms.
    pub freeze_ms: f64,
    /// RTP packets sent (first transmissions).
    pub packets_sent: u64,
    /// RTP packets received (including retransmissions).
    pub packets_received: u64,
    /// Packets that never arrived (receiver's sequence accounting).
    pub packets_lost: u64,
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
    /// FlexFEC repair packets the sender sent (0 without FEC).
    #[serde(default)]
    pub fec_packets_sent: u64,
    /// Share of the sender's RTP bytes that were FlexFEC repair packets.
    #[serde(default)]
    pub fec_overhead: f64,
    /// Media packets the receiver rebuilt from FlexFEC repair packets.
    #[serde(default)]
    pub fec_recovered: u64,
    /// Keyframes the sender produced.
    pub keyframes: u64,
    /// Keyframe requests (PLI/FIR) the sender held back because it had answered one less than
    /// 300 ms before (`rtclab_peer::keyframe_gate`).
    #[serde(default)]
    pub keyframe_requests_held: u64,
    /// Mean congestion-controller target over the run, bps.
    pub mean_target_bps: f64,
    /// Mean of the sender's per-second RTP bitrate, bps.
    pub mean_send_bps: f64,
    /// Mean of the receiver's per-second RTP bitrate, bps.
    pub mean_recv_bps: f64,
    /// Mean of the encoder's per-second output bitrate, bps.
    pub mean_encoder_bps: f64,
    /// Number of `bwe.estimate` events.
    pub bwe_estimates: u64,
    /// The selected candidate pair, as the sender saw it last.
    pub selected_pair: Option<PathSummary>,
    /// How many times the selected pair changed.
    pub selected_pair_changes: u64,
    /// RTCP packets per "peer direction type" (e.g. `receiver out RR`).
    pub rtcp: BTreeMap<String, u64>,
    /// Candidates gathered per "peer side type" (e.g. `sender local host`).
    pub candidates: BTreeMap<String, u64>,
    /// Median glass-to-glass latency over all frames with a capture time, ms (from `qoe`).
    #[serde(default)]
    pub g2g_p50_ms: Option<f64>,
    /// 95th percentile of the same, ms.
    #[serde(default)]
    pub g2g_p95_ms: Option<f64>,
    /// Frames scored against the source (PSNR/SSIM).
    #[serde(default)]
    pub scored_frames: u64,
    /// Mean luma PSNR of the scored frames, dB (null when none could be scored).
    #[serde(default)]
    pub psnr_mean_db: Option<f64>,
    /// Mean luma SSIM of the scored frames (null when none could be scored).
    #[serde(default)]
    pub ssim_mean: Option<f64>,
    /// Smallest picture height the receiver decoded (the lowest rung resolution scaling
    /// reached), if its statistics say.
    #[serde(default)]
    pub lowest_height: Option<u32>,
    /// "What happened": the run told in a few timed sentences (`crate::account`), the same
    /// ones that open `report.html`; `print_summary` prints them first.
    #[serde(default)]
    pub what_happened: Vec<crate::account::Sentence>,
}

fn last_stats(records: &[Record], peer: PeerRole, dir: MediaDirection) -> Option<&MediaStats> {
    records.iter().rev().find_map(|r| match &r.event {
        Event::MediaStats(s) if r.peer == peer && s.direction == dir => Some(s),
        _ => None,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        (sum / f64::from(n)).round()
    }
}

/// `summary.json`: the summary plus the report's figures (utilisation, queuing delay, freezes,
/// reaction and recovery times, impairment totals); the summary's fields win on a clash.
pub fn merged(summary: &Summary, report: &RunReport) -> serde_json::Value {
    let mut value = serde_json::to_value(summary).unwrap_or_default();
    if let (Some(obj), serde_json::Value::Object(figures)) =
        (value.as_object_mut(), report.figures_json())
    {
        for (k, v) in figures {
            obj.entry(k).or_insert(v);
        }
    }
    value
}

impl Summary {
    /// Computes the summary from a session's records.
    pub fn from_records(records: &[Record]) -> Summary {
        let mut s = Summary::default();
        let receiving = rtclab_events::receiving_peer(records);
        let sending = rtclab_events::sending_peer(records);
        let (fb_peer, fb_dir) = rtclab_events::feedback_seen_at(receiving);
        for r in records {
            match &r.event {
                Event::SessionStart {
                    scenario, config, ..
                } => {
                    s.scenario = scenario.clone();
                    if let Some(c) = config.get("codec").and_then(|c| c.as_str()) {
                        s.codec = c.to_owned();
                    }
                }
                Event::Rtcp { direction, packet } => {
                    let dir = match direction {
                        Direction::In => "in",
                        Direction::Out => "out",
                    };
                    *s.rtcp
                        .entry(format!("{} {dir} {}", r.peer, packet.type_name()))
                        .or_default() += 1;
                    if r.peer == fb_peer && *direction == fb_dir {
                        match packet {
                            rtclab_events::Rtcp::Nack { seqs, .. } => {
                                s.nacks += 1;
                                s.nacked_packets += seqs.len() as u64;
                            }
                            rtclab_events::Rtcp::Pli { .. } => s.plis += 1,
                            rtclab_events::Rtcp::Fir { .. } => s.firs += 1,
                            _ => {}
                        }
                    }
                }
                Event::IceCandidate { side, candidate } => {
                    let side = match side {
                        rtclab_events::Side::Local => "local",
                        rtclab_events::Side::Remote => "remote",
                    };
                    *s.candidates
                        .entry(format!("{} {side} {}", r.peer, candidate.typ))
                        .or_default() += 1;
                }
                Event::BweEstimate { .. } => s.bwe_estimates += 1,
                Event::EncoderRate {
                    keyframes,
                    codec,
                    keyframe_requests_held,
                    ..
                } => {
                    // The negotiated codec, which may differ from the configured one.
                    s.codec = codec.clone();
                    s.keyframes += u64::from(*keyframes);
                    s.keyframe_requests_held += u64::from(*keyframe_requests_held);
                }
                _ => {}
            }
        }
        let receiver = PeerRole::Receiver.to_string();
        for p in crate::ice::selected_pairs(records) {
            if p.peer != receiver {
                if s.selected_pair.is_some() {
                    s.selected_pair_changes += 1;
                }
                s.selected_pair = Some(p.pair);
            } else if s.selected_pair.is_none() {
                // A receiver-only log (the sender is elsewhere): use its view.
                s.selected_pair = Some(p.pair.reversed());
            }
        }
        let sender_stats: Vec<&MediaStats> = records
            .iter()
            .filter(|r| r.peer == sending)
            .filter_map(|r| match &r.event {
                Event::MediaStats(m) if m.direction == rtclab_events::MediaDirection::Send => {
                    Some(m)
                }
                _ => None,
            })
            .collect();
        let sender_times: Vec<f64> = records
            .iter()
            .filter(|r| {
                r.peer == sending
                    && matches!(&r.event, Event::MediaStats(m) if m.direction == rtclab_events::MediaDirection::Send)
            })
            .map(|r| r.t)
            .collect();
        if let (Some(first), Some(last)) = (sender_times.first(), sender_times.last()) {
            // The first statistics line closes the first second of media.
            s.duration_s = ((last - first + 1.0) * 10.0).round() / 10.0;
        }
        if let Some(st) = last_stats(records, sending, MediaDirection::Send) {
            s.frames_sent = st.frames;
            s.packets_sent = st.packets;
            s.retransmissions = st.retransmitted;
            s.fec_packets_sent = st.fec_packets;
            s.fec_overhead = st.fec_bytes as f64 / st.bytes.max(1) as f64;
        }
        if let Some(st) = last_stats(records, receiving, MediaDirection::Recv) {
            s.frames_decoded = st.frames;
            s.packets_received = st.packets;
            s.packets_lost = st.lost;
            s.decode_errors = st.decode_errors;
            s.freezes = st.freezes;
            s.freeze_ms = st.freeze_ms;
            s.fec_recovered = st.fec_recovered;
        }
        s.qoe_from(records);
        s.what_happened = RunReport::from_records(records).what_happened;
        s.mean_send_bps = mean(sender_stats.iter().map(|m| m.bitrate_bps));
        s.mean_recv_bps = mean(records.iter().filter_map(|r| match &r.event {
            Event::MediaStats(m)
                if r.peer == receiving && m.direction == rtclab_events::MediaDirection::Recv =>
            {
                Some(m.bitrate_bps)
            }
            _ => None,
        }));
        s.lowest_height = records
            .iter()
            .filter_map(|r| match &r.event {
                Event::MediaStats(m)
                    if r.peer == receiving
                        && m.direction == rtclab_events::MediaDirection::Recv =>
                {
                    m.height
                }
                _ => None,
            })
            .min();
        s.mean_target_bps = mean(records.iter().filter_map(|r| match &r.event {
            Event::EncoderRate { target_bps, .. } => Some(*target_bps),
            _ => None,
        }));
        if s.mean_target_bps == 0.0 {
            // A browser sender has no encoder lines: its controller's estimates are the target.
            s.mean_target_bps = mean(records.iter().filter_map(|r| match &r.event {
                Event::BweEstimate { target_bps, .. } => Some(*target_bps),
                _ => None,
            }));
        }
        s.mean_encoder_bps = mean(records.iter().filter_map(|r| match &r.event {
            Event::EncoderRate { actual_bps, .. } => Some(*actual_bps),
            _ => None,
        }));
        s
    }

    /// Glass-to-glass percentiles and PSNR/SSIM means from the receiver's `qoe` lines.
    fn qoe_from(&mut self, records: &[Record]) {
        let mut g2g = Vec::new();
        let (mut psnr, mut ssim, mut n) = (0.0, 0.0, 0u64);
        for r in records {
            if let Event::Qoe(q) = &r.event {
                g2g.extend_from_slice(&q.g2g_ms);
                if let (Some(p), Some(s)) = (q.psnr_db, q.ssim) {
                    // Per-second means weighted by their frame counts: the run's mean per frame.
                    let k = f64::from(q.scored_frames);
                    psnr += p * k;
                    ssim += s * k;
                    n += u64::from(q.scored_frames);
                }
            }
        }
        let round = |x: f64, k: f64| (x * k).round() / k;
        self.g2g_p50_ms = rtclab_events::stats::percentile(&mut g2g, 50.0).map(|v| round(v, 10.0));
        self.g2g_p95_ms = rtclab_events::stats::percentile(&mut g2g, 95.0).map(|v| round(v, 10.0));
        self.scored_frames = n;
        if n > 0 {
            self.psnr_mean_db = Some(round(psnr / n as f64, 100.0));
            self.ssim_mean = Some(round(ssim / n as f64, 10_000.0));
        }
    }

    /// Fraction of sent frames that were decoded (0 when nothing was sent).
    pub fn decoded_ratio(&self) -> f64 {
        if self.frames_sent == 0 {
            0.0
        } else {
            self.frames_decoded as f64 / self.frames_sent as f64
        }
    }
}
