//! The wire tap: an interceptor nearest the network that sees every RTP and RTCP packet both
//! ways, counts them, and logs each RTCP packet as an `rtcp` event.
//!
//! webrtc-rs 0.21 leaves several statistics empty (docs/notes/webrtc-rs-0.21.md#empty-statistics), so
//! rtclab counts from the wire instead. The tap also marks inbound PLI/FIR for delivery to the
//! application, because the sender's encoder must see them and the chain's terminus drops inbound
//! RTCP that nobody marked.

use super::counters::SharedCounters;
use super::inspect::Inspect;
use super::pcap::PcapSink;
use super::send_queue::{self, SendQueue};
use rtc::interceptor::{Attribute, Packet, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::marshal::{Marshal, MarshalSize};
use rtclab_events::{Direction, Event, EventSink, PeerRole, ReportBlock, Rtcp};

/// Video clock rate (RFC 6184 §8.2.1, RFC 7741 §6.1), used to express RR jitter in ms.
const VIDEO_CLOCK_HZ: f64 = 90_000.0;

/// The tap interceptor.
pub struct WireTap {
    peer: PeerRole,
    sink: EventSink,
    pcap: Option<PcapSink>,
    counters: SharedCounters,
    /// The sender's pacer queue accounting (packets leave it here).
    queue: Option<SendQueue>,
}

impl WireTap {
    /// A tap logging as `peer` into `sink`; returns the tap and the handle to its counters.
    pub fn new(peer: PeerRole, sink: EventSink, pcap: Option<PcapSink>) -> (Self, SharedCounters) {
        let counters = SharedCounters::default();
        (
            WireTap {
                peer,
                sink,
                pcap,
                counters: counters.clone(),
                queue: None,
            },
            counters,
        )
    }

    /// Tells `queue` about every RTP packet leaving for the wire.
    pub fn with_send_queue(mut self, queue: SendQueue) -> Self {
        self.queue = Some(queue);
        self
    }

    fn capture(&self, msg: &TaggedPacket, direction: Direction) {
        let Some(pcap) = &self.pcap else { return };
        let bytes = match &msg.message.packet {
            Packet::Rtp(p) => p.marshal().ok().map(|b| b.to_vec()),
            Packet::Rtcp(packets) if !packets.is_empty() => packets
                .iter()
                .map(|p| p.marshal().map(|b| b.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .map(|parts| parts.concat()),
            _ => None,
        };
        let Some(bytes) = bytes else { return };
        let at = std::time::Duration::from_secs_f64(self.sink.elapsed());
        pcap.write(at, direction == Direction::Out, &bytes);
    }

    fn observe(&mut self, msg: &mut TaggedPacket, direction: Direction) {
        self.capture(msg, direction);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let retransmission = msg.message.has(&Attribute::Retransmission);
        match &msg.message.packet {
            Packet::Rtp(p) => {
                let bytes = (p.header.marshal_size() + p.payload.len()) as u64;
                match direction {
                    Direction::Out => {
                        if let Some(q) = &self.queue {
                            q.left(
                                send_queue::rtp_bytes(p),
                                send_queue::resent_key(msg),
                                msg.now,
                            );
                        }
                        counters.rtp_out_bytes += bytes;
                        if retransmission {
                            counters.rtx_out += 1;
                        } else if super::fec::is_repair(p) {
                            counters.fec_out += 1;
                            counters.fec_out_bytes += bytes;
                        } else {
                            counters.rtp_out += 1;
                        }
                    }
                    Direction::In => {
                        if super::fec::is_repair(p) {
                            counters.fec_in += 1;
                        }
                        counters.rtp_in += 1;
                        counters.rtp_in_bytes += bytes;
                    }
                }
            }
            Packet::Rtcp(packets) => {
                let mut deliver = false;
                for packet in packets {
                    let described = describe(packet.as_ref());
                    *counters
                        .rtcp
                        .entry((direction, described.type_name()))
                        .or_default() += 1;
                    match &described {
                        Rtcp::Nack { seqs, .. } => {
                            *counters.nacked_seqs.entry(direction).or_default() +=
                                seqs.len() as u64;
                        }
                        Rtcp::ReceiverReport { reports, .. }
                        | Rtcp::SenderReport { reports, .. }
                            if direction == Direction::In =>
                        {
                            if let Some(r) = reports.first() {
                                counters.remote_cumulative_lost = u64::from(r.cumulative_lost);
                            }
                        }
                        Rtcp::Pli { .. } | Rtcp::Fir { .. } if direction == Direction::In => {
                            deliver = true;
                        }
                        _ => {}
                    }
                    self.sink.emit(
                        attribute(self.peer, direction, &described),
                        Event::Rtcp {
                            direction,
                            packet: described,
                        },
                    );
                }
                if deliver {
                    msg.message.add(Attribute::DeliverToApplication);
                }
            }
            _ => {}
        }
    }
}

/// Which side of the peer an RTCP packet belongs to. A peer can send and receive at once (the
/// demo's Rust sender decodes the browser's camera), so RTCP is attributed by what it does:
/// feedback about a stream this peer receives (RR, NACK, PLI, FIR, TWCC, REMB going out; SR
/// coming in) is the receiving side's, feedback about a stream it sends is the sending side's.
fn attribute(peer: PeerRole, direction: Direction, packet: &Rtcp) -> PeerRole {
    let receiving_side = match packet {
        Rtcp::SenderReport { .. } => direction == Direction::In,
        Rtcp::ReceiverReport { .. }
        | Rtcp::Nack { .. }
        | Rtcp::Pli { .. }
        | Rtcp::Fir { .. }
        | Rtcp::Twcc { .. }
        | Rtcp::Remb { .. } => direction == Direction::Out,
        Rtcp::Sdes | Rtcp::Bye | Rtcp::Other { .. } => return peer,
    };
    if receiving_side {
        PeerRole::Receiver
    } else {
        PeerRole::Sender
    }
}

fn block(r: &ReceptionReport) -> ReportBlock {
    ReportBlock {
        media_ssrc: r.ssrc,
        fraction_lost: f64::from(r.fraction_lost) / 256.0,
        cumulative_lost: r.total_lost,
        highest_seq: r.last_sequence_number,
        jitter: r.jitter,
        jitter_ms: f64::from(r.jitter) / VIDEO_CLOCK_HZ * 1000.0,
    }
}

/// Turns one RTCP packet into its event form.
pub fn describe(packet: &dyn rtcp::Packet) -> Rtcp {
    let any = packet.as_any();
    if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        Rtcp::ReceiverReport {
            ssrc: rr.ssrc,
            reports: rr.reports.iter().map(block).collect(),
        }
    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
        Rtcp::SenderReport {
            ssrc: sr.ssrc,
            packets: sr.packet_count,
            octets: sr.octet_count,
            reports: sr.reports.iter().map(block).collect(),
        }
    } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
        Rtcp::Nack {
            media_ssrc: nack.media_ssrc,
            seqs: nack.nacks.iter().flat_map(|n| n.packet_list()).collect(),
        }
    } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        Rtcp::Pli {
            media_ssrc: pli.media_ssrc,
        }
    } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        Rtcp::Fir {
            media_ssrc: fir.fir.first().map_or(fir.media_ssrc, |e| e.ssrc),
        }
    } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
        Rtcp::Twcc {
            base_seq: cc.base_sequence_number,
            packet_count: cc.packet_status_count,
            fb_count: cc.fb_pkt_count,
            received: cc.recv_deltas.len() as u32,
        }
    } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
        Rtcp::Remb {
            bitrate_bps: f64::from(remb.bitrate),
            ssrcs: remb.ssrcs.clone(),
        }
    } else {
        let h = packet.header();
        match h.packet_type as u8 {
            202 => Rtcp::Sdes,
            203 => Rtcp::Bye,
            pt => Rtcp::Other {
                name: format!("pt={pt} fmt={}", h.count),
            },
        }
    }
}

