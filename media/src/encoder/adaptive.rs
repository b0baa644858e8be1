//! An [`Encoder`] that adapts to the target: the resolution ladder and frame dropping decided by
//! [`crate::adapt`], applied here to real frames.
//!
//! Source frames stay at their native size (the reference a receiver measures quality against);
//! when the adapter picks a smaller rung they are scaled with swscale before encoding, and the
//! encoder is reopened at the new size, so the first frame there is a keyframe.

use std::time::Duration;

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use super::{EncodedFrame, Encoder, EncoderConfig, MAX_TARGET_BPS, MIN_TARGET_BPS};
use crate::adapt::{AdaptChange, Adapter, FrameDropper, FrameOutcome};
use crate::{MediaError, RawFrame, Resolution};

/// What happened to one source frame.
#[derive(Debug)]
pub struct AdaptOutput {
    /// The encoded picture(s): normally one, none when the frame was dropped.
    pub frames: Vec<EncodedFrame>,
    /// Whether the frame dropper skipped this frame because the output was over budget.
    pub dropped: bool,
    /// A resolution change that took effect with this frame.
    pub change: Option<AdaptChange>,
    /// The size the frame was (or would have been) encoded at.
    pub size: Resolution,
}

/// `swscale` context; wrapped only to make it `Send`.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext is plain heap state with no thread affinity; it is owned by exactly one
// AdaptiveEncoder and only used through `&mut self`, so moving it to another thread is sound.
unsafe impl Send for Scaler {}

/// An encoder that follows the target bitrate, changes resolution on a ladder and skips frames
/// when its output is over budget.
pub struct AdaptiveEncoder {
    /// Configuration with the source's native size.
    source: EncoderConfig,
    encoder: Encoder,
    adapter: Adapter,
    dropper: FrameDropper,
    /// Scaler from the native size to `(size)`, rebuilt when the size changes.
    scaler: Option<(Scaler, Resolution)>,
    /// Whether resolution changes are allowed (frame dropping always is).
    scaling: bool,
}

impl AdaptiveEncoder {
    /// Opens an encoder for frames of `cfg.size` (the source's native size), at the ladder rung
    /// `cfg.target_bps` reaches.
    pub fn new(cfg: &EncoderConfig) -> Result<Self, MediaError> {
        cfg.size.validate()?;
        let adapter = Adapter::new(cfg.size, cfg.fps, cfg.target_bps);
        let encoder = Encoder::new(&EncoderConfig {
            size: adapter.size(),
            ..*cfg
        })?;
        Ok(AdaptiveEncoder {
            source: *cfg,
            encoder,
            adapter,
            dropper: FrameDropper::new(),
            scaler: None,
            scaling: true,
        })
    }

    /// Like [`AdaptiveEncoder::new`] but always at the native size (frames are still dropped
    /// when over budget): for measuring one resolution, or a sender that must not scale.
    pub fn fixed_size(cfg: &EncoderConfig) -> Result<Self, MediaError> {
        let mut enc = Self::new(cfg)?;
        if enc.size() != cfg.size {
            enc.encoder = Encoder::new(cfg)?;
        }
        enc.scaling = false;
        Ok(enc)
    }

    /// The size frames are encoded at now.
    pub fn size(&self) -> Resolution {
        self.encoder.config().size
    }

    /// The adapter (ladder and floors), for reading.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// The frame dropper's backlog in milliseconds of `target_bps`.
    pub fn backlog_ms(&self, target_bps: u32) -> f64 {
        self.dropper.level_ms(target_bps)
    }

    /// Makes the next encoded frame a keyframe (never dropped).
    pub fn request_keyframe(&mut self) {
        self.encoder.request_keyframe();
    }

    /// Encodes (or skips) one native-size source frame at `now` with `target_bps`.
    ///
    /// `now` is the caller's clock (e.g. the session runtime's time since the start); frames
    /// must come in time order.
    pub fn encode(
        &mut self,
        frame: &mut RawFrame,
        now: Duration,
        target_bps: u32,
    ) -> Result<AdaptOutput, MediaError> {
        let target = target_bps.clamp(MIN_TARGET_BPS, MAX_TARGET_BPS);
        let change = if self.scaling {
            self.adapter.poll(now, target)
        } else {
            None
        };
        if let Some(c) = change {
            let keyframe = self.encoder.keyframe_pending();
            self.encoder = Encoder::new(&EncoderConfig {
                size: c.to,
                target_bps: target,
                ..self.source
            })?;
            // A new encoder starts with a keyframe anyway; keep the request for the record.
            if keyframe {
                self.encoder.request_keyframe();
            }
        }
        let size = self.size();
        // A keyframe is never skipped: a receiver waiting for it would stay frozen longer.
        let must_encode = change.is_some() || self.encoder.keyframe_pending();
        if !must_encode && self.dropper.should_drop(now, target) {
            self.adapter.record(now, FrameOutcome::Dropped);
            return Ok(AdaptOutput {
                frames: Vec::new(),
                dropped: true,
                change,
                size,
            });
        }
        if must_encode {
            // Brings the bucket up to now without a decision.
            self.dropper.should_drop(now, target);
        }
        self.encoder.set_target_bps(target);
        let frames = if size == self.source.size {
            self.encoder.encode(frame)?
        } else {
            let mut scaled = RawFrame {
                index: frame.index,
                frame: self.scale(&frame.frame, size)?,
            };
            self.encoder.encode(&mut scaled)?
        };
        let budget = f64::from(target) / f64::from(self.source.fps);
        for f in &frames {
            self.dropper
                .on_encoded(f.data.len() as u64 * 8, f.keyframe, budget);
        }
        self.adapter.record(now, FrameOutcome::Encoded);
        Ok(AdaptOutput {
            frames,
            dropped: false,
            change,
            size,
        })
    }

    /// Scales a native-size yuv420p frame to `size`.
    fn scale(&mut self, src: &frame::Video, size: Resolution) -> Result<frame::Video, MediaError> {
        let err = |source| MediaError::Scale {
            size: size.to_string(),
            source,
        };
        if self.scaler.as_ref().is_none_or(|(_, s)| *s != size) {
            let ctx = scaling::Context::get(
                Pixel::YUV420P,
                src.width(),
                src.height(),
                Pixel::YUV420P,
                size.width,
                size.height,
                // Bilinear in swscale widens its filter by the scale factor when shrinking, so
                // it averages rather than skips pixels; cheaper than bicubic at these ratios.
                scaling::Flags::BILINEAR,
            )
            .map_err(err)?;
            self.scaler = Some((Scaler(ctx), size));
        }
        let mut out = frame::Video::empty();
        if let Some((scaler, _)) = self.scaler.as_mut() {
            scaler.0.run(src, &mut out).map_err(err)?;
        }
        Ok(out)
    }
}
