//! "What happened": the short account that opens every report — a few timed sentences in plain
//! words, generated from the log by fixed rules (no model), for people learning real-time media.
//!
//! [`account`] tells, in time order: how the call started; the link's capacity at the start;
//! each outage, capacity drop and capacity rise and what followed (the controller's reaction and
//! why, the queue, drops, resolution changes, freezes, recovery); each period of packet loss and
//! its repair (NACKs, retransmissions, PLIs, keyframes); other impairment changes; the freezes,
//! resolution changes and ICE disconnections no period explains; and a closing line on what the
//! viewer saw. Every number comes from the log. Where the log says why — a `bwe.estimate`'s
//! detector state and estimates, an `encoder.adapt` reason, a `decoder.pli` reason, a keyframe's
//! reason — the sentence says it too; where it does not, the sentence does not guess.

use crate::impair::{self, ImpairData, ImpairSample};
use crate::metrics::{CapacityDrop, CapacityRise, Freeze, RunReport};
use crate::tables::fmt_bps;
use rtclab_events::{
    Event, First, KeyframeReason, MediaDirection, MediaStats, PeerRole, PliReason, Record, Rtcp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stretches of a loss period without a dropped packet up to this long do not end it: at a few
/// percent of loss and a low packet rate, a second without a drop is chance, not a change.
const LOSS_GAP_S: f64 = 2.0;

/// Repairs lag the loss they repair by about a round trip, and the counters that show them
/// come once a second: a period's NACK, retransmission and PLI counts run this much past its end.
const REPAIR_TAIL_S: f64 = 1.0;

/// An `impair.change` this close before a statistics interval still dates it.
const BOUNDARY_SLACK_S: f64 = 0.05;

/// After the target has recovered, the encoder's resolution ladder climbs back within a few
/// seconds (it waits to be sure); a rise or an outage owns what happens until then.
const AFTERMATH_S: f64 = 3.0;

/// The last frame before a freeze may be shown just before the change that caused it took
/// effect (frames are in flight): a freeze starting this little before a period belongs to it.
const FREEZE_SLACK_S: f64 = 0.25;

/// A round trip this long is worth a sentence: NACK repair needs at least one.
const LONG_RTT_MS: f64 = 100.0;

/// More freezes or resolution changes than this outside every period are told as one sentence.
const MAX_LOOSE_SENTENCES: usize = 3;

/// The share of its earlier level the target must regain to count as recovered (as in
/// [`CapacityRise::goal_bps`]).
const RECOVERED_SHARE: f64 = 0.9;

/// What a sentence of the account is about. The order is the order of sentences that share a
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// How the call started: ICE, the peer connection, the first keyframe, the first picture.
    Startup,
    /// The capacity of the link from the start.
    Link,
    /// The link carried nothing for a while (100 % loss).
    Outage,
    /// The bottleneck's capacity fell.
    CapacityDrop,
    /// The bottleneck's capacity rose, or its limit was lifted.
    CapacityRise,
    /// Packets were lost on the way (random, bursty or every n-th), and how they were repaired.
    Loss,
    /// Another change of the impairment: delay, jitter, the uplink (feedback) path, ...
    Impairment,
    /// ICE lost contact with the other peer (disconnected or failed).
    Connection,
    /// A freeze or a resolution change that no period above explains.
    Picture,
    /// Nothing went wrong.
    Clean,
    /// The closing line: what the viewer saw over the whole run.
    Viewer,
}

/// One item of the account: a moment or a period of the run and what followed it, told in
/// one to a few short sentences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentence {
    /// When what it tells began, s since the session started (the closing line: the log's end).
    pub t_s: f64,
    /// What it is about.
    pub topic: Topic,
    /// The text, in plain words, with its numbers.
    pub text: String,
}

/// The account of a run, in time order, from its records and the figures [`RunReport`] computed
/// from the same records (its capacity drops and rises, freezes and totals are reused, so the
/// account never disagrees with the tables below it).
pub fn account(records: &[Record], report: &RunReport) -> Vec<Sentence> {
    let facts = Facts::read(records, report);
    let episodes = episodes(&facts, report);
    let freezes = freeze_items(&facts, &report.freezes_list);
    let mut owned = Owned::new(episodes.len());
    for f in &freezes {
        match owner(&episodes, f.t) {
            Some(e) => owned.freezes[e].push(f),
            None => owned.loose_freezes.push(f),
        }
    }
    for a in &facts.adapts {
        match owner(&episodes, a.t) {
            Some(e) => owned.adapts[e].push(a),
            None => owned.loose_adapts.push(a),
        }
    }
    for c in &facts.lost_contact {
        match owner(&episodes, c.t) {
            Some(e) => owned.contact[e].push(c),
            None => owned.loose_contact.push(c),
        }
    }

    let mut out = Vec::new();
    out.extend(startup(&facts));
    out.extend(link(&facts, report));
    for (i, e) in episodes.iter().enumerate() {
        let ctx = Owning {
            frozen: Frozen::of(&owned.freezes[i]),
            adapts: &owned.adapts[i],
            contact: &owned.contact[i],
        };
        out.push(match &e.kind {
            Kind::Outage { end, recovery } => outage(&facts, e, *end, recovery.as_ref(), &ctx),
            Kind::Drop(d) => capacity_drop(&facts, e, d, &ctx),
            Kind::Rise(r) => capacity_rise(&facts, e, r, &ctx),
            Kind::Loss(l) => loss(&facts, e, l, &ctx),
            Kind::Change(c) => change(&facts, e, c, &ctx),
        });
    }
    out.extend(loose_pictures(
        &facts,
        &owned.loose_freezes,
        &owned.loose_adapts,
    ));
    out.extend(owned.loose_contact.iter().map(|c| Sentence {
        t_s: c.t,
        topic: Topic::Connection,
        text: capitalised(&format!("{}.", contact_clause(c))),
    }));
    // Anything told beyond the startup and the link, or any loss the receiver counted, is
    // something that went wrong.
    let troubled = out
        .iter()
        .any(|s| !matches!(s.topic, Topic::Startup | Topic::Link))
        || report.packets_lost > 0
        || report.plis > 0
        || facts.freeze_total.0 > 0;
    // A run that decoded (nearly) nothing did not go well, whatever else it says.
    let decoded_poorly = report.frames_decoded_pct.is_some_and(|p| p < 90.0);
    if !troubled && !decoded_poorly && facts.has_receiver {
        out.push(Sentence {
            t_s: facts.end_t,
            topic: Topic::Clean,
            text: if report.impairment.is_empty() {
                "Nothing went wrong: the link was not impaired, no packet was lost and the \
                 picture never froze."
                    .to_owned()
            } else {
                "Nothing went wrong: no packet was lost for good and the picture never froze."
                    .to_owned()
            },
        });
    }
    out.extend(viewer(&facts, report));
    // Stable: sentences of the same time and topic keep the order they were made in.
    out.sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then(a.topic.cmp(&b.topic)));
    out
}

/// The account as plain text, one sentence per line (the terminal's form).
pub fn to_text(sentences: &[Sentence]) -> String {
    sentences.iter().map(|s| format!("{}\n", s.text)).collect()
}

// ---------------------------------------------------------------------------------------------
// What the account reads from the log, once.

/// One `bwe.estimate`, as far as the account needs it.
#[derive(Debug, Clone)]
struct Estimate<'a> {
    t: f64,
    target: f64,
    delay_based: Option<f64>,
    loss_based: Option<f64>,
    loss_ratio: Option<f64>,
    state: Option<&'a str>,
}

/// One `encoder.adapt`.
#[derive(Debug, Clone)]
struct Adapt<'a> {
    t: f64,
    from_h: u32,
    to_h: u32,
    target: f64,
    reason: &'a str,
}

/// A peer's ICE lost contact (`disconnected` or `failed`), and when it came back, if it did.
#[derive(Debug, Clone)]
struct LostContact {
    t: f64,
    peer: PeerRole,
    state: String,
    back: Option<f64>,
}

/// A counter logged now and then (cumulative, as `media.stats` carries them).
#[derive(Debug, Clone, Default)]
struct Counter(Vec<(f64, u64)>);

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
    fn change(&self, a: f64, b: f64) -> u64 {
        self.at(b).saturating_sub(self.at(a))
    }
}

/// Everything the rules read, gathered in one pass over the records.
#[derive(Debug, Default)]
struct Facts<'a> {
    end_t: f64,
    /// Either side logged media statistics.
    has_media: bool,
    /// The receiving side logged statistics: what the viewer saw is known.
    has_receiver: bool,
    offer_sent: Option<f64>,
    ice_connected: Option<f64>,
    pc_connected: Option<f64>,
    first_keyframe: Option<f64>,
    /// `media.first` of the receiving peer: its first RTP packet and its first decoded frame.
    first_rtp_received: Option<f64>,
    first_frame_decoded: Option<f64>,
    /// The first receiver statistics that count a decoded frame, and the one before it.
    first_decoded: Option<(f64, Option<f64>)>,
    estimates: Vec<Estimate<'a>>,
    rtt: Vec<(f64, f64)>,
    adapts: Vec<Adapt<'a>>,
    keyframes: Vec<(f64, KeyframeReason)>,
    /// PLIs and FIRs the receiver sent, where its feedback is seen.
    plis: Vec<f64>,
    /// NACKs the receiver sent: (time, sequence numbers asked for).
    nacks: Vec<(f64, u64)>,
    /// The receiver's own reasons for its PLIs.
    pli_reasons: Vec<(f64, PliReason)>,
    lost_contact: Vec<LostContact>,
    retransmitted: Counter,
    recv_lost: Counter,
    fec_recovered: Counter,
    /// The receiver statistics' running freeze count and frozen time (whole ms).
    freeze_count: Counter,
    freeze_ms: Counter,
    /// The receiver statistics' totals at the end: (freezes, frozen ms).
    freeze_total: (u64, f64),
    /// The receiver logs no `video.freeze` but counts freezes (a browser): freezes are told
    /// from the statistics.
    freezes_from_stats: bool,
    g2g: Vec<f64>,
    heights: Vec<u32>,
    changes: Vec<ChangeLine<'a>>,
    impair: ImpairData,
}

