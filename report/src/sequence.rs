//! The session's flow, from its log: who told whom what, and when — the joins, offer and answer,
//! the trickled candidates, ICE, DTLS, the first RTP and RTCP packets, the first decoded frame,
//! keyframe requests, big changes of the bandwidth estimate, and the end — as typed steps
//! ([`session_flow`]), drawn as a sequence diagram ([`sequence_svg`]); and the **startup delay**
//! with its four phases ([`startup_delay`]).
//!
//! Some instants are not seen when they happen. webrtc-rs 0.21 has no event for the selected
//! pair or the DTLS state, so the peer reads them when another state changes, or finds them by a
//! 200 ms poll (the `observed` field says which); a browser's events reach the log over the
//! signaling socket; without `media.first` the first picture is known only from once-a-second
//! statistics. Every step and every startup point says whether its instant is exact or inferred,
//! and by how much it may be late ([`Timing`]).
//!
//! Pure functions of the records: no clock, no I/O.

mod svg;

pub use svg::sequence_svg;

use crate::tables::fmt_bps;
use rtclab_events::{
    Candidate, Direction, Event, First, KeyframeReason, MediaDirection, Observed, PeerRole,
    PliReason, Record, Rtcp, Side,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many steps are drawn; details go first (see [`Step::detail`]), then the latest.
pub const MAX_STEPS: usize = 40;

/// Keyframe requests (PLI/FIR) drawn with the keyframe that answered them: the first few show
/// the mechanism; a lossy run has hundreds.
const MAX_KEYFRAME_REQUESTS: usize = 3;

/// Big estimate changes drawn: the largest few.
const MAX_BWE_CHANGES: usize = 5;

/// A change of the target by more than this share within [`BWE_WINDOW_S`] is "big".
const BWE_CHANGE: f64 = 0.30;

/// See [`BWE_CHANGE`].
const BWE_WINDOW_S: f64 = 1.0;

/// The peer polls the selected pair and the DTLS state this often (`peer/src/peer.rs`).
const POLL_MS: f64 = 200.0;

/// A selected pair logged this close to ICE `connected` was read at that change: one step.
const SAME_INSTANT_S: f64 = 0.0015;

/// The second peer's ICE `connected` gets a note of its own when it is this much later.
const LATER_END_S: f64 = 0.005;

/// A `decoder.pli` this long before a PLI on the wire is that PLI's reason.
const PLI_REASON_WINDOW_S: f64 = 0.2;

/// One column of the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    /// The peer that sends the video (the Rust sender, or a browser in `rtclab bench cc`).
    Sender,
    /// rtclab's signaling server: it relays the joins, offer, answer and candidates.
    Signaling,
    /// The STUN/TURN server: only when the log has `turn.*` events or srflx/relay candidates.
    StunTurn,
    /// The peer that receives the video (the Rust receiver, or a browser).
    Receiver,
}

/// How the moment a step happened is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inference {
    /// Found by the peer's 200 ms poll (`observed: poll`).
    Poll,
    /// Not read but implied: the peer connection became `connected`, which needs DTLS connected
    /// (`observed: implied_by_pc_state`, or a `pc.state` line standing in for DTLS).
    ImpliedByPcState,
    /// A log from before `observed` existed: the DTLS state and the pair were polled then.
    UnmarkedPoll,
    /// A browser's event, logged when it reached rtclab over the signaling socket.
    Browser,
    /// Once-a-second statistics: the moment lies in the second before the line.
    Statistics,
}

/// Whether a step's time is the moment it happened, or a later moment it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "timing", rename_all = "snake_case")]
pub enum Timing {
    /// Logged by the event itself.
    Exact,
    /// Seen after it happened: the real moment lies up to `late_by_ms` before the step's time
    /// (`None`: no known bound).
    Inferred {
        /// How it was seen.
        how: Inference,
        /// The most it may be late, ms.
        late_by_ms: Option<f64>,
    },
}

impl Timing {
    /// The timing of a `dtls.state` or `ice.selected_pair` line, from its `observed` field.
    pub fn from_observed(observed: Option<Observed>) -> Timing {
        match observed {
            Some(Observed::OnStateChange) => Timing::Exact,
            Some(Observed::Poll) => Timing::Inferred {
                how: Inference::Poll,
                late_by_ms: Some(POLL_MS),
            },
            // Late by the state event's dispatch only (see `Observed::ImpliedByPcState`).
            Some(Observed::ImpliedByPcState) => implied(),
            None => Timing::Inferred {
                how: Inference::UnmarkedPoll,
                late_by_ms: Some(POLL_MS),
            },
        }
    }

    /// True when the step's time is the moment it happened.
    pub fn is_exact(&self) -> bool {
        matches!(self, Timing::Exact)
    }

    /// How the moment is known, in a few words (empty for an exact one).
    pub fn explain(&self) -> String {
        let Timing::Inferred { how, late_by_ms } = self else {
            return String::new();
        };
        let bound = late_by_ms.map_or_else(String::new, |ms| format!(", up to {ms:.0} ms late"));
        match how {
            Inference::Poll => format!("seen by the 200 ms poll{bound}"),
            Inference::UnmarkedPoll => format!("older log, polled every 200 ms{bound}"),
            Inference::ImpliedByPcState => {
                "implied by the peer connection's connected state, at the same moment".to_owned()
            }
            Inference::Browser => {
                "the browser's event, logged when it reached rtclab (a few ms late)".to_owned()
            }
            Inference::Statistics => format!("from once-a-second statistics{bound}"),
        }
    }

    /// Which of two timings of the same moment to believe: exact before inferred, then the
    /// smaller bound.
    fn rank(&self) -> (u8, u64) {
        match self {
            Timing::Exact => (0, 0),
            Timing::Inferred { late_by_ms, .. } => {
                (1, late_by_ms.map_or(u64::MAX, |ms| ms.max(0.0) as u64))
            }
        }
    }
}

fn implied() -> Timing {
    Timing::Inferred {
        how: Inference::ImpliedByPcState,
        late_by_ms: Some(1.0),
    }
}

