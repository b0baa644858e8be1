//! rtclab's Rust WebRTC peer on webrtc-rs 0.21: one sender or receiver of a video track.
//!
//! - [`peer`]: the connection, signaling and ICE/DTLS logging;
//! - [`sender`] / [`receiver`]: the media loops (FFmpeg in, FFmpeg out); [`qoe`]: what the
//!   viewer gets (glass-to-glass latency, PSNR/SSIM);
//! - [`interceptors`]: the interceptor chain on one screen (wire tap, pacing, NACK repair, FEC);
//! - [`jitter`]: the receiver's jitter buffer (waits for repairs, decode order, playout delay);
//! - [`bwe`]: congestion-control logging; [`candidates`]: ICE candidates as log entries.
//!
//! The lab around it (`rtclab run`, sweeps, benches, the demo, headless Chromium) is the
//! `rtclab-runner` crate.

pub mod bwe;
pub mod candidates;
pub mod clock;
pub mod config;
pub mod error;
pub mod interceptors;
pub mod jitter;
pub mod keyframe_gate;
pub mod peer;
pub mod qoe;
pub mod receiver;
pub mod sender;
pub mod signal_client;

pub use config::{CcKind, IcePolicy, IceServer, PeerConfig, Role};
pub use error::PeerError;
pub use peer::{PeerExit, run_peer};
pub use webrtc::runtime::{Runtime, default_runtime};
