//! rtclab's product output: the session event log.
//!
//! [`schema`] defines the one [`Event`] enum; [`sink`] is the one writer. Everything that reports
//! (the RTCP tap, the congestion-control wrapper, the encoder, the impairment engine, the browser
//! bridge) emits into an [`EventSink`]. `tracing` is for diagnostics only.

pub mod schema;
pub mod sink;
pub mod stats;

pub use schema::{
    BweDetail, Candidate, Direction, Event, First, KeyframeReason, MediaDirection, MediaStats,
    NoteLevel, Observed, PeerRole, PliReason, Qoe, Record, RelayPackets, RelayRtp, ReportBlock,
    Rtcp, SCHEMA, Side, feedback_seen_at, receiving_peer, sending_peer,
};
pub use sink::{
    BadLine, Clock, EventSink, Listener, LogDamage, MAX_LINE_BYTES, MAX_LISTED_BAD_LINES,
    ReadError, SinkError, SystemClock, end_open_logs, read_log, read_log_lenient,
};