/// One `impair.change` line, either direction.
#[derive(Debug, Clone)]
struct ChangeLine<'a> {
    direction: &'a str,
    at_s: f64,
    until_s: Option<f64>,
    settings: &'a Value,
}

impl<'a> Facts<'a> {
    fn read(records: &'a [Record], report: &RunReport) -> Facts<'a> {
        let receiving = rtclab_events::receiving_peer(records);
        let sending = rtclab_events::sending_peer(records);
        let (fb_peer, fb_dir) = rtclab_events::feedback_seen_at(receiving);
        let mut f = Facts {
            end_t: report.log_duration_s,
            impair: impair::extract(records),
            ..Default::default()
        };
        let mut last_recv_t: Option<f64> = None;
        // Reads after the loop below: whether the receiver's freezes come as events.
        let freeze_events = !report.freezes_list.is_empty();
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
    fn downlink(&self, a: f64, b: f64) -> impl Iterator<Item = &ImpairSample> {
        self.samples("downlink", a, b)
    }

    fn samples<'s>(
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

    fn count(times: &[f64], a: f64, b: f64) -> usize {
        times.iter().filter(|t| (a..=b).contains(*t)).count()
    }

    /// NACK packets and the sequence numbers they asked for, in `[a, b]`.
    fn nacks_in(&self, a: f64, b: f64) -> (u64, u64) {
        self.nacks
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .fold((0, 0), |(n, s), (_, k)| (n + 1, s + k))
    }

    /// Keyframes that answered a PLI or FIR in `[a, b]`.
    fn requested_keyframes(&self, a: f64, b: f64) -> usize {
        self.keyframes
            .iter()
            .filter(|(t, r)| {
                (a..=b).contains(t) && matches!(r, KeyframeReason::Pli | KeyframeReason::Fir)
            })
            .count()
    }

    /// Why the receiver asked for keyframes in `[a, b]`, the most frequent reason.
    fn pli_reason(&self, a: f64, b: f64) -> Option<PliReason> {
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
    fn target_at(&self, t: f64) -> Option<f64> {
        self.estimates
            .iter()
            .take_while(|e| e.t <= t)
            .last()
            .map(|e| e.target)
    }

    /// The estimate with the lowest target in `[a, b]` (the first of equals).
    fn lowest(&self, a: f64, b: f64) -> Option<&Estimate<'a>> {
        self.estimates
            .iter()
            .filter(|e| (a..=b).contains(&e.t))
            .fold(None, |low: Option<&Estimate<'a>>, e| match low {
                Some(l) if l.target <= e.target => Some(l),
                _ => Some(e),
            })
    }

    fn rtt_at(&self, t: f64) -> Option<f64> {
        self.rtt
            .iter()
            .take_while(|(tt, _)| *tt <= t)
            .last()
            .map(|(_, v)| *v)
    }

    fn rtt_max(&self, a: f64, b: f64) -> Option<f64> {
        self.rtt
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .map(|(_, v)| *v)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    }
}

// ---------------------------------------------------------------------------------------------
// Episodes: the periods the account tells one sentence each about, and what they own.

/// A period of packet loss on the downlink (the impairment's random, bursty or n-th drops).
#[derive(Debug, Clone, PartialEq)]
struct LossPeriod {
    from: f64,
    to: f64,
    /// It lasted until the log's end.
    to_end: bool,
    /// The random loss the scenario set when the period began (`loss_pct`), if it says.
    set_pct: Option<f64>,
    /// The impairment engine counted the drops; `false` for a log without impairment
    /// statistics, whose loss only the receiver saw.
    measured: bool,
}

#[derive(Debug)]
enum Kind<'r, 'a> {
    Outage {
        /// When the link came back (`None`: it never did within the log).
        end: Option<f64>,
        /// How the target came back after it, if it had fallen.
        recovery: Option<Recovery>,
    },
    Drop(&'r CapacityDrop),
    Rise(&'r CapacityRise),
    Loss(LossPeriod),
    Change(ChangeLine<'a>),
}

/// One period with its window: what happens in `[start, until)` is its consequence, unless a
/// later period's window holds it too.
#[derive(Debug)]
struct Episode<'r, 'a> {
    start: f64,
    until: f64,
    kind: Kind<'r, 'a>,
}

/// The episode that owns an instant: the latest-starting one whose window holds it (what
/// happened most recently is the likeliest cause).
fn owner(episodes: &[Episode], t: f64) -> Option<usize> {
    episodes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.start <= t && t < e.until)
        .max_by(|(_, a), (_, b)| {
            a.start
                .total_cmp(&b.start)
                .then(a.kind.weight().cmp(&b.kind.weight()))
        })
        .map(|(i, _)| i)
}

impl Kind<'_, '_> {
    /// Of two periods starting together, the one that acts on the media more directly owns
    /// what follows: the outage over the capacity, the capacity over the loss, and the loss
    /// over any other change (an uplink change made at the same time, say).
    fn weight(&self) -> u8 {
        match self {
            Kind::Outage { .. } => 4,
            Kind::Drop(_) | Kind::Rise(_) => 3,
            Kind::Loss(_) => 2,
            Kind::Change(_) => 1,
        }
    }
}

/// What the episodes own, by episode index, and what none of them owns.
struct Owned<'r, 'a> {
    freezes: Vec<Vec<&'r FreezeItem>>,
    adapts: Vec<Vec<&'r Adapt<'a>>>,
    contact: Vec<Vec<&'r LostContact>>,
    loose_freezes: Vec<&'r FreezeItem>,
    loose_adapts: Vec<&'r Adapt<'a>>,
    loose_contact: Vec<&'r LostContact>,
}

impl Owned<'_, '_> {
    fn new(n: usize) -> Self {
        Owned {
            freezes: vec![Vec::new(); n],
            adapts: vec![Vec::new(); n],
            contact: vec![Vec::new(); n],
            loose_freezes: Vec::new(),
            loose_adapts: Vec::new(),
            loose_contact: Vec::new(),
        }
    }
}

/// What one episode owns.
struct Owning<'o, 'r, 'a> {
    frozen: Frozen,
    adapts: &'o [&'r Adapt<'a>],
    contact: &'o [&'r LostContact],
}

/// Downlink keys the outage, capacity and loss sentences already tell.
const TOLD_ELSEWHERE: [&str; 5] = ["rate_kbps", "outage", "loss_pct", "burst", "drop_every_nth"];

fn episodes<'r, 'a>(facts: &'r Facts<'a>, report: &'r RunReport) -> Vec<Episode<'r, 'a>> {
    let end_t = facts.end_t;
    let steps = &report.raw.capacity_steps;
    let next_step = |t: f64| steps.iter().map(|s| s.t).find(|s| *s > t).unwrap_or(end_t);
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.capacity_bps.is_some_and(|c| c <= 0.0) {
            let after = steps.get(i + 1);
            let end = after.map(|n| n.t);
            let recovery = after.and_then(|a| outage_recovery(facts, s.t, a.t, a.capacity_bps));
            let until = match (end, recovery.as_ref().and_then(|r| r.after_s)) {
                (Some(e), Some(rec)) => next_step(e).min(e + rec + AFTERMATH_S),
                (Some(e), None) => next_step(e),
                (None, _) => end_t,
            };
            out.push(Episode {
                start: s.t,
                until: until.max(s.t),
                kind: Kind::Outage { end, recovery },
            });
        }
    }
    // An outage is zero capacity, not a drop the controller could get under; its end is told
    // with the outage.
    for d in report.capacity_drops.iter().filter(|d| d.to_bps > 0.0) {
        out.push(Episode {
            start: d.t_s,
            until: next_step(d.t_s),
            kind: Kind::Drop(d),
        });
    }
    for r in report.capacity_rises.iter().filter(|r| r.from_bps > 0.0) {
        let until = match r.recovery_s {
            Some(rec) => next_step(r.t_s).min(r.t_s + rec + AFTERMATH_S),
            None => next_step(r.t_s),
        };
        out.push(Episode {
            start: r.t_s,
            until,
            kind: Kind::Rise(r),
        });
    }
    for l in loss_periods(facts)
        .into_iter()
        .chain(unmeasured_loss(facts, report))
    {
        out.push(Episode {
            start: l.from,
            until: l.to + REPAIR_TAIL_S,
            kind: Kind::Loss(l),
        });
    }
    for (i, c) in facts.changes.iter().enumerate() {
        let untold = c.settings.is_null()
            || c.direction != "downlink"
            || c.settings
                .as_object()
                .is_some_and(|m| m.keys().any(|k| !TOLD_ELSEWHERE.contains(&k.as_str())));
        // Back to the defaults on the downlink is told by the periods it ends, unless nothing
        // was told about the downlink before it.
        let ends_told = c.direction == "downlink" && c.settings.is_null() && !out.is_empty();
        if !untold || ends_told {
            continue;
        }
        let until = facts.changes[i + 1..]
            .iter()
            .find(|n| n.direction == c.direction && n.at_s > c.at_s)
            .map_or(end_t, |n| n.at_s);
        out.push(Episode {
            start: c.at_s,
            until: until.max(c.at_s),
            kind: Kind::Change(c.clone()),
        });
    }
    out
}

