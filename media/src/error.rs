//! The crate's error type.

use std::path::PathBuf;

use crate::Codec;

/// Everything that can go wrong in rtclab-media; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// FFmpeg's libraries could not be initialised.
    #[error(
        "FFmpeg initialisation failed: {0}; check that FFmpeg 5.1's shared libraries \
         (libavcodec59, libavformat59, libavfilter8, libswscale6) are installed"
    )]
    Init(ffmpeg_next::Error),

    /// A codec name that is neither H.264 nor VP8.
    #[error("unknown codec {0:?}: use \"h264\" or \"vp8\"")]
    UnknownCodec(String),

    /// A size, frame rate or bitrate outside what the sources and encoders accept.
    #[error("invalid media configuration: {0}")]
    InvalidConfig(String),

    /// A codec library or FFmpeg component (encoder, decoder, filter) is missing.
    #[error("{what} is not available on this machine: {hint}")]
    Unavailable {
        /// The missing component, e.g. "encoder libx264".
        what: String,
        /// How to get it.
        hint: &'static str,
    },

    /// A video file that does not exist.
    #[error("video file {} does not exist: check the path (relative paths start at the current directory)", path.display())]
    FileNotFound {
        /// The path as given.
        path: PathBuf,
    },

    /// A path that exists but is not a regular file (a directory, a device such as
    /// `/dev/zero`, a FIFO): FFmpeg would block or read forever on some of them.
    #[error("video source {} exists but is {what}, not a regular file: pass a video file", path.display())]
    NotAFile {
        /// The path as given.
        path: PathBuf,
        /// What it is instead, e.g. "a directory" or "a character device".
        what: &'static str,
    },

    /// A video file that FFmpeg cannot open or demux.
    #[error("cannot open video file {}: {source}; it must be a media file FFmpeg can read (check it with `ffprobe`)", path.display())]
    FileOpen {
        /// The path as given.
        path: PathBuf,
        /// FFmpeg's reason.
        source: ffmpeg_next::Error,
    },

    /// A media file without a decodable video stream.
    #[error("video file {} has no usable video stream: {reason}; pass a file with a video track", path.display())]
    NoVideo {
        /// The path as given.
        path: PathBuf,
        /// What was missing.
        reason: String,
    },

    /// Reading or decoding a video file failed part-way.
    #[error("reading video file {} failed: {source}; the file may be truncated or corrupt", path.display())]
    FileRead {
        /// The path as given.
        path: PathBuf,
        /// FFmpeg's reason.
        source: ffmpeg_next::Error,
    },

    /// The libavfilter test-pattern graph failed.
    #[error(
        "test pattern ({graph}) failed: {source}; libavfilter with the lavfi testsrc2 source is required (Debian: libavfilter8)"
    )]
    Filter {
        /// The filter graph description.
        graph: String,
        /// FFmpeg's reason.
        source: ffmpeg_next::Error,
    },

    /// Converting a frame to the configured size/pixel format failed.
    #[error("scaling a frame to {size} yuv420p failed: {source}")]
    Scale {
        /// The target size, e.g. "640x360".
        size: String,
        /// FFmpeg's reason.
        source: ffmpeg_next::Error,
    },

    /// An encoder could not be opened or failed on a frame.
    #[error("{codec} encoder: {message}")]
    Encode {
        /// Which encoder.
        codec: Codec,
        /// What went wrong, with the library's own message.
        message: String,
    },

    /// A frame passed to an encoder does not match the encoder's configuration.
    #[error(
        "{codec} encoder: frame is {got}, encoder expects {expected}; scale frames to the encoder's size and yuv420p"
    )]
    FrameMismatch {
        /// Which encoder.
        codec: Codec,
        /// The frame's size and pixel format.
        got: String,
        /// The encoder's size and pixel format.
        expected: String,
    },

    /// Writing a file (e.g. a Y4M clip for Chromium's fake camera) failed.
    #[error("writing {}: {source}; check the folder exists and the disk has room", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },

    /// A received frame could not be decoded (the receiver should request a keyframe with PLI).
    #[error("{codec} decode error: {message}; request a keyframe (PLI) to recover")]
    Decode {
        /// Which decoder.
        codec: Codec,
        /// FFmpeg's message.
        message: String,
    },
}
