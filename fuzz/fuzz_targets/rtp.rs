//! The RTP and RTCP paths rtclab reads itself, fed a sequence of datagrams.
//!
//! The input is records: a control byte, a two-byte big-endian length, then that many bytes of
//! one datagram. Every datagram goes to:
//!
//! - the relay's watch (`runner/src/rtp_watch.rs`: first-byte classification, the RTP fixed
//!   header, per-SSRC loss, repeats and jitter), as `rtclab relay` reads what it carries;
//! - as RTP (webrtc-rs parses it, as the receiver does): the frame tags (abs-capture-time and
//!   the testsrc2 frame tag, `peer/src/qoe.rs`) and the FlexFEC receive chain (webrtc-rs's
//!   decoder and rtclab's counter of rebuilt packets, `peer/src/interceptors/fec.rs`);
//! - as RTCP: the wire tap's description of each packet (`peer/src/interceptors/tap.rs`), its
//!   event line, and the NACK filter (`nack_filter.rs`).
//!
//! The control byte moves the clock (low 6 bits, in 10 ms) and, with its top bits, ends the
//! relay watch's interval or hands the frame of that RTP timestamp to the decoder side
//! (`FrameTags::take`).
#![no_main]

// The relay watch lives in rtclab-runner, which depends on nearly the whole workspace; the
// module itself needs only rtclab-events, so it is compiled in here from its source file.
#[path = "../../runner/src/rtp_watch.rs"]
#[allow(dead_code, missing_docs)]
mod rtp_watch;

use rtc::interceptor::{AttributedPacket, Interceptor, Packet, Registry, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::marshal::Unmarshal;
use rtclab_events::{Direction, Event};
use rtclab_fuzz::fuzz_target;
use rtclab_peer::interceptors::counters::SharedCounters;
use rtclab_peer::interceptors::fec::PT_FLEXFEC;
use rtclab_peer::interceptors::nack_filter::{NackFilter, pairs};
use rtclab_peer::interceptors::send_queue::SendQueue;
use rtclab_peer::interceptors::tap::describe;
use rtclab_peer::qoe::{ExtIds, FrameTags, SourceTag};
use std::time::{Duration, Instant};

/// The media SSRC and its FlexFEC repair SSRC the receive chain is bound to (the seed corpus
/// uses them).
const MEDIA: u32 = 0x1234_5678;
const REPAIR: u32 = 0x0bad_cafe;

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
            id: 5,
        }],
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut watch = rtp_watch::RtpWatch::new("from_client");
    // Extension ids as rtclab's SDP usually negotiates them (the seed corpus uses 3 and 4).
    let mut tags = FrameTags::new(ExtIds {
        abs_capture_time: Some(3),
        testsrc_frame: Some(4),
    });
    let counters = SharedCounters::default();
    let mut chain = rtclab_peer::interceptors::with_fec_decoder(Registry::new(), &counters).build();
    chain.bind_remote_stream(&stream());
    let mut nacks = NackFilter::new(SendQueue::default());

    let mut rest = data;
    while let [control, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(10 * u64::from(control & 0x3f));
        let at_s = (now - start).as_secs_f64();

        watch.on_datagram(at_s, datagram);
        if control & 0x40 != 0 {
            for event in watch.take_interval(1.0) {
                serde_json::to_string(&event).expect("a relay event serialises");
            }
        }
        let _ = SourceTag::decode(datagram);

        if let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut &datagram[..]) {
            tags.on_packet(&packet);
            if control & 0x80 != 0 {
                let info = tags.take(packet.header.timestamp);
                assert!(!info.interpolated || info.capture_ntp.is_some());
            }
            let msg = TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtp(packet)),
            };
            // An error is a refused packet, which the receiver logs and drops.
            let _ = chain.handle_read(msg);
            while chain.poll_read().is_some() {}
            let _ = chain.handle_timeout(now);
        }

        if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &datagram[..]) {
            for packet in &packets {
                let described = describe(packet.as_ref());
                let event = Event::Rtcp {
                    direction: Direction::In,
                    packet: described,
                };
                serde_json::to_string(&event).expect("an rtcp event serialises");
                if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                    let kept = nacks.filter(now, nack);
                    let repacked = pairs(kept.clone());
                    let mut again: Vec<u16> =
                        repacked.iter().flat_map(|p| p.packet_list()).collect();
                    let mut kept = kept;
                    kept.sort_unstable();
                    kept.dedup();
                    again.sort_unstable();
                    assert_eq!(again, kept, "pairs() keeps exactly the sequence numbers");
                }
            }
        }
    }
    for event in watch.take_interval(1.0) {
        serde_json::to_string(&event).expect("a relay event serialises");
    }
});
