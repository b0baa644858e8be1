//! H.264 through libx264 in libavcodec, tuned for real-time WebRTC sending.

use ffmpeg::format::Pixel;
use ffmpeg::{Dictionary, Rational, codec, encoder, frame, picture};
use ffmpeg_next as ffmpeg;

use super::{EncodedFrame, EncoderConfig};
use crate::{Codec, MediaError};

/// Constant rate factor that the VBV cap (= target) limits: quality is CRF 20 whenever the
/// target allows it, and the cap makes x264 follow the target otherwise. With ABR instead, x264
/// ignores run-time changes unless VBV was on at open (docs/notes/ffmpeg.md#h264-rate-control).
const CRF: &str = "20";

/// VBV buffer in milliseconds of the target rate (docs/notes/ffmpeg.md#h264-rate-control used 1 s).
///
/// Half a second: it bounds a keyframe (and any burst) to what the pacer and the bottleneck can
/// absorb in a few hundred ms, and tracks the target tighter. Measured with
/// `examples/rate_accuracy.rs` (1280x720 testsrc2, steady 300 k-2.5 M, a keyframe every 3 s,
/// with [`VBV_INIT`]): 500 ms kept every second within 4 % of the target from the first on, with
/// keyframes of at most 94 ms of the target; 1000 ms overshot the first second by 11-16 % and
/// let keyframes reach 172 ms. Earlier, on 640x360 after a 3x cut: the first second +35 % with
/// 1000 ms, +18 % with 500 ms. The price is a little quality on hard frames.
const VBV_BUFFER_MS: u64 = 500;

/// Initial VBV fullness as a fraction of the buffer (x264's default is 0.9). A freshly opened
/// encoder (at the start, and at every resolution change) would otherwise spend 90 % of the
/// buffer at once: +25 % in the first second and a first keyframe of ~300 ms of the target,
/// which the frame dropper then pays for with skipped frames. At 0.2 the first second is within
/// 4 % (measured as above).
const VBV_INIT: &str = "0.2";

/// Keyframe interval in seconds: long, because keyframes are sent on demand (PLI); one every
/// 10 s still bounds how long a receiver that missed a PLI stays broken.
const KEYINT_SECONDS: u32 = 10;

/// H.264 level 3.1 (`1f` in profile-level-id 42e01f, the H.264 format rtclab offers in SDP).
const LEVEL_3_1: i32 = 31;
/// Level 3.1 max frame size in macroblocks (MaxFS, ITU-T H.264 Table A-1).
const LEVEL_3_1_MAX_FS: u64 = 3_600;
/// Level 3.1 max macroblock rate per second (MaxMBPS, ITU-T H.264 Table A-1).
const LEVEL_3_1_MAX_MBPS: u64 = 108_000;

/// A libx264 encoder opened through libavcodec.
pub(super) struct H264Encoder {
    encoder: encoder::Video,
    packet: codec::packet::Packet,
}