fn browser() -> Timing {
    Timing::Inferred {
        how: Inference::Browser,
        late_by_ms: None,
    }
}

/// What a step is. The order is the protocol's: steps logged at the same instant are drawn in
/// this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A peer joined the room (or learned that the other did).
    Join,
    /// A STUN Binding (server-reflexive address) or a TURN request (allocation, permission,
    /// channel).
    StunTurn,
    /// The SDP offer, sent or received.
    Offer,
    /// The SDP answer, sent or received.
    Answer,
    /// One side's trickled ICE candidates, collapsed into one step with a count.
    Candidates,
    /// ICE connectivity checks began (`checking`).
    IceChecking,
    /// ICE found a working pair (`connected`).
    IceConnected,
    /// The selected candidate pair, when it was seen apart from ICE `connected`, or changed.
    SelectedPair,
    /// ICE lost or regained contact after it first connected.
    IceState,
    /// The DTLS handshake finished: the SRTP keys exist.
    DtlsConnected,
    /// The first RTP packet.
    FirstRtp,
    /// The first RTCP packet of one direction.
    FirstRtcp,
    /// The first decoded frame.
    FirstFrame,
    /// A keyframe request (PLI or FIR) from the receiver.
    KeyframeRequest,
    /// The keyframe that answered it.
    Keyframe,
    /// The congestion controller's target moved by more than 30 % within a second.
    BweChange,
    /// Another signaling message (connection lost and regained, a page's stop).
    Signaling,
    /// A peer said goodbye or left.
    Leave,
    /// The session ended.
    End,
}

impl StepKind {
    /// The name used when steps of this kind are counted ("keyframe requests").
    fn plural(self) -> &'static str {
        match self {
            StepKind::Join => "joins",
            StepKind::StunTurn => "STUN/TURN requests",
            StepKind::Offer => "offers",
            StepKind::Answer => "answers",
            StepKind::Candidates => "candidate steps",
            StepKind::IceChecking | StepKind::IceConnected | StepKind::IceState => {
                "ICE state changes"
            }
            StepKind::SelectedPair => "selected-pair changes",
            StepKind::DtlsConnected => "DTLS steps",
            StepKind::FirstRtp | StepKind::FirstRtcp | StepKind::FirstFrame => "firsts",
            StepKind::KeyframeRequest => "keyframe requests",
            StepKind::Keyframe => "keyframes",
            StepKind::BweChange => "big estimate changes",
            StepKind::Signaling => "signaling messages",
            StepKind::Leave => "leaves",
            StepKind::End => "ends",
        }
    }
}

/// One step of the flow: an arrow between two participants, or a note on one lifeline when
/// `from == to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// When, s since the session started.
    pub t_s: f64,
    /// Who acted (or whose state changed).
    pub from: Participant,
    /// Who it was for; `from` again for a state change on one lifeline.
    pub to: Participant,
    /// What kind of step.
    pub what: StepKind,
    /// The arrow's or note's text.
    pub label: String,
    /// Whether `t_s` is exact or inferred, and by how much.
    #[serde(flatten)]
    pub timing: Timing,
    /// A detail the diagram may leave out when it is full (later pair changes, keyframe
    /// requests, estimate changes, TURN permissions).
    pub detail: bool,
}

impl Step {
    /// Both ways at once: ICE checks and DTLS run between the two peers.
    pub fn is_exchange(&self) -> bool {
        matches!(
            self.what,
            StepKind::IceChecking | StepKind::IceConnected | StepKind::DtlsConnected
        ) && self.from != self.to
    }
}

/// The session's flow: its participants, left to right, and its steps in time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionFlow {
    /// The diagram's columns, left to right.
    pub participants: Vec<Participant>,
    /// The sending peer's name in the diagram.
    pub sender_name: String,
    /// The receiving peer's name in the diagram.
    pub receiver_name: String,
    /// The steps, in time order (at most [`MAX_STEPS`]).
    pub steps: Vec<Step>,
    /// Steps not drawn, by kind: beyond the first few keyframe requests or the largest estimate
    /// changes, or beyond [`MAX_STEPS`].
    pub left_out: Vec<(StepKind, usize)>,
}

impl SessionFlow {
    /// The name of a participant as the diagram shows it.
    pub fn name(&self, p: Participant) -> &str {
        match p {
            Participant::Sender => &self.sender_name,
            Participant::Signaling => "signaling server",
            Participant::StunTurn => "STUN/TURN server",
            Participant::Receiver => &self.receiver_name,
        }
    }

    /// How many steps were left out in all.
    pub fn left_out_count(&self) -> usize {
        self.left_out.iter().map(|(_, n)| n).sum()
    }

    /// What was left out: "14 keyframe requests, 2 big estimate changes" (empty: nothing).
    pub fn left_out_text(&self) -> String {
        let parts: Vec<String> = self
            .left_out
            .iter()
            .map(|(k, n)| format!("{n} {}", k.plural()))
            .collect();
        parts.join(", ")
    }
}

/// A moment of the startup, and how well it is known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StartupPoint {
    /// When, s since the session started.
    pub at_s: f64,
    /// Exact or inferred.
    #[serde(flatten)]
    pub timing: Timing,
}

/// Where the moment of the first decoded frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstFrameFrom {
    /// The receiver's `media.first frame_decoded`: exact.
    MediaFirst,
    /// The browser page's `first frame` event (`loadeddata`).
    BrowserEvent,
    /// The first receiver `qoe` or `media.stats` line with a decoded frame: up to a second late.
    Statistics,
}

