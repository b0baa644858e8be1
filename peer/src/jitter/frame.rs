//! From a frame's RTP payloads to the codec's bitstream, and whether it is a keyframe.

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtclab_media::Codec;

/// The encoded frame carried by `payloads` (one frame's packets in sequence order): Annex-B for
/// H.264 (RFC 6184), the VP8 frame for VP8 (RFC 7741). `None` if a payload is malformed.
pub fn depacketize(codec: Codec, payloads: &[Bytes]) -> Option<Bytes> {
    match codec {
        Codec::H264 => join(&mut H264Packet::default(), payloads),
        Codec::Vp8 => join(&mut Vp8Packet::default(), payloads),
    }
}

fn join(d: &mut impl Depacketizer, payloads: &[Bytes]) -> Option<Bytes> {
    let mut out = BytesMut::new();
    for p in payloads {
        // FU-A fragments come back empty until the last one completes the NAL unit.
        out.extend_from_slice(&d.depacketize(p).ok()?);
    }
    (!out.is_empty()).then(|| out.freeze())
}

/// True if the encoded frame starts a new decodable sequence.
pub fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        // VP8 payload header, frame type bit: 0 = key frame (RFC 6386 §9.1).
        Codec::Vp8 => frame.first().is_some_and(|b| b & 0x01 == 0),
        // An IDR slice (NAL type 5, RFC 6184 §1.3) anywhere in the Annex-B access unit.
        Codec::H264 => annexb_nal_types(frame).any(|t| t == 5),
    }
}

fn annexb_nal_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    data.windows(4).enumerate().filter_map(move |(i, w)| {
        if w[0] == 0 && w[1] == 0 && w[2] == 1 {
            Some(w[3] & 0x1f)
        } else if i == 0 && w == [0, 0, 0, 1] {
            data.get(4).map(|b| b & 0x1f)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_recognised() {
        assert!(is_keyframe(Codec::Vp8, &[0x10, 0x02]));
        assert!(!is_keyframe(Codec::Vp8, &[0x11, 0x02]));
        // SPS, PPS, IDR
        let idr = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 1, 0, 0, 1, 0x65, 9];
        assert!(is_keyframe(Codec::H264, &idr));
        let p = [0, 0, 0, 1, 0x41, 9, 9];
        assert!(!is_keyframe(Codec::H264, &p));
    }

    #[test]
    fn h264_fragments_are_joined_into_one_nal_unit() {
        // An IDR slice (type 5) split into two FU-A fragments (RFC 6184 §5.8): start, end.
        let start = Bytes::from_static(&[0x7c, 0x85, 1, 2]);
        let end = Bytes::from_static(&[0x7c, 0x45, 3, 4]);
        let frame = depacketize(Codec::H264, &[start, end]).expect("joined");
        assert!(is_keyframe(Codec::H264, &frame), "{frame:?}");
        assert!(frame.ends_with(&[1, 2, 3, 4]));
    }
}
