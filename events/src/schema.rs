//! The event-log schema: one enum, serialised as one JSON object per line.
//!
//! Every line is `{"t": seconds, "peer": "...", "kind": "...", ...fields}`. The first line of a
//! session is `session.start` (carrying [`SCHEMA`]), the last is `session.end`. Fields are added in
//! a backwards-compatible way; a breaking change bumps the schema version.

use serde::{Deserialize, Serialize};

/// Schema identifier written into `session.start`; bump the number on a breaking change.
pub const SCHEMA: &str = "rtclab.events/1";

/// Which participant an event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    /// The Rust peer that encodes and sends video.
    Sender,
    /// The Rust peer that receives and decodes video.
    Receiver,
    /// A browser on the other end, reporting through the signaling socket.
    Browser,
    /// The process itself (session start/end, impairment engine, servers).
    Lab,
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerRole::Sender => "sender",
            PeerRole::Receiver => "receiver",
            PeerRole::Browser => "browser",
            PeerRole::Lab => "lab",
        })
    }
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the session started, from the session clock.
    pub t: f64,
    /// The participant the event is about.
    pub peer: PeerRole,
    /// The event itself; its `kind` tag is flattened into the line.
    #[serde(flatten)]
    pub event: Event,
}

/// What rtclab's own congestion controller says about an estimate, beyond the target.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BweDetail {
    /// Delay-based detector's verdict: `normal`, `overuse` or `underuse` (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Rate controller's state: `increase`, `hold` or `decrease` (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_control: Option<String>,
    /// Delay-gradient trend as compared with the threshold, ms (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<f64>,
    /// Adaptive overuse threshold, ms (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Acknowledged (delivered) bitrate, bps (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_bps: Option<f64>,
    /// The sender is application-limited (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alr: Option<bool>,
    /// Result of the latest probe cluster, bps (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_bps: Option<f64>,
    /// Packets in the latest probe cluster (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_packets: Option<usize>,
    /// The link limited the latest probe cluster, so it measured the capacity (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_saturated: Option<bool>,
    /// What a recent probe cluster saw the link carry, bps: the increase stops there
    /// (rtclab CC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_ceiling_bps: Option<f64>,
}

/// Who received the video in a log: the Rust receiver, or else a browser (whose `media.stats`
/// the browser bridge derives from `getStats()`).
pub fn receiving_peer(records: &[Record]) -> PeerRole {
    media_peer(records, PeerRole::Receiver, MediaDirection::Recv)
}

/// Who sent the video in a log: the Rust sender, or else a browser (`rtclab bench cc`'s
/// Chromium leg).
pub fn sending_peer(records: &[Record]) -> PeerRole {
    media_peer(records, PeerRole::Sender, MediaDirection::Send)
}

/// Where the receiver's feedback (NACK, PLI, FIR, RR) shows in a log: at the Rust receiver's tap
/// going out, or — when a browser receives and logs no RTCP of its own — at the Rust sender's tap
/// coming in.
pub fn feedback_seen_at(receiving: PeerRole) -> (PeerRole, Direction) {
    match receiving {
        PeerRole::Browser => (PeerRole::Sender, Direction::In),
        _ => (PeerRole::Receiver, Direction::Out),
    }
}

fn media_peer(records: &[Record], rust: PeerRole, direction: MediaDirection) -> PeerRole {
    let has = |peer| {
        records.iter().any(|r| {
            r.peer == peer && matches!(&r.event, Event::MediaStats(m) if m.direction == direction)
        })
    };
    if !has(rust) && has(PeerRole::Browser) {
        PeerRole::Browser
    } else {
        rust
    }
}

/// Which way a `media.stats` line counts: what a peer sent, or what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaDirection {
    /// Packets and frames this peer sent (`send`).
    #[default]
    Send,
    /// Packets and frames this peer received (`recv`).
    Recv,
}

impl MediaDirection {
    /// The name in the log: `send` or `recv`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDirection::Send => "send",
            MediaDirection::Recv => "recv",
        }
    }
}