/// The startup delay: from the first peer's join to the first decoded frame, in four phases
/// that add up to the total.
///
/// Each phase starts where the previous one ended. When the log has a later phase's end before
/// an earlier one's (the answerer can reach ICE `connected` before the offerer reads the
/// answer), the later point is moved up to the earlier, so no phase is negative.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartupDelay {
    /// First join → first decoded frame, ms.
    pub total_ms: f64,
    /// First join → answer received: the peers meet and agree on the session (SDP).
    pub signaling_ms: f64,
    /// Answer received → ICE connected: connectivity checks find a working path.
    pub ice_ms: f64,
    /// ICE connected → DTLS connected: the handshake that yields the SRTP keys.
    pub dtls_ms: f64,
    /// DTLS connected → first decoded frame: the first keyframe encoded, sent and decoded.
    pub first_frame_ms: f64,
    /// The first join (`signaling` "joined room", or a page's start).
    pub joined: StartupPoint,
    /// The answer reaching the offerer.
    pub answer_received: StartupPoint,
    /// The first peer's ICE `connected`.
    pub ice_connected: StartupPoint,
    /// The first DTLS `connected` (or the peer connection's, which implies it).
    pub dtls_connected: StartupPoint,
    /// The first decoded frame.
    pub first_frame: StartupPoint,
    /// Where `first_frame` comes from.
    pub first_frame_from: FirstFrameFrom,
}

impl StartupDelay {
    /// The phases with their names, in order.
    pub fn phases(&self) -> [(&'static str, f64); 4] {
        [
            ("signaling", self.signaling_ms),
            ("ICE", self.ice_ms),
            ("DTLS", self.dtls_ms),
            ("first frame", self.first_frame_ms),
        ]
    }

    /// The phases with their names, durations and what happens in each, in plain words for
    /// someone learning real-time media.
    pub fn explained_phases(&self) -> [(&'static str, f64, &'static str); 4] {
        [
            (
                "signaling",
                self.signaling_ms,
                "The peers join a room on the signaling server and swap the SDP offer and \
                 answer: codecs, ICE credentials and the fingerprint of each DTLS certificate.",
            ),
            (
                "ICE",
                self.ice_ms,
                "ICE sends STUN connectivity checks over the candidate pairs until one pair \
                 works, and the peers use that path (RFC 8445).",
            ),
            (
                "DTLS",
                self.dtls_ms,
                "Over that path the peers run a DTLS handshake (RFC 6347, RFC 9147) and take \
                 the SRTP keys from it (DTLS-SRTP, RFC 5764).",
            ),
            (
                "first frame",
                self.first_frame_ms,
                "The sender encodes a keyframe and sends it as RTP; the receiver collects its \
                 packets and decodes the first picture.",
            ),
        ]
    }

    /// One line for a terminal: "startup delay 578 ms: signaling 105 ms, ICE 199 ms, ...".
    pub fn summary_line(&self) -> String {
        let phases: Vec<String> = self
            .phases()
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.0} ms"))
            .collect();
        let mut line = format!(
            "startup delay {:.0} ms: {}",
            self.total_ms,
            phases.join(", ")
        );
        let inferred: Vec<&str> = [
            ("join", &self.joined),
            ("answer", &self.answer_received),
            ("ICE", &self.ice_connected),
            ("DTLS", &self.dtls_connected),
            ("first frame", &self.first_frame),
        ]
        .iter()
        .filter(|(_, p)| !p.timing.is_exact())
        .map(|(n, _)| *n)
        .collect();
        if self.first_frame_from == FirstFrameFrom::Statistics {
            line.push_str(" (first frame from once-a-second statistics: coarser)");
        } else if !inferred.is_empty() {
            line.push_str(&format!(" (inferred: {})", inferred.join(", ")));
        }
        line
    }
}

/// One moment found in the log.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    timing: Timing,
    who: Participant,
}

impl Point {
    fn startup(self) -> StartupPoint {
        StartupPoint {
            at_s: self.t,
            timing: self.timing,
        }
    }
}

/// Keeps the earlier point; at the same instant, the better-known one.
fn earliest(slot: &mut Option<Point>, p: Point) {
    let better = match slot {
        None => true,
        Some(old) => p.t < old.t || (p.t == old.t && p.timing.rank() < old.timing.rank()),
    };
    if better {
        *slot = Some(p);
    }
}

/// Which participant a peer's lines belong to.
#[derive(Debug, Clone, Copy)]
struct Roles {
    sending: PeerRole,
    receiving: PeerRole,
}

impl Roles {
    fn of(records: &[Record]) -> Roles {
        // A short or interrupted browser run may have no statistics to tell who received;
        // then a browser with no Rust peer of that role beside it is that peer.
        let logged = |p| records.iter().any(|r| r.peer == p);
        let stand_in = |role: PeerRole, rust: PeerRole| {
            if role == rust && !logged(rust) && logged(PeerRole::Browser) {
                PeerRole::Browser
            } else {
                role
            }
        };
        let sending = stand_in(rtclab_events::sending_peer(records), PeerRole::Sender);
        let receiving = stand_in(rtclab_events::receiving_peer(records), PeerRole::Receiver);
        Roles { sending, receiving }
    }

    fn who(self, peer: PeerRole) -> Option<Participant> {
        if peer == PeerRole::Lab {
            None
        } else if peer == self.sending {
            Some(Participant::Sender)
        } else {
            Some(Participant::Receiver)
        }
    }

    /// The other peer.
    fn other(p: Participant) -> Participant {
        if p == Participant::Sender {
            Participant::Receiver
        } else {
            Participant::Sender
        }
    }
}

/// The moments both the flow and the startup delay are built on.
#[derive(Debug, Default)]
struct Moments {
    joined: Option<Point>,
    answer_received: Option<Point>,
    ice_checking: Option<Point>,
    /// Each peer's first ICE `connected`.
    ice_connected_by: BTreeMap<Participant, Point>,
    dtls_connected: Option<Point>,
    first_frame: Option<(Point, FirstFrameFrom)>,
}

/// The `state` of a browser event such as `ice state` / `pc state`.
fn browser_state(detail: &serde_json::Value) -> Option<&str> {
    detail.get("state").and_then(serde_json::Value::as_str)
}

/// Keeps a peer's first ICE `connected`.
fn connected(by: &mut BTreeMap<Participant, Point>, p: Point) {
    let mut slot = by.get(&p.who).copied();
    earliest(&mut slot, p);
    if let Some(first) = slot {
        by.insert(p.who, first);
    }
}

