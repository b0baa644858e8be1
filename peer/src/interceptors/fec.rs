//! FlexFEC (`--fec`): forward error correction for high-loss links, between two Rust peers.
//!
//! webrtc-rs 0.21 has both halves of FlexFEC draft-03 (`video/flexfec-03`, what Chromium
//! negotiates): `FlexFec03SendInterceptor` (`Slot::FecEncoder`, 5_000) builds repair packets on
//! a separate SSRC announced by `a=ssrc-group:FEC-FR`, and `FlexFec03ReceiveInterceptor`
//! (`Slot::FecDecoder`, 6_000) rebuilds lost media, swallows the repair packets, and puts the
//! rebuilt packets back on the read leg marked `RecoveredByFec` — before the NACK generator
//! (7_000), so a rebuilt packet is not requested again, and before the track, so the
//! `SampleBuilder` sees it. Neither is registered by default.
//!
//! The decoder is used as it is. The encoder is not: it sits above the TWCC sender, so it
//! protects packets *without* the transport-wide sequence number extension that the receiver
//! then XORs *with* it, and every rebuilt packet is corrupt (see [`super::slot::FEC_PROTECT`]). rtclab
//! protects packets where they are final ([`FecProtect`], with webrtc-rs's `FlexFec03Encoder`)
//! and feeds the repair packets back in above the pacer ([`FecInject`]). This module also
//! counts the media the decoder rebuilt; the wire tap counts the repair packets.
//!
//! Retransmissions (marked `Retransmission` by the NACK responder) and repair packets are not
//! protected: a block holds consecutive first transmissions of the media SSRC, as the encoder
//! requires; a gap (a packet the pacer's time bound dropped) starts a new block.

use super::counters::SharedCounters;
use super::inspect::{Inspect, Inspector};
use rtc::interceptor::{
    Attribute, AttributedPacket, FlexFec03Encoder, FlexFec03ReceiveBuilder, Interceptor, Packet,
    StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_FLEX_FEC03, MediaEngine};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// FlexFEC's payload type (dynamic range, RFC 3551 §6; distinct from VP8 96 and H.264 102).
pub const PT_FLEXFEC: u8 = 118;

/// `repair-window` in microseconds (draft-ietf-payload-flexible-fec-scheme-03 §5.1.1: how long
/// after a source packet a repair packet may still arrive). 10 s, what Chromium offers.
const FMTP: &str = "repair-window=10000000";

/// Media packets per repair block, protected by [`FEC_PER_BLOCK`] repair packet(s).
///
/// One XOR repair packet over 5 media packets: 20 % overhead, and it rebuilds a lost packet when
/// none of the other 5 packets of its block (4 media + the repair packet) was lost too —
/// 0.9^5 ≈ 59 % of the losses at 10 % random loss, 0.8^5 ≈ 33 % at 20 %; NACK repairs the rest.
/// Smaller blocks recover more but cost more (4:1 is 25 % for 0.9^4 ≈ 66 %); larger ones hold
/// the repair packet longer (a block of 10 at ~100 packets/s is 100 ms, longer than the NACK
/// interval, so the NACK would usually win) and recover less (0.9^10 ≈ 35 %). The upstream default
/// (5 media : 2 repair, 40 %) spends twice the overhead to cover the rarer double loss.
pub const MEDIA_PER_BLOCK: u32 = 5;

/// Repair packets per block (see [`MEDIA_PER_BLOCK`]).
pub const FEC_PER_BLOCK: u32 = 1;

/// The media packets' share of the sent packets (5/6): what the encoder may spend of the
/// target when FlexFEC is on (repair packets are about as large as the media packets).
pub const MEDIA_SHARE: f64 = MEDIA_PER_BLOCK as f64 / (MEDIA_PER_BLOCK + FEC_PER_BLOCK) as f64;

/// The FlexFEC-03 codec as registered and as put in a transceiver's codec preferences.
pub fn codec_parameters() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_FLEX_FEC03.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: FMTP.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: PT_FLEXFEC,
    }
}