impl std::fmt::Display for MediaDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a `note` matters to a reader of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteLevel {
    /// Context: what was started where.
    Info,
    /// Changes how to read the run (a step that did not stop in time, a report not written).
    Warn,
    /// Something failed.
    Error,
}

impl std::fmt::Display for NoteLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoteLevel::Info => "info",
            NoteLevel::Warn => "warn",
            NoteLevel::Error => "error",
        })
    }
}

/// How the peer learned of a transport change that webrtc-rs 0.21 reports by no event of its own
/// (the selected candidate pair, the DTLS state): this says how late the log's time may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// Read the moment the ICE or peer-connection state changed (which webrtc-rs does report):
    /// late by the event's dispatch only, well under a millisecond.
    OnStateChange,
    /// Found by the periodic poll: up to `POLL_INTERVAL` (200 ms) late.
    Poll,
    /// Not read but implied: the peer connection became `connected`, which the W3C defines as
    /// every ICE and DTLS transport connected (webrtc-rs's receiver exposes its DTLS transport
    /// only once media arrives). Late by the event's dispatch only.
    ImpliedByPcState,
}

/// A first in the session's life, logged once per peer (`media.first`): the points a session's
/// flow and its startup delay are measured between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum First {
    /// The first RTP packet handed to the transport (SRTP-protected next).
    RtpSent,
    /// The first RTP packet received (after SRTP decryption).
    RtpReceived,
    /// The first video frame decoded (the first picture a viewer could see).
    FrameDecoded,
}

/// Why the encoder produced a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyframeReason {
    /// The first frame of the stream.
    Start,
    /// The receiver sent a Picture Loss Indication (RFC 4585 §6.3.1).
    Pli,
    /// The receiver sent a Full Intra Request (RFC 5104 §4.3.1).
    Fir,
    /// The first frame at a new resolution (`encoder.adapt`).
    Resize,
    /// rtclab's controller asked for a probe cluster; a keyframe is one.
    Probe,
}

/// Why a receiver asked for a keyframe with a PLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PliReason {
    /// The decoder could not decode a frame.
    #[serde(rename = "decode error")]
    DecodeError,
    /// A frame was lost for good, so the frames after it cannot be decoded.
    #[serde(rename = "frame lost; waiting for a keyframe")]
    FrameLost,
    /// A test asked for a PLI at a fixed interval (`pli_interval`).
    #[serde(rename = "interval")]
    Interval,
}

/// Local or remote side of the ICE agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Gathered by this peer.
    Local,
    /// Learned from the other peer (signaling or peer-reflexive).
    Remote,
}

/// Direction of a packet relative to the peer that logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received from the network.
    In,
    /// Sent to the network.
    Out,
}

/// An ICE candidate as a reader of the log needs it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Candidate {
    /// host, srflx, prflx or relay (RFC 8445 §5.1.1).
    #[serde(rename = "type")]
    pub typ: String,
    /// udp or tcp.
    pub protocol: String,
    /// IP address (or mDNS name) of the candidate.
    pub address: String,
    /// Port of the candidate.
    pub port: u16,
    /// Base address for srflx/prflx/relay candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_address: Option<String>,
    /// Base port for srflx/prflx/relay candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_port: Option<u16>,
    /// ICE priority (RFC 8445 §5.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Foundation string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundation: Option<String>,
    /// STUN/TURN server URL the candidate was gathered from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Relay candidates: transport between the peer and its TURN server, udp/tcp/tls (W3C
    /// `relayProtocol`); `protocol` is the relayed transport, always udp for WebRTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_protocol: Option<String>,
}

/// One report block of an RTCP SR/RR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportBlock {
    /// SSRC of the source the block reports on.
    pub media_ssrc: u32,
    /// Fraction lost since the previous report, 0.0..=1.0 (wire value / 256).
    pub fraction_lost: f64,
    /// Cumulative number of packets lost.
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Interarrival jitter in milliseconds (using the stream clock rate).
    pub jitter_ms: f64,
}

