//! What a TURN relay can read of traffic it did not create (sans-I/O, time passed in).
//!
//! Each datagram a relay carries is classified by its first byte (RFC 7983 §7): STUN 0–3,
//! DTLS 20–63, RTP/RTCP 128–191; RTCP is told from RTP by the payload-type byte, 192–223
//! (RFC 5761 §4). SRTP encrypts only the RTP payload (RFC 3711 §3.1), so for each SSRC the
//! relay reads sequence numbers (loss by gaps, RFC 3550 §A.3), timestamps (interarrival jitter,
//! RFC 3550 §A.8), sizes (rate) and the payload type. SRTCP encrypts RTCP bodies: those are
//! counted only. The transport-wide sequence extension is readable too, but its id is only in
//! the SDP, which the relay never sees, so it is not used.

use rtclab_events::{Event, RelayPackets, RelayRtp};
use std::collections::BTreeMap;

/// Clock rates an RTP stream is matched against (RFC 3551 §4.5 and the usual WebRTC codecs:
/// G.711 8 kHz, G.722 (8 kHz RTP clock) and wideband 16 kHz, 32 kHz, Opus 48 kHz, video 90 kHz).
const CLOCKS_HZ: [u32; 5] = [8_000, 16_000, 32_000, 48_000, 90_000];

/// Arrival time span over which the clock rate is inferred: a second gives a video stream's 30
/// frames and an audio stream's 50 packets, enough to tell 48 from 90 kHz (a factor 1.9).
const CLOCK_SPAN_S: f64 = 1.0;

/// How far back repeats are recognised, in sequence numbers: two seconds of a 4 Mbps stream of
/// 1200-byte packets, longer than any retransmission is still useful.
const SEEN_WINDOW: u64 = 1024;

/// Most SSRCs watched at once in one direction. A session's allocation carries a handful
/// (video, audio, their RTX and FEC streams); RTP from further SSRCs is counted as other
/// packets. Without a limit, a client that sends RTP with a new random SSRC in every packet
/// would make the relay keep state and write a `relay.rtp` line every interval for each one
/// (found while writing the `rtp` fuzz target, issue 17).
pub const MAX_STREAMS: usize = 32;

/// Intervals without a packet after which a stream is forgotten, so that a stream that ended
/// frees its place among the [`MAX_STREAMS`] (its counts start again if it comes back).
pub const IDLE_INTERVALS: u32 = 10;

/// How a datagram's first byte classifies it (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// STUN (ICE checks, consent freshness).
    Stun,
    /// DTLS records.
    Dtls,
    /// RTP.
    Rtp,
    /// RTCP (SRTCP).
    Rtcp,
    /// Anything else (ZRTP, TURN channel data inside a relayed payload, garbage).
    Other,
}

/// Classifies a datagram.
pub fn classify(data: &[u8]) -> Kind {
    match data.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) if data.len() >= 12 => match data[1] {
            192..=223 => Kind::Rtcp,
            _ => Kind::Rtp,
        },
        Some(128..=191) if data.len() >= 8 && (192..=223).contains(&data[1]) => Kind::Rtcp,
        _ => Kind::Other,
    }
}

/// The plain header fields of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
}

/// Reads the fixed RTP header (RFC 3550 §5.1), or `None` when `data` is not RTP version 2.
pub fn rtp_header(data: &[u8]) -> Option<RtpHeader> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    Some(RtpHeader {
        payload_type: data[1] & 0x7f,
        seq: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
    })
}

/// One SSRC's state.
#[derive(Debug, Clone, Default)]
struct Stream {
    payload_type: u8,
    /// Highest extended sequence number seen (RFC 3550 §A.1: cycles << 16 | seq).
    max_ext: Option<u64>,
    /// `max_ext` at the end of the last interval.
    interval_base: Option<u64>,
    first_ext: u64,
    /// Extended sequence numbers seen lately (the last [`SEEN_WINDOW`]), to tell a first
    /// arrival from a repeat.
    seen: std::collections::BTreeSet<u64>,
    /// First arrivals and repeats in the interval.
    unique: u64,
    repeated: u64,
    unique_total: u64,
    packets: u64,
    bytes: u64,
    packets_total: u64,
    /// First packet's (arrival s, timestamp), for the clock-rate inference.
    first: Option<(f64, u32)>,
    clock_hz: Option<u32>,
    /// RFC 3550 §A.8: the last transit time, in timestamp units, and the jitter estimate.
    last_transit: Option<f64>,
    jitter: f64,
    /// Intervals in a row without a packet (see [`IDLE_INTERVALS`]).
    idle_intervals: u32,
}