/// How the target came back after an outage from `t0` to `end`: to 90 % of where it was before
/// (or of the capacity after it, if lower), measured from `end`. `None` when the target never
/// fell under that level (nothing to recover) or nothing was estimated before the outage.
/// ([`RunReport`]'s rises measure against the level before the last capacity *drop*, which an
/// outage is not.)
fn outage_recovery(f: &Facts, t0: f64, end: f64, capacity_after: Option<f64>) -> Option<Recovery> {
    let before = f.target_at(t0)?;
    let (level, of_what) = match capacity_after {
        Some(c) if c > 0.0 && c < before => (c, "of the capacity after it"),
        _ => (before, "of its level before the outage"),
    };
    let goal_bps = RECOVERED_SHARE * level;
    let fell = f.estimates.iter().any(|e| e.t >= t0 && e.target < goal_bps);
    if !fell {
        return None;
    }
    let after_s = f
        .estimates
        .iter()
        .find(|e| e.t >= end && e.target >= goal_bps)
        .map(|e| e.t - end);
    Some(Recovery {
        goal_bps,
        after_s,
        of_what,
    })
}

/// Stretches of the run where the downlink lost packets to the loss stage (not to the queue or
/// an outage): consecutive statistics lines with such drops, gaps up to [`LOSS_GAP_S`] merged.
/// The start and end move to the `impair.change` that set or cleared the loss when one falls in
/// the first or last line's interval, which dates them exactly.
fn loss_periods(facts: &Facts) -> Vec<LossPeriod> {
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
fn unmeasured_loss(facts: &Facts, report: &RunReport) -> Option<LossPeriod> {
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
// The sentences.

fn startup(f: &Facts) -> Option<Sentence> {
    let mut parts = Vec::new();
    if let Some(t) = f.offer_sent {
        parts.push(format!("the offer went out at {}", at2(t)));
    }
    if let Some(t) = f.ice_connected {
        parts.push(format!("ICE connected at {}", at2(t)));
    }
    if let Some(t) = f.pc_connected {
        parts.push(format!("the peer connection (ICE and DTLS) at {}", at2(t)));
    }
    let mut media = Vec::new();
    if let Some(t) = f.first_keyframe {
        media.push(format!("the first keyframe left the encoder at {}", at2(t)));
    }
    if let Some(t) = f.first_rtp_received {
        media.push(format!(
            "the first RTP packet reached the receiver at {}",
            at2(t)
        ));
    }
    // `media.first` dates the first picture exactly; older logs and browsers only have the
    // receiver's statistics, once a second.
    match (f.first_frame_decoded, f.first_decoded) {
        (Some(t), _) => media.push(format!(
            "the first frame was decoded at {} (the startup delay)",
            at2(t)
        )),
        (None, Some((t, _))) => media.push(format!(
            "the receiver had decoded its first frame by {} (its statistics come once a second)",
            at2(t)
        )),
        (None, None) if f.has_receiver => {
            media.push("the receiver never decoded a frame".to_owned())
        }
        (None, None) => {}
    }
    if parts.is_empty() && media.is_empty() {
        return None;
    }
    let mut text = String::from("Startup: ");
    if !parts.is_empty() {
        text.push_str(&join_and(&parts));
        text.push_str(". ");
    }
    if !media.is_empty() {
        text.push_str(&capitalised(&join_and(&media)));
        text.push('.');
    }
    let text = text.trim_end().to_owned();
    // The startup is measured from the session's start, so it is told from there.
    Some(Sentence {
        t_s: 0.0,
        topic: Topic::Startup,
        text,
    })
}

/// The link as it was from the start: its capacity when limited, and its round trip when long
/// enough to matter for repairs.
fn link(f: &Facts, report: &RunReport) -> Option<Sentence> {
    let mut parts = Vec::new();
    // Dated from statistics only, the first step may sit at the first line's interval start.
    if let Some(first) = report.raw.capacity_steps.first()
        && let Some(c) = first.capacity_bps.filter(|c| *c > 0.0)
        && first.t <= 1.5
    {
        parts.push(format!(
            "From the start the downlink (sender → receiver) carried at most {}: that is the \
             capacity the congestion controller had to find.",
            fmt_bps(c)
        ));
    }
    let mut rtt: Vec<f64> = f.rtt.iter().map(|(_, v)| *v).collect();
    if let Some(median) = rtt_median(&mut rtt).filter(|m| *m >= LONG_RTT_MS) {
        parts.push(format!(
            "A round trip took {} (the median RTT): a lost packet cannot be retransmitted \
             sooner than that.",
            ms(median)
        ));
    }
    (!parts.is_empty()).then(|| Sentence {
        t_s: 0.0,
        topic: Topic::Link,
        text: parts.join(" "),
    })
}

fn rtt_median(values: &mut [f64]) -> Option<f64> {
    rtclab_events::stats::percentile(values, 50.0)
}

fn outage(
    f: &Facts,
    e: &Episode,
    end: Option<f64>,
    recovery: Option<&Recovery>,
    own: &Owning,
) -> Sentence {
    let t0 = e.start;
    let dropped: u64 = f
        .downlink(t0, e.until)
        .map(|s| s.dropped.get("outage").copied().unwrap_or(0))
        .sum();
    let mut text = match end {
        Some(end) => format!(
            "At {} the link went dead for {} (an outage: every packet dropped",
            at(t0),
            span(end - t0)
        ),
        None => format!(
            "At {} the link went dead until the end of the run (an outage: every packet dropped",
            at(t0)
        ),
    };
    if dropped > 0 {
        text.push_str(&format!(", {dropped} in all"));
    }
    text.push(')');
    // The viewer's side first, then the repair, then what the controller and encoder did.
    let mut clauses = Vec::new();
    clauses.extend(freeze_clause(&own.frozen));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    clauses.extend(repair_clause(f, t0, e.until, Some(dropped)));
    clauses.extend(pli_clause(f, t0, e.until));
    if let Some(end) = end
        && let Some((t, r)) = f.keyframes.iter().find(|(t, _)| *t >= end && *t <= e.until)
    {
        clauses.push(format!(
            "the first keyframe after the link came back left the encoder at {} ({})",
            at(*t),
            keyframe_reason(*r)
        ));
    }
    let after = "the link came back";
    match (f.target_at(t0), f.lowest(t0, e.until), recovery) {
        (Some(before), Some(low), rec) if low.target < before => clauses.push(format!(
            "the target fell from {} to {}{}{}",
            fmt_bps(before),
            fmt_bps(low.target),
            paren(low_cause(low)),
            rec.map(|r| format!(" and {}", r.predicate(after)))
                .unwrap_or_default()
        )),
        (_, _, Some(rec)) => clauses.push(rec.clause(after)),
        _ => {}
    }
    clauses.extend(adapt_clause(own.adapts));
    sentence(t0, Topic::Outage, text, clauses)
}

fn capacity_drop(f: &Facts, e: &Episode, d: &CapacityDrop, own: &Owning) -> Sentence {
    let t0 = d.t_s;
    let text = match d.from_bps {
        Some(from) => format!(
            "At {} the capacity fell from {} to {}",
            at(t0),
            fmt_bps(from),
            fmt_bps(d.to_bps)
        ),
        None => format!(
            "At {} the capacity was capped at {}",
            at(t0),
            fmt_bps(d.to_bps)
        ),
    };
    let mut clauses = Vec::new();
    let lines: Vec<&ImpairSample> = f.downlink(t0, e.until).collect();
    let queue = lines
        .iter()
        .filter_map(|s| s.queue_delay_max_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let overflow: u64 = lines
        .iter()
        .map(|s| s.dropped.get("queue_overflow").copied().unwrap_or(0))
        .sum();
    match (queue, overflow) {
        (Some(q), 0) => clauses.push(format!(
            "the queue at the bottleneck reached {} and nothing was dropped",
            ms(q)
        )),
        (Some(q), n) => clauses.push(format!(
            "the queue at the bottleneck reached {} and {} dropped when it was full",
            ms(q),
            were(n)
        )),
        (None, n) if n > 0 => clauses.push(format!("{} dropped at the full queue", were(n))),
        _ => {}
    }
    clauses.push(match d.reaction_s {
        Some(r) if r <= 0.0 => "the target was already below the new capacity".to_owned(),
        Some(r) => format!(
            "the target fell below the new capacity in {:.2} s{}",
            r,
            paren(reaction_cause(f, t0, t0 + r))
        ),
        None => "the target never got below the new capacity".to_owned(),
    });
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(freeze_clause(&own.frozen));
    clauses.extend(pli_clause(f, t0, e.until));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(t0, Topic::CapacityDrop, text, clauses)
}

fn capacity_rise(f: &Facts, e: &Episode, r: &CapacityRise, own: &Owning) -> Sentence {
    let t0 = r.t_s;
    let text = match r.to_bps {
        Some(to) => format!(
            "At {} the capacity rose from {} to {}",
            at(t0),
            fmt_bps(r.from_bps),
            fmt_bps(to)
        ),
        None => format!(
            "At {} the capacity limit of {} was lifted",
            at(t0),
            fmt_bps(r.from_bps)
        ),
    };
    let mut clauses = Vec::new();
    clauses.extend(Recovery::of_rise(r).map(|rec| rec.clause("the rise")));
    clauses.extend(adapt_clause(own.adapts));
    if own.frozen.count > 0 {
        clauses.extend(freeze_clause(&own.frozen));
    }
    clauses.extend(pli_clause(f, t0, e.until));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(t0, Topic::CapacityRise, text, clauses)
}

fn loss(f: &Facts, e: &Episode, l: &LossPeriod, own: &Owning) -> Sentence {
    let lines: Vec<&ImpairSample> = f.downlink(l.from, l.to).collect();
    let mut by_cause = [("random", 0u64), ("burst", 0), ("nth", 0)];
    for s in &lines {
        for (cause, n) in &mut by_cause {
            *n += s.dropped.get(*cause).copied().unwrap_or(0);
        }
    }
    let dropped: u64 = by_cause.iter().map(|(_, n)| n).sum();
    let packets_in: u64 = lines.iter().map(|s| s.packets_in).sum();
    let how: Vec<&str> = by_cause
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, _)| match *c {
            "random" => "at random",
            "burst" => "in bursts",
            _ => "every n-th packet",
        })
        .collect();
    let when = if l.from < 1.5 {
        "From the start".to_owned()
    } else {
        format!("From {}", at(l.from))
    };
    let until = if l.to_end {
        format!("to the end ({})", at(l.to))
    } else {
        format!("to {}", at(l.to))
    };
    let set = l
        .set_pct
        .map(|p| format!("; the scenario set {p} %"))
        .unwrap_or_default();
    let text = if !l.measured {
        format!(
            "{when} {until} the receiver found packets missing, with no impairment logged (the \
             network's own loss)"
        )
    } else if packets_in > 0 {
        format!(
            "{when} {until} the link lost {:.1} % of the packets on the downlink {} ({dropped} of \
             {packets_in}{set})",
            100.0 * dropped as f64 / packets_in as f64,
            join_and(&how)
        )
    } else {
        format!(
            "{when} {until} the link lost {} {}",
            packets(dropped),
            join_and(&how)
        )
    };
    let dropped = l.measured.then_some(dropped);
    let mut clauses = Vec::new();
    clauses.extend(repair_clause(f, l.from, l.to + REPAIR_TAIL_S, dropped));
    clauses.extend(pli_clause(f, l.from, e.until));
    clauses.extend(freeze_clause(&own.frozen));
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(l.from, Topic::Loss, text, clauses)
}

fn change(f: &Facts, e: &Episode, c: &ChangeLine, own: &Owning) -> Sentence {
    let path = match c.direction {
        "downlink" => "the downlink (sender → receiver, the media)",
        "uplink" => "the uplink (receiver → sender, the feedback)",
        other => other,
    };
    let what = settings_words(c.settings, c.direction == "downlink");
    let mut text = if c.settings.is_null() {
        format!("At {} {path} went back to no impairment", at(c.at_s))
    } else {
        format!("At {} {path} changed: {}", at(c.at_s), join_and(&what))
    };
    if let Some(u) = c.until_s {
        text.push_str(&format!(" until {}", at(u)));
    }
    let mut clauses = Vec::new();
    let delay_keys = ["delay_ms", "jitter_ms"];
    if delay_keys.iter().any(|k| c.settings.get(*k).is_some()) || c.settings.is_null() {
        let end = c.until_s.unwrap_or(e.until).min(e.until);
        if let (Some(before), Some(max)) = (f.rtt_at(c.at_s), f.rtt_max(c.at_s, end))
            && (max - before).abs() >= 5.0
        {
            clauses.push(format!(
                "the round-trip time went from {} to {}",
                ms(before),
                ms(max)
            ));
        }
    }
    if c.direction != "downlink" {
        let dropped: u64 = f
            .samples(c.direction, c.at_s, e.until)
            .map(ImpairSample::dropped_total)
            .sum();
        if dropped > 0 {
            clauses.push(format!(
                "{} of feedback and other traffic were dropped",
                packets(dropped)
            ));
        }
    }
    if own.frozen.count > 0 {
        clauses.extend(freeze_clause(&own.frozen));
    }
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(c.at_s, Topic::Impairment, text, clauses)
}

/// Freezes and resolution changes outside every period.
fn loose_pictures(f: &Facts, freezes: &[&FreezeItem], adapts: &[&Adapt]) -> Vec<Sentence> {
    let mut out = Vec::new();
    let spans: Option<Vec<(f64, f64)>> = freezes.iter().map(|i| i.span).collect();
    match spans {
        Some(spans) if spans.len() <= MAX_LOOSE_SENTENCES => {
            for (start, end) in spans {
                let why = f
                    .pli_reason(start, end)
                    .map(|r| format!(" ({}; the receiver asked for a keyframe)", pli_reason(r)))
                    .unwrap_or_default();
                out.push(Sentence {
                    t_s: start,
                    topic: Topic::Picture,
                    text: format!(
                        "At {} the picture froze for {}{why}.",
                        at(start),
                        span(end - start)
                    ),
                });
            }
        }
        _ => {
            if let Some(first) = freezes.first() {
                let t_s = first.span.map_or(first.t, |(start, _)| start);
                let frozen = Frozen::of(freezes);
                let longest = frozen
                    .longest_ms
                    .map(|l| format!(" (longest {})", span(l / 1e3)))
                    .unwrap_or_default();
                out.push(Sentence {
                    t_s,
                    topic: Topic::Picture,
                    text: format!(
                        "From {} the picture froze {} with no impairment change to explain it, \
                         {} in all{longest}.",
                        at(t_s),
                        times(frozen.count as usize),
                        span(frozen.total_ms / 1e3)
                    ),
                });
            }
        }
    }
    if adapts.len() <= MAX_LOOSE_SENTENCES {
        for a in adapts {
            out.push(Sentence {
                t_s: a.t,
                topic: Topic::Picture,
                text: format!(
                    "At {} the encoder went {} → {} at a target of {} ({}).",
                    at(a.t),
                    res(a.from_h),
                    res(a.to_h),
                    fmt_bps(a.target),
                    adapt_reason(a.reason)
                ),
            });
        }
    } else if let Some(first) = adapts.first() {
        out.push(Sentence {
            t_s: first.t,
            topic: Topic::Picture,
            text: format!(
                "From {} the encoder changed resolution {} ({}).",
                at(first.t),
                times(adapts.len()),
                chain(adapts)
            ),
        });
    }
    out
}

fn viewer(f: &Facts, report: &RunReport) -> Option<Sentence> {
    if !f.has_media {
        return None;
    }
    if !f.has_receiver {
        return Some(Sentence {
            t_s: f.end_t,
            topic: Topic::Viewer,
            text: format!(
                "What the viewer saw is not in the log (no receiver statistics); the sender sent \
                 {} frames.",
                report.frames_sent
            ),
        });
    }
    if report.frames_decoded == 0 {
        return Some(Sentence {
            t_s: f.end_t,
            topic: Topic::Viewer,
            text: format!(
                "What the viewer saw: nothing — none of the {} frames sent was decoded.",
                report.frames_sent
            ),
        });
    }
    let decoded = if report.frames_sent > 0 {
        format!(
            "{} of the {} frames sent were decoded ({:.1} %)",
            report.frames_decoded,
            report.frames_sent,
            100.0 * report.frames_decoded as f64 / report.frames_sent as f64
        )
    } else {
        format!("{} frames were decoded", report.frames_decoded)
    };
    // A browser receiver logs no `video.freeze`; its statistics carry the totals.
    let (count, total_ms) = if f.freezes_from_stats {
        f.freeze_total
    } else {
        (report.freeze_count, report.freeze_total_ms)
    };
    let frozen = if count == 0 {
        "the picture never froze".to_owned()
    } else {
        let share = if report.media_duration_s > 0.0 {
            format!(
                " ({:.1} % of the time)",
                100.0 * total_ms / 1e3 / report.media_duration_s
            )
        } else {
            String::new()
        };
        format!(
            "the picture froze {}, {} in all{share}",
            times(count as usize),
            span(total_ms / 1e3)
        )
    };
    let mut clauses = Vec::new();
    let mut g2g = f.g2g.clone();
    if let Some(p50) = rtclab_events::stats::percentile(&mut g2g, 50.0) {
        clauses.push(format!(
            "glass-to-glass latency (capture to decoded picture) was {} at the median",
            ms(p50)
        ));
    }
    let lowest = f
        .adapts
        .iter()
        .map(|a| a.to_h)
        .chain(f.heights.iter().copied())
        .min();
    let highest = f.heights.iter().copied().max();
    match (lowest, highest) {
        (Some(lo), Some(hi)) if lo == hi => {
            clauses.push(format!("the video was sent at {} throughout", res(hi)))
        }
        (Some(lo), _) => clauses.push(format!("the resolution went as low as {}", res(lo))),
        _ => {}
    }
    Some(sentence(
        f.end_t,
        Topic::Viewer,
        format!("What the viewer saw: {decoded} and {frozen}"),
        clauses,
    ))
}

// ---------------------------------------------------------------------------------------------
// Clauses shared by the sentences.

/// One freeze from its `video.freeze` event, or the freezes a receiver's statistics counted
/// between two lines (a browser logs no `video.freeze`).
#[derive(Debug, Clone, PartialEq)]
struct FreezeItem {
    /// The instant that decides which episode it belongs to.
    t: f64,
    count: u64,
    total_ms: f64,
    /// The single freeze's start and end (from an event).
    span: Option<(f64, f64)>,
}

/// The run's freezes, from events when the receiver logs them, else from its statistics.
fn freeze_items(f: &Facts, events: &[Freeze]) -> Vec<FreezeItem> {
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

/// The freezes of one episode.
#[derive(Debug, Clone, Default, PartialEq)]
struct Frozen {
    count: u64,
    total_ms: f64,
    /// The longest, when every freeze is known on its own.
    longest_ms: Option<f64>,
    /// When the picture moved again, for a single freeze told from its event.
    until: Option<f64>,
}

impl Frozen {
    fn of(items: &[&FreezeItem]) -> Frozen {
        let known: Option<Vec<(f64, f64)>> = items.iter().map(|i| i.span).collect();
        Frozen {
            count: items.iter().map(|i| i.count).sum(),
            total_ms: items.iter().map(|i| i.total_ms).sum(),
            // Each item told from an event is one freeze, its total its length.
            longest_ms: known
                .is_some()
                .then(|| items.iter().map(|i| i.total_ms).fold(0.0, f64::max)),
            until: match (items, &known) {
                ([_], Some(k)) => k.first().map(|(_, end)| *end),
                _ => None,
            },
        }
    }
}

/// "the picture froze N times, X in all (longest Y)", or that it did not.
fn freeze_clause(fr: &Frozen) -> Option<String> {
    Some(match (fr.count, fr.until, fr.longest_ms) {
        (0, _, _) => "the picture did not freeze".to_owned(),
        (1, Some(until), _) => format!(
            "the picture froze for {}, until {}",
            span(fr.total_ms / 1e3),
            at(until)
        ),
        (1, None, _) => format!("the picture froze once, for {}", span(fr.total_ms / 1e3)),
        (n, _, Some(longest)) => format!(
            "the picture froze {}, {} in all (longest {})",
            times(n as usize),
            span(fr.total_ms / 1e3),
            span(longest / 1e3)
        ),
        (n, _, None) => format!(
            "the picture froze {}, {} in all",
            times(n as usize),
            span(fr.total_ms / 1e3)
        ),
    })
}

/// "the encoder went 720p → 540p → 360p (why the first step)".
fn adapt_clause(adapts: &[&Adapt]) -> Option<String> {
    let first = adapts.first()?;
    Some(format!(
        "the encoder went {} ({}{})",
        chain(adapts),
        if adapts.len() > 1 {
            "first because "
        } else {
            ""
        },
        adapt_reason(first.reason)
    ))
}

fn chain(adapts: &[&Adapt]) -> String {
    let mut s = adapts.first().map(|a| res(a.from_h)).unwrap_or_default();
    for a in adapts {
        s.push_str(" → ");
        s.push_str(&res(a.to_h));
    }
    s
}

/// NACK repair over `[a, b]`: what the receiver asked for, what the sender resent, what FEC
/// rebuilt, what stayed lost. `dropped` is what the network dropped, for the retransmissions
/// per lost packet.
fn repair_clause(f: &Facts, a: f64, b: f64, dropped: Option<u64>) -> Option<String> {
    let (nacks, seqs) = f.nacks_in(a, b);
    let rtx = f.retransmitted.change(a, b);
    let fec = f.fec_recovered.change(a, b);
    let stayed = f.recv_lost.change(a, b);
    let mut parts = Vec::new();
    if nacks > 0 {
        // A NACK names every packet still missing, again until it arrives: the names outnumber
        // the packets.
        parts.push(format!(
            "the receiver sent {} naming missing packets {} (it asks again until a repair \
             arrives)",
            count_of(nacks, "NACK", "NACKs"),
            times(seqs as usize)
        ));
    }
    if rtx > 0 {
        let per_lost = dropped
            .filter(|d| *d > 0)
            .map(|d| format!(" ({:.2} per lost packet)", rtx as f64 / d as f64))
            .unwrap_or_default();
        parts.push(format!("the sender retransmitted {rtx}{per_lost}"));
    }
    if fec > 0 {
        parts.push(format!("FEC rebuilt {}", packets(fec)));
    }
    if parts.is_empty() && dropped.is_none_or(|d| d == 0) {
        return None;
    }
    parts.push(if stayed == 0 {
        "none stayed lost".to_owned()
    } else {
        format!("{stayed} stayed lost")
    });
    Some(parts.join("; "))
}

/// "the receiver sent N PLIs (why) and M keyframes answered".
fn pli_clause(f: &Facts, a: f64, b: f64) -> Option<String> {
    let plis = Facts::count(&f.plis, a, b);
    if plis == 0 {
        return None;
    }
    let keyframes = f.requested_keyframes(a, b);
    let why = f
        .pli_reason(a, b)
        .map(|r| format!(" ({})", pli_reason(r)))
        .unwrap_or_default();
    Some(format!(
        "the receiver asked for a keyframe with {}{why}, and {} answered",
        count_of(plis as u64, "PLI", "PLIs"),
        count_of(keyframes as u64, "keyframe", "keyframes"),
    ))
}

/// The level the target had to regain, and how long it took.
#[derive(Debug, Clone, PartialEq)]
struct Recovery {
    goal_bps: f64,
    /// Seconds after the event; `None`: not within the run.
    after_s: Option<f64>,
    /// What `goal_bps` is 90 % of.
    of_what: &'static str,
}

impl Recovery {
    /// From a rise as [`RunReport`] measured it.
    fn of_rise(r: &CapacityRise) -> Option<Recovery> {
        let goal_bps = r.goal_bps?;
        // `goal_bps` is 90 % of the lower of the new capacity and the target before the drop.
        let of_what = match r.to_bps {
            Some(c) if (goal_bps / RECOVERED_SHARE - c).abs() < 1.0 => "of the new capacity",
            _ => "of its level before the drop",
        };
        Some(Recovery {
            goal_bps,
            after_s: r.recovery_s,
            of_what,
        })
    }

    fn clause(&self, after: &str) -> String {
        format!("the target {}", self.predicate(after))
    }

    /// "was back to X (90 % of ...) N s after `after`", or that it never was.
    fn predicate(&self, after: &str) -> String {
        let share = RECOVERED_SHARE * 100.0;
        match self.after_s {
            Some(s) => format!(
                "was back to {} ({share:.0} % {}) {s:.2} s after {after}",
                fmt_bps(self.goal_bps),
                self.of_what
            ),
            None => format!(
                "never got back to {} ({share:.0} % {}) within the run",
                fmt_bps(self.goal_bps),
                self.of_what
            ),
        }
    }
}

/// "the receiver's ICE lost contact at X (...) and reconnected at Y".
fn contact_clause(c: &LostContact) -> String {
    let mut s = format!(
        "the {}'s ICE {} at {} (it had heard nothing from the other side for a while)",
        c.peer,
        if c.state == "failed" {
            "failed"
        } else {
            "lost contact"
        },
        at(c.t)
    );
    if let Some(b) = c.back {
        s.push_str(&format!(" and reconnected at {}", at(b)));
    }
    s
}

/// Why the target went under the new capacity, from the estimates up to the reaction: the
/// delay-based detector's over-use, else a loss-based estimate below the delay-based one.
fn reaction_cause(f: &Facts, from: f64, to: f64) -> Option<String> {
    let window: Vec<&Estimate> = f
        .estimates
        .iter()
        .filter(|e| e.t > from && e.t <= to + 1e-9)
        .collect();
    let react = window.last()?;
    let overuse = window.iter().any(|e| e.state == Some("overuse"));
    let loss = react.loss_ratio.filter(|l| *l >= 0.02);
    if overuse {
        let mut s = "delay-based over-use: the queuing delay was growing".to_owned();
        if let Some(l) = loss {
            s.push_str(&format!("; {:.0} % loss reported", l * 100.0));
        }
        return Some(s);
    }
    low_cause(react)
}

/// Why an estimate was as low as it was, when the log says.
fn low_cause(e: &Estimate) -> Option<String> {
    let loss_limited = match (e.loss_based, e.delay_based) {
        (Some(l), Some(d)) => l < d * 0.999 && (l - e.target).abs() <= 1.0,
        _ => false,
    };
    if loss_limited {
        return Some(match e.loss_ratio {
            Some(r) => format!("loss-based: {:.0} % loss reported", r * 100.0),
            None => "loss-based".to_owned(),
        });
    }
    if e.state == Some("overuse") {
        return Some("delay-based over-use: the queuing delay was growing".to_owned());
    }
    None
}

/// Words for an `impair.change`'s settings, with the scenario file's keys.
fn settings_words(settings: &Value, downlink: bool) -> Vec<String> {
    let Some(m) = settings.as_object() else {
        return Vec::new();
    };
    m.iter()
        .filter(|(k, _)| !downlink || !TOLD_ELSEWHERE.contains(&k.as_str()))
        .map(|(k, v)| {
            let name = match k.as_str() {
                "loss_pct" => "random loss",
                "burst" => "bursty loss",
                "drop_every_nth" => "every n-th packet dropped",
                "delay_ms" => "one-way delay",
                "jitter_ms" => "jitter",
                "jitter_distribution" => "jitter distribution",
                "reorder" => "reordering",
                "duplicate_pct" => "duplicates",
                "rate_kbps" => "capacity",
                "queue_ms" => "queue limit",
                "queue_bytes" => "queue limit",
                "overhead_bytes" => "header overhead",
                "outage" => "outage",
                other => other,
            };
            let value = match (k.as_str(), v) {
                (_, Value::Null) => return format!("{name} back to its default"),
                ("rate_kbps", v) => v.as_f64().map(|x| fmt_bps(x * 1e3)),
                (k, v) if k.ends_with("_pct") => v.as_f64().map(|x| format!("{x} %")),
                (k, v) if k.ends_with("_ms") => v.as_f64().map(|x| format!("{x} ms")),
                ("queue_bytes" | "overhead_bytes", v) => v.as_f64().map(|x| format!("{x} bytes")),
                (_, Value::Bool(b)) => Some(if *b { "on" } else { "off" }.to_owned()),
                (_, Value::String(s)) => Some(s.clone()),
                ("burst", _) => Some("on".to_owned()),
                (_, v) => Some(v.to_string()),
            };
            format!("{name} {}", value.unwrap_or_else(|| v.to_string()))
        })
        .collect()
}

fn keyframe_reason(r: KeyframeReason) -> &'static str {
    match r {
        KeyframeReason::Start => "the stream's first",
        KeyframeReason::Pli => "asked for by a PLI",
        KeyframeReason::Fir => "asked for by a FIR",
        KeyframeReason::Resize => "the first at a new resolution",
        KeyframeReason::Probe => "sent as a bandwidth probe",
    }
}

fn adapt_reason(r: &str) -> String {
    match r {
        "target_below_floor" => "the target fell below what the resolution needs".to_owned(),
        "overshoot" => "too many frames went over budget".to_owned(),
        "target_recovered" => "the target recovered".to_owned(),
        other => other.replace('_', " "),
    }
}

fn pli_reason(r: PliReason) -> &'static str {
    match r {
        PliReason::FrameLost => "a frame was lost for good",
        PliReason::DecodeError => "a frame could not be decoded",
        PliReason::Interval => "a fixed test interval",
    }
}