impl Moments {
    /// The first peer's ICE `connected`: a working pair at one end.
    fn ice_first(&self) -> Option<Point> {
        let mut first = None;
        for p in self.ice_connected_by.values() {
            earliest(&mut first, *p);
        }
        first
    }

    /// ICE connected at both ends: the later peer's first `connected` (the one peer's, when
    /// the log has only one). DTLS needs a path both ways, so its phase starts here.
    fn ice_both(&self) -> Option<Point> {
        self.ice_connected_by
            .values()
            .copied()
            .max_by(|a, b| a.t.total_cmp(&b.t))
    }
}

fn moments(records: &[Record], roles: Roles) -> Moments {
    let mut m = Moments::default();
    let mut frame_exact: Option<Point> = None;
    let mut frame_browser: Option<Point> = None;
    let mut frame_stats: Option<Point> = None;
    // The receiving peer's previous statistics line bounds how late a frame count can be.
    let mut last_stats_t: Option<f64> = None;
    for r in records {
        let Some(who) = roles.who(r.peer) else {
            continue;
        };
        let at = |timing| Point {
            t: r.t,
            timing,
            who,
        };
        let from_browser = r.peer == PeerRole::Browser;
        match &r.event {
            Event::Signaling { what } if what.starts_with("joined room") => {
                earliest(&mut m.joined, at(Timing::Exact));
            }
            Event::Signaling { what } if what == "answer received" => {
                earliest(&mut m.answer_received, at(Timing::Exact));
            }
            Event::IceState { state } if state == "checking" => {
                earliest(&mut m.ice_checking, at(Timing::Exact));
            }
            Event::IceState { state } if state == "connected" || state == "completed" => {
                connected(&mut m.ice_connected_by, at(Timing::Exact));
            }
            Event::DtlsState { state, observed } if state == "connected" => {
                earliest(&mut m.dtls_connected, at(Timing::from_observed(*observed)));
            }
            // The W3C defines `connected` as every ICE and DTLS transport connected: an older
            // log's polled DTLS line can come later than this.
            Event::PcState { state } if state == "connected" => {
                earliest(&mut m.dtls_connected, at(implied()));
            }
            Event::BrowserEvent { what, detail } if from_browser => {
                let state = browser_state(detail);
                match (what.as_str(), state) {
                    // The page joins the room when it starts.
                    ("start", _) => earliest(&mut m.joined, at(browser())),
                    ("answer received", _) => earliest(&mut m.answer_received, at(browser())),
                    ("ice state", Some("checking")) => {
                        earliest(&mut m.ice_checking, at(browser()));
                    }
                    ("ice state", Some("connected" | "completed")) => {
                        connected(&mut m.ice_connected_by, at(browser()));
                    }
                    ("pc state", Some("connected")) => {
                        earliest(&mut m.dtls_connected, at(browser()));
                    }
                    ("first frame", _) if who == Participant::Receiver => {
                        earliest(&mut frame_browser, at(browser()));
                    }
                    _ => {}
                }
            }
            Event::MediaFirst {
                what: First::FrameDecoded,
            } if who == Participant::Receiver => earliest(&mut frame_exact, at(Timing::Exact)),
            Event::MediaStats(s)
                if r.peer == roles.receiving && s.direction == MediaDirection::Recv =>
            {
                if s.frames > 0 {
                    let late = r.t - last_stats_t.unwrap_or(r.t - 1.0);
                    earliest(&mut frame_stats, at(statistics(late)));
                }
                last_stats_t = Some(r.t);
            }
            Event::Qoe(q) if r.peer == roles.receiving && q.frames_decoded > 0 => {
                earliest(&mut frame_stats, at(statistics(1.0)));
            }
            _ => {}
        }
    }
    m.first_frame = frame_exact
        .map(|p| (p, FirstFrameFrom::MediaFirst))
        .or(frame_browser.map(|p| (p, FirstFrameFrom::BrowserEvent)))
        .or(frame_stats.map(|p| (p, FirstFrameFrom::Statistics)));
    m
}

fn statistics(late_s: f64) -> Timing {
    Timing::Inferred {
        how: Inference::Statistics,
        late_by_ms: Some((late_s.clamp(0.0, 1.0) * 1e3).round()),
    }
}

/// The startup delay and its phases; `None` when the log lacks one of the five moments (a
/// call that never connected, or a log without signaling lines).
pub fn startup_delay(records: &[Record]) -> Option<StartupDelay> {
    let m = moments(records, Roles::of(records));
    let (frame, first_frame_from) = m.first_frame?;
    let mut points = [
        m.joined?.startup(),
        m.answer_received?.startup(),
        m.ice_both()?.startup(),
        m.dtls_connected?.startup(),
        frame.startup(),
    ];
    // No phase may be negative: a point logged before the previous one is moved up to it.
    for i in 1..points.len() {
        if points[i].at_s < points[i - 1].at_s {
            points[i].at_s = points[i - 1].at_s;
        }
    }
    let ms = |a: usize, b: usize| ((points[b].at_s - points[a].at_s) * 1e3 * 10.0).round() / 10.0;
    let [
        joined,
        answer_received,
        ice_connected,
        dtls_connected,
        first_frame,
    ] = points;
    let phases = [ms(0, 1), ms(1, 2), ms(2, 3), ms(3, 4)];
    Some(StartupDelay {
        // The sum of the rounded phases, so that the line a reader adds up agrees.
        total_ms: ((phases.iter().sum::<f64>()) * 10.0).round() / 10.0,
        signaling_ms: phases[0],
        ice_ms: phases[1],
        dtls_ms: phases[2],
        first_frame_ms: phases[3],
        joined,
        answer_received,
        ice_connected,
        dtls_connected,
        first_frame,
        first_frame_from,
    })
}

