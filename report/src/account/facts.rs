//! What the account reads from the log, once: [`Facts`] gathers in one pass over the records
//! everything the rules look at (the startup's moments, the controller's estimates, the
//! encoder's adaptations, keyframes, PLIs and NACKs, ICE losing contact, the media statistics'
//! counters, the impairment's changes and statistics), with the queries the sentences ask of it;
//! and from those facts alone, before any grouping, the run's periods of packet loss and its
//! freezes. Nothing here decides what a sentence is about or how it is worded.

use crate::impair::{self, ImpairData, ImpairSample};
use crate::metrics::{Freeze, RunReport};
use rtclab_events::{
    Event, First, KeyframeReason, MediaDirection, MediaStats, PeerRole, PliReason, Record, Rtcp,
};
use serde_json::Value;

/// Stretches of a loss period without a dropped packet up to this long do not end it: at a few
/// percent of loss and a low packet rate, a second without a drop is chance, not a change.
const LOSS_GAP_S: f64 = 2.0;

/// An `impair.change` this close before a statistics interval still dates it.
const BOUNDARY_SLACK_S: f64 = 0.05;

/// The last frame before a freeze may be shown just before the change that caused it took
/// effect (frames are in flight): a freeze starting this little before a period belongs to it.
const FREEZE_SLACK_S: f64 = 0.25;

/// One `bwe.estimate`, as far as the account needs it.
#[derive(Debug, Clone)]
pub(super) struct Estimate<'a> {
    pub(super) t: f64,
    pub(super) target: f64,
    pub(super) delay_based: Option<f64>,
    pub(super) loss_based: Option<f64>,
    pub(super) loss_ratio: Option<f64>,
    pub(super) state: Option<&'a str>,
}

/// One `encoder.adapt`.
#[derive(Debug, Clone)]
pub(super) struct Adapt<'a> {
    pub(super) t: f64,
    pub(super) from_h: u32,
    pub(super) to_h: u32,
    pub(super) target: f64,
    pub(super) reason: &'a str,
}

/// A peer's ICE lost contact (`disconnected` or `failed`), and when it came back, if it did.
#[derive(Debug, Clone)]
pub(super) struct LostContact {
    pub(super) t: f64,
    pub(super) peer: PeerRole,
    pub(super) state: String,
    pub(super) back: Option<f64>,
}

/// A counter logged now and then (cumulative, as `media.stats` carries them).
#[derive(Debug, Clone, Default)]
pub(super) struct Counter(Vec<(f64, u64)>);

impl Counter {
    /// The value of the last line at or before `t` (0 before the first).
    fn at(&self, t: f64) -> u64 {
        self.0
            .iter()
            .take_while(|(tt, _)| *tt <= t)
            .last()
            .map_or(0, |(_, v)| *v)
    }

    /// How much it grew over `[a, b]`; a counter that went down (the receiver's `lost` counts
    /// gaps not yet filled, so repairs lower it) gives 0.
    pub(super) fn change(&self, a: f64, b: f64) -> u64 {
        self.at(b).saturating_sub(self.at(a))
    }
}