/// An RTCP packet, as counted on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Rtcp {
    /// Sender report (RFC 3550 §6.4.1).
    #[serde(rename = "SR")]
    SenderReport {
        /// SSRC of the sender.
        ssrc: u32,
        /// Sender's packet count.
        packets: u32,
        /// Sender's octet count.
        octets: u32,
        /// Report blocks carried along.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report (RFC 3550 §6.4.2).
    #[serde(rename = "RR")]
    ReceiverReport {
        /// SSRC of the reporter.
        ssrc: u32,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// Generic NACK (RFC 4585 §6.2.1).
    #[serde(rename = "NACK")]
    Nack {
        /// SSRC of the media source.
        media_ssrc: u32,
        /// Sequence numbers requested.
        seqs: Vec<u16>,
    },
    /// Picture loss indication (RFC 4585 §6.3.1).
    #[serde(rename = "PLI")]
    Pli {
        /// SSRC of the media source.
        media_ssrc: u32,
    },
    /// Full intra request (RFC 5104 §4.3.1).
    #[serde(rename = "FIR")]
    Fir {
        /// SSRC of the media source.
        media_ssrc: u32,
    },
    /// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    #[serde(rename = "TWCC")]
    Twcc {
        /// First transport-wide sequence number covered.
        base_seq: u16,
        /// Number of packets whose status is reported.
        packet_count: u16,
        /// Feedback packet counter.
        fb_count: u8,
        /// Packets reported as received.
        received: u32,
    },
    /// Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb-03).
    #[serde(rename = "REMB")]
    Remb {
        /// Estimated bitrate in bits per second.
        bitrate_bps: f64,
        /// SSRCs the estimate applies to.
        ssrcs: Vec<u32>,
    },
    /// Source description (RFC 3550 §6.5).
    #[serde(rename = "SDES")]
    Sdes,
    /// Goodbye (RFC 3550 §6.6).
    #[serde(rename = "BYE")]
    Bye,
    /// Anything else, by its header type name.
    #[serde(rename = "other")]
    Other {
        /// Packet type / format, as a string.
        name: String,
    },
}

impl Rtcp {
    /// Short type name used in summaries ("RR", "NACK", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Rtcp::SenderReport { .. } => "SR",
            Rtcp::ReceiverReport { .. } => "RR",
            Rtcp::Nack { .. } => "NACK",
            Rtcp::Pli { .. } => "PLI",
            Rtcp::Fir { .. } => "FIR",
            Rtcp::Twcc { .. } => "TWCC",
            Rtcp::Remb { .. } => "REMB",
            Rtcp::Sdes => "SDES",
            Rtcp::Bye => "BYE",
            Rtcp::Other { .. } => "other",
        }
    }
}

/// Counters of one media direction, totals since the start plus the last second's deltas.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaStats {
    /// `send` or `recv`.
    pub direction: MediaDirection,
    /// RTP packets (media, not retransmissions) since the start.
    pub packets: u64,
    /// RTP payload+header bytes since the start.
    pub bytes: u64,
    /// Video frames since the start (encoded for send, decoded for recv).
    pub frames: u64,
    /// Packets lost (recv: sequence gaps never filled; send: cumulative lost from RR).
    pub lost: u64,
    /// Retransmitted packets (send: sent; recv: gaps filled late, by a retransmission or, with
    /// FEC, a rebuilt packet — see `fec_recovered`).
    pub retransmitted: u64,
    /// Bits per second over the last second (all RTP bytes in this direction).
    pub bitrate_bps: f64,
    /// Frames per second over the last second.
    pub fps: f64,
    /// Decode errors since the start (receiver only).
    #[serde(default)]
    pub decode_errors: u64,
    /// Video freezes since the start (receiver only; see `video.freeze`).
    #[serde(default)]
    pub freezes: u64,
    /// Total frozen time since the start, ms (receiver only).
    #[serde(default)]
    pub freeze_ms: f64,
    /// FlexFEC repair packets since the start (send: sent; recv: received); 0 without FEC.
    #[serde(default)]
    pub fec_packets: u64,
    /// Bytes of those repair packets since the start (sender only; included in `bytes`).
    #[serde(default)]
    pub fec_bytes: u64,
    /// Media packets rebuilt from FlexFEC repair packets since the start (receiver only).
    #[serde(default)]
    pub fec_recovered: u64,
    /// Size of the last decoded picture (receiver only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// See `width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Receiver: the jitter buffer's playout delay, ms — how long after its expected arrival a
    /// frame is shown (jitter plus, while repairs happen, the repair time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playout_delay_ms: Option<f64>,
    /// Receiver: the measured time to repair a lost packet (gap noticed → packet arrived), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_ms: Option<f64>,
}