/// "host ↔ relay" from the sending peer's side; with "via TURN" when a relay is in it.
fn pair_label(local: &Candidate, remote: &Candidate, logged_by: Participant) -> String {
    let (s, r) = if logged_by == Participant::Sender {
        (local, remote)
    } else {
        (remote, local)
    };
    let via = if s.typ == "relay" || r.typ == "relay" {
        " via TURN"
    } else {
        ""
    };
    format!("{} ↔ {} ({}){via}", s.typ, r.typ, s.protocol)
}

/// "3 candidates (host 2, relay 1)", "1 candidate (host)".
fn candidates_label(cands: &[&Candidate]) -> String {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for c in cands {
        *by_type.entry(c.typ.as_str()).or_default() += 1;
    }
    // One type needs no count of its own: "2 candidates (host)".
    let types: Vec<String> = if by_type.len() == 1 {
        by_type.keys().map(|t| (*t).to_owned()).collect()
    } else {
        by_type.iter().map(|(t, n)| format!("{t} {n}")).collect()
    };
    let n = cands.len();
    format!(
        "{n} candidate{} ({})",
        if n == 1 { "" } else { "s" },
        types.join(", ")
    )
}

fn step(t_s: f64, from: Participant, to: Participant, what: StepKind, label: String) -> Step {
    Step {
        t_s,
        from,
        to,
        what,
        label,
        timing: Timing::Exact,
        detail: false,
    }
}

fn timed(mut s: Step, timing: Timing) -> Step {
    s.timing = timing;
    s
}

fn detail(mut s: Step) -> Step {
    s.detail = true;
    s
}

/// The signaling lines of one peer as steps between it and the server.
fn signaling_step(t: f64, who: Participant, what: &str) -> Option<Step> {
    use Participant::Signaling as S;
    let s = |from, to, kind, label: &str| Some(step(t, from, to, kind, label.to_owned()));
    match what {
        w if w.starts_with("joined room") => s(who, S, StepKind::Join, "join room"),
        w if w.starts_with("rejoined room") => s(who, S, StepKind::Signaling, "rejoin room"),
        "peer joined" => s(S, who, StepKind::Join, "peer joined"),
        "offer sent" => s(who, S, StepKind::Offer, "offer (SDP)"),
        "offer received" => s(S, who, StepKind::Offer, "offer"),
        "answer sent" => s(who, S, StepKind::Answer, "answer (SDP)"),
        "answer received" => s(S, who, StepKind::Answer, "answer"),
        "bye sent" => s(who, S, StepKind::Leave, "bye"),
        "peer left" => s(S, who, StepKind::Leave, "peer left"),
        w if w.starts_with("signaling server") => None,
        other => Some(detail(step(
            t,
            who,
            S,
            StepKind::Signaling,
            other.to_owned(),
        ))),
    }
}

/// The steps of a browser's own events that concern the flow.
fn browser_step(t: f64, who: Participant, what: &str) -> Option<Step> {
    use Participant::Signaling as S;
    let s = |from, to, kind, label: &str| {
        Some(timed(step(t, from, to, kind, label.to_owned()), browser()))
    };
    match what {
        "start" => s(who, S, StepKind::Join, "join room (page started)"),
        "offer sent" => s(who, S, StepKind::Offer, "offer (SDP)"),
        "answer sent" => s(who, S, StepKind::Answer, "answer (SDP)"),
        "answer received" => s(S, who, StepKind::Answer, "answer"),
        "stop" => s(who, S, StepKind::Leave, "stop"),
        _ => None,
    }
}

/// Big moves of the target: more than [`BWE_CHANGE`] within [`BWE_WINDOW_S`], each measured from
/// the previous big move (so a steady ramp is one step per 30 %, not one per estimate).
fn bwe_changes(records: &[Record], sending: PeerRole) -> Vec<(f64, f64, f64, bool)> {
    let mut out = Vec::new();
    // Targets in force during the last second, oldest first.
    let mut window: Vec<(f64, f64)> = Vec::new();
    for r in records.iter().filter(|r| r.peer == sending) {
        let Event::BweEstimate {
            target_bps, detail, ..
        } = &r.event
        else {
            continue;
        };
        let (t, v) = (r.t, *target_bps);
        if v <= 0.0 {
            continue;
        }
        // The value in force at t - 1 s is the last one logged before it: keep that one.
        while window.len() > 1 && window[1].0 <= t - BWE_WINDOW_S {
            window.remove(0);
        }
        let big = window.iter().find(|(_, old)| {
            let ratio = v / old;
            !(1.0 - BWE_CHANGE..=1.0 + BWE_CHANGE).contains(&ratio)
        });
        if let Some(&(_, old)) = big {
            let overuse = detail.state.as_deref() == Some("overuse");
            out.push((t, old, v, overuse));
            window.clear();
        }
        window.push((t, v));
    }
    out
}

/// Counts what a step list left out, by kind.
fn count_left_out(left_out: &mut BTreeMap<StepKind, usize>, kind: StepKind, n: usize) {
    if n > 0 {
        *left_out.entry(kind).or_default() += n;
    }
}

