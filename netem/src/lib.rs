//! In-process network impairment for rtclab: no root, no qdisc, deterministic from a seed.
//!
//! * [`config`]: what users write in scenario files (`[downlink]`, `[[downlink.schedule]]`).
//! * [`Impairer`]: the sans-I/O model of one direction — loss (random, bursty, every n-th,
//!   outage), duplication, a rate-limited drop-tail bottleneck, delay and jitter — with
//!   accounting by cause. Time is an argument, randomness comes from the seed.
//! * [`ImpairedRuntime`]: a webrtc-rs `Runtime` wrapper whose UDP sockets run their sends
//!   through the egress model and their receives through the ingress model, and which reports
//!   `impair.stats` / `impair.change` into the event log.
//!
//! The loss and duplication decisions come from str0m-netem; README.md explains what rtclab
//! adds around it and why.

#![warn(missing_docs)]

pub mod accounting;
pub mod config;
mod delay;
pub mod events;
mod link;
mod loss;
pub mod model;
pub mod runtime;
mod schedule;
mod seed;
mod shared;
pub mod sim;
mod socket;

pub use accounting::{
    Counter, DelaySummary, DirectionStats, DropCause, Drops, Histogram, IntervalStats, Link,
};
pub use config::{
    BurstLoss, ConfigError, DEFAULT_OVERHEAD_BYTES, DEFAULT_QUEUE_MS, Impairment, ImpairmentConfig,
    JitterDistribution, MAX_STEPS, Schedule, Step,
};
pub use model::{Change, DEFAULT_LABEL, Delivery, Impairer, LiveModel, Packet, Verdict};
pub use runtime::{ImpairedRuntime, ImpairedRuntimeBuilder, ImpairmentStats};
pub use shared::Side;
pub use sim::{SimError, SimRuntime, SimStats};
pub use socket::ImpairedSocket;