// ---------------------------------------------------------------------------------------------
// Wording and numbers.

/// The head sentence, then each clause as a short sentence of its own.
fn sentence(t_s: f64, topic: Topic, head: String, clauses: Vec<String>) -> Sentence {
    let mut text = head;
    text.push('.');
    for c in clauses {
        text.push(' ');
        text.push_str(&capitalised(&c));
        text.push('.');
    }
    Sentence { t_s, topic, text }
}

/// An instant: one decimal, as the plots' axes.
fn at(t: f64) -> String {
    format!("{t:.1} s")
}

/// An instant of the startup, where tenths of a second matter.
fn at2(t: f64) -> String {
    format!("{t:.2} s")
}

/// A duration: ms under a second, else seconds with one decimal.
fn span(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// A picture height as video people say it: 720p.
fn res(height: u32) -> String {
    format!("{height}p")
}

fn packets(n: u64) -> String {
    count_of(n, "packet", "packets")
}

/// "1 packet was", "2 packets were".
fn were(n: u64) -> String {
    format!("{} {}", packets(n), if n == 1 { "was" } else { "were" })
}

fn count_of(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn times(n: usize) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn paren(s: Option<String>) -> String {
    s.map(|s| format!(" ({s})")).unwrap_or_default()
}

/// "a", "a and b", "a, b and c".
fn join_and<S: AsRef<str>>(parts: &[S]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::test_records::{StatsLog, change};
    use rtclab_events::{BweDetail, Direction, Qoe};
    use serde_json::json;

    fn rec(t: f64, peer: PeerRole, event: Event) -> Record {
        Record { t, peer, event }
    }

    /// An estimate of rtclab's controller; `loss` = (loss-based estimate, loss ratio).
    fn bwe(t: f64, target: f64, state: &str, loss: Option<(f64, f64)>) -> Record {
        rec(
            t,
            PeerRole::Sender,
            Event::BweEstimate {
                estimator: "rtclab".into(),
                target_bps: target,
                delay_based_bps: Some(loss.map_or(target, |_| 2.0 * target)),
                loss_based_bps: Some(loss.map_or(target, |(l, _)| l)),
                loss_ratio: Some(loss.map_or(0.0, |(_, r)| r)),
                rtt_ms: Some(40.0),
                detail: BweDetail {
                    state: Some(state.into()),
                    ..Default::default()
                },
            },
        )
    }

    fn stats(t: f64, peer: PeerRole, frames: u64, lost: u64, rtx: u64) -> Record {
        let direction = if peer == PeerRole::Sender {
            MediaDirection::Send
        } else {
            MediaDirection::Recv
        };
        rec(
            t,
            peer,
            Event::MediaStats(MediaStats {
                direction,
                frames,
                lost,
                retransmitted: rtx,
                bitrate_bps: 1e6,
                fps: 30.0,
                ..Default::default()
            }),
        )
    }

    fn rtcp_out(t: f64, packet: Rtcp) -> Record {
        rec(
            t,
            PeerRole::Receiver,
            Event::Rtcp {
                direction: Direction::Out,
                packet,
            },
        )
    }

    fn keyframe(t: f64, reason: KeyframeReason) -> Record {
        rec(
            t,
            PeerRole::Sender,
            Event::EncoderKeyframe {
                reason,
                frame_index: 0,
                after_request_ms: None,
            },
        )
    }

    fn adapt(t: f64, from: (u32, u32), to: (u32, u32), target: f64, reason: &str) -> Record {
        rec(
            t,
            PeerRole::Sender,
            Event::EncoderAdapt {
                from_width: from.0,
                from_height: from.1,
                to_width: to.0,
                to_height: to.1,
                target_bps: target,
                reason: reason.into(),
            },
        )
    }

    fn freeze(t: f64, duration_ms: f64) -> Record {
        rec(t, PeerRole::Receiver, Event::VideoFreeze { duration_ms })
    }

    fn ice(t: f64, peer: PeerRole, state: &str) -> Record {
        rec(
            t,
            peer,
            Event::IceState {
                state: state.into(),
            },
        )
    }

    /// Session start, signaling, ICE, the peer connection, the first keyframe, RTP packet and
    /// decoded frame, as a clean loopback run logs them.
    fn startup() -> Vec<Record> {
        let mut v = vec![rec(
            0.0,
            PeerRole::Lab,
            Event::SessionStart {
                schema: rtclab_events::SCHEMA.into(),
                session_id: "s".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                scenario: Some("test".into()),
                config: json!({"codec": "h264"}),
            },
        )];
        v.push(rec(
            0.1,
            PeerRole::Sender,
            Event::Signaling {
                what: "offer sent".into(),
            },
        ));
        for peer in [PeerRole::Sender, PeerRole::Receiver] {
            v.push(ice(0.3, peer, "connected"));
            v.push(rec(
                0.5,
                peer,
                Event::PcState {
                    state: "connected".into(),
                },
            ));
        }
        v.push(keyframe(0.52, KeyframeReason::Start));
        for (t, what) in [(0.53, First::RtpReceived), (0.56, First::FrameDecoded)] {
            v.push(rec(t, PeerRole::Receiver, Event::MediaFirst { what }));
        }
        v
    }

    /// Media statistics once a second from 1 s to `end` s: 30 frames a second, all decoded;
    /// `lost` and `rtx` give the receiver's lost count and the sender's retransmissions at `t`.
    fn media(end: u32, lost: impl Fn(f64) -> u64, rtx: impl Fn(f64) -> u64) -> Vec<Record> {
        let mut v = Vec::new();
        for i in 1..=end {
            let t = f64::from(i);
            let frames = 30 * u64::from(i);
            v.push(stats(t, PeerRole::Sender, frames, 0, rtx(t)));
            v.push(stats(t, PeerRole::Receiver, frames, lost(t), 0));
            v.push(rec(
                t,
                PeerRole::Receiver,
                Event::Qoe(Qoe {
                    frames_decoded: 30,
                    fps: 30.0,
                    g2g_ms: vec![40.0, 45.0, 50.0],
                    g2g_p50_ms: Some(45.0),
                    g2g_p95_ms: Some(50.0),
                    ..Default::default()
                }),
            ));
        }
        v
    }

    fn account_of(mut records: Vec<Record>) -> Vec<Sentence> {
        records.sort_by(|a, b| a.t.total_cmp(&b.t));
        RunReport::from_records(&records).what_happened
    }

    fn topics(account: &[Sentence]) -> Vec<(f64, Topic)> {
        account.iter().map(|s| (s.t_s, s.topic)).collect()
    }

    fn text_of(account: &[Sentence], topic: Topic) -> &str {
        account
            .iter()
            .find(|s| s.topic == topic)
            .map_or("", |s| s.text.as_str())
    }

    /// 3 Mbps, 500 kbps from 20 s, 3 Mbps again from 30 s. The controller detects over-use from
    /// 20.3 s and gets under the capacity at 20.8 s; the queue fills and drops for three
    /// seconds; the encoder steps down to 540p and back up at 34 s; one freeze.
    #[test]
    fn a_capacity_drop_and_its_recovery() {
        let mut v = startup();
        v.extend(media(40, |_| 0, |_| 0));
        let mut t = 0.5;
        while t < 40.0 {
            let (target, state) = match t {
                t if t < 20.3 => (2.5e6, "normal"),
                t if t < 20.8 => (2.5e6, "overuse"),
                t if t < 30.0 => (4.5e5, "normal"),
                t if t < 33.0 => (1.5e6, "normal"),
                _ => (2.8e6, "normal"),
            };
            v.push(bwe(t, target, state, None));
            t = ((t + 0.1) * 10.0_f64).round() / 10.0;
        }
        let mut log = StatsLog::new("downlink");
        for i in 1..=40 {
            let congested = (21..=23).contains(&i);
            let cap = if (21..=30).contains(&i) { 5e5 } else { 3e6 };
            let queue = if congested {
                (310.0, 590.0, 640.0)
            } else {
                (3.0, 9.0, 14.0)
            };
            let overflow = if congested { 30 } else { 0 };
            v.push(log.second(
                f64::from(i),
                Some(cap),
                100,
                100_000,
                0,
                overflow,
                Some(queue),
            ));
        }
        v.push(change("downlink", 20.0, None, json!({"rate_kbps": 500.0})));
        v.push(change("downlink", 30.0, None, json!({"rate_kbps": 3000.0})));
        v.push(adapt(
            21.0,
            (1280, 720),
            (960, 540),
            4.5e5,
            "target_below_floor",
        ));
        v.push(adapt(
            34.0,
            (960, 540),
            (1280, 720),
            2.8e6,
            "target_recovered",
        ));
        v.push(freeze(21.4, 520.0));

        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (0.0, Topic::Link),
                (20.0, Topic::CapacityDrop),
                (30.0, Topic::CapacityRise),
                (40.0, Topic::Viewer),
            ]
        );
        assert!(
            text_of(&account, Topic::Link).contains("carried at most 3.00 Mbps"),
            "{account:#?}"
        );
        let drop = text_of(&account, Topic::CapacityDrop);
        assert_eq!(
            drop,
            "At 20.0 s the capacity fell from 3.00 Mbps to 500 kbps. The queue at the bottleneck \
             reached 640 ms and 90 packets were dropped when it was full. The target fell below \
             the new capacity in 0.80 s (delay-based over-use: the queuing delay was growing). \
             The encoder went 720p → 540p (the target fell below what the resolution needs). The \
             picture froze for 520 ms, until 21.4 s."
        );
        let rise = text_of(&account, Topic::CapacityRise);
        assert_eq!(
            rise,
            "At 30.0 s the capacity rose from 500 kbps to 3.00 Mbps. The target was back to \
             2.25 Mbps (90 % of its level before the drop) 3.00 s after the rise. The encoder \
             went 540p → 720p (the target recovered)."
        );
        let viewer = text_of(&account, Topic::Viewer);
        assert!(
            viewer.contains("1200 of the 1200 frames sent were decoded (100.0 %)")
                && viewer.contains("froze once, 520 ms in all (1.3 % of the time)")
                && viewer.contains("was 45 ms at the median")
                && viewer.contains("went as low as 540p"),
            "{viewer}"
        );
    }

    /// 5 % random loss from 5 s to 15 s: 50 of 1000 packets dropped, NACKed and mostly
    /// retransmitted; one frame lost for good brings a PLI, a keyframe and a short freeze.
    #[test]
    fn a_loss_period_with_nack_repair() {
        let mut v = startup();
        // The receiver counts gaps not yet filled: 3 while repairs are under way, 2 for good.
        let lost = |t: f64| match t {
            t if t <= 5.0 => 0,
            t if t <= 15.0 => 3,
            _ => 2,
        };
        let rtx = |t: f64| ((t - 5.0).max(0.0) as u64 * 5).min(48);
        v.extend(media(20, lost, rtx));
        let mut log = StatsLog::new("downlink");
        for i in 1..=20 {
            let random = if (6..=15).contains(&i) { 5 } else { 0 };
            v.push(log.second(f64::from(i), None, 100 - random, 100_000, random, 0, None));
        }
        v.push(change("downlink", 5.0, None, json!({"loss_pct": 5.0})));
        v.push(change("downlink", 15.0, None, json!({"loss_pct": null})));
        for k in 0..40 {
            let t = 5.2 + f64::from(k) * 0.25;
            v.push(rtcp_out(
                t,
                Rtcp::Nack {
                    media_ssrc: 1,
                    seqs: vec![k as u16, k as u16 + 1],
                },
            ));
        }
        v.push(rec(
            9.3,
            PeerRole::Receiver,
            Event::DecoderPli {
                reason: PliReason::FrameLost,
            },
        ));
        v.push(rtcp_out(9.3, Rtcp::Pli { media_ssrc: 1 }));
        v.push(keyframe(9.35, KeyframeReason::Pli));
        v.push(freeze(9.6, 400.0));

        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (5.0, Topic::Loss),
                (20.0, Topic::Viewer)
            ]
        );
        assert_eq!(
            text_of(&account, Topic::Loss),
            "From 5.0 s to 15.0 s the link lost 5.0 % of the packets on the downlink at random \
             (50 of 1000; the scenario set 5 %). The receiver sent 40 NACKs naming missing \
             packets 80 times (it asks again until a repair arrives); the sender retransmitted \
             48 (0.96 per lost packet); 2 stayed lost. The receiver asked for a keyframe with 1 \
             PLI (a frame was lost for good), and 1 keyframe answered. The picture froze for \
             400 ms, until 9.6 s."
        );
    }

    /// The link dies from 10 s to 13 s: the picture freezes until a keyframe the receiver
    /// asked for arrives; ICE loses contact for a moment; the controller backs off without
    /// feedback and climbs back.
    #[test]
    fn an_outage_with_a_freeze_and_the_keyframe_after_it() {
        let mut v = startup();
        let lost = |t: f64| if t >= 14.0 { 50 } else { 0 };
        let rtx = |t: f64| if t >= 14.0 { 250 } else { 0 };
        v.extend(media(20, lost, rtx));
        let mut log = StatsLog::new("downlink");
        for i in 1..=20 {
            if (11..=13).contains(&i) {
                log.totals.packets_in += 100;
                log.totals.dropped_packets.outage += 100;
                v.push(log.second(f64::from(i), None, 0, 0, 0, 0, None));
            } else {
                v.push(log.second(f64::from(i), None, 100, 100_000, 0, 0, None));
            }
        }
        v.push(change(
            "downlink",
            10.0,
            Some(13.0),
            json!({"outage": true}),
        ));
        v.push(change("downlink", 13.0, None, json!({"outage": null})));
        // Without feedback the target falls by a fifth every half second; the first report
        // after the outage shows 98 % loss, then the target climbs back.
        let mut target = 2.5e6;
        let mut t = 0.5;
        while t < 10.01 {
            v.push(bwe(t, target, "normal", None));
            t += 0.5;
        }
        for k in 1..=5 {
            target *= 0.8;
            v.push(bwe(10.0 + 0.5 * f64::from(k), target, "normal", None));
        }
        v.push(bwe(13.05, 4e5, "normal", Some((4e5, 0.98))));
        for k in 0..=12 {
            v.push(bwe(
                13.5 + 0.5 * f64::from(k),
                6e5 + 2e5 * f64::from(k),
                "normal",
                None,
            ));
        }
        v.push(ice(13.2, PeerRole::Receiver, "disconnected"));
        v.push(ice(13.9, PeerRole::Receiver, "connected"));
        v.push(rtcp_out(
            13.2,
            Rtcp::Nack {
                media_ssrc: 1,
                seqs: (0..300).collect(),
            },
        ));
        v.push(rec(
            13.25,
            PeerRole::Receiver,
            Event::DecoderPli {
                reason: PliReason::FrameLost,
            },
        ));
        v.push(rtcp_out(13.25, Rtcp::Pli { media_ssrc: 1 }));
        v.push(keyframe(13.3, KeyframeReason::Pli));
        v.push(adapt(
            13.4,
            (1280, 720),
            (960, 540),
            6e5,
            "target_below_floor",
        ));
        v.push(freeze(13.6, 3500.0));

        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (10.0, Topic::Outage),
                (20.0, Topic::Viewer)
            ]
        );
        assert_eq!(
            text_of(&account, Topic::Outage),
            "At 10.0 s the link went dead for 3.0 s (an outage: every packet dropped, 300 in \
             all). The picture froze for 3.5 s, until 13.6 s. The receiver's ICE lost contact at \
             13.2 s (it had heard nothing from the other side for a while) and reconnected at \
             13.9 s. The receiver sent 1 NACK naming missing packets 300 times (it asks again \
             until a repair arrives); the sender retransmitted 250 (0.83 per lost packet); 50 \
             stayed lost. The receiver asked for a keyframe with 1 PLI (a frame was lost for \
             good), and 1 keyframe answered. The first keyframe after the link came back left \
             the encoder at 13.3 s (asked for by a PLI). The target fell from 2.50 Mbps to \
             400 kbps (loss-based: 98 % loss reported) and was back to 2.25 Mbps (90 % of its \
             level before the outage) 5.00 s after the link came back. The encoder went 720p → \
             540p (the target fell below what the resolution needs)."
        );
    }

    #[test]
    fn a_clean_run_says_nothing_went_wrong() {
        let mut v = startup();
        v.extend(media(10, |_| 0, |_| 0));
        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (10.0, Topic::Clean),
                (10.0, Topic::Viewer)
            ]
        );
        assert_eq!(
            account[0].text,
            "Startup: the offer went out at 0.10 s, ICE connected at 0.30 s and the peer \
             connection (ICE and DTLS) at 0.50 s. The first keyframe left the encoder at 0.52 s, \
             the first RTP packet reached the receiver at 0.53 s and the first frame was decoded \
             at 0.56 s (the startup delay)."
        );
        assert_eq!(
            account[1].text,
            "Nothing went wrong: the link was not impaired, no packet was lost and the picture \
             never froze."
        );
        assert_eq!(
            account[2].text,
            "What the viewer saw: 300 of the 300 frames sent were decoded (100.0 %) and the \
             picture never froze. Glass-to-glass latency (capture to decoded picture) was 45 ms \
             at the median."
        );
    }

    /// A freeze no impairment explains is told on its own, with the receiver's reason.
    #[test]
    fn a_freeze_outside_every_period_is_told_with_its_reason() {
        let mut v = startup();
        v.extend(media(10, |_| 0, |_| 0));
        v.push(rec(
            4.1,
            PeerRole::Receiver,
            Event::DecoderPli {
                reason: PliReason::DecodeError,
            },
        ));
        v.push(freeze(4.3, 300.0));
        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (4.0, Topic::Picture),
                (10.0, Topic::Viewer)
            ]
        );
        assert_eq!(
            account[1].text,
            "At 4.0 s the picture froze for 300 ms (a frame could not be decoded; the receiver \
             asked for a keyframe)."
        );
    }

    /// A browser receiver logs no `video.freeze`: its statistics' totals tell the freezes, each
    /// counted once even where two periods overlap.
    #[test]
    fn a_browsers_freezes_come_from_its_statistics() {
        let mut v = startup();
        for i in 1..=10_u32 {
            let t = f64::from(i);
            v.push(stats(t, PeerRole::Sender, 30 * u64::from(i), 0, 0));
            let mut s = stats(t, PeerRole::Browser, 30 * u64::from(i), 0, 0);
            if let Event::MediaStats(m) = &mut s.event {
                (m.freezes, m.freeze_ms) = if i >= 7 { (2, 900.0) } else { (0, 0.0) };
            }
            v.push(s);
        }
        let mut log = StatsLog::new("downlink");
        for i in 1..=10 {
            let random = if i >= 6 { 4 } else { 0 };
            v.push(log.second(f64::from(i), None, 96, 96_000, random, 0, None));
        }
        v.push(change("downlink", 5.0, None, json!({"loss_pct": 4.0})));
        v.push(change("uplink", 5.0, None, json!({"loss_pct": 4.0})));
        let account = account_of(v);
        assert_eq!(
            topics(&account),
            vec![
                (0.0, Topic::Startup),
                (5.0, Topic::Loss),
                (5.0, Topic::Impairment),
                (10.0, Topic::Viewer)
            ]
        );
        assert!(
            text_of(&account, Topic::Loss).ends_with("The picture froze twice, 900 ms in all."),
            "{account:#?}"
        );
        assert!(
            !text_of(&account, Topic::Impairment).contains("froze"),
            "{account:#?}"
        );
        assert!(
            text_of(&account, Topic::Viewer).contains("froze twice, 900 ms in all"),
            "{account:#?}"
        );
    }

    /// A recorded log in `tests/fixtures/` (trimmed; see the README there).
    fn recorded(name: &str) -> Vec<Sentence> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let records = rtclab_events::read_log(&path).expect("the fixture is a valid log");
        RunReport::from_records(&records).what_happened
    }

    fn assert_has(text: &str, parts: &[&str]) {
        for p in parts {
            assert!(text.contains(p), "{p:?} missing from: {text}");
        }
    }

    /// A real run of the bandwidth drop on a short clock (3 Mbps → 500 kbps at 8 s → 3 Mbps at
    /// 16 s), rtclab's controller, H.264.
    #[test]
    fn recorded_bandwidth_drop() {
        let account = recorded("bandwidth-drop-short.jsonl");
        let got: Vec<(String, Topic)> = account
            .iter()
            .map(|s| (format!("{:.1}", s.t_s), s.topic))
            .collect();
        let want: Vec<(String, Topic)> = [
            ("0.0", Topic::Startup),
            ("0.0", Topic::Link),
            ("8.0", Topic::CapacityDrop),
            ("16.0", Topic::CapacityRise),
            ("25.4", Topic::Picture),
            ("26.5", Topic::Viewer),
        ]
        .iter()
        .map(|(t, k)| ((*t).to_owned(), *k))
        .collect();
        assert_eq!(got, want, "{account:#?}");
        assert_has(
            text_of(&account, Topic::Startup),
            &["ICE connected at 0.11 s", "first frame by 1.33 s"],
        );
        assert_has(
            text_of(&account, Topic::CapacityDrop),
            &[
                "At 8.0 s the capacity fell from 3.00 Mbps to 500 kbps.",
                "reached 300 ms and 91 packets were dropped when it was full.",
                "below the new capacity in 0.21 s (delay-based over-use",
                "The encoder went 720p → 360p → 180p (first because too many frames went over \
                 budget).",
                "The picture froze 3 times, 2.1 s in all (longest 1.3 s).",
                "1 PLI (a frame was lost for good), and 1 keyframe answered.",
            ],
        );
        assert_has(
            text_of(&account, Topic::CapacityRise),
            &[
                "At 16.0 s the capacity rose from 500 kbps to 3.00 Mbps.",
                "back to 2.23 Mbps (90 % of its level before the drop) 5.36 s after the rise.",
                "180p → 360p → 540p",
            ],
        );
        assert_has(
            text_of(&account, Topic::Picture),
            &["At 25.4 s the encoder went 540p → 720p"],
        );
        assert_has(
            text_of(&account, Topic::Viewer),
            &[
                "741 of the 761 frames sent were decoded (97.4 %)",
                "froze 5 times, 2.5 s",
            ],
        );
    }

    /// A real run of `outage-3s` (no packet from 10 s to 13 s), rtclab's controller, H.264.
    #[test]
    fn recorded_outage() {
        let account = recorded("outage-3s.jsonl");
        let topics: Vec<Topic> = account.iter().map(|s| s.topic).collect();
        assert_eq!(
            topics,
            vec![Topic::Startup, Topic::Outage, Topic::Viewer],
            "{account:#?}"
        );
        assert_has(
            text_of(&account, Topic::Outage),
            &[
                "At 10.0 s the link went dead for 3.0 s (an outage: every packet dropped, 646 in \
                 all).",
                "The picture froze twice, 4.2 s in all (longest 4.0 s).",
                "The receiver's ICE lost contact at 13.2 s",
                "reconnected at 14.2 s.",
                "The receiver sent 24 NACKs",
                "the sender retransmitted 575 (0.89 per lost packet); 133 stayed lost.",
                "left the encoder at 13.0 s (sent as a bandwidth probe).",
                "The target fell from 3.00 Mbps to 398 kbps (loss-based: 99 % loss reported) and \
                 was back to 2.70 Mbps (90 % of its level before the outage) 4.18 s after the \
                 link came back.",
                "The encoder went 720p → 540p → 720p",
            ],
        );
        assert_has(
            text_of(&account, Topic::Viewer),
            &[
                "627 of the 738 frames sent were decoded (85.0 %)",
                "froze twice, 4.2 s in all",
            ],
        );
    }

    /// A long round trip is told with the link: it bounds how fast NACK repair can be.
    #[test]
    fn a_long_round_trip_is_told_with_the_link() {
        let mut v = startup();
        v.extend(media(10, |_| 0, |_| 0));
        for (i, rtt) in [290.0, 310.0, 300.0, 305.0, 295.0].into_iter().enumerate() {
            let mut e = bwe(1.0 + i as f64, 1e6, "normal", None);
            if let Event::BweEstimate { rtt_ms, .. } = &mut e.event {
                *rtt_ms = Some(rtt);
            }
            v.push(e);
        }
        let account = account_of(v);
        assert_eq!(
            text_of(&account, Topic::Link),
            "A round trip took 300 ms (the median RTT): a lost packet cannot be retransmitted \
             sooner than that."
        );
        assert_eq!(
            to_text(&account).lines().count(),
            4,
            "startup, link, nothing went wrong, the viewer"
        );
    }

    /// Without impairment statistics (a real network), the receiver's NACKs and lost count
    /// are the only sign of loss; the account says so instead of giving a loss rate.
    #[test]
    fn loss_without_impairment_statistics_is_told_from_the_receiver() {
        let mut v = startup();
        v.extend(media(
            10,
            |t| u64::from(t >= 4.0),
            |t| u64::from(t >= 4.0) * 2,
        ));
        for t in [3.2, 3.3] {
            v.push(rtcp_out(
                t,
                Rtcp::Nack {
                    media_ssrc: 1,
                    seqs: vec![7],
                },
            ));
        }
        let account = account_of(v);
        assert_eq!(
            text_of(&account, Topic::Loss),
            "From 3.2 s to the end (10.0 s) the receiver found packets missing, with no \
             impairment logged (the network's own loss). The receiver sent 2 NACKs naming \
             missing packets twice (it asks again until a repair arrives); the sender \
             retransmitted 2; 1 stayed lost. The picture did not freeze."
        );
    }

    #[test]
    fn an_empty_log_tells_nothing() {
        assert!(account_of(Vec::new()).is_empty());
    }

    #[test]
    fn the_terminal_summary_opens_with_the_account() {
        let mut v = startup();
        v.extend(media(10, |_| 0, |_| 0));
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
        let summary = crate::Summary::from_records(&v);
        assert_eq!(summary.what_happened.len(), 3);
        let mut out = Vec::new();
        crate::print_summary(&summary, &mut out).expect("writes to a Vec");
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("what happened\n  - Startup: "), "{out}");
        assert!(out.contains("\n  - Nothing went wrong"), "{out}");
        // Wrapped to the terminal, continued with an indent.
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
        assert!(out.contains("\n    "), "{out}");
    }
}