impl Inspect for WireTap {
    fn on_read(&mut self, mut msg: TaggedPacket) -> Option<TaggedPacket> {
        self.observe(&mut msg, Direction::In);
        Some(msg)
    }

    fn on_write(&mut self, mut msg: TaggedPacket) -> Option<TaggedPacket> {
        self.observe(&mut msg, Direction::Out);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_is_attributed_to_the_side_it_serves() {
        let twcc = Rtcp::Twcc {
            base_seq: 0,
            packet_count: 1,
            fb_count: 0,
            received: 1,
        };
        let sr = Rtcp::SenderReport {
            ssrc: 1,
            packets: 0,
            octets: 0,
            reports: vec![],
        };
        // A sending peer that also receives (the demo): its outgoing TWCC is receiver feedback.
        assert_eq!(
            attribute(PeerRole::Sender, Direction::Out, &twcc),
            PeerRole::Receiver
        );
        assert_eq!(
            attribute(PeerRole::Sender, Direction::In, &twcc),
            PeerRole::Sender
        );
        assert_eq!(
            attribute(PeerRole::Sender, Direction::Out, &sr),
            PeerRole::Sender
        );
        assert_eq!(
            attribute(PeerRole::Receiver, Direction::In, &sr),
            PeerRole::Receiver
        );
        assert_eq!(
            attribute(PeerRole::Receiver, Direction::Out, &Rtcp::Sdes),
            PeerRole::Receiver
        );
    }
}
