//! H.264 and VP8 decoders (libavcodec), one output picture per complete input frame.

use ffmpeg::{codec, decoder, frame};
use ffmpeg_next as ffmpeg;

use crate::{Codec, MediaError};

/// One decoded picture.
pub struct DecodedFrame {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// The picture in the decoder's output format (yuv420p for rtclab's streams).
    pub frame: frame::Video,
}

/// A low-delay, single-threaded libavcodec decoder for one video stream.
pub struct Decoder {
    codec: Codec,
    decoder: decoder::Video,
}

impl Decoder {
    /// Opens libavcodec's native decoder for `codec` (`h264` or `vp8`).
    pub fn new(codec: Codec) -> Result<Self, MediaError> {
        crate::init()?;
        let id = match codec {
            Codec::H264 => codec::Id::H264,
            Codec::Vp8 => codec::Id::VP8,
        };
        let found = decoder::find(id).ok_or_else(|| MediaError::Unavailable {
            what: format!("{codec} decoder"),
            hint: "install FFmpeg's libavcodec (Debian: libavcodec59, libavcodec-dev to build)",
        })?;
        let mut ctx = codec::Context::new_with_codec(found);
        // LOW_DELAY: output each picture as soon as it is decoded (no reordering wait); one
        // thread, because frame threading adds a frame of delay per thread.
        ctx.set_flags(codec::Flags::LOW_DELAY);
        ctx.set_threading(codec::threading::Config {
            count: 1,
            ..Default::default()
        });
        let decoder = ctx
            .decoder()
            .open_as(found)
            .and_then(|o| o.video())
            .map_err(|e| MediaError::Decode {
                codec,
                message: format!("opening the decoder failed: {e}"),
            })?;
        Ok(Decoder { codec, decoder })
    }

    /// The codec this decoder was opened for.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one complete frame (an Annex-B access unit for H.264, one VP8 frame).
    ///
    /// Normally returns one picture. Returns no picture when the decoder is waiting for a
    /// keyframe (e.g. H.264 started mid-stream), and [`MediaError::Decode`] for undecodable data;
    /// the receiver should count both and request a keyframe.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<DecodedFrame>, MediaError> {
        let err = |e: ffmpeg::Error| MediaError::Decode {
            codec: self.codec,
            message: e.to_string(),
        };
        if data.is_empty() {
            return Err(MediaError::Decode {
                codec: self.codec,
                message: "empty frame".into(),
            });
        }
        // Packet::copy adds the zeroed padding libavcodec's bitstream readers require.
        let packet = codec::packet::Packet::copy(data);
        self.decoder.send_packet(&packet).map_err(err)?;
        let mut out = Vec::with_capacity(1);
        loop {
            let mut frame = frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => out.push(DecodedFrame {
                    width: frame.width(),
                    height: frame.height(),
                    frame,
                }),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => break,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncodedFrame, Encoder, EncoderConfig, Resolution, SourceSpec, VideoSource};

    /// Encodes `n` frames of testsrc2 at 320x240/30.
    fn encode(codec: Codec, n: usize) -> Vec<EncodedFrame> {
        let size = Resolution::new(320, 240);
        let mut src = VideoSource::open(&SourceSpec::TestPattern, size, 30).expect("source");
        let cfg = EncoderConfig {
            codec,
            size,
            fps: 30,
            target_bps: 500_000,
        };
        let mut enc = Encoder::new(&cfg).expect("encoder");
        (0..n)
            .flat_map(|_| {
                enc.encode(&mut src.next_frame().expect("frame"))
                    .expect("encode")
            })
            .collect()
    }

    fn round_trip(codec: Codec) {
        let encoded = encode(codec, 60);
        assert_eq!(encoded.len(), 60);
        let mut dec = Decoder::new(codec).expect("decoder");
        let mut count = 0;
        for f in &encoded {
            let pictures = dec.decode(&f.data).expect("decode");
            assert_eq!(
                pictures.len(),
                1,
                "{codec}: frame {} gave {}",
                f.frame_index,
                pictures.len()
            );
            for p in pictures {
                assert_eq!((p.width, p.height), (320, 240));
                assert_eq!((p.frame.width(), p.frame.height()), (320, 240));
                assert_eq!(p.frame.format(), ffmpeg::format::Pixel::YUV420P);
                count += 1;
            }
        }
        assert_eq!(count, 60, "{codec}");
    }

    #[test]
    fn h264_round_trip() {
        round_trip(Codec::H264);
    }

    #[test]
    fn vp8_round_trip() {
        round_trip(Codec::Vp8);
    }

    /// Starting without a keyframe, or on garbage, gives an error or no picture — never a
    /// picture — and a keyframe afterwards recovers.
    fn bad_start(codec: Codec) {
        let encoded = encode(codec, 10);
        assert!(!encoded[5].keyframe);
        let mut dec = Decoder::new(codec).expect("decoder");
        for data in [
            &encoded[5].data[..],
            &[0x12; 300][..],
            &[0, 0, 0, 1, 0x65, 0xff, 0x00][..],
        ] {
            match dec.decode(data) {
                Err(MediaError::Decode { codec: c, message }) => {
                    assert_eq!(c, codec);
                    assert!(!message.is_empty());
                }
                Err(e) => panic!("{codec}: unexpected error kind {e}"),
                Ok(pictures) => assert!(pictures.is_empty(), "{codec}: decoded a broken start"),
            }
        }
        assert!(matches!(dec.decode(&[]), Err(MediaError::Decode { .. })));
        let pictures = dec
            .decode(&encoded[0].data)
            .expect("keyframe decodes after garbage");
        assert_eq!(pictures.len(), 1, "{codec}");
    }

    #[test]
    fn h264_bad_start() {
        bad_start(Codec::H264);
    }

    #[test]
    fn vp8_bad_start() {
        bad_start(Codec::Vp8);
    }
}