/// The receiver's quality of experience over the last second (see `qoe`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Qoe {
    /// Frames decoded in the last second.
    pub frames_decoded: u64,
    /// Frames decoded per second over the last second.
    pub fps: f64,
    /// Video freezes since the start (W3C `freezeCount` rule).
    pub freezes: u64,
    /// Total frozen time since the start, ms.
    pub freeze_ms: f64,
    /// Glass-to-glass latency (sender capture → decoded here) of each frame of the last second, ms.
    pub g2g_ms: Vec<f64>,
    /// How many of `g2g_ms` used a capture time extrapolated from an earlier frame's stamp.
    #[serde(default)]
    pub g2g_interpolated: u32,
    /// Median of `g2g_ms` (null when no frame had a capture time).
    pub g2g_p50_ms: Option<f64>,
    /// 95th percentile of `g2g_ms`.
    pub g2g_p95_ms: Option<f64>,
    /// Frames scored against the source in the last second (0 when the source is unknown).
    pub scored_frames: u32,
    /// Mean luma PSNR of the scored frames, dB (null when none were scored).
    pub psnr_db: Option<f64>,
    /// Mean luma SSIM of the scored frames (null when none were scored).
    pub ssim: Option<f64>,
}

/// Packets or bytes an impaired direction dropped, by cause (see `impair.stats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImpairDrops {
    /// Independent random loss (`loss_pct`).
    pub random: u64,
    /// Gilbert-Elliott bursty loss (`burst`).
    pub burst: u64,
    /// Every n-th packet (`drop_every_nth`).
    pub nth: u64,
    /// Drop-tail at the bottleneck queue.
    pub queue_overflow: u64,
    /// Outage (100 % loss).
    pub outage: u64,
}

/// Once a second per RTP stream a TURN relay carried in one direction (`rtclab relay`): what the
/// relay can read of SRTP traffic it did not create. SRTP encrypts only the payload (RFC 3711
/// §3.1), so the header's SSRC, sequence number, timestamp, marker and payload type are plain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RelayRtp {
    /// `from_client` (the client sent it; seen before the uplink impairment) or `to_client`
    /// (the client receives it; seen after the downlink impairment).
    pub direction: String,
    /// The stream's SSRC.
    pub ssrc: u32,
    /// RTP payload type (dynamic ones mean what the SDP, which the relay cannot read, says).
    pub payload_type: u8,
    /// RTP clock rate inferred from timestamps against arrival times (8, 16, 32, 48 or
    /// 90 kHz); absent until a second of packets has been seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_hz: Option<u32>,
    /// Packets in the last interval.
    pub packets: u64,
    /// Bytes (RTP header and payload) in the last interval.
    pub bytes: u64,
    /// Bit rate of the last interval.
    pub bps: f64,
    /// Packets missing in the last interval by sequence number (RFC 3550 §A.3: expected minus
    /// first arrivals; negative when packets of an earlier interval arrived late).
    pub lost: i64,
    /// `lost` as a percentage of the expected packets of the interval.
    pub loss_pct: f64,
    /// Interarrival jitter (RFC 3550 §A.8) in ms, with the inferred clock rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Packets in the interval whose sequence number had been seen before: retransmissions on
    /// the same SSRC (a sender without RFC 4588 RTX) or duplicates.
    #[serde(default)]
    pub repeated: u64,
    /// Packets since the stream began.
    pub packets_total: u64,
    /// Packets that never arrived since the stream began.
    pub lost_total: i64,
}

