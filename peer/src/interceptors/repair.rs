//! Loss repair configuration: NACK generation and response, and the SRTP replay window they
//! depend on.
//!
//! Two defaults of webrtc-rs 0.21 together turned a capacity drop into a permanent stall
//! (`bandwidth-drop`: nothing decoded after the drop, even once the capacity came back): the
//! receiver NACKed a missing packet every 100 ms without limit, and its SRTP replay window
//! (64 packets) rejected any retransmission arriving more than 64 packets after the newest one
//! as "duplicated" — which behind a 300 ms bottleneck queue is every retransmission. So the
//! receiver never saw its repairs, kept asking for them, and the retransmissions filled the
//! pacer until no new media got through. libwebrtc bounds both.

use rtc::interceptor::{Interceptor, NackGeneratorBuilder, NackResponderBuilder};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RtpCodecKind};

/// Retransmission requests per lost packet before the receiver gives up on it and relies on a
/// keyframe instead. libwebrtc (`nack_requester.cc`) allows 10 retries spaced by the RTT; with
/// webrtc-rs's fixed [`NACK_INTERVAL`] this keeps asking for 1.5 s: on a 400 ms round trip,
/// room for three retransmissions (the sender's NACK filter resends a packet at most once per
/// 1.25 × RTT), which the jitter buffer's deadline (`jitter::timing::REPAIR_ATTEMPTS`) waits
/// for. Not more: webrtc-rs's generator does not see repairs that come as RTX on their own SSRC
/// (Chromium's), so it asks for those until this cap, and Chromium answers each request — with
/// 60 a Chromium sender on loss-5 resent every lost packet about 20 times and its queue held
/// the video a second late; with 30, 11 times (a weakness still open).
pub const MAX_NACKS_PER_PACKET: u16 = 30;

/// SRTP replay window, packets (RFC 3711 §3.3.2 leaves the size to the implementation; libwebrtc
/// uses 1024 so that retransmissions arriving late are still accepted). At 3 Mbps (~300
/// packets/s) this covers about 3 s.
pub const SRTP_REPLAY_WINDOW: usize = 1024;

/// How often the receiver's NACK generator looks for gaps (RFC 4585 §3.5 allows early feedback
/// at any time in the AVPF profile). webrtc-rs's default of 100 ms made a lost repair cost
/// 200–300 ms, a visible freeze (W3C: > 3 frame intervals or +150 ms); libwebrtc NACKs on the
/// gap and again after an RTT. The sender's filter drops requests for repairs in flight.
pub const NACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Negotiates NACK and PLI (RFC 4585 §4.2).
pub fn negotiate(media_engine: &mut MediaEngine) {
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
}

/// webrtc-rs's NACK responder: keeps sent packets and resends the ones a NACK asks for.
pub fn responder() -> impl Interceptor {
    NackResponderBuilder::new().build()
}

/// webrtc-rs's NACK generator, bounded: every [`NACK_INTERVAL`], at most
/// [`MAX_NACKS_PER_PACKET`] requests per lost packet.
pub fn generator() -> impl Interceptor {
    NackGeneratorBuilder::new()
        .with_interval(NACK_INTERVAL)
        .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
        .build()
}