/// Offers FlexFEC-03: with it registered, webrtc-rs gives each sending encoding a repair SSRC
/// and binds the repair flow on the receiving side.
pub fn register(media_engine: &mut MediaEngine) -> Result<(), webrtc::error::Error> {
    media_engine.register_codec(codec_parameters(), RtpCodecKind::Video)?;
    Ok(())
}

/// rtclab's FEC encoder in its two parts: [`FecProtect`] (at [`super::slot::FEC_PROTECT`],
/// wire-ward of the TWCC sender) computes repair packets where the packets are final, and
/// [`FecInject`] (at [`super::slot::FEC_INJECT`], application-ward of the pacer) feeds them
/// back in so they are paced and numbered like media. The wire tap counts them.
pub fn encoder() -> (Inspector<FecProtect>, FecInject) {
    let pending = Pending::default();
    (
        Inspector::new(FecProtect {
            streams: HashMap::new(),
            pending: pending.clone(),
        }),
        FecInject {
            pending,
            write: VecDeque::new(),
            read: VecDeque::new(),
        },
    )
}

/// webrtc-rs's FlexFEC-03 decoder (used as it is, at `Slot::FecDecoder`).
pub fn decoder() -> impl Interceptor {
    FlexFec03ReceiveBuilder::new().build()
}

/// The counter of media packets the decoder rebuilt (at [`super::slot::FEC_RECOVERED`]).
pub fn recovered_counter(counters: &SharedCounters) -> Inspector<CountRecovered> {
    Inspector::new(CountRecovered {
        counters: counters.clone(),
        twcc_ids: HashMap::new(),
    })
}

/// Whether `p` is a FlexFEC repair packet (by its negotiated payload type).
pub fn is_repair(p: &rtc::rtp::Packet) -> bool {
    p.header.payload_type == PT_FLEXFEC
}

/// Counts the packets the FEC decoder put back on the read leg (`fec_recovered`), and takes
/// their transport-wide sequence number off them.
///
/// A rebuilt packet carries the transport-cc extension of the packet that was lost; an arrival
/// recorder application-ward of the decoder (webrtc-rs puts the TWCC receiver at 8_000) would
/// report it as arrived, at the instant the repair packet came, and the sender's congestion
/// controller would see neither the loss nor the true delay. libwebrtc reports only packets that
/// came off the wire. rtclab's TWCC receiver sits wire-ward of the decoder when FEC is on
/// ([`super::slot::TWCC_RECEIVER_WITH_FEC`]), so this is a second line of defence for any recorder added later.
pub struct CountRecovered {
    counters: SharedCounters,
    /// The negotiated transport-cc extension id per media SSRC.
    twcc_ids: HashMap<u32, u8>,
}

impl Inspect for CountRecovered {
    fn on_read(&mut self, mut msg: TaggedPacket) -> Option<TaggedPacket> {
        if msg.message.has(&Attribute::RecoveredByFec) {
            let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            c.fec_recovered += 1;
            if let Packet::Rtp(p) = &msg.message.packet {
                if c.fec_rebuilt_seqs.len() >= super::counters::FEC_REBUILT_KEPT {
                    c.fec_rebuilt_seqs.pop_front();
                }
                c.fec_rebuilt_seqs.push_back(p.header.sequence_number);
            }
            drop(c);
            if let Packet::Rtp(p) = &mut msg.message.packet
                && let Some(&id) = self.twcc_ids.get(&p.header.ssrc)
            {
                // Absent is fine: only the extension's removal matters here.
                let _ = p.header.del_extension(id);
            }
        }
        Some(msg)
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(ext) = info
            .rtp_header_extensions
            .iter()
            .find(|e| e.uri == rtc::sdp::extmap::TRANSPORT_CC_URI)
            && let Ok(id) = u8::try_from(ext.id)
        {
            self.twcc_ids.insert(info.ssrc, id);
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.twcc_ids.remove(&info.ssrc);
    }
}

/// Repair packets computed wire-ward, waiting to re-enter the write leg above the pacer.
type Pending = Arc<Mutex<VecDeque<TaggedPacket>>>;

/// One protected media stream.
struct Protected {
    encoder: FlexFec03Encoder,
    block: Vec<rtc::rtp::Packet>,
}

impl Protected {
    /// Adds a first transmission; returns the repair packets once the block is full.
    fn push(&mut self, packet: &rtc::rtp::Packet) -> Vec<rtc::rtp::Packet> {
        if let Some(last) = self.block.last()
            && last.header.sequence_number.wrapping_add(1) != packet.header.sequence_number
        {
            // The encoder protects only consecutive runs; start again from here.
            self.block.clear();
        }
        self.block.push(packet.clone());
        if self.block.len() < MEDIA_PER_BLOCK as usize {
            return Vec::new();
        }
        let repair = self.encoder.encode(&self.block, FEC_PER_BLOCK);
        self.block.clear();
        repair
    }
}

/// Builds FlexFEC-03 repair packets from media packets in their final form (see
/// [`super::slot::FEC_PROTECT`]); hands them to [`FecInject`].
pub struct FecProtect {
    streams: HashMap<u32, Protected>,
    pending: Pending,
}

impl FecProtect {
    fn observe(&mut self, msg: &TaggedPacket) {
        let Packet::Rtp(p) = &msg.message.packet else {
            return;
        };
        if msg.message.has(&Attribute::Retransmission) {
            return;
        }
        let Some(stream) = self.streams.get_mut(&p.header.ssrc) else {
            return;
        };
        let repair = stream.push(p);
        if repair.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(repair.into_iter().map(|r| TaggedPacket {
            now: msg.now,
            transport: msg.transport,
            message: AttributedPacket::new(Packet::Rtp(r)),
        }));
    }
}

impl Inspect for FecProtect {
    fn on_write(&mut self, msg: TaggedPacket) -> Option<TaggedPacket> {
        self.observe(&msg);
        Some(msg)
    }

