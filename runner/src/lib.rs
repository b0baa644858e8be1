//! rtclab's drivers: everything that sets up a lab around the Rust peer, one command per file.
//!
//! - [`run`]: `rtclab run` — a signaling server, a Rust sender and a Rust (or browser)
//!   receiver in one process, the impairment engine on the sender's sockets, one event log, one
//!   summary;
//! - [`sweep`]: `rtclab sweep`; [`bench`]: `rtclab bench cc`; [`bench_qoe`]: `rtclab bench qoe`
//!   (Rust receiver vs Chromium on the same link); [`demo`]: `rtclab demo`;
//! - [`ice_servers`]: the one way STUN/TURN servers are started (embedded or coturn);
//! - [`browser`]: headless Chromium as a peer; [`bridge`]: its `getStats()` into the log.
//!
//! The peer itself is `rtclab-peer`; what the log means is `rtclab-report`.

pub mod bench;
pub mod bench_qoe;
pub mod bridge;
pub mod browser;
pub mod demo;
pub mod error;
pub mod ice_servers;
pub mod lab_failures;
pub mod live;
pub mod paths;
pub mod relay;
pub mod rtp_watch;
pub mod run;
pub mod shard;
pub mod sweep;
pub mod virtual_run;

pub use error::RunError;
pub use run::{RunOutcome, RunRequest, run_scenario};
pub use shard::{Shard, ShardSpec};
pub use sweep::{Clock, SweepRequest, merge_sweep, run_sweep};
