//! FFmpeg video for rtclab (placeholder).