    fn bind_local_stream(&mut self, info: &StreamInfo) {
        // Both halves of the association or nothing, as webrtc-rs's own encoder: the repair
        // SSRC and payload type come from the negotiated `a=ssrc-group:FEC-FR` and flexfec-03.
        if let (Some(ssrc_fec), Some(pt_fec)) = (info.ssrc_fec, info.payload_type_fec) {
            self.streams.insert(
                info.ssrc,
                Protected {
                    encoder: FlexFec03Encoder::new(pt_fec, ssrc_fec),
                    block: Vec::new(),
                },
            );
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }
}

/// Puts the repair packets [`FecProtect`] made back on the write leg above the pacer. The chain
/// polls every interceptor whenever its output is empty, so they leave on the next walk.
pub struct FecInject {
    pending: Pending,
    write: VecDeque<TaggedPacket>,
    read: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FecInject {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front().or_else(|| {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
        })
    }
}

impl Interceptor for FecInject {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Wraps a send-side interceptor that keeps per-stream state (the TWCC sender, the congestion
/// controller's send history) so that it also takes the media stream's repair SSRC as a stream
/// of its own.
///
/// webrtc-rs binds only the media SSRC on the send side; the TWCC sender numbers only bound
/// streams and the history records only bound streams, so repair packets left unnumbered
/// (measured: PT 118 without any header extension in `rtp.pcap`) and the congestion controller
/// never saw their bytes or their losses. Without FEC there is no repair SSRC and this changes
/// nothing.
pub struct BindRepair<I>(pub I);

fn repair_stream(info: &StreamInfo) -> Option<StreamInfo> {
    let (ssrc, pt) = (info.ssrc_fec?, info.payload_type_fec?);
    Some(StreamInfo {
        ssrc,
        payload_type: pt,
        ssrc_fec: None,
        payload_type_fec: None,
        ssrc_rtx: None,
        payload_type_rtx: None,
        ..info.clone()
    })
}

impl<I: Interceptor> Protocol<TaggedPacket, TaggedPacket, ()> for BindRepair<I> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_read(msg)
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.0.poll_read()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_write(msg)
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.0.poll_write()
    }
    fn handle_event(&mut self, evt: ()) -> Result<(), Self::Error> {
        self.0.handle_event(evt)
    }
    fn poll_event(&mut self) -> Option<()> {
        self.0.poll_event()
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.0.handle_timeout(now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn close(&mut self) -> Result<(), Self::Error> {
        self.0.close()
    }
}

impl<I: Interceptor> Interceptor for BindRepair<I> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.0.bind_local_stream(info);
        if let Some(repair) = repair_stream(info) {
            self.0.bind_local_stream(&repair);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_local_stream(info);
        if let Some(repair) = repair_stream(info) {
            self.0.unbind_local_stream(&repair);
        }
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.bind_remote_stream(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use super::super::counters::WireCounters;
    use super::*;
    use bytes::Bytes;
    use rtc::interceptor::Registry;
    use rtc::rtp;
    use rtc::shared::TransportContext;

    const MEDIA: u32 = 0x1234_5678;
    const REPAIR: u32 = 0x0bad_cafe;
    /// A one-byte header extension id, as the abs-capture-time one is.
    const EXT_ID: u8 = 3;
    /// The transport-cc extension's id.
    const TWCC_ID: u8 = 5;

    fn stream() -> StreamInfo {
        StreamInfo {
            ssrc: MEDIA,
            ssrc_fec: Some(REPAIR),
            payload_type_fec: Some(PT_FLEXFEC),
            payload_type: 102,
            clock_rate: 90_000,
            mime_type: "video/H264".to_owned(),
            rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                id: u16::from(TWCC_ID),
            }],
            ..Default::default()
        }
    }

    /// A media packet with a header extension and a payload whose length and bytes vary.
    fn media(seq: u16) -> rtp::Packet {
        let mut header = rtp::header::Header {
            version: 2,
            marker: seq % 3 == 2,
            payload_type: 102,
            sequence_number: seq,
            timestamp: 90_000 + u32::from(seq / 3) * 3000,
            ssrc: MEDIA,
            extension: true,
            extension_profile: 0xBEDE,
            ..Default::default()
        };
        header
            .set_extension(EXT_ID, Bytes::from(vec![seq as u8; 3]))
            .expect("one-byte extension");
        header
            .set_extension(TWCC_ID, Bytes::from(seq.to_be_bytes().to_vec()))
            .expect("one-byte extension");
        let len = 100 + usize::from(seq) * 37 % 900;
        rtp::Packet {
            header,
            payload: Bytes::from((0..len).map(|i| (i as u16 ^ seq) as u8).collect::<Vec<_>>()),
        }
    }

    fn tagged(p: rtp::Packet, now: Instant) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    fn rtp_of(msg: &TaggedPacket) -> &rtp::Packet {
        match &msg.message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("not RTP"),
        }
    }