impl Stream {
    fn on_packet(&mut self, at_s: f64, h: &RtpHeader, len: usize) {
        self.payload_type = h.payload_type;
        self.packets += 1;
        self.packets_total += 1;
        self.bytes += len as u64;
        let ext = match self.max_ext {
            None => {
                self.first_ext = u64::from(h.seq);
                self.interval_base = Some(u64::from(h.seq).wrapping_sub(1));
                u64::from(h.seq)
            }
            Some(max) => {
                // The extended number nearest to the highest so far (RFC 3550 §A.1's idea,
                // without its probation): a step of less than half the space either way.
                let cycle = max & !0xffff;
                let candidates = [
                    cycle.wrapping_sub(0x1_0000) | u64::from(h.seq),
                    cycle | u64::from(h.seq),
                    (cycle + 0x1_0000) | u64::from(h.seq),
                ];
                candidates
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(max))
                    .unwrap_or(max)
            }
        };
        if self.max_ext.is_none_or(|m| ext > m) {
            self.max_ext = Some(ext);
        }
        // A sequence number seen before is a retransmission on the same SSRC (senders without
        // RTX, such as webrtc-rs, resend the packet as it was; RFC 4588 RTX uses an SSRC of its
        // own) or a duplicate. It is counted apart, so that loss = never arrived.
        if self.seen.insert(ext) {
            self.unique += 1;
            self.unique_total += 1;
        } else {
            self.repeated += 1;
        }
        let floor = self.max_ext.unwrap_or(ext).saturating_sub(SEEN_WINDOW);
        while self.seen.first().is_some_and(|f| *f < floor) {
            self.seen.pop_first();
        }
        match (self.first, self.clock_hz) {
            (None, _) => self.first = Some((at_s, h.timestamp)),
            (Some((t0, ts0)), None) if at_s - t0 >= CLOCK_SPAN_S => {
                let rate = f64::from(h.timestamp.wrapping_sub(ts0)) / (at_s - t0);
                self.clock_hz = nearest_clock(rate);
            }
            _ => {}
        }
        if let Some(hz) = self.clock_hz {
            let arrival = at_s * f64::from(hz);
            let transit = arrival - f64::from(h.timestamp);
            if let Some(last) = self.last_transit {
                // Timestamps wrap at 2^32: take the difference modulo that.
                let mut d = (transit - last).abs() % 4_294_967_296.0;
                if d > 2_147_483_648.0 {
                    d = 4_294_967_296.0 - d;
                }
                self.jitter += (d - self.jitter) / 16.0;
            }
            self.last_transit = Some(transit);
        }
    }

    /// The interval's line; starts the next interval.
    fn take(&mut self, ssrc: u32, direction: &str, interval_s: f64) -> RelayRtp {
        let max = self.max_ext.unwrap_or(0);
        let base = self.interval_base.unwrap_or(max);
        let expected = max.saturating_sub(base) as i64;
        let lost = expected - self.unique as i64;
        let expected_total = (max + 1).saturating_sub(self.first_ext) as i64;
        let line = RelayRtp {
            direction: direction.to_owned(),
            ssrc,
            payload_type: self.payload_type,
            clock_hz: self.clock_hz,
            packets: self.packets,
            bytes: self.bytes,
            bps: if interval_s > 0.0 {
                self.bytes as f64 * 8.0 / interval_s
            } else {
                0.0
            },
            lost,
            loss_pct: if expected > 0 {
                100.0 * lost.max(0) as f64 / expected as f64
            } else {
                0.0
            },
            jitter_ms: self.clock_hz.map(|hz| 1000.0 * self.jitter / f64::from(hz)),
            repeated: self.repeated,
            packets_total: self.packets_total,
            lost_total: expected_total - self.unique_total as i64,
        };
        self.packets = 0;
        self.unique = 0;
        self.repeated = 0;
        self.bytes = 0;
        self.interval_base = Some(max);
        line
    }
}

fn nearest_clock(rate: f64) -> Option<u32> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    CLOCKS_HZ
        .into_iter()
        .min_by(|a, b| {
            let da = (rate / f64::from(*a)).ln().abs();
            let db = (rate / f64::from(*b)).ln().abs();
            da.total_cmp(&db)
        })
        // A rate more than 25 % off every known clock is not one of them.
        .filter(|hz| (rate / f64::from(*hz)).ln().abs() < 1.25f64.ln())
}

