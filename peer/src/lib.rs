//! rtclab's Rust WebRTC peer on webrtc-rs 0.21.
//!
//! - [`peer`]: the connection, signaling and ICE/DTLS logging;
//! - [`sender`] / [`receiver`]: the media loops (FFmpeg in, FFmpeg out);
//! - [`fec`]: FlexFEC (`--fec`); [`tap`]: the RTCP wire tap; [`bwe`]: congestion-control logging;
//! - [`session`]: `rtclab run`; [`summary`]: `summary.json` from the log.

pub mod bench;
pub mod bridge;
pub mod browser;
pub mod bwe;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod fec;
pub mod ice;
pub mod inspect;
pub mod nack_filter;
pub mod pacing;
pub mod pcap;
pub mod peer;
pub mod qoe;
pub mod receiver;
pub mod repair;
mod run_ice;
pub mod send_queue;
pub mod sender;
pub mod session;
pub mod signal_client;
pub mod summary;
pub mod tap;

pub use config::{CcKind, IcePolicy, IceServer, PeerConfig, Role};
pub use error::PeerError;
pub use peer::{PeerExit, run_peer};
pub use session::{RunOutcome, RunRequest, run_scenario};
pub use summary::Summary;
pub use webrtc::runtime::{Runtime, default_runtime};