    /// Writes `seqs` through rtclab's sender side and returns everything that reaches the wire.
    fn send(seqs: impl IntoIterator<Item = u16>, now: Instant) -> Vec<TaggedPacket> {
        let mut chain = crate::interceptors::with_fec_encoder(Registry::new()).build();
        chain.bind_local_stream(&stream());
        let mut wire = Vec::new();
        for seq in seqs {
            chain.handle_write(tagged(media(seq), now)).expect("write");
            while let Some(out) = chain.poll_write() {
                wire.push(out);
            }
        }
        wire
    }

    #[test]
    fn a_lost_packet_is_rebuilt_byte_for_byte_and_counted() {
        let now = Instant::now();
        let wire = send(0..10, now);
        let repair: Vec<_> = wire.iter().filter(|m| is_repair(rtp_of(m))).collect();
        assert_eq!(
            repair.len(),
            (10 / MEDIA_PER_BLOCK * FEC_PER_BLOCK) as usize,
            "one repair packet per block of {MEDIA_PER_BLOCK}"
        );
        assert!(repair.iter().all(|m| rtp_of(m).header.ssrc == REPAIR));

        // The receiver loses media packet 7 (second block).
        let counters: SharedCounters = Arc::new(Mutex::new(WireCounters::default()));
        let mut chain = crate::interceptors::with_fec_decoder(Registry::new(), &counters).build();
        chain.bind_remote_stream(&stream());
        let mut delivered = Vec::new();
        for msg in wire {
            if rtp_of(&msg).header.sequence_number == 7 && !is_repair(rtp_of(&msg)) {
                continue;
            }
            chain.handle_read(msg).expect("read");
            while let Some(out) = chain.poll_read() {
                delivered.push(out);
            }
        }
        assert!(
            delivered.iter().all(|m| !is_repair(rtp_of(m))),
            "repair packets are consumed, never delivered"
        );
        let rebuilt: Vec<_> = delivered
            .iter()
            .filter(|m| m.message.has(&Attribute::RecoveredByFec))
            .collect();
        assert_eq!(rebuilt.len(), 1);
        // The lost packet, except for its transport-wide sequence number: the TWCC receiver
        // must not report a packet that never arrived.
        let mut lost = media(7);
        lost.header.del_extension(TWCC_ID).expect("has it");
        assert_eq!(
            rtp_of(rebuilt[0]),
            &lost,
            "the rebuilt packet is the lost one"
        );
        assert_eq!(delivered.len(), 10, "9 arrived + 1 rebuilt");
        assert_eq!(counters.lock().unwrap().fec_recovered, 1);
    }