/// Once a second per direction of a TURN allocation: the datagrams that are not RTP, by kind
/// (RFC 7983 demultiplexing on the first byte). SRTCP encrypts RTCP bodies, so RTCP is counted,
/// not read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RelayPackets {
    /// `from_client` or `to_client`, as in [`RelayRtp`].
    pub direction: String,
    /// RTCP packets (compound packets count once) in the last interval.
    pub rtcp_packets: u64,
    /// Their bytes.
    pub rtcp_bytes: u64,
    /// STUN (ICE connectivity checks and consent) in the last interval.
    pub stun_packets: u64,
    /// DTLS records (the handshake, alerts) in the last interval.
    pub dtls_packets: u64,
    /// Anything else.
    pub other_packets: u64,
}

/// Once a second per impaired direction: totals since the start, the bottleneck queue now, and
/// the last second's delivered rate and queue delay.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImpairStats {
    /// `downlink` (media, sender to receiver) or `uplink` (feedback, receiver to sender).
    pub direction: String,
    /// Packets handed to the impairment since the start.
    pub packets_in: u64,
    /// Their UDP payload bytes.
    pub bytes_in: u64,
    /// Packets delivered since the start (duplicates included).
    pub packets_out: u64,
    /// Their UDP payload bytes.
    pub bytes_out: u64,
    /// Packets dropped since the start, by cause.
    pub dropped_packets: ImpairDrops,
    /// Payload bytes dropped since the start, by cause.
    pub dropped_bytes: ImpairDrops,
    /// Extra copies made by duplication since the start.
    pub duplicated: u64,
    /// Bottleneck capacity in force, bit/s (headers counted); null when unlimited.
    pub capacity_bps: Option<f64>,
    /// Payload bits per second delivered over the last second.
    pub out_bps: f64,
    /// Median queue delay of the packets that left the queue in the last second, ms (null
    /// when none did).
    pub queue_delay_p50_ms: Option<f64>,
    /// 95th percentile of the same, ms.
    pub queue_delay_p95_ms: Option<f64>,
    /// Largest of the same, ms.
    pub queue_delay_max_ms: Option<f64>,
    /// Packets in the bottleneck queue now.
    pub queue_packets: u64,
    /// Payload bytes in the bottleneck queue now.
    pub queue_bytes: u64,
}