/// Everything the rules read, gathered in one pass over the records.
#[derive(Debug, Default)]
pub(super) struct Facts<'a> {
    pub(super) end_t: f64,
    /// Either side logged media statistics.
    pub(super) has_media: bool,
    /// The receiving side logged statistics: what the viewer saw is known.
    pub(super) has_receiver: bool,
    pub(super) offer_sent: Option<f64>,
    pub(super) ice_connected: Option<f64>,
    pub(super) pc_connected: Option<f64>,
    pub(super) first_keyframe: Option<f64>,
    /// `media.first` of the receiving peer: its first RTP packet and its first decoded frame.
    pub(super) first_rtp_received: Option<f64>,
    pub(super) first_frame_decoded: Option<f64>,
    /// The first receiver statistics that count a decoded frame, and the one before it.
    pub(super) first_decoded: Option<(f64, Option<f64>)>,
    pub(super) estimates: Vec<Estimate<'a>>,
    pub(super) rtt: Vec<(f64, f64)>,
    pub(super) adapts: Vec<Adapt<'a>>,
    pub(super) keyframes: Vec<(f64, KeyframeReason)>,
    /// PLIs and FIRs the receiver sent, where its feedback is seen.
    pub(super) plis: Vec<f64>,
    /// NACKs the receiver sent: (time, sequence numbers asked for).
    nacks: Vec<(f64, u64)>,
    /// The receiver's own reasons for its PLIs.
    pli_reasons: Vec<(f64, PliReason)>,
    pub(super) lost_contact: Vec<LostContact>,
    pub(super) retransmitted: Counter,
    pub(super) recv_lost: Counter,
    pub(super) fec_recovered: Counter,
    /// The receiver statistics' running freeze count and frozen time (whole ms).
    freeze_count: Counter,
    freeze_ms: Counter,
    /// The receiver statistics' totals at the end: (freezes, frozen ms).
    pub(super) freeze_total: (u64, f64),
    /// The receiver logs no `video.freeze` but counts freezes (a browser): freezes are told
    /// from the statistics.
    pub(super) freezes_from_stats: bool,
    pub(super) g2g: Vec<f64>,
    pub(super) heights: Vec<u32>,
    pub(super) changes: Vec<ChangeLine<'a>>,
    impair: ImpairData,
}

/// One `impair.change` line, either direction.
#[derive(Debug, Clone)]
pub(super) struct ChangeLine<'a> {
    pub(super) direction: &'a str,
    pub(super) at_s: f64,
    pub(super) until_s: Option<f64>,
    pub(super) settings: &'a Value,
}