    #[test]
    fn two_losses_in_one_block_are_left_to_nack() {
        let now = Instant::now();
        let wire = send(0..5, now);
        let counters: SharedCounters = Arc::new(Mutex::new(WireCounters::default()));
        let mut chain = crate::interceptors::with_fec_decoder(Registry::new(), &counters).build();
        chain.bind_remote_stream(&stream());
        for msg in wire {
            let p = rtp_of(&msg);
            if !is_repair(p) && (p.header.sequence_number == 1 || p.header.sequence_number == 3) {
                continue;
            }
            chain.handle_read(msg).expect("read");
            while chain.poll_read().is_some() {}
        }
        assert_eq!(counters.lock().unwrap().fec_recovered, 0);
    }

    #[test]
    fn retransmissions_and_gaps_do_not_break_blocks() {
        let now = Instant::now();
        let mut chain = crate::interceptors::with_fec_encoder(Registry::new()).build();
        chain.bind_local_stream(&stream());
        let mut repair = Vec::new();
        let mut write = |msg: TaggedPacket, repair: &mut Vec<rtp::Packet>| {
            chain.handle_write(msg).expect("write");
            while let Some(out) = chain.poll_write() {
                if is_repair(rtp_of(&out)) {
                    repair.push(rtp_of(&out).clone());
                }
            }
        };
        // 0, 1, then a retransmission of 0 (ignored), then a gap: 4..=8 is the first full run.
        for seq in [0, 1] {
            write(tagged(media(seq), now), &mut repair);
        }
        let mut rtx = tagged(media(0), now);
        rtx.message.add(Attribute::Retransmission);
        write(rtx, &mut repair);
        for seq in 4..=8 {
            write(tagged(media(seq), now), &mut repair);
        }
        assert_eq!(repair.len(), 1);
        // Its FlexFEC header protects SSRC MEDIA from base sequence number 4 (draft-03 §4.2).
        let payload = &repair[0].payload;
        assert_eq!(&payload[12..16], &MEDIA.to_be_bytes());
        assert_eq!(u16::from_be_bytes([payload[16], payload[17]]), 4);
    }

    #[test]
    fn protecting_before_an_extension_is_added_rebuilds_garbage() {
        // Why slot::FEC_PROTECT is below the TWCC sender: webrtc-rs's encoder (5_000) sees packets
        // before the transport-cc extension (2_000) is added; the receiver has them with it.
        let mut protected = Protected {
            encoder: FlexFec03Encoder::new(PT_FLEXFEC, REPAIR),
            block: Vec::new(),
        };
        let mut repair = Vec::new();
        for seq in 0..5 {
            repair.extend(protected.push(&media(seq)));
        }
        let mut decoder = rtc::interceptor::FlexFec03Decoder::new(REPAIR, MEDIA);
        let mut rebuilt = Vec::new();
        for seq in [0, 1, 3, 4] {
            let mut arrived = media(seq);
            arrived
                .header
                .set_extension(EXT_ID + 1, Bytes::from_static(&[0, 42]))
                .expect("extension");
            rebuilt.extend(decoder.decode(arrived));
        }
        for r in repair {
            rebuilt.extend(decoder.decode(r));
        }
        // Something comes out, with the right sequence number, and it is not packet 2.
        assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
        assert_eq!(rebuilt[0].header.sequence_number, 2);
        assert_ne!(rebuilt[0], media(2));
    }
}
