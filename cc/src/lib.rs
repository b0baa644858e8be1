//! rtclab's congestion controller, sans-I/O.
//!
//! A GCC-family controller (draft-ietf-rmcat-gcc-02, libwebrtc GoogCC) behind webrtc-rs's
//! [`BandwidthEstimator`](rtc::interceptor::BandwidthEstimator) seam: transport-wide feedback
//! ([`PacketReport`](rtc::interceptor::PacketReport)s) in, a target bitrate out. No clock is
//! ever read: every instant is an argument. One file per concept, in the order a report flows:
//!
//! [`inter_arrival`] → [`trendline`] → [`overuse`] → [`aimd`] (with [`acked_bitrate`], [`alr`],
//! [`probe`]) and [`loss_based`] → [`controller`]; [`rtt`] feeds the rate control.

#![warn(missing_docs)]

pub mod acked_bitrate;
pub mod aimd;
pub mod alr;
pub mod controller;
pub mod inter_arrival;
pub mod loss_based;
pub mod overuse;
pub mod probe;
pub mod rtt;
pub mod trendline;

pub use aimd::RateControlState;
pub use controller::{CcConfig, CcState, RtclabCc};
pub use overuse::Usage;
pub use probe::{ProbeReason, ProbeRequest, ProbeResult};
pub use rtt::RttSource;
