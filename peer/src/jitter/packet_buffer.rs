//! The packet buffer: RTP packets by sequence number until they form whole frames.
//!
//! In the spirit of libwebrtc's `modules/video_coding/packet_buffer.cc`: packets are kept by
//! (extended) sequence number; a frame is the run of packets with one RTP timestamp that ends
//! with the marker bit (RFC 3550 §5.1; RFC 6184 §5.1 and RFC 7741 §4.1 put the marker on a
//! frame's last packet), and it is complete when no sequence number inside it is missing. Frames
//! leave in sequence order, which for rtclab's single-layer streams is decode order: a frame
//! behind a hole waits for it. Padding-only packets (an empty payload once padding is removed,
//! as browsers send for bandwidth probes) fill their sequence number and belong to no frame.
//!
//! Time is passed in; the buffer never reads a clock.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A gap wider than this many packets is a stream restart (or a corrupt sequence number), not
/// loss to wait for: the buffer starts over at the new packet. ~3 s at 3 Mbps.
const MAX_GAP: u64 = 1_000;

/// One stored packet.
#[derive(Debug, Clone)]
struct Stored {
    ts: u32,
    marker: bool,
    payload: Bytes,
    arrived: Instant,
    /// It arrived after being counted missing (a retransmission, a FEC rebuild, or reordering).
    repaired: bool,
}

/// The packets of one whole frame, in order.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// RTP timestamp (90 kHz video clock).
    pub ts: u32,
    /// Extended sequence number of the first packet.
    pub first_seq: u64,
    /// The RTP payloads, in sequence order.
    pub payloads: Vec<Bytes>,
    /// When its first packet arrived.
    pub first_arrival: Instant,
    /// When its last missing packet arrived (the frame became complete).
    pub completed_at: Instant,
    /// At least one of its packets arrived after being counted missing.
    pub repaired: bool,
}

/// What inserting one packet did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inserted {
    /// It filled a gap noticed this long ago (the time to repair that packet).
    pub repaired_after: Option<Duration>,
    /// Already stored, or older than what was handed on: ignored.
    pub duplicate: bool,
    /// Sequence numbers this packet showed missing (extended; empty range if none).
    pub gap: std::ops::Range<u64>,
}

/// Packets waiting to form frames.
#[derive(Debug, Default)]
pub struct PacketBuffer {
    packets: BTreeMap<u64, Stored>,
    /// First sequence number not yet handed on or given up.
    next: Option<u64>,
    highest: Option<u64>,
    /// Sequence numbers seen missing (not yet arrived, not given up), with when the gap was
    /// noticed.
    missing: BTreeMap<u64, Instant>,
}

