//! Real-time video encoders that follow a target bitrate and emit keyframes on demand.
//!
//! - H.264: libx264 through libavcodec with capped CRF; bitrate changes are written into the
//!   codec context, which FFmpeg's x264 wrapper re-reads on every frame (`encoder/h264.rs`).
//! - VP8: libvpx's own API in CBR mode; bitrate changes go through `vpx_codec_enc_config_set`
//!   (`encoder/vp8.rs`). libavcodec's libvpx wrapper is not used because FFmpeg 5.1 ignores `bit_rate`
//!   changes after open (docs/notes/ffmpeg.md#vp8-rate-control).
//!
//! Neither encoder buffers frames (no B-frames, no lookahead): each input normally yields
//! exactly one output.

mod adaptive;
mod h264;
mod vp8;

pub use adaptive::{AdaptOutput, AdaptiveEncoder};

use bytes::Bytes;
use ffmpeg_next::format::Pixel;

use crate::{Codec, MediaError, RawFrame, Resolution, validate_fps};

/// Lowest target accepted, in bits per second; lower requests are raised to it.
///
/// 30 kbps is GCC's usual floor (libwebrtc's default min bitrate) and the lowest VP8/H.264 can
/// carry a tiny picture at; the encoders cannot follow much lower targets anyway.
pub const MIN_TARGET_BPS: u32 = 30_000;

/// Highest target accepted, in bits per second; higher requests are lowered to it.
///
/// 50 Mbps is far above anything a lab session sends and keeps the kbps value fed to libvpx and
/// x264 well inside a C int.
pub const MAX_TARGET_BPS: u32 = 50_000_000;

/// How an [`Encoder`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Which codec to produce.
    pub codec: Codec,
    /// Size of the input frames (and of the encoded pictures).
    pub size: Resolution,
    /// Frame rate of the input; frame `n` is at time `n / fps`.
    pub fps: u32,
    /// Initial target bitrate in bits per second.
    pub target_bps: u32,
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// H.264: one Annex-B access unit (SPS and PPS precede every IDR). VP8: one raw VP8 frame,
    /// without the RTP payload descriptor.
    pub data: Bytes,
    /// Whether the picture can be decoded without earlier ones (IDR / VP8 key frame).
    pub keyframe: bool,
    /// [`RawFrame::index`] of the input this picture was encoded from.
    pub frame_index: u64,
}

/// A video encoder whose bitrate can change on every frame without forcing a keyframe.
pub struct Encoder {
    config: EncoderConfig,
    keyframe_pending: bool,
    inner: Inner,
}

enum Inner {
    H264(h264::H264Encoder),
    Vp8(vp8::Vp8Encoder),
}

impl Encoder {
    /// Opens an encoder for `cfg`; fails if the codec library is missing or the config is bad.
    pub fn new(cfg: &EncoderConfig) -> Result<Self, MediaError> {
        crate::init()?;
        cfg.size.validate()?;
        validate_fps(cfg.fps)?;
        if !(MIN_TARGET_BPS..=MAX_TARGET_BPS).contains(&cfg.target_bps) {
            return Err(MediaError::InvalidConfig(format!(
                "target bitrate {} bps is out of range: pass {MIN_TARGET_BPS} to {MAX_TARGET_BPS}",
                cfg.target_bps
            )));
        }
        let inner = match cfg.codec {
            Codec::H264 => Inner::H264(h264::H264Encoder::new(cfg)?),
            Codec::Vp8 => Inner::Vp8(vp8::Vp8Encoder::new(cfg)?),
        };
        Ok(Encoder {
            config: *cfg,
            keyframe_pending: false,
            inner,
        })
    }

    /// The encoder's configuration, with the current target bitrate.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Sets the target bitrate (clamped to [`MIN_TARGET_BPS`]..=[`MAX_TARGET_BPS`]) from the
    /// next frame on; never forces a keyframe.
    pub fn set_target_bps(&mut self, bps: u32) {
        let bps = bps.clamp(MIN_TARGET_BPS, MAX_TARGET_BPS);
        if bps == self.config.target_bps {
            return;
        }
        self.config.target_bps = bps;
        match &mut self.inner {
            Inner::H264(e) => e.set_target_bps(bps),
            Inner::Vp8(e) => e.set_target_bps(bps),
        }
    }

    /// The current target bitrate in bits per second.
    pub fn target_bps(&self) -> u32 {
        self.config.target_bps
    }

    /// Makes the next encoded frame a keyframe (e.g. after a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_pending = true;
    }

    /// Whether the next encoded frame will be a keyframe because one was requested.
    pub fn keyframe_pending(&self) -> bool {
        self.keyframe_pending
    }

    /// Encodes one frame; normally returns exactly one [`EncodedFrame`].
    ///
    /// The frame must be yuv420p at the configured size. The H.264 path overwrites its picture
    /// type and pts: sources mark frames as I-frames, which libavcodec's x264 wrapper would take
    /// as "force a keyframe" (docs/notes/ffmpeg.md#keyframe-pitfalls), and pts must be the frame index.
    pub fn encode(&mut self, frame: &mut RawFrame) -> Result<Vec<EncodedFrame>, MediaError> {
        let f = &frame.frame;
        let size = self.config.size;
        if f.format() != Pixel::YUV420P || f.width() != size.width || f.height() != size.height {
            return Err(MediaError::FrameMismatch {
                codec: self.config.codec,
                got: format!("{}x{} {:?}", f.width(), f.height(), f.format()),
                expected: format!("{size} YUV420P"),
            });
        }
        let keyframe = self.keyframe_pending;
        let out = match &mut self.inner {
            Inner::H264(e) => e.encode(&mut frame.frame, frame.index, keyframe)?,
            Inner::Vp8(e) => e.encode(&frame.frame, frame.index, keyframe)?,
        };
        // Only a frame that reached the encoder satisfies the request; on error it stays pending.
        self.keyframe_pending = false;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