/// Everything rtclab reports. The `kind` tag names the event on the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Event {
    /// First line of every log.
    #[serde(rename = "session.start")]
    SessionStart {
        /// Schema version, [`SCHEMA`].
        schema: String,
        /// Random session id.
        session_id: String,
        /// Wall-clock start, RFC 3339 (the only wall-clock time in the log).
        started_at: String,
        /// Scenario name, if the session runs one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario: Option<String>,
        /// Free-form settings (codec, source, bitrates) for the reader.
        #[serde(default)]
        config: serde_json::Value,
    },
    /// A local or remote ICE candidate.
    #[serde(rename = "ice.candidate")]
    IceCandidate {
        /// Gathered here or learned from the other side.
        side: Side,
        /// The candidate.
        #[serde(flatten)]
        candidate: Candidate,
    },
    /// ICE gathering state (new, gathering, complete).
    #[serde(rename = "ice.gathering")]
    IceGathering {
        /// The new state.
        state: String,
    },
    /// ICE connection state.
    #[serde(rename = "ice.state")]
    IceState {
        /// The new state.
        state: String,
    },
    /// The candidate pair ICE selected; logged whenever it changes.
    #[serde(rename = "ice.selected_pair")]
    IceSelectedPair {
        /// Local candidate of the pair.
        local: Candidate,
        /// Remote candidate of the pair.
        remote: Candidate,
        /// How the change was seen, so how late this line may be (absent in older logs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed: Option<Observed>,
    },
    /// DTLS transport state.
    #[serde(rename = "dtls.state")]
    DtlsState {
        /// The new state.
        state: String,
        /// How the change was seen, so how late this line may be (absent in older logs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed: Option<Observed>,
    },
    /// Peer connection state.
    #[serde(rename = "pc.state")]
    PcState {
        /// The new state.
        state: String,
    },
    /// A first in the session (first RTP sent or received, first frame decoded).
    #[serde(rename = "media.first")]
    MediaFirst {
        /// Which first.
        what: First,
    },
    /// Signaling progress (offer/answer sent or received, peer joined/left).
    #[serde(rename = "signaling")]
    Signaling {
        /// What happened.
        what: String,
    },
    /// An RTCP packet seen on the wire.
    #[serde(rename = "rtcp")]
    Rtcp {
        /// In (received) or out (sent).
        direction: Direction,
        /// The packet.
        #[serde(flatten)]
        packet: Rtcp,
    },
    /// A congestion-controller update.
    #[serde(rename = "bwe.estimate")]
    BweEstimate {
        /// Which estimator produced it (`stock` = webrtc-rs Gcc).
        estimator: String,
        /// Target bitrate handed to the encoder and pacer.
        target_bps: f64,
        /// Delay-based estimate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_based_bps: Option<f64>,
        /// Loss-based estimate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss_based_bps: Option<f64>,
        /// Loss ratio the loss controller last saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss_ratio: Option<f64>,
        /// Round-trip time, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_ms: Option<f64>,
        /// What rtclab's own controller adds (absent for the stock one).
        #[serde(flatten, default)]
        detail: BweDetail,
    },
    /// Encoder output over the last second.
    #[serde(rename = "encoder.rate")]
    EncoderRate {
        /// Codec name.
        codec: String,
        /// Target the encoder was configured with.
        target_bps: f64,
        /// Bits actually produced over the last second.
        actual_bps: f64,
        /// Frames encoded over the last second.
        fps: f64,
        /// Encoded width.
        width: u32,
        /// Encoded height.
        height: u32,
        /// Keyframes over the last second.
        keyframes: u32,
        /// Frames skipped over the last second because the encoder's output was over budget.
        #[serde(default)]
        dropped: u32,
        /// Keyframe requests (PLI/FIR) over the last second that the sender did not act on,
        /// because it had answered one less than 300 ms before (libwebrtc's rule; see
        /// `rtclab_peer::keyframe_gate`).
        #[serde(default)]
        keyframe_requests_held: u32,
    },
    /// The sender changed its encoded resolution (a keyframe at the new size follows).
    #[serde(rename = "encoder.adapt")]
    EncoderAdapt {
        /// Width before the change.
        from_width: u32,
        /// Height before the change.
        from_height: u32,
        /// Width from now on.
        to_width: u32,
        /// Height from now on.
        to_height: u32,
        /// The target when the decision was made, bps.
        target_bps: f64,
        /// Why: `target_below_floor`, `overshoot` (too many frames dropped), `target_recovered`.
        reason: String,
    },
    /// A keyframe was produced on request.
    #[serde(rename = "encoder.keyframe")]
    EncoderKeyframe {
        /// Why: `start`, `pli`, `fir`, `resize` (the first frame at a new resolution), `probe`.
        reason: KeyframeReason,
        /// Index of the keyframe in the encoded sequence.
        frame_index: u64,
        /// Milliseconds from the request arriving to the keyframe leaving the encoder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_request_ms: Option<f64>,
    },
    /// A PLI this peer decided to send, and why.
    #[serde(rename = "decoder.pli")]
    DecoderPli {
        /// Why a keyframe is needed.
        reason: PliReason,
    },
    /// A frame that could not be decoded.
    #[serde(rename = "decoder.error")]
    DecoderError {
        /// What the decoder said.
        message: String,
    },
    /// The picture stood still: no new decoded frame for longer than
    /// max(3 × frame interval, frame interval + 150 ms) (the W3C `freezeCount` rule, as in
    /// libwebrtc). Logged when the next frame arrives; `t` is that moment.
    #[serde(rename = "video.freeze")]
    VideoFreeze {
        /// How long no new frame was shown, ms.
        duration_ms: f64,
    },
    /// Once a second per peer and direction.
    #[serde(rename = "media.stats")]
    MediaStats(MediaStats),
    /// Once a second from the receiver: frames decoded, freezes, glass-to-glass latency, PSNR/SSIM.
    #[serde(rename = "qoe")]
    Qoe(Qoe),
    /// Once a second per impaired direction.
    #[serde(rename = "impair.stats")]
    ImpairStats(ImpairStats),
    /// Once a second per RTP stream a TURN relay carried (`rtclab relay`).
    #[serde(rename = "relay.rtp")]
    RelayRtp(RelayRtp),
    /// Once a second per direction of a relay allocation: RTCP, STUN and DTLS counts.
    #[serde(rename = "relay.packets")]
    RelayPackets(RelayPackets),
    /// The impairment of a direction changed: a schedule step, or the end of a period.
    #[serde(rename = "impair.change")]
    ImpairChange {
        /// `downlink` or `uplink`.
        direction: String,
        /// When the change took effect, seconds after the impairment's start.
        at_s: f64,
        /// End of the period that starts here, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_s: Option<f64>,
        /// The changed settings with the scenario file's keys; `null` = back to the default.
        settings: serde_json::Value,
        /// Where the change came from: `scenario NAME` (its schedule), or a live control on the
        /// demo page or its HTTP API (`page`, `api`, `preset NAME`, `reset`, `outage`). Absent in
        /// logs written before live control existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// A browser's `getStats()` snapshot, once a second, as the page sent it: `inbound-rtp`,
    /// `outbound-rtp`, `remote-inbound-rtp`, `candidate-pair` (list), `local-candidate` (list),
    /// `remote-candidate` (list), `transport`, each with the browser's own field names.
    #[serde(rename = "browser.stats")]
    BrowserStats {
        /// The snapshot.
        stats: serde_json::Value,
    },
    /// Something the browser page saw (connection state, an error, a user action).
    #[serde(rename = "browser.event")]
    BrowserEvent {
        /// What happened, in a few words.
        what: String,
        /// Details, if any.
        #[serde(default)]
        detail: serde_json::Value,
    },
    /// The embedded TURN server granted an allocation (RFC 8656 §7).
    #[serde(rename = "turn.allocation_created")]
    TurnAllocationCreated {
        /// Client transport address (the 5-tuple's source).
        client: String,
        /// REST username of the allocation (`expiry:user`).
        username: String,
        /// Relayed transport address given to the client.
        relay: String,
        /// Client-to-server transport: udp or tcp.
        transport: String,
        /// Granted lifetime, seconds.
        lifetime_s: u32,
    },
    /// An allocation ended (refresh with lifetime 0, expiry, or server shutdown).
    #[serde(rename = "turn.allocation_closed")]
    TurnAllocationClosed {
        /// Client transport address.
        client: String,
        /// REST username of the allocation.
        username: String,
        /// Relayed transport address that was freed.
        relay: String,
    },
    /// A CreatePermission for a peer address succeeded (RFC 8656 §10).
    #[serde(rename = "turn.permission")]
    TurnPermission {
        /// Client transport address.
        client: String,
        /// Peer IP addresses permitted.
        peers: Vec<String>,
    },
    /// A ChannelBind succeeded (RFC 8656 §11).
    #[serde(rename = "turn.channel_bind")]
    TurnChannelBind {
        /// Client transport address.
        client: String,
        /// Peer transport address bound (`peer` is the line's participant field).
        peer_addr: String,
        /// Channel number (0x4000..0x4FFF).
        channel: u16,
    },
    /// A Refresh succeeded; lifetime 0 means the client released the allocation.
    #[serde(rename = "turn.refresh")]
    TurnRefresh {
        /// Client transport address.
        client: String,
        /// New lifetime, seconds.
        lifetime_s: u32,
    },
    /// Bytes relayed through one allocation: cumulative counters, once a second while they change.
    #[serde(rename = "turn.bytes")]
    TurnBytes {
        /// Relayed transport address of the allocation.
        relay: String,
        /// Bytes sent from the relay to peers since the allocation began.
        to_peer_bytes: u64,
        /// Packets sent from the relay to peers.
        to_peer_packets: u64,
        /// Bytes received on the relay from peers.
        from_peer_bytes: u64,
        /// Packets received on the relay from peers.
        from_peer_packets: u64,
    },
    /// The TURN server refused a request (error response or dropped indication).
    #[serde(rename = "turn.refused")]
    TurnRefused {
        /// Client transport address.
        client: String,
        /// STUN method: allocate, refresh, create_permission, channel_bind, send; or `data` for a
        /// datagram from a peer to the client dropped by the allocation's bandwidth cap (`send`
        /// then means the other way).
        method: String,
        /// STUN error code sent back (0 when an indication was dropped without a response).
        code: u16,
        /// Why, in a few words.
        reason: String,
        /// Username the request carried, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Peer address the request named, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_addr: Option<String>,
    },
    /// Diagnostics a reader should see (a warning that changes how to read the run).
    #[serde(rename = "note")]
    Note {
        /// Severity: info, warn, error.
        level: NoteLevel,
        /// The message.
        message: String,
    },
    /// Last line of every log.
    #[serde(rename = "session.end")]
    SessionEnd {
        /// Why it ended: `completed`, `interrupted`, `error: ...`.
        reason: String,
        /// The run summary (same object as `summary.json` when a run produced one).
        #[serde(default)]
        summary: serde_json::Value,
    },
}

