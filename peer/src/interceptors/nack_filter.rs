//! Loss repair without storms: a sender-side filter that answers each lost packet's NACK once
//! per repair window.
//!
//! Between two webrtc-rs peers a lost packet was retransmitted ~22 times (docs/notes/webrtc-rs-0.21.md#nackrtx-storm, "NACK/RTX
//! storm"); without RTX it is still ~6 at 5 % loss, because the receiver's NACK generator asks
//! again every interval while the first retransmission waits in the pacer queue behind media.
//! libwebrtc's sender refuses to resend a packet again within one RTT of the last resend
//! (`RTPSender::ReSendPacket`); this filter does the same with a floor, before the NACK reaches
//! the responder. Time comes from the packet (`TaggedPacket::now`), not from a clock.

use super::inspect::Inspect;
use super::send_queue::SendQueue;
use rtc::interceptor::{Packet, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use std::time::{Duration, Instant};

/// Least time between two retransmissions of one packet when no RTT is known (the stock GCC
/// exposes none). The loopback RTT is ~1 ms, but a
/// retransmission can sit behind a frame in the pacer for longer; one frame interval at low
/// rates plus margin (libwebrtc uses max(RTT, 5 ms) with a pacer that sends repairs first).
pub const REPAIR_WINDOW: Duration = Duration::from_millis(150);

/// With a measured RTT, a repair that left is given 1.25 × RTT plus this before a new request
/// may send another (libwebrtc `RtpSenderEgress`/`RTPSender::ReSendPacket` wait one RTT; the
/// margin covers the receiver's processing). A pending repair is never queued twice.
const RTT_MARGIN: Duration = Duration::from_millis(10);

/// Drops NACK entries for packets whose retransmission is still queued or left within
/// [`REPAIR_WINDOW`] (bookkeeping shared with the wire tap, see `send_queue.rs`).
#[derive(Default)]
pub struct NackFilter {
    queue: SendQueue,
    rtt: Option<crate::bwe::TargetHandle>,
    /// Sequence numbers removed from NACKs so far (duplicate requests not answered).
    pub suppressed: u64,
}

impl NackFilter {
    /// A filter consulting `queue` (shared with the sender's wire tap).
    pub fn new(queue: SendQueue) -> Self {
        NackFilter {
            queue,
            rtt: None,
            suppressed: 0,
        }
    }

    /// Sizes the repair window from the controller's RTT when it has one.
    pub fn with_rtt(mut self, controller: crate::bwe::TargetHandle) -> Self {
        self.rtt = Some(controller);
        self
    }

    /// How long after a repair left before the same packet may be repaired again.
    pub fn window(&self) -> Duration {
        match self.rtt.as_ref().and_then(crate::bwe::TargetHandle::rtt) {
            Some(rtt) => rtt.mul_f64(1.25) + RTT_MARGIN,
            None => REPAIR_WINDOW,
        }
    }

    /// Keeps the sequence numbers of `nack` that deserve a retransmission at `now`.
    pub fn filter(&mut self, now: Instant, nack: &TransportLayerNack) -> Vec<u16> {
        let window = self.window();
        let mut keep = Vec::new();
        for seq in nack.nacks.iter().flat_map(NackPair::packet_list) {
            if self
                .queue
                .should_resend((nack.media_ssrc, seq), now, window)
            {
                keep.push(seq);
            } else {
                self.suppressed += 1;
            }
        }
        keep
    }
}

/// Packs sequence numbers into NACK pairs (RFC 4585 §6.2.1: a PID and a 16-bit bitmask of the
/// following 16).
pub fn pairs(mut seqs: Vec<u16>) -> Vec<NackPair> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut out: Vec<NackPair> = Vec::new();
    for seq in seqs {
        if let Some(last) = out.last_mut() {
            let d = seq.wrapping_sub(last.packet_id);
            if (1..=16).contains(&d) {
                last.lost_packets |= 1 << (d - 1);
                continue;
            }
        }
        out.push(NackPair {
            packet_id: seq,
            lost_packets: 0,
        });
    }
    out
}

impl Inspect for NackFilter {
    fn on_read(&mut self, mut msg: TaggedPacket) -> Option<TaggedPacket> {
        let now = msg.now;
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            let mut kept: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::with_capacity(packets.len());
            for p in packets.drain(..) {
                match p.as_any().downcast_ref::<TransportLayerNack>() {
                    Some(nack) => {
                        let seqs = self.filter(now, nack);
                        if !seqs.is_empty() {
                            kept.push(Box::new(TransportLayerNack {
                                sender_ssrc: nack.sender_ssrc,
                                media_ssrc: nack.media_ssrc,
                                nacks: pairs(seqs),
                            }));
                        }
                    }
                    None => kept.push(p),
                }
            }
            if kept.is_empty() {
                // Everything in it was a duplicate request: nothing left to pass on (an empty
                // compound packet is reserved as an attribute carrier, so drop it instead).
                if msg.message.attributes.is_empty() {
                    return None;
                }
            }
            *packets = kept;
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(seqs: &[u16]) -> TransportLayerNack {
        TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: pairs(seqs.to_vec()),
        }
    }

    #[test]
    fn pairs_round_trip_through_packet_list() {
        let seqs = vec![5, 6, 21, 22, 40, 65535, 0];
        let list: Vec<u16> = pairs(seqs.clone())
            .iter()
            .flat_map(NackPair::packet_list)
            .collect();
        let mut want = seqs;
        want.sort_unstable();
        let mut got = list;
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn a_repeated_request_is_dropped_while_the_repair_is_queued_or_fresh() {
        let queue = SendQueue::default();
        let mut f = NackFilter::new(queue.clone());
        let t0 = Instant::now();
        assert_eq!(f.filter(t0, &nack(&[10, 11])), vec![10, 11]);
        assert_eq!(
            f.filter(t0 + Duration::from_millis(100), &nack(&[10, 12])),
            vec![12],
            "10's repair has not left yet"
        );
        assert_eq!(f.suppressed, 1);
        // The repair of 10 leaves at 300 ms (it waited in the pacer).
        queue.left(1000, Some((2, 10)), t0 + Duration::from_millis(300));
        assert!(
            f.filter(t0 + Duration::from_millis(400), &nack(&[10]))
                .is_empty()
        );
        // After the window the packet may be resent (its retransmission was lost too).
        assert_eq!(
            f.filter(t0 + Duration::from_millis(460), &nack(&[10])),
            vec![10]
        );
    }
}