/// The session's flow, from its records: the participants and the steps, in time order, at
/// most [`MAX_STEPS`] of them.
pub fn session_flow(records: &[Record]) -> SessionFlow {
    use Participant::{Receiver, Sender, Signaling, StunTurn};
    let roles = Roles::of(records);
    let m = moments(records, roles);
    let mut steps: Vec<Step> = Vec::new();
    let mut left_out: BTreeMap<StepKind, usize> = BTreeMap::new();

    // Candidates by participant and side, with their time.
    let mut local: BTreeMap<Participant, Vec<(f64, &Candidate)>> = BTreeMap::new();
    let mut remote: BTreeMap<Participant, Vec<(f64, &Candidate)>> = BTreeMap::new();
    let mut turn_events = false;
    let mut first_pair: Option<(Point, String, bool)> = None;
    // Each peer's last pair, to draw a change of it.
    let mut last_pair: BTreeMap<Participant, (String, u16, String, u16)> = BTreeMap::new();
    let mut ice_state: BTreeMap<Participant, String> = BTreeMap::new();
    let mut rtp_sent: Option<f64> = None;
    let mut rtp_received: Option<f64> = None;
    let mut first_rtcp: BTreeMap<Participant, (f64, &'static str)> = BTreeMap::new();
    let (fb_peer, fb_dir) = rtclab_events::feedback_seen_at(roles.receiving);
    let mut requests: Vec<(f64, &'static str)> = Vec::new();
    let mut pli_reasons: Vec<(f64, PliReason)> = Vec::new();
    let mut keyframes: Vec<(f64, Option<f64>)> = Vec::new();
    let mut end: Option<(f64, String)> = None;

    for r in records {
        let who = roles.who(r.peer);
        match (&r.event, who) {
            (Event::Signaling { what }, Some(who)) => {
                steps.extend(signaling_step(r.t, who, what));
            }
            (Event::BrowserEvent { what, .. }, Some(who)) => {
                steps.extend(browser_step(r.t, who, what));
            }
            (Event::IceCandidate { side, candidate }, Some(who)) => {
                let list = match side {
                    Side::Local => local.entry(who).or_default(),
                    Side::Remote => remote.entry(who).or_default(),
                };
                list.push((r.t, candidate));
            }
            (
                Event::IceSelectedPair {
                    local: l,
                    remote: rm,
                    observed,
                },
                Some(who),
            ) => {
                let key = (l.address.clone(), l.port, rm.address.clone(), rm.port);
                let label = pair_label(l, rm, who);
                let relayed = l.typ == "relay" || rm.typ == "relay";
                let point = Point {
                    t: r.t,
                    timing: Timing::from_observed(*observed),
                    who,
                };
                if first_pair.is_none() {
                    first_pair = Some((point, label.clone(), relayed));
                } else if last_pair.get(&who).is_some_and(|old| *old != key) {
                    steps.push(detail(timed(
                        step(
                            r.t,
                            who,
                            who,
                            StepKind::SelectedPair,
                            format!("new pair {label}"),
                        ),
                        point.timing,
                    )));
                }
                last_pair.insert(who, key);
            }
            (Event::IceState { state }, Some(who)) => {
                // After the first connection, losing and regaining contact are steps.
                let before = ice_state.insert(who, state.clone());
                let was_up = m.ice_connected_by.get(&who).is_some_and(|p| r.t > p.t);
                if was_up
                    && before.as_deref() != Some(state.as_str())
                    && matches!(state.as_str(), "disconnected" | "failed" | "connected")
                {
                    let again = if state == "connected" { " again" } else { "" };
                    steps.push(detail(step(
                        r.t,
                        who,
                        who,
                        StepKind::IceState,
                        format!("ICE {state}{again}"),
                    )));
                }
            }
            (Event::MediaFirst { what }, Some(_)) => match what {
                First::RtpSent if r.peer == roles.sending => {
                    rtp_sent.get_or_insert(r.t);
                }
                First::RtpReceived if r.peer == roles.receiving => {
                    rtp_received.get_or_insert(r.t);
                }
                _ => {}
            },
            (Event::Rtcp { direction, packet }, Some(who)) => {
                // The first RTCP of each direction, named by its sender, wherever it was seen.
                let from = match direction {
                    Direction::Out => who,
                    Direction::In => Roles::other(who),
                };
                let seen = first_rtcp.entry(from).or_insert((r.t, packet.type_name()));
                if r.t < seen.0 {
                    *seen = (r.t, packet.type_name());
                }
                if r.peer == fb_peer && *direction == fb_dir {
                    match packet {
                        Rtcp::Pli { .. } => requests.push((r.t, "PLI")),
                        Rtcp::Fir { .. } => requests.push((r.t, "FIR")),
                        _ => {}
                    }
                }
            }
            (Event::DecoderPli { reason }, Some(_)) if r.peer == roles.receiving => {
                pli_reasons.push((r.t, *reason));
            }
            (
                Event::EncoderKeyframe {
                    reason: KeyframeReason::Pli | KeyframeReason::Fir,
                    after_request_ms,
                    ..
                },
                Some(_),
            ) if r.peer == roles.sending => keyframes.push((r.t, *after_request_ms)),
            (Event::SessionEnd { reason, .. }, _) => end = Some((r.t, reason.clone())),
            (e, _) if e.kind().starts_with("turn.") => turn_events = true,
            _ => {}
        }
    }

    // Candidates: one step per side. Its time is when the other side learned the first of
    // them (what ICE needs), else when they were gathered.
    for side in [Sender, Receiver] {
        let other = Roles::other(side);
        let learned: Vec<&Candidate> = remote
            .get(&other)
            .map_or_else(Vec::new, |v| v.iter().map(|(_, c)| *c).collect());
        let gathered: Vec<&Candidate> = local
            .get(&side)
            .map_or_else(Vec::new, |v| v.iter().map(|(_, c)| *c).collect());
        let t = remote
            .get(&other)
            .and_then(|v| v.first())
            .or_else(|| local.get(&side).and_then(|v| v.first()))
            .map(|(t, _)| *t);
        let list = if learned.is_empty() {
            gathered
        } else {
            learned
        };
        if let Some(t) = t {
            steps.push(step(
                t,
                side,
                other,
                StepKind::Candidates,
                format!("{} via signaling", candidates_label(&list)),
            ));
        }
    }

    // The STUN/TURN server takes part when a peer used it: its events, or candidates from it.
    let from_server = |c: &Candidate| c.typ == "relay" || c.typ == "srflx";
    let uses_server = turn_events
        || local
            .values()
            .chain(remote.values())
            .flatten()
            .any(|(_, c)| from_server(c));
    if uses_server {
        turn_steps(records, &local, &remote, &mut steps);
    }

    if let Some(p) = m.ice_checking {
        steps.push(timed(
            step(
                p.t,
                Sender,
                Receiver,
                StepKind::IceChecking,
                "ICE checks (STUN Binding)".into(),
            ),
            p.timing,
        ));
    }
    if let Some(first) = m.ice_first() {
        // A pair read at the very change that made a peer connected shares its step.
        let pair_at = |p: &Point, any_peer: bool| {
            first_pair.as_ref().and_then(|(pair, text, _)| {
                let same = pair.timing.is_exact()
                    && (pair.t - p.t).abs() <= SAME_INSTANT_S
                    && (any_peer || pair.who == p.who);
                same.then(|| text.clone())
            })
        };
        let mut merged = false;
        let label = pair_at(&first, true)
            .inspect(|_| merged = true)
            .map(|text| format!("ICE connected: {text}"));
        steps.push(timed(
            step(
                first.t,
                Sender,
                Receiver,
                StepKind::IceConnected,
                label.unwrap_or_else(|| "ICE connected".to_owned()),
            ),
            first.timing,
        ));
        // The other end, when it connected noticeably later (a browser answerer is often
        // connected well before the Rust offerer): a note on its lifeline.
        for p in m.ice_connected_by.values() {
            if p.who == first.who || p.t - first.t <= LATER_END_S {
                continue;
            }
            let label = match pair_at(p, false) {
                Some(text) if !merged => {
                    merged = true;
                    format!("ICE connected at this end: {text}")
                }
                _ => "ICE connected at this end".to_owned(),
            };
            steps.push(timed(
                step(p.t, p.who, p.who, StepKind::IceConnected, label),
                p.timing,
            ));
        }
        if let Some((pair, text, _)) = first_pair.as_ref().filter(|_| !merged) {
            steps.push(timed(
                step(
                    pair.t,
                    pair.who,
                    pair.who,
                    StepKind::SelectedPair,
                    format!("pair {text}"),
                ),
                pair.timing,
            ));
        }
    }
    if let Some(p) = m.dtls_connected {
        steps.push(timed(
            step(
                p.t,
                Sender,
                Receiver,
                StepKind::DtlsConnected,
                "DTLS connected: SRTP keys ready".into(),
            ),
            p.timing,
        ));
    }
    let via = if first_pair.as_ref().is_some_and(|(_, _, relayed)| *relayed) {
        " via TURN"
    } else {
        ""
    };
    match (rtp_sent, rtp_received) {
        (Some(s), r) => {
            let arrived = r.map_or_else(String::new, |r| format!(", in at {r:.3} s"));
            steps.push(step(
                s,
                Sender,
                Receiver,
                StepKind::FirstRtp,
                format!("first RTP (SRTP){via}{arrived}"),
            ));
        }
        (None, Some(r)) => steps.push(step(
            r,
            Sender,
            Receiver,
            StepKind::FirstRtp,
            format!("first RTP (SRTP){via}, received"),
        )),
        (None, None) => {}
    }
    for (from, (t, name)) in &first_rtcp {
        steps.push(step(
            *t,
            *from,
            Roles::other(*from),
            StepKind::FirstRtcp,
            format!("first RTCP: {name}"),
        ));
    }
    if let Some((p, from)) = m.first_frame {
        let label = match from {
            FirstFrameFrom::Statistics => "first frame decoded (by)",
            _ => "first frame decoded",
        };
        steps.push(timed(
            step(p.t, Receiver, Receiver, StepKind::FirstFrame, label.into()),
            p.timing,
        ));
    }

    // Keyframe requests and the keyframes that answered them: the first few. A keyframe names
    // how long after its request it left (`after_request_ms`), which finds the request; the
    // requests the sender held back (one keyframe per 300 ms) answer to no keyframe.
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    for (k, (kt, after)) in keyframes.iter().enumerate() {
        // Only the first few are drawn: a lossy hour has thousands.
        if pairs.len() == MAX_KEYFRAME_REQUESTS {
            break;
        }
        let asked_by = kt - after.unwrap_or(0.0) / 1e3 + SAME_INSTANT_S;
        let request = requests.iter().rposition(|(t, _)| *t <= asked_by);
        if let Some(i) = request
            && !pairs.iter().any(|(j, _)| *j == i)
        {
            pairs.push((i, Some(k)));
        }
    }
    if pairs.is_empty() {
        pairs = (0..requests.len()).map(|i| (i, None)).collect();
    }
    pairs.truncate(MAX_KEYFRAME_REQUESTS);
    count_left_out(
        &mut left_out,
        StepKind::KeyframeRequest,
        requests.len() - pairs.len(),
    );
    for (i, k) in pairs {
        let (t, name) = requests[i];
        let reason = pli_reasons
            .iter()
            .rev()
            .find(|(pt, _)| *pt <= t && t - pt <= PLI_REASON_WINDOW_S)
            .map(|(_, r)| match r {
                PliReason::DecodeError => " (decode error)",
                PliReason::FrameLost => " (frame lost)",
                PliReason::Interval => " (test interval)",
            })
            .unwrap_or("");
        steps.push(detail(step(
            t,
            Receiver,
            Sender,
            StepKind::KeyframeRequest,
            format!("{name}{reason}"),
        )));
        if let Some(k) = k {
            let (kt, after) = keyframes[k];
            let label = after.map_or_else(
                || "keyframe".to_owned(),
                |ms| format!("keyframe, {ms:.0} ms after the request"),
            );
            steps.push(detail(step(kt, Sender, Sender, StepKind::Keyframe, label)));
        }
    }

    // Big estimate changes: the largest few, in time order.
    let mut changes = bwe_changes(records, roles.sending);
    if changes.len() > MAX_BWE_CHANGES {
        count_left_out(
            &mut left_out,
            StepKind::BweChange,
            changes.len() - MAX_BWE_CHANGES,
        );
        changes.sort_by(|a, b| (b.2 / b.1).ln().abs().total_cmp(&(a.2 / a.1).ln().abs()));
        changes.truncate(MAX_BWE_CHANGES);
        changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    for (t, from, to, overuse) in changes {
        let why = if overuse { " (over-use)" } else { "" };
        steps.push(detail(step(
            t,
            Sender,
            Sender,
            StepKind::BweChange,
            format!("target {} → {}{why}", fmt_bps(from), fmt_bps(to)),
        )));
    }

    if let Some((t, reason)) = end {
        steps.push(step(
            t,
            Sender,
            Receiver,
            StepKind::End,
            format!("session ends ({reason})"),
        ));
    }

    // Time order; at the same instant, the protocol's order (join before offer, ...), then the
    // order they were found in.
    // A first RTCP packet that is a drawn keyframe request is one step, not two.
    let firsts: Vec<(f64, Participant, String)> = steps
        .iter()
        .filter(|s| s.what == StepKind::FirstRtcp)
        .map(|s| (s.t_s, s.from, s.label.replace("first RTCP: ", "")))
        .collect();
    for (t, from, name) in firsts {
        let request = steps.iter_mut().find(|s| {
            s.what == StepKind::KeyframeRequest
                && s.t_s == t
                && s.from == from
                && s.label.starts_with(&name)
        });
        if let Some(request) = request {
            request.label = format!("first RTCP: {}", request.label);
            request.detail = false;
            steps.retain(|s| !(s.what == StepKind::FirstRtcp && s.t_s == t && s.from == from));
        }
    }

    // The server forwards only what it received: at the same instant a message to it comes
    // before the one it passes on ("join room" before "peer joined").
    steps.sort_by(|a, b| {
        a.t_s
            .total_cmp(&b.t_s)
            .then(a.what.cmp(&b.what))
            .then((a.from == Signaling).cmp(&(b.from == Signaling)))
    });
    cap(&mut steps, &mut left_out);

    let mut participants = vec![Sender, Signaling];
    if uses_server {
        participants.push(StunTurn);
    }
    participants.push(Receiver);
    let name = |role: PeerRole, what: &str| match role {
        PeerRole::Browser => format!("browser ({what})"),
        _ => format!("rtclab {what}"),
    };
    SessionFlow {
        participants,
        sender_name: name(roles.sending, "sender"),
        receiver_name: name(roles.receiving, "receiver"),
        steps,
        left_out: left_out.into_iter().collect(),
    }
}

/// Leaves at most [`MAX_STEPS`]: the latest details first, then the latest steps but the end.
fn cap(steps: &mut Vec<Step>, left_out: &mut BTreeMap<StepKind, usize>) {
    while steps.len() > MAX_STEPS {
        let victim = steps
            .iter()
            .rposition(|s| s.detail)
            .or_else(|| steps.iter().rposition(|s| s.what != StepKind::End))
            .unwrap_or(steps.len() - 1);
        let s = steps.remove(victim);
        count_left_out(left_out, s.what, 1);
    }
}

/// The peers' requests to the STUN/TURN server: each peer's first srflx address (a STUN
/// Binding) and relay allocation; with the embedded server's events, the allocation at the
/// server's own instant, and the first permission and channel of each client as details.
fn turn_steps(
    records: &[Record],
    local: &BTreeMap<Participant, Vec<(f64, &Candidate)>>,
    remote: &BTreeMap<Participant, Vec<(f64, &Candidate)>>,
    steps: &mut Vec<Step>,
) {
    use Participant::StunTurn;
    let addr = |c: &Candidate| format!("{}:{}", c.address, c.port);
    // Who a TURN client address or relay address belongs to: a peer's own relay candidate, its
    // host candidate (the client address), or the other peer's learned relay candidate.
    let mut owner: BTreeMap<String, Participant> = BTreeMap::new();
    for (who, list) in local {
        for (_, c) in list {
            owner.insert(addr(c), *who);
        }
    }
    for (who, list) in remote {
        for (_, c) in list.iter().filter(|(_, c)| c.typ == "relay") {
            owner.entry(addr(c)).or_insert(Roles::other(*who));
        }
    }
    let mut allocated: Vec<Participant> = Vec::new();
    let mut permitted: Vec<String> = Vec::new();
    let mut bound: Vec<String> = Vec::new();
    for r in records {
        match &r.event {
            Event::TurnAllocationCreated {
                client,
                relay,
                transport,
                ..
            } => {
                let Some(who) = owner.get(relay).or_else(|| owner.get(client)).copied() else {
                    continue;
                };
                // A relay-only peer logs no host candidate: its permissions and channels are
                // known by the client address its allocation came from.
                owner.entry(client.clone()).or_insert(who);
                if !allocated.contains(&who) {
                    allocated.push(who);
                    steps.push(step(
                        r.t,
                        who,
                        StunTurn,
                        StepKind::StunTurn,
                        // UDP is the usual case; say the transport only when it is not.
                        if transport == "udp" {
                            format!("Allocate: relay {relay}")
                        } else {
                            format!("Allocate over {transport}: relay {relay}")
                        },
                    ));
                }
            }
            Event::TurnPermission { client, .. } if !permitted.contains(client) => {
                if let Some(who) = owner.get(client) {
                    permitted.push(client.clone());
                    steps.push(detail(step(
                        r.t,
                        *who,
                        StunTurn,
                        StepKind::StunTurn,
                        "CreatePermission".into(),
                    )));
                }
            }
            Event::TurnChannelBind { client, .. } if !bound.contains(client) => {
                if let Some(who) = owner.get(client) {
                    bound.push(client.clone());
                    steps.push(detail(step(
                        r.t,
                        *who,
                        StunTurn,
                        StepKind::StunTurn,
                        "ChannelBind".into(),
                    )));
                }
            }
            _ => {}
        }
    }
    for (who, list) in local {
        if let Some((t, c)) = list.iter().find(|(_, c)| c.typ == "srflx") {
            steps.push(step(
                *t,
                *who,
                StunTurn,
                StepKind::StunTurn,
                format!("STUN Binding: srflx {}", addr(c)),
            ));
        }
        // Without the server's events, the relay candidate stands for the allocation.
        if !allocated.contains(who)
            && let Some((t, c)) = list.iter().find(|(_, c)| c.typ == "relay")
        {
            steps.push(step(
                *t,
                *who,
                StunTurn,
                StepKind::StunTurn,
                format!("Allocate: relay {}", addr(c)),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