impl Event {
    /// The `kind` string this event serialises with.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SessionStart { .. } => "session.start",
            Event::IceCandidate { .. } => "ice.candidate",
            Event::IceGathering { .. } => "ice.gathering",
            Event::IceState { .. } => "ice.state",
            Event::IceSelectedPair { .. } => "ice.selected_pair",
            Event::DtlsState { .. } => "dtls.state",
            Event::PcState { .. } => "pc.state",
            Event::MediaFirst { .. } => "media.first",
            Event::Signaling { .. } => "signaling",
            Event::Rtcp { .. } => "rtcp",
            Event::BweEstimate { .. } => "bwe.estimate",
            Event::EncoderRate { .. } => "encoder.rate",
            Event::EncoderAdapt { .. } => "encoder.adapt",
            Event::EncoderKeyframe { .. } => "encoder.keyframe",
            Event::DecoderPli { .. } => "decoder.pli",
            Event::DecoderError { .. } => "decoder.error",
            Event::VideoFreeze { .. } => "video.freeze",
            Event::MediaStats(_) => "media.stats",
            Event::Qoe(_) => "qoe",
            Event::ImpairStats(_) => "impair.stats",
            Event::RelayRtp(_) => "relay.rtp",
            Event::RelayPackets(_) => "relay.packets",
            Event::ImpairChange { .. } => "impair.change",
            Event::BrowserStats { .. } => "browser.stats",
            Event::BrowserEvent { .. } => "browser.event",
            Event::TurnAllocationCreated { .. } => "turn.allocation_created",
            Event::TurnAllocationClosed { .. } => "turn.allocation_closed",
            Event::TurnPermission { .. } => "turn.permission",
            Event::TurnChannelBind { .. } => "turn.channel_bind",
            Event::TurnRefresh { .. } => "turn.refresh",
            Event::TurnBytes { .. } => "turn.bytes",
            Event::TurnRefused { .. } => "turn.refused",
            Event::Note { .. } => "note",
            Event::SessionEnd { .. } => "session.end",
        }
    }
}