impl PacketBuffer {
    /// Stores a packet. `payload` is the RTP payload with padding removed (empty = padding only).
    pub fn insert(
        &mut self,
        now: Instant,
        seq: u16,
        ts: u32,
        marker: bool,
        payload: Bytes,
    ) -> Inserted {
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => unwrap_seq(h, seq),
        };
        if self.next.is_some_and(|n| ext < n) || self.packets.contains_key(&ext) {
            return Inserted {
                duplicate: true,
                ..Default::default()
            };
        }
        let mut out = Inserted::default();
        match self.highest {
            Some(h) if ext > h + MAX_GAP || ext + MAX_GAP < h => {
                // A restart: nothing before it will ever complete.
                self.packets.clear();
                self.missing.clear();
                self.next = Some(ext);
                self.highest = Some(ext);
            }
            Some(h) if ext > h => {
                for s in h + 1..ext {
                    self.missing.insert(s, now);
                }
                out.gap = h + 1..ext;
                self.highest = Some(ext);
            }
            Some(_) => {
                out.repaired_after = self
                    .missing
                    .remove(&ext)
                    .map(|t0| now.saturating_duration_since(t0));
            }
            None => {
                self.next = Some(ext);
                self.highest = Some(ext);
            }
        }
        self.packets.insert(
            ext,
            Stored {
                ts,
                marker,
                payload,
                arrived: now,
                repaired: out.repaired_after.is_some(),
            },
        );
        out
    }

    /// Packets stored (waiting to complete a frame).
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Takes the frame at the head of the buffer if it is complete.
    pub fn pop_head(&mut self) -> Option<RawFrame> {
        let mut next = self.next?;
        // Padding at the head belongs to no frame.
        while self
            .packets
            .get(&next)
            .is_some_and(|p| p.payload.is_empty())
        {
            self.packets.remove(&next);
            next += 1;
        }
        self.next = Some(next);
        let end = self.frame_end(next)?;
        self.take(next, end)
    }

    /// The last sequence number of the frame that starts at `start`, if all of it is here: the
    /// marker packet, or the packet before the next timestamp (a sender that left the marker
    /// off still starts a new frame with a new timestamp).
    fn frame_end(&self, start: u64) -> Option<u64> {
        let ts = self.packets.get(&start)?.ts;
        let mut s = start;
        loop {
            let p = self.packets.get(&s)?;
            if p.payload.is_empty() || p.ts != ts {
                return Some(s - 1);
            }
            if p.marker {
                return Some(s);
            }
            s += 1;
        }
    }

    /// Removes `[start, end]` and returns it as a frame; the head moves past it. `start` is
    /// stored (`frame_end` found it), so the frame is never empty.
    fn take(&mut self, start: u64, end: u64) -> Option<RawFrame> {
        let stored: Vec<Stored> = (start..=end)
            .filter_map(|s| self.packets.remove(&s))
            .collect();
        if self.next.is_some_and(|n| n <= end) {
            self.next = Some(end + 1);
        }
        let first = stored.first()?;
        Some(RawFrame {
            ts: first.ts,
            first_seq: start,
            first_arrival: stored.iter().map(|p| p.arrived).min()?,
            completed_at: stored.iter().map(|p| p.arrived).max()?,
            repaired: stored.iter().any(|p| p.repaired),
            payloads: stored.into_iter().map(|p| p.payload).collect(),
        })
    }

    /// When the oldest packet the head still waits for was noticed missing: `None` if the head
    /// is not blocked by a hole (empty, complete, or waiting for packets not yet sent).
    pub fn head_gap_since(&self) -> Option<Instant> {
        let next = self.next?;
        self.missing.range(next..).next().map(|(_, since)| *since)
    }

    /// Frames that follow the first hole and are complete, each as (first sequence number,
    /// RTP timestamp, its payloads): where to look for a keyframe to jump to.
    pub fn complete_frames_after_gap(&self) -> Vec<(u64, u32, Vec<Bytes>)> {
        let Some(next) = self.next else {
            return Vec::new();
        };
        let Some((&gap, _)) = self.missing.range(next..).next() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut s = gap + 1;
        let highest = self.highest.unwrap_or(gap);
        while s <= highest {
            if self.is_frame_start(s)
                && let Some(end) = self.frame_end(s)
            {
                out.push((
                    s,
                    self.packets.get(&s).map_or(0, |p| p.ts),
                    (s..=end)
                        .filter_map(|q| self.packets.get(&q).map(|p| p.payload.clone()))
                        .collect(),
                ));
                s = end + 1;
            } else {
                s += 1;
            }
        }
        out
    }

    /// True if `s` is known to start a frame: the packet before it is here and ends a frame
    /// (marker, padding, or another timestamp).
    fn is_frame_start(&self, s: u64) -> bool {
        match (self.packets.get(&s), self.packets.get(&(s - 1))) {
            (Some(p), Some(prev)) => {
                !p.payload.is_empty() && (prev.marker || prev.payload.is_empty() || prev.ts != p.ts)
            }
            _ => false,
        }
    }

    /// Drops everything before `seq` (a frame start found by [`Self::complete_frames_after_gap`]);
    /// returns how many missing packets were given up.
    pub fn drop_before(&mut self, seq: u64) -> u64 {
        let kept = self.packets.split_off(&seq);
        self.packets = kept;
        let still_missing = self.missing.split_off(&seq);
        let given_up = self.missing.len() as u64;
        self.missing = still_missing;
        self.next = Some(seq);
        given_up
    }

    /// Gives up the head frame that waits for a hole: drops everything up to the next packet
    /// known to start a frame (or everything, if none is known yet). Returns how many missing
    /// packets were given up.
    pub fn give_up_head(&mut self) -> u64 {
        let Some(next) = self.next else { return 0 };
        let highest = self.highest.unwrap_or(next);
        let restart = (next + 1..=highest).find(|&s| self.is_frame_start(s));
        match restart {
            Some(s) => self.drop_before(s),
            None => {
                // No frame start known: whatever arrives after the newest packet starts fresh.
                let given_up = self.missing.len() as u64;
                self.packets.clear();
                self.missing.clear();
                self.next = Some(highest + 1);
                given_up
            }
        }
    }
}

