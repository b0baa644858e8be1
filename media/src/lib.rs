//! FFmpeg video for rtclab: test-pattern and file sources, H.264/VP8 encoders that follow a
//! target bitrate and emit keyframes on demand, and decoders.
//!
//! Everything runs in-process through libavcodec/libavfilter/libswscale (`ffmpeg-next`), except
//! the VP8 encoder, which calls libvpx directly (see [`encoder`]). Nothing here reads the OS
//! clock: callers pace frames and pass time in as frame indices.

#![warn(missing_docs)]

pub mod adapt;
mod decoder;
pub mod encoder;
mod error;
pub mod quality;
mod source;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

pub use ffmpeg_next as ffmpeg;

pub use decoder::{DecodedFrame, Decoder};
pub use encoder::{AdaptOutput, AdaptiveEncoder, EncodedFrame, Encoder, EncoderConfig};
pub use error::MediaError;
pub use source::{RawFrame, SourceSpec, VideoSource, check_video_file, write_y4m};

/// A video codec rtclab can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 Constrained Baseline (encoded with libx264).
    H264,
    /// VP8 (encoded with libvpx).
    Vp8,
}

impl Codec {
    /// The RTP/SDP MIME type of the codec (RFC 6184 for H.264, RFC 7741 for VP8).
    pub fn mime_type(self) -> &'static str {
        match self {
            Codec::H264 => "video/H264",
            Codec::Vp8 => "video/VP8",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
        })
    }
}

impl FromStr for Codec {
    type Err = MediaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "h264" | "h.264" | "avc" => Ok(Codec::H264),
            "vp8" => Ok(Codec::Vp8),
            _ => Err(MediaError::UnknownCodec(s.to_string())),
        }
    }
}

/// A picture size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Resolution {
    /// A resolution of `width` x `height` pixels.
    pub const fn new(width: u32, height: u32) -> Self {
        Resolution { width, height }
    }

    /// Checks that the size is usable for YUV 4:2:0 video: non-zero, even, at most 8192x8192.
    pub fn validate(self) -> Result<(), MediaError> {
        // 4:2:0 chroma is subsampled 2x2, so odd sizes would lose a chroma row/column; both
        // encoders reject them. 8192 is well inside every limit (H.264 level 6.2 allows 8192x4320)
        // and keeps width*height far from overflowing the C ints libavcodec uses.
        if self.width == 0 || self.height == 0 {
            return Err(MediaError::InvalidConfig(format!(
                "resolution {self} has a zero side: pass a size such as 640x360"
            )));
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(MediaError::InvalidConfig(format!(
                "resolution {self} is odd: YUV 4:2:0 needs even width and height"
            )));
        }
        if self.width > 8192 || self.height > 8192 {
            return Err(MediaError::InvalidConfig(format!(
                "resolution {self} is larger than 8192x8192: pass a smaller size"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Resolution {
    type Err = MediaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            MediaError::InvalidConfig(format!(
                "cannot parse resolution {s:?}: write it as WIDTHxHEIGHT, e.g. 640x360"
            ))
        };
        let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let size = Resolution {
            width: w.trim().parse().map_err(|_| bad())?,
            height: h.trim().parse().map_err(|_| bad())?,
        };
        size.validate()?;
        Ok(size)
    }
}

/// Checks a frame rate given by a caller: 1 to 240 frames per second.
pub(crate) fn validate_fps(fps: u32) -> Result<(), MediaError> {
    // 240 is an arbitrary sanity bound; nothing in a WebRTC call goes above 60.
    if fps == 0 || fps > 240 {
        return Err(MediaError::InvalidConfig(format!(
            "frame rate {fps} is out of range: pass 1 to 240 frames per second"
        )));
    }
    Ok(())
}

/// Initialises FFmpeg once per process; later calls return the first call's result.
pub fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), ffmpeg::Error>> = OnceLock::new();
    let result = *INIT.get_or_init(|| {
        ffmpeg::init()?;
        // libx264 logs its CPU capabilities and stats at "info" on every open/close; keep only
        // warnings and errors so a long session's output stays readable.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
        Ok(())
    });
    result.map_err(MediaError::Init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_round_trip() {
        for codec in [Codec::H264, Codec::Vp8] {
            assert_eq!(codec.to_string().parse::<Codec>().unwrap(), codec);
        }
        assert_eq!("H264".parse::<Codec>().unwrap(), Codec::H264);
        assert_eq!(Codec::H264.mime_type(), "video/H264");
        assert_eq!(Codec::Vp8.mime_type(), "video/VP8");
        let err = "av1".parse::<Codec>().unwrap_err().to_string();
        assert!(err.contains("\"h264\" or \"vp8\""), "{err}");
    }

    #[test]
    fn resolution_parses_and_validates() {
        assert_eq!(
            "640x360".parse::<Resolution>().unwrap(),
            Resolution::new(640, 360)
        );
        assert!("640".parse::<Resolution>().is_err());
        assert!("641x360".parse::<Resolution>().is_err());
        assert_eq!(Resolution::new(1280, 720).to_string(), "1280x720");
    }

    #[test]
    fn media_objects_can_move_to_worker_threads() {
        // Callers run sources, encoders and decoders on their own threads.
        fn send<T: Send>() {}
        send::<VideoSource>();
        send::<Encoder>();
        send::<AdaptiveEncoder>();
        send::<Decoder>();
        send::<RawFrame>();
        send::<MediaError>();
    }
}