impl<'a> Facts<'a> {
    pub(super) fn read(records: &'a [Record], report: &RunReport) -> Facts<'a> {
        let receiving = rtclab_events::receiving_peer(records);
        let sending = rtclab_events::sending_peer(records);
        let (fb_peer, fb_dir) = rtclab_events::feedback_seen_at(receiving);
        let mut f = Facts {
            end_t: report.log_duration_s,
            impair: impair::extract(records),
            ..Default::default()
        };
        let mut last_recv_t: Option<f64> = None;
        // Whether the receiver logs `video.freeze` lines (the Rust receiver) or only running
        // totals (a browser): `report.freezes_list` cannot tell, as it is rebuilt from a
        // browser's totals too, one merged entry per second.
        let freeze_events = records
            .iter()
            .any(|r| matches!(r.event, Event::VideoFreeze { .. }));
        for r in records.iter().filter(|r| r.t.is_finite()) {
            let t = r.t;
            match &r.event {
                Event::Signaling { what } if what == "offer sent" => {
                    f.offer_sent.get_or_insert(t);
                }
                Event::IceState { state } => {
                    if state == "connected" {
                        f.ice_connected.get_or_insert(t);
                        if let Some(c) = f
                            .lost_contact
                            .iter_mut()
                            .rev()
                            .find(|c| c.peer == r.peer && c.back.is_none())
                        {
                            c.back = Some(t);
                        }
                    } else if state == "disconnected" || state == "failed" {
                        f.lost_contact.push(LostContact {
                            t,
                            peer: r.peer,
                            state: state.clone(),
                            back: None,
                        });
                    }
                }
                Event::PcState { state } if state == "connected" => {
                    f.pc_connected.get_or_insert(t);
                }
                // The receiving peer's: a sender that also receives (the browser's camera) logs
                // firsts of its own.
                Event::MediaFirst { what } if r.peer == receiving => match what {
                    First::RtpReceived => {
                        f.first_rtp_received.get_or_insert(t);
                    }
                    First::FrameDecoded => {
                        f.first_frame_decoded.get_or_insert(t);
                    }
                    First::RtpSent => {}
                },
                Event::BweEstimate {
                    target_bps,
                    delay_based_bps,
                    loss_based_bps,
                    loss_ratio,
                    rtt_ms,
                    detail,
                    ..
                } => {
                    f.estimates.push(Estimate {
                        t,
                        target: *target_bps,
                        delay_based: *delay_based_bps,
                        loss_based: *loss_based_bps,
                        loss_ratio: *loss_ratio,
                        state: detail.state.as_deref(),
                    });
                    if let Some(rtt) = rtt_ms {
                        f.rtt.push((t, *rtt));
                    }
                }
                Event::EncoderAdapt {
                    from_height,
                    to_height,
                    target_bps,
                    reason,
                    ..
                } => f.adapts.push(Adapt {
                    t,
                    from_h: *from_height,
                    to_h: *to_height,
                    target: *target_bps,
                    reason,
                }),
                Event::EncoderKeyframe { reason, .. } => {
                    f.first_keyframe.get_or_insert(t);
                    f.keyframes.push((t, *reason));
                }
                Event::EncoderRate { height, .. } => f.heights.push(*height),
                Event::DecoderPli { reason } => f.pli_reasons.push((t, *reason)),
                Event::Rtcp { direction, packet } if r.peer == fb_peer && *direction == fb_dir => {
                    match packet {
                        Rtcp::Nack { seqs, .. } => f.nacks.push((t, seqs.len() as u64)),
                        Rtcp::Pli { .. } | Rtcp::Fir { .. } => f.plis.push(t),
                        _ => {}
                    }
                }
                Event::MediaStats(m) => f.media(t, r.peer, m, sending, receiving, &mut last_recv_t),
                Event::Qoe(q) => f
                    .g2g
                    .extend(q.g2g_ms.iter().copied().filter(|v| v.is_finite())),
                Event::ImpairChange {
                    direction,
                    at_s,
                    until_s,
                    settings,
                    ..
                } => f.changes.push(ChangeLine {
                    direction,
                    at_s: *at_s,
                    until_s: *until_s,
                    settings,
                }),
                _ => {}
            }
        }
        f.freezes_from_stats = !freeze_events && f.freeze_total.0 > 0;
        f
    }

    fn media(
        &mut self,
        t: f64,
        peer: PeerRole,
        m: &MediaStats,
        sending: PeerRole,
        receiving: PeerRole,
        last_recv_t: &mut Option<f64>,
    ) {
        if peer == sending && m.direction == MediaDirection::Send {
            self.has_media = true;
            self.retransmitted.0.push((t, m.retransmitted));
        } else if peer == receiving && m.direction == MediaDirection::Recv {
            self.has_media = true;
            self.has_receiver = true;
            self.recv_lost.0.push((t, m.lost));
            self.fec_recovered.0.push((t, m.fec_recovered));
            self.freeze_count.0.push((t, m.freezes));
            // Whole milliseconds are enough to tell a freeze, and keep the counter integral.
            self.freeze_ms
                .0
                .push((t, m.freeze_ms.max(0.0).round() as u64));
            self.freeze_total = (m.freezes, m.freeze_ms);
            if m.frames > 0 && self.first_decoded.is_none() {
                self.first_decoded = Some((t, *last_recv_t));
            }
            *last_recv_t = Some(t);
        }
    }

    /// Downlink statistics lines whose interval lies mostly inside `[a, b]`.
    pub(super) fn downlink(&self, a: f64, b: f64) -> impl Iterator<Item = &ImpairSample> {
        self.samples("downlink", a, b)
    }

    pub(super) fn samples<'s>(
        &'s self,
        direction: &'s str,
        a: f64,
        b: f64,
    ) -> impl Iterator<Item = &'s ImpairSample> + 's {
        self.impair.direction(direction).filter(move |s| {
            // A line counts the interval since the previous one; a change inside it shows in
            // the line only in part, so the line goes with the side holding most of it.
            let len = (s.t - s.t_start).max(1e-9);
            let overlap = s.t.min(b) - s.t_start.max(a);
            overlap >= 0.5 * len
        })
    }

