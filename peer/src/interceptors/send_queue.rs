//! What sits in the sender's pacer queue, as rtclab's own interceptors see it from both ends.
//!
//! The webrtc-rs pacer is a FIFO of up to 4,096 packets with no time bound
//! (docs/notes/webrtc-rs-0.21.md#pacer-queue) and does not say how full it is. rtclab counts RTP bytes where they enter it
//! ([`QueueEntry`], just above the pacer) and where they leave for the wire (the wire tap), which
//! gives two things libwebrtc's pacer has and this one lacks:
//!
//! - **a bounded queue time**: the pacing rate is raised so that the queue drains within
//!   [`MAX_QUEUE_TIME`] (libwebrtc `PacingController`'s `kMaxExpectedQueueLength`, 2 s there;
//!   rtclab keeps a few hundred ms, issue 5), see `pacing.rs`;
//! - **no duplicate repairs**: a packet whose retransmission is still queued is not queued again
//!   when the next NACK for it arrives (libwebrtc `RtpPacketHistory` "pending transmission"),
//!   see `nack_filter.rs`. Behind a 300 ms bottleneck the receiver NACKs each loss several times
//!   before the first repair can arrive; queuing a copy per NACK multiplied the repair traffic.

use super::inspect::Inspect;
use rtc::interceptor::{Attribute, Packet, TaggedPacket};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest the pacer queue may take to drain at the pacing rate.
pub const MAX_QUEUE_TIME: Duration = Duration::from_millis(400);

/// A queued retransmission not seen leaving within this long is assumed gone (the responder did
/// not have the packet any more, or the pacer dropped it), so a new request may queue it again.
const PENDING_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    entered_bytes: u64,
    left_bytes: u64,
    /// Retransmissions asked of the responder and not yet seen on the wire, by (SSRC, seq).
    pending: HashMap<(u32, u16), Instant>,
    /// When each recent retransmission left for the wire.
    resent: HashMap<(u32, u16), Instant>,
}

/// Shared between the queue-entry inspector, the wire tap, the pacing factor and the NACK filter.
#[derive(Debug, Clone, Default)]
pub struct SendQueue(Arc<Mutex<State>>);

impl SendQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RTP bytes in the pacer queue now.
    pub fn queued_bytes(&self) -> u64 {
        let s = self.state();
        s.entered_bytes.saturating_sub(s.left_bytes)
    }

    /// The tap saw `bytes` of RTP leave; `resent` is `(ssrc, seq)` if it was a retransmission.
    pub fn left(&self, bytes: u64, resent: Option<(u32, u16)>, now: Instant) {
        let mut s = self.state();
        s.left_bytes += bytes;
        // Entry and exit counts drift if the pacer drops a packet at its limit; never let the
        // queue look negative.
        s.entered_bytes = s.entered_bytes.max(s.left_bytes);
        if let Some(key) = resent {
            s.pending.remove(&key);
            s.resent.insert(key, now);
        }
    }

    /// Whether a retransmission of `key` should be queued at `now`: not if one is still queued,
    /// nor if one left less than `window` ago (it may still be on its way). Records the request
    /// when the answer is yes.
    pub fn should_resend(&self, key: (u32, u16), now: Instant, window: Duration) -> bool {
        let mut s = self.state();
        if let Some(asked) = s.pending.get(&key) {
            if now.saturating_duration_since(*asked) < PENDING_TIMEOUT {
                return false;
            }
        }
        if let Some(sent) = s.resent.get(&key) {
            if now.saturating_duration_since(*sent) < window {
                return false;
            }
        }
        s.pending.insert(key, now);
        // Bounded memory: forget what is too old to matter.
        if s.pending.len() + s.resent.len() > 8_192 {
            s.pending
                .retain(|_, t| now.saturating_duration_since(*t) < PENDING_TIMEOUT);
            s.resent
                .retain(|_, t| now.saturating_duration_since(*t) < PENDING_TIMEOUT);
        }
        true
    }
}

/// Counts the RTP bytes entering the pacer.
pub struct QueueEntry(pub SendQueue);

impl Inspect for QueueEntry {
    fn on_write(&mut self, msg: TaggedPacket) -> Option<TaggedPacket> {
        if let Packet::Rtp(p) = &msg.message.packet {
            let bytes = rtp_bytes(p);
            self.0.state().entered_bytes += bytes;
        }
        Some(msg)
    }
}

/// Bytes an RTP packet is counted as at both ends of the queue: payload plus the fixed header
/// (RFC 3550 §5.1). Header extensions are left out because the TWCC interceptor adds one between
/// the two ends; counting it at one end only would make the queue drift.
pub fn rtp_bytes(p: &rtc::rtp::Packet) -> u64 {
    (12 + p.payload.len()) as u64
}

/// `(ssrc, seq)` of a packet leaving, if it is a retransmission.
pub fn resent_key(msg: &TaggedPacket) -> Option<(u32, u16)> {
    match &msg.message.packet {
        Packet::Rtp(p) if msg.message.has(&Attribute::Retransmission) => {
            Some((p.header.ssrc, p.header.sequence_number))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_repair_is_not_queued_again_until_it_left_and_the_window_passed() {
        let q = SendQueue::default();
        let t0 = Instant::now();
        let w = Duration::from_millis(150);
        let key = (7, 100);
        assert!(q.should_resend(key, t0, w), "first request");
        assert!(
            !q.should_resend(key, t0 + Duration::from_millis(500), w),
            "still queued after 500 ms: no second copy"
        );
        q.left(1000, Some(key), t0 + Duration::from_millis(600));
        assert!(
            !q.should_resend(key, t0 + Duration::from_millis(700), w),
            "left 100 ms ago: may still be on its way"
        );
        assert!(q.should_resend(key, t0 + Duration::from_millis(800), w));
    }

    #[test]
    fn a_repair_that_never_left_may_be_asked_again_after_the_timeout() {
        let q = SendQueue::default();
        let t0 = Instant::now();
        let w = Duration::from_millis(150);
        assert!(q.should_resend((1, 1), t0, w));
        assert!(q.should_resend((1, 1), t0 + PENDING_TIMEOUT, w));
    }

    #[test]
    fn queued_bytes_is_entry_minus_exit_and_never_negative() {
        let q = SendQueue::default();
        q.state().entered_bytes += 3000;
        q.left(1000, None, Instant::now());
        assert_eq!(q.queued_bytes(), 2000);
        q.left(5000, None, Instant::now());
        assert_eq!(q.queued_bytes(), 0);
    }
}
