//! FlexFEC (`--fec`): forward error correction for high-loss links, between two Rust peers.
//!
//! webrtc-rs 0.21 has both halves of FlexFEC draft-03 (`video/flexfec-03`, what Chromium
//! negotiates): `FlexFec03SendInterceptor` (`Slot::FecEncoder`, 5_000) builds repair packets on
//! a separate SSRC announced by `a=ssrc-group:FEC-FR`, and `FlexFec03ReceiveInterceptor`
//! (`Slot::FecDecoder`, 6_000) rebuilds lost media, swallows the repair packets, and puts the
//! rebuilt packets back on the read leg marked `RecoveredByFec` — before the NACK generator
//! (7_000), so a rebuilt packet is not requested again, and before the track, so the
//! `SampleBuilder` sees it. Neither is registered by default; this module registers them and
//! counts the media they rebuilt; the wire tap counts the repair packets.
//!
//! Retransmissions do not pass the encoder: the NACK responder (4_000) emits them wire-ward of it,
//! so a repair block only ever holds consecutive first transmissions, which the encoder requires.

use crate::inspect::{Inspect, Inspector};
use crate::tap::SharedCounters;
use rtc::interceptor::{
    Attribute, FlexFec03ReceiveBuilder, FlexFec03SendBuilder, Registry, Slot, TaggedPacket,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_FLEX_FEC03, MediaEngine};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};

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

/// Application-ward of the FEC decoder (6_000) and before the NACK generator (7_000) on the read
/// leg: sees the media packets the decoder rebuilt. (Repair packets themselves are counted by
/// the wire tap, which knows them by [`PT_FLEXFEC`].)
const RECOVERED_SLOT: usize = 6_100;

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
        ..Default::default()
    }
}

/// Offers FlexFEC-03: with it registered, webrtc-rs gives each sending encoding a repair SSRC
/// and binds the repair flow on the receiving side.
pub fn register(media_engine: &mut MediaEngine) -> Result<(), webrtc::error::Error> {
    media_engine.register_codec(codec_parameters(), RtpCodecKind::Video)?;
    Ok(())
}

/// Adds the FEC encoder (the wire tap counts the repair packets it makes).
pub fn configure_sender(registry: Registry) -> Registry {
    registry.with(
        Slot::FecEncoder,
        FlexFec03SendBuilder::new()
            .with_num_media_packets(MEDIA_PER_BLOCK)
            .with_num_fec_packets(FEC_PER_BLOCK)
            .build(),
    )
}

/// Adds the FEC decoder and a counter of the media packets it rebuilds.
pub fn configure_receiver(registry: Registry, counters: &SharedCounters) -> Registry {
    registry
        .with(Slot::FecDecoder, FlexFec03ReceiveBuilder::new().build())
        .with(
            Slot::from(RECOVERED_SLOT),
            Inspector::new(CountRecovered(counters.clone())),
        )
}

/// Whether `p` is a FlexFEC repair packet (by its negotiated payload type).
pub fn is_repair(p: &rtc::rtp::Packet) -> bool {
    p.header.payload_type == PT_FLEXFEC
}

/// Counts the packets the FEC decoder put back on the read leg (`fec_recovered`).
struct CountRecovered(SharedCounters);

impl Inspect for CountRecovered {
    fn on_read(&mut self, msg: TaggedPacket) -> Option<TaggedPacket> {
        if msg.message.has(&Attribute::RecoveredByFec) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).fec_recovered += 1;
        }
        Some(msg)
    }
}