    pub(super) fn count(times: &[f64], a: f64, b: f64) -> usize {
        times.iter().filter(|t| (a..=b).contains(*t)).count()
    }

    /// NACK packets and the sequence numbers they asked for, in `[a, b]`.
    pub(super) fn nacks_in(&self, a: f64, b: f64) -> (u64, u64) {
        self.nacks
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .fold((0, 0), |(n, s), (_, k)| (n + 1, s + k))
    }

    /// Keyframes that answered a PLI or FIR in `[a, b]`.
    pub(super) fn requested_keyframes(&self, a: f64, b: f64) -> usize {
        self.keyframes
            .iter()
            .filter(|(t, r)| {
                (a..=b).contains(t) && matches!(r, KeyframeReason::Pli | KeyframeReason::Fir)
            })
            .count()
    }

    /// Why the receiver asked for keyframes in `[a, b]`, the most frequent reason.
    pub(super) fn pli_reason(&self, a: f64, b: f64) -> Option<PliReason> {
        let reasons: Vec<PliReason> = self
            .pli_reasons
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .map(|(_, r)| *r)
            .collect();
        [
            PliReason::FrameLost,
            PliReason::DecodeError,
            PliReason::Interval,
        ]
        .into_iter()
        .max_by_key(|r| reasons.iter().filter(|x| *x == r).count())
        .filter(|r| reasons.contains(r))
    }

    /// The target in force at `t` (the last estimate at or before it).
    pub(super) fn target_at(&self, t: f64) -> Option<f64> {
        self.estimates
            .iter()
            .take_while(|e| e.t <= t)
            .last()
            .map(|e| e.target)
    }

    /// The estimate with the lowest target in `[a, b]` (the first of equals).
    pub(super) fn lowest(&self, a: f64, b: f64) -> Option<&Estimate<'a>> {
        self.estimates
            .iter()
            .filter(|e| (a..=b).contains(&e.t))
            .fold(None, |low: Option<&Estimate<'a>>, e| match low {
                Some(l) if l.target <= e.target => Some(l),
                _ => Some(e),
            })
    }

    pub(super) fn rtt_at(&self, t: f64) -> Option<f64> {
        self.rtt
            .iter()
            .take_while(|(tt, _)| *tt <= t)
            .last()
            .map(|(_, v)| *v)
    }

    pub(super) fn rtt_max(&self, a: f64, b: f64) -> Option<f64> {
        self.rtt
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .map(|(_, v)| *v)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    }
}

// ---------------------------------------------------------------------------------------------
// Periods of loss, from the impairment statistics (or the receiver, without them).

/// A period of packet loss on the downlink (the impairment's random, bursty or n-th drops).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LossPeriod {
    pub(super) from: f64,
    pub(super) to: f64,
    /// It lasted until the log's end.
    pub(super) to_end: bool,
    /// The random loss the scenario set when the period began (`loss_pct`), if it says.
    pub(super) set_pct: Option<f64>,
    /// The impairment engine counted the drops; `false` for a log without impairment
    /// statistics, whose loss only the receiver saw.
    pub(super) measured: bool,
}