/// Extends a 16-bit sequence number to the value closest to `highest` (RFC 3550 §A.1).
pub fn unwrap_seq(highest: u64, seq: u16) -> u64 {
    let base = highest & !0xffff;
    let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
    candidates
        .iter()
        .map(|b| b.wrapping_add(u64::from(seq)))
        .filter(|c| *c < u64::MAX / 2)
        .min_by_key(|c| c.abs_diff(highest))
        .unwrap_or(base + u64::from(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &mut PacketBuffer, t: Instant, seq: u16, ts: u32, marker: bool) -> Inserted {
        b.insert(t, seq, ts, marker, Bytes::from(vec![seq as u8; 3]))
    }

    #[test]
    fn a_frame_leaves_when_its_marker_packet_and_all_before_it_are_in() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 10, 3000, false);
        p(&mut b, t, 12, 3000, true);
        assert!(b.pop_head().is_none(), "11 is missing");
        assert!(b.head_gap_since().is_some());
        let later = t + Duration::from_millis(120);
        let ins = p(&mut b, later, 11, 3000, false);
        assert_eq!(ins.repaired_after, Some(Duration::from_millis(120)));
        let f = b.pop_head().expect("complete");
        assert_eq!((f.ts, f.payloads.len(), f.repaired), (3000, 3, true));
        assert_eq!(f.completed_at, later);
        assert!(b.pop_head().is_none());
    }

    #[test]
    fn padding_fills_a_sequence_number_and_belongs_to_no_frame() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 1, 0, true);
        b.insert(t, 2, 0, false, Bytes::new());
        p(&mut b, t, 3, 3000, true);
        assert_eq!(b.pop_head().map(|f| f.ts), Some(0));
        assert_eq!(b.pop_head().map(|f| f.ts), Some(3000));
    }

    #[test]
    fn a_complete_frame_after_a_hole_is_found_and_the_head_can_jump_to_it() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 1, 0, false); // frame 0, its second packet (2) lost
        p(&mut b, t, 3, 0, true);
        p(&mut b, t, 4, 3000, false); // frame 3000 complete: 3 (marker) is here
        p(&mut b, t, 5, 3000, true);
        let after = b.complete_frames_after_gap();
        assert_eq!(after.len(), 1);
        // Sequence numbers come back extended (RFC 3550 §A.1); the low 16 bits are the wire's.
        let start = after[0].0;
        assert_eq!(after[0].1, 3000);
        assert_eq!(start & 0xffff, 4);
        assert_eq!(b.drop_before(start), 1, "packet 2 given up");
        assert_eq!(b.pop_head().map(|f| f.first_seq), Some(start));
    }

    #[test]
    fn giving_up_the_head_restarts_at_the_next_known_frame_start() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 1, 0, false);
        p(&mut b, t, 3, 0, true); // 2 lost
        p(&mut b, t, 4, 3000, false); // 5 lost: this frame is broken too
        p(&mut b, t, 6, 3000, true);
        p(&mut b, t, 7, 6000, true);
        assert_eq!(b.give_up_head(), 1);
        assert!(b.pop_head().is_none(), "frame 3000 still waits for 5");
        assert_eq!(b.give_up_head(), 1);
        assert_eq!(b.pop_head().map(|f| f.ts), Some(6000));
    }

    #[test]
    fn duplicates_and_packets_behind_the_head_are_ignored() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 1, 0, true);
        assert!(p(&mut b, t, 1, 0, true).duplicate);
        b.pop_head().expect("frame");
        assert!(p(&mut b, t, 1, 0, true).duplicate, "already handed on");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t = Instant::now();
        let mut b = PacketBuffer::default();
        p(&mut b, t, 65535, 0, false);
        p(&mut b, t, 0, 0, true);
        assert_eq!(b.pop_head().map(|f| f.payloads.len()), Some(2));
    }
}
