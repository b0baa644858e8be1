//! What the wire tap counts, shared with the FEC recovery counter and read once a second by the
//! peer's statistics loop. A file of its own so that `tap.rs` and `fec.rs` both depend on it
//! rather than on each other.

use rtclab_events::Direction;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counters the tap keeps, shared with the peer that reads them once a second.
#[derive(Debug, Clone, Default)]
pub struct WireCounters {
    /// RTP media packets sent (first transmissions; not FEC repair packets).
    pub rtp_out: u64,
    /// RTP bytes sent, header + payload, including retransmissions.
    pub rtp_out_bytes: u64,
    /// Retransmissions sent in answer to NACK.
    pub rtx_out: u64,
    /// RTP packets received (any).
    pub rtp_in: u64,
    /// RTP bytes received.
    pub rtp_in_bytes: u64,
    /// RTCP packets by (direction, type name).
    pub rtcp: HashMap<(Direction, &'static str), u64>,
    /// Sequence numbers NACKed, by direction.
    pub nacked_seqs: HashMap<Direction, u64>,
    /// FlexFEC repair packets sent (their bytes are in `rtp_out_bytes`).
    pub fec_out: u64,
    /// Bytes of those repair packets, header + payload.
    pub fec_out_bytes: u64,
    /// FlexFEC repair packets received (their bytes are in `rtp_in_bytes`).
    pub fec_in: u64,
    /// Media packets the FEC decoder rebuilt (counted by [`super::fec`], not on the wire).
    pub fec_recovered: u64,
    /// Sequence numbers of the latest rebuilt packets (at most [`FEC_REBUILT_KEPT`]): the
    /// receiver takes them off as the packets reach it, so its jitter buffer can tell a
    /// rebuilt packet (there at once) from a retransmission (a round trip later).
    pub fec_rebuilt_seqs: std::collections::VecDeque<u16>,
    /// Latest cumulative-lost figure from inbound receiver reports (the sender's view of loss).
    pub remote_cumulative_lost: u64,
}

/// How many rebuilt sequence numbers [`WireCounters::fec_rebuilt_seqs`] keeps: more than the
/// receiver can fall behind by (it takes each one as the packet arrives).
pub const FEC_REBUILT_KEPT: usize = 512;

/// Handle to read the tap's counters from outside the interceptor chain.
pub type SharedCounters = Arc<Mutex<WireCounters>>;