/// The datagrams one direction of a relay allocation carried.
#[derive(Debug, Clone)]
pub struct RtpWatch {
    direction: &'static str,
    streams: BTreeMap<u32, Stream>,
    counts: RelayPackets,
    /// Streams that had packets since the last interval.
    active: std::collections::BTreeSet<u32>,
}

impl RtpWatch {
    /// A watch of one direction (`from_client` or `to_client`).
    pub fn new(direction: &'static str) -> Self {
        RtpWatch {
            direction,
            streams: BTreeMap::new(),
            counts: RelayPackets {
                direction: direction.to_owned(),
                ..Default::default()
            },
            active: Default::default(),
        }
    }

    /// A datagram seen at `at_s` (seconds on any clock, as long as it is the same one).
    pub fn on_datagram(&mut self, at_s: f64, data: &[u8]) {
        match classify(data) {
            Kind::Rtp => match rtp_header(data) {
                Some(h)
                    if self.streams.len() < MAX_STREAMS || self.streams.contains_key(&h.ssrc) =>
                {
                    self.active.insert(h.ssrc);
                    self.streams
                        .entry(h.ssrc)
                        .or_default()
                        .on_packet(at_s, &h, data.len());
                }
                _ => self.counts.other_packets += 1,
            },
            Kind::Rtcp => {
                self.counts.rtcp_packets += 1;
                self.counts.rtcp_bytes += data.len() as u64;
            }
            Kind::Stun => self.counts.stun_packets += 1,
            Kind::Dtls => self.counts.dtls_packets += 1,
            Kind::Other => self.counts.other_packets += 1,
        }
    }