impl H264Encoder {
    /// Opens libx264 with the real-time settings described in this module.
    pub(super) fn new(cfg: &EncoderConfig) -> Result<Self, MediaError> {
        let codec = encoder::find_by_name("libx264").ok_or_else(|| MediaError::Unavailable {
            what: "encoder libx264".into(),
            hint: "install libx264 and an FFmpeg built with it (Debian: libavcodec59 with \
                   libx264-164; libx264-dev to build)",
        })?;
        let open_err = |e: ffmpeg::Error| MediaError::Encode {
            codec: Codec::H264,
            message: format!("opening libx264 failed: {e}"),
        };
        let mut enc = codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(open_err)?;
        enc.set_width(cfg.size.width);
        enc.set_height(cfg.size.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(Rational::new(1, cfg.fps as i32));
        enc.set_frame_rate(Some(Rational::new(cfg.fps as i32, 1)));
        enc.set_gop(cfg.fps * KEYINT_SECONDS);
        enc.set_max_b_frames(0);
        // One thread per encoder: the lab machine has 2 cores (docs/notes/ffmpeg.md#encoder-speed-and-threads).
        enc.set_threading(codec::threading::Config {
            count: 1,
            ..Default::default()
        });
        let mbs = u64::from(cfg.size.width.div_ceil(16)) * u64::from(cfg.size.height.div_ceil(16));
        // SAFETY: `enc` owns a valid, not yet opened AVCodecContext; these are plain integer
        // fields that avcodec_open2 reads. ffmpeg-next has no setter for rc_buffer_size/level.
        unsafe {
            let ctx = enc.as_mut_ptr();
            set_rate(ctx, cfg.target_bps);
            // Signal level 3.1 to match the SDP's 42e01f when the stream fits in it; larger
            // streams keep x264's automatic level (the receiver may still decode them).
            if mbs <= LEVEL_3_1_MAX_FS && mbs * u64::from(cfg.fps) <= LEVEL_3_1_MAX_MBPS {
                (*ctx).level = LEVEL_3_1;
            }
        }
        let mut opts = Dictionary::new();
        opts.set("preset", "ultrafast");
        opts.set("tune", "zerolatency");
        // Baseline with no B-frames, no CABAC (ultrafast) and one slice group is Constrained
        // Baseline: x264 sets constraint_set1 (profile-level-id 42e0xx/42c0xx).
        opts.set("profile", "baseline");
        opts.set("crf", CRF);
        // A requested I-frame becomes an IDR, so a receiver can start from it.
        opts.set("forced-idr", "1");
        // No encoder-chosen keyframes (scenecut=0): they would arrive unasked and cost bitrate.
        opts.set("x264-params", &format!("scenecut=0:vbv-init={VBV_INIT}"));
        // GLOBAL_HEADER stays off, so x264 writes Annex-B with SPS/PPS before every IDR.
        let encoder = enc.open_as_with(codec, opts).map_err(open_err)?;
        Ok(H264Encoder {
            encoder,
            packet: codec::packet::Packet::empty(),
        })
    }

    /// Writes a new target into the codec context; x264 picks it up on the next frame.
    pub(super) fn set_target_bps(&mut self, bps: u32) {
        // SAFETY: the context is open and owned by us; FFmpeg's libx264 wrapper reads these
        // fields at the start of every encode call (reconfig_encoder in libavcodec/libx264.c)
        // and calls x264_encoder_reconfig if they changed. No other thread touches it.
        unsafe { set_rate(self.encoder.as_mut_ptr(), bps) }
    }

    /// Encodes one yuv420p frame; `keyframe` forces an IDR.
    pub(super) fn encode(
        &mut self,
        frame: &mut frame::Video,
        index: u64,
        keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, MediaError> {
        let err = |e: ffmpeg::Error| MediaError::Encode {
            codec: Codec::H264,
            message: e.to_string(),
        };
        // Picture type I is how libavcodec asks x264 for a keyframe; anything else must be
        // cleared because sources mark every frame as I.
        frame.set_kind(if keyframe {
            picture::Type::I
        } else {
            picture::Type::None
        });
        frame.set_pts(Some(index as i64));
        self.encoder.send_frame(frame).map_err(err)?;
        let mut out = Vec::with_capacity(1);
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let data = self.packet.data().unwrap_or_default();
                    out.push(EncodedFrame {
                        data: bytes::Bytes::copy_from_slice(data),
                        keyframe: self.packet.is_key(),
                        frame_index: self.packet.pts().map_or(index, |p| p as u64),
                    });
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => break,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

/// Sets the capped-CRF limits: VBV max rate = target, VBV buffer = [`VBV_BUFFER_MS`] of it, and
/// bit_rate = target.
///
/// # Safety
/// `ctx` must point to a valid AVCodecContext not used concurrently.
unsafe fn set_rate(ctx: *mut ffmpeg::ffi::AVCodecContext, bps: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*ctx).bit_rate = i64::from(bps);
        (*ctx).rc_max_rate = i64::from(bps);
        let buffer = u64::from(bps) * VBV_BUFFER_MS / 1000;
        (*ctx).rc_buffer_size = i32::try_from(buffer).unwrap_or(i32::MAX);
    }
}