/// Stretches of the run where the downlink lost packets to the loss stage (not to the queue or
/// an outage): consecutive statistics lines with such drops, gaps up to [`LOSS_GAP_S`] merged.
/// The start and end move to the `impair.change` that set or cleared the loss when one falls in
/// the first or last line's interval, which dates them exactly.
pub(super) fn loss_periods(facts: &Facts) -> Vec<LossPeriod> {
    let lossy = |s: &ImpairSample| {
        ["random", "burst", "nth"]
            .iter()
            .any(|c| s.dropped.get(*c).is_some_and(|n| *n > 0))
    };
    let mut runs: Vec<(&ImpairSample, &ImpairSample)> = Vec::new();
    for s in facts.impair.direction("downlink").filter(|s| lossy(s)) {
        match runs.last_mut() {
            Some((_, last)) if s.t_start - last.t <= LOSS_GAP_S => *last = s,
            _ => runs.push((s, s)),
        }
    }
    let boundaries: Vec<f64> = facts
        .changes
        .iter()
        .filter(|c| {
            c.direction == "downlink"
                && (c.settings.is_null()
                    || ["loss_pct", "burst", "drop_every_nth"]
                        .iter()
                        .any(|k| c.settings.get(*k).is_some()))
        })
        .flat_map(|c| std::iter::once(c.at_s).chain(c.until_s))
        .collect();
    let last_t = facts.impair.direction("downlink").map(|s| s.t).last();
    runs.into_iter()
        .map(|(first, last)| {
            // A change is logged a moment after it took effect, and the statistics line that
            // opens the interval may share that moment.
            let from = boundaries
                .iter()
                .copied()
                .filter(|b| (first.t_start - BOUNDARY_SLACK_S..=first.t).contains(b))
                .fold(f64::NEG_INFINITY, f64::max);
            let from = if from.is_finite() {
                from
            } else {
                first.t_start
            };
            let to = boundaries
                .iter()
                .copied()
                .filter(|b| *b > last.t_start && *b <= last.t)
                .fold(last.t, f64::min);
            let set_pct = facts
                .changes
                .iter()
                .filter(|c| c.direction == "downlink" && (c.at_s - from).abs() < 1e-6)
                .find_map(|c| c.settings.get("loss_pct").and_then(Value::as_f64));
            LossPeriod {
                from,
                to,
                to_end: last_t == Some(last.t) && to == last.t,
                set_pct,
                measured: true,
            }
        })
        .collect()
}

/// Without impairment statistics (a session on a real network, or the demo), the receiver's
/// NACKs and lost count are the only sign of loss: one period from the first NACK to the end.
pub(super) fn unmeasured_loss(facts: &Facts, report: &RunReport) -> Option<LossPeriod> {
    if !facts.impair.samples.is_empty() || (facts.nacks.is_empty() && report.packets_lost == 0) {
        return None;
    }
    Some(LossPeriod {
        from: facts.nacks.first().map_or(0.0, |(t, _)| *t),
        to: facts.end_t,
        to_end: true,
        set_pct: None,
        measured: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Freezes, from the receiver's events or its statistics.

/// One freeze from its `video.freeze` event, or the freezes a receiver's statistics counted
/// between two lines (a browser logs no `video.freeze`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FreezeItem {
    /// The instant that decides which episode it belongs to.
    pub(super) t: f64,
    pub(super) count: u64,
    pub(super) total_ms: f64,
    /// The single freeze's start and end (from an event).
    pub(super) span: Option<(f64, f64)>,
}

/// The run's freezes, from events when the receiver logs them, else from its statistics.
pub(super) fn freeze_items(f: &Facts, events: &[Freeze]) -> Vec<FreezeItem> {
    if !f.freezes_from_stats {
        return events
            .iter()
            .map(|e| FreezeItem {
                t: e.start_s + FREEZE_SLACK_S,
                count: 1,
                total_ms: e.duration_ms,
                span: Some((e.start_s, e.end_s)),
            })
            .collect();
    }
    let mut out = Vec::new();
    let lines = f.freeze_count.0.iter().zip(&f.freeze_ms.0);
    let mut before = (0u64, 0u64);
    for ((t, count), (_, ms)) in lines {
        let n = count.saturating_sub(before.0);
        if n > 0 {
            out.push(FreezeItem {
                // A line counts the second before it; its middle stands for the freezes in it.
                t: t - 0.5,
                count: n,
                total_ms: ms.saturating_sub(before.1) as f64,
                span: None,
            });
        }
        before = (*count, *ms);
    }
    out
}