    /// The interval's lines (one per stream that had packets, then the counts when anything
    /// passed); starts the next interval.
    pub fn take_interval(&mut self, interval_s: f64) -> Vec<Event> {
        let mut out = Vec::new();
        let active = std::mem::take(&mut self.active);
        for ssrc in &active {
            if let Some(s) = self.streams.get_mut(ssrc) {
                s.idle_intervals = 0;
                out.push(Event::RelayRtp(s.take(*ssrc, self.direction, interval_s)));
            }
        }
        self.streams.retain(|ssrc, s| {
            if !active.contains(ssrc) {
                s.idle_intervals += 1;
            }
            s.idle_intervals < IDLE_INTERVALS
        });
        let c = &self.counts;
        if c.rtcp_packets + c.stun_packets + c.dtls_packets + c.other_packets > 0 {
            out.push(Event::RelayPackets(c.clone()));
        }
        self.counts = RelayPackets {
            direction: self.direction.to_owned(),
            ..Default::default()
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, ssrc: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.resize(12 + payload, 0xab);
        p
    }

    fn lines(w: &mut RtpWatch, interval_s: f64) -> Vec<RelayRtp> {
        w.take_interval(interval_s)
            .into_iter()
            .filter_map(|e| match e {
                Event::RelayRtp(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_bytes_classify_as_rfc_7983_says() {
        assert_eq!(classify(&[0x00, 0x01, 0, 0]), Kind::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), Kind::Dtls);
        assert_eq!(classify(&rtp(1, 0, 7, 100)), Kind::Rtp);
        // A receiver report: V=2, PT 201.
        assert_eq!(classify(&[0x80, 201, 0, 1, 0, 0, 0, 7]), Kind::Rtcp);
        assert_eq!(
            classify(&[0x80, 205, 0, 7, 0, 0, 0, 7, 1, 2, 3, 4]),
            Kind::Rtcp
        );
        assert_eq!(classify(&[0x90]), Kind::Other);
        assert_eq!(classify(&[]), Kind::Other);
    }

    #[test]
    fn gaps_are_losses_and_rate_counts_bytes() {
        let mut w = RtpWatch::new("to_client");
        // 100 packets at 30 fps' worth of timestamps, every 10th missing.
        for i in 0u16..100 {
            if i % 10 == 5 {
                continue;
            }
            w.on_datagram(
                f64::from(i) * 0.01,
                &rtp(1000 + i, u32::from(i) * 900, 42, 988),
            );
        }
        let l = lines(&mut w, 1.0);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].ssrc, 42);
        assert_eq!(l[0].packets, 90);
        assert_eq!(l[0].lost, 10);
        assert!((l[0].loss_pct - 10.0).abs() < 1e-9, "{}", l[0].loss_pct);
        assert_eq!(l[0].bps, 90.0 * 1000.0 * 8.0);
        // The next interval starts from where this one ended.
        w.on_datagram(1.0, &rtp(1100, 90_000, 42, 100));
        let l = lines(&mut w, 1.0);
        assert_eq!((l[0].packets, l[0].lost), (1, 0));
        assert_eq!(l[0].lost_total, 10);
    }

    #[test]
    fn a_resent_packet_fills_its_gap_and_counts_as_repeated() {
        let mut w = RtpWatch::new("to_client");
        for seq in [1u16, 2, 4, 5, 3, 3] {
            w.on_datagram(0.0, &rtp(seq, 0, 8, 100));
        }
        let l = lines(&mut w, 1.0);
        assert_eq!((l[0].packets, l[0].repeated, l[0].lost), (6, 1, 0));
        assert_eq!(l[0].lost_total, 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut w = RtpWatch::new("from_client");
        for i in 0u32..20 {
            let seq = (65_530 + i) as u16;
            w.on_datagram(f64::from(i) * 0.01, &rtp(seq, i * 3000, 9, 50));
        }
        let l = lines(&mut w, 1.0);
        assert_eq!((l[0].packets, l[0].lost), (20, 0));
    }

    #[test]
    fn clock_rate_is_inferred_and_jitter_measured_in_ms() {
        let mut w = RtpWatch::new("to_client");
        // A 90 kHz stream at 30 fps; every other frame arrives 4 ms late.
        for i in 0u32..90 {
            let late = if i % 2 == 1 { 0.004 } else { 0.0 };
            w.on_datagram(f64::from(i) / 30.0 + late, &rtp(i as u16, i * 3000, 5, 200));
        }
        let l = lines(&mut w, 3.0);
        assert_eq!(l[0].clock_hz, Some(90_000));
        let j = l[0].jitter_ms.expect("jitter once the clock is known");
        // |D| alternates 4 ms; the estimate converges towards 4 ms from below.
        assert!((2.5..=4.0).contains(&j), "jitter {j} ms");
        // A 48 kHz audio stream at 50 packets/s.
        let mut a = RtpWatch::new("to_client");
        for i in 0u32..80 {
            a.on_datagram(f64::from(i) * 0.02, &rtp(i as u16, i * 960, 6, 80));
        }
        assert_eq!(lines(&mut a, 1.6)[0].clock_hz, Some(48_000));
    }

    /// Issue 17 (fuzzing): RTP with a new SSRC in every packet is watched for at most
    /// MAX_STREAMS SSRCs, the rest counted as other packets; silent streams are forgotten.
    #[test]
    fn ssrcs_beyond_the_limit_are_counted_not_watched() {
        let mut w = RtpWatch::new("from_client");
        for ssrc in 0u32..10_000 {
            w.on_datagram(0.0, &rtp(1, 0, ssrc, 20));
        }
        let events = w.take_interval(1.0);
        let watched = events
            .iter()
            .filter(|e| matches!(e, Event::RelayRtp(_)))
            .count();
        assert_eq!(watched, MAX_STREAMS);
        let Some(Event::RelayPackets(c)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(c.other_packets, 10_000 - MAX_STREAMS as u64);
        // A stream that keeps sending stays; the silent ones are forgotten, which makes room.
        for _ in 0..IDLE_INTERVALS {
            w.on_datagram(0.0, &rtp(2, 0, 0, 20));
            w.take_interval(1.0);
        }
        assert_eq!(w.streams.len(), 1);
        w.on_datagram(0.0, &rtp(1, 0, 99_999, 20));
        assert_eq!(lines(&mut w, 1.0).len(), 1);
    }

    #[test]
    fn non_rtp_is_counted_by_kind() {
        let mut w = RtpWatch::new("from_client");
        w.on_datagram(0.0, &[0x80, 200, 0, 6, 0, 0, 0, 1]);
        w.on_datagram(0.0, &[0x00, 0x01, 0x00, 0x00]);
        w.on_datagram(0.0, &[23, 0xfe, 0xfd, 0]);
        let events = w.take_interval(1.0);
        let Some(Event::RelayPackets(c)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!((c.rtcp_packets, c.stun_packets, c.dtls_packets), (1, 1, 1));
        assert!(
            w.take_interval(1.0).is_empty(),
            "a quiet interval writes nothing"
        );
    }
}
