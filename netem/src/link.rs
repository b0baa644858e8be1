//! The bottleneck: a FIFO served at the capacity in force, with a drop-tail bound.
//!
//! Departure times are not fixed at enqueue time: the packet at the head is transmitted at the
//! rate in force while it is on the wire, so a capacity step at 40 s slows down or speeds up the
//! packets already queued from exactly 40 s on, as on a real bottleneck.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A packet waiting for or in transmission.
#[derive(Debug)]
pub(crate) struct Queued<T> {
    /// What is carried (the caller's packet and bookkeeping).
    pub item: T,
    /// When it entered the queue.
    pub arrived: Instant,
    /// Size on the wire (payload plus overhead), in bits.
    pub bits: f64,
    /// Payload bytes, for the queue-length report.
    pub payload: usize,
}

/// Why the queue refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// A drop-tail FIFO drained at a (changeable) rate.
#[derive(Debug)]
pub(crate) struct LinkQueue<T> {
    rate_bps: f64,
    queue: VecDeque<Queued<T>>,
    /// Time up to which the head's progress is accounted.
    head_clock: Instant,
    /// Bits of the head still to send at `head_clock`.
    head_remaining: f64,
    /// Bits of every packet behind the head.
    rest_bits: f64,
    payload_bytes: u64,
}

impl<T> LinkQueue<T> {
    /// An empty queue served at `rate_bps` (> 0).
    pub fn new(rate_bps: f64, now: Instant) -> Self {
        LinkQueue {
            rate_bps,
            queue: VecDeque::new(),
            head_clock: now,
            head_remaining: 0.0,
            rest_bits: 0.0,
            payload_bytes: 0,
        }
    }

    fn secs(&self, bits: f64) -> Duration {
        Duration::try_from_secs_f64(bits.max(0.0) / self.rate_bps).unwrap_or(Duration::MAX)
    }

    /// When the head finishes transmission, if there is one.
    pub fn next_departure(&self) -> Option<Instant> {
        self.queue.front().map(|_| {
            self.head_clock
                .checked_add(self.secs(self.head_remaining))
                .unwrap_or(self.head_clock)
        })
    }

    /// Bits still to send at `now` (≥ `head_clock`), head included.
    fn backlog_bits(&self, now: Instant) -> f64 {
        if self.queue.is_empty() {
            return 0.0;
        }
        let sent = now.saturating_duration_since(self.head_clock).as_secs_f64() * self.rate_bps;
        (self.head_remaining - sent).max(0.0) + self.rest_bits
    }

    /// Hands every packet whose transmission ends by `now` to `out` with its departure time.
    pub fn advance(&mut self, now: Instant, mut out: impl FnMut(Queued<T>, Instant)) {
        while let Some(depart) = self.next_departure() {
            if depart > now {
                break;
            }
            let Some(done) = self.queue.pop_front() else {
                break;
            };
            self.payload_bytes -= done.payload as u64;
            // The link is busy without a gap: the next packet starts when this one ends.
            self.head_clock = depart;
            match self.queue.front() {
                Some(next) => {
                    self.head_remaining = next.bits;
                    self.rest_bits = (self.rest_bits - next.bits).max(0.0);
                }
                None => {
                    self.head_remaining = 0.0;
                    self.rest_bits = 0.0;
                }
            }
            out(done, depart);
        }
    }

    /// Changes the rate at `now`; call [`LinkQueue::advance`] up to `now` first.
    pub fn set_rate(&mut self, now: Instant, rate_bps: f64) {
        if !self.queue.is_empty() {
            let sent = now.saturating_duration_since(self.head_clock).as_secs_f64() * self.rate_bps;
            self.head_remaining = (self.head_remaining - sent).max(0.0);
            self.head_clock = now.max(self.head_clock);
        }
        self.rate_bps = rate_bps;
    }

    /// Queues a packet at `now` unless the queue would exceed a bound: `limit` as time to drain
    /// (this packet's own transmission included, so its queue delay stays within the bound at a
    /// constant rate), `limit_bytes` as wire bytes.
    pub fn enqueue(
        &mut self,
        now: Instant,
        q: Queued<T>,
        limit: Option<Duration>,
        limit_bytes: Option<u64>,
    ) -> Result<(), (Overflow, Queued<T>)> {
        let backlog = self.backlog_bits(now);
        if let Some(limit) = limit
            && backlog + q.bits > limit.as_secs_f64() * self.rate_bps
        {
            return Err((Overflow, q));
        }
        if let Some(limit_bytes) = limit_bytes
            && (backlog + q.bits) / 8.0 > limit_bytes as f64
        {
            return Err((Overflow, q));
        }
        if self.queue.is_empty() {
            self.head_clock = now;
            self.head_remaining = q.bits;
        } else {
            self.rest_bits += q.bits;
        }
        self.payload_bytes += q.payload as u64;
        self.queue.push_back(q);
        Ok(())
    }

    /// Removes everything, oldest first (the rate limit was lifted).
    pub fn drain(&mut self) -> impl Iterator<Item = Queued<T>> + '_ {
        self.head_remaining = 0.0;
        self.rest_bits = 0.0;
        self.payload_bytes = 0;
        self.queue.drain(..)
    }

    /// Packets queued (the one in transmission included).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Payload bytes queued.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::runtime::{Runtime, TokioRuntime};

    fn q(now: Instant, bytes: usize) -> Queued<usize> {
        Queued {
            item: bytes,
            arrived: now,
            bits: bytes as f64 * 8.0,
            payload: bytes,
        }
    }

    #[test]
    fn serves_at_the_rate_and_follows_a_rate_change_mid_packet() {
        let t0 = TokioRuntime.now();
        // 8000 bit/s: a 1000-byte packet takes 1 s.
        let mut link = LinkQueue::new(8000.0, t0);
        link.enqueue(t0, q(t0, 1000), None, None).unwrap();
        link.enqueue(t0, q(t0, 1000), None, None).unwrap();
        assert_eq!(link.next_departure(), Some(t0 + Duration::from_secs(1)));
        let mut out = Vec::new();
        link.advance(t0 + Duration::from_millis(1500), |p, at| {
            out.push((p.item, at))
        });
        assert_eq!(out, vec![(1000, t0 + Duration::from_secs(1))]);
        // Half of the second packet is sent at 1.5 s; doubling the rate finishes it in 0.25 s.
        link.set_rate(t0 + Duration::from_millis(1500), 16000.0);
        assert_eq!(
            link.next_departure(),
            Some(t0 + Duration::from_millis(1750))
        );
    }

    #[test]
    fn drop_tail_bounds_the_time_to_drain() {
        let t0 = TokioRuntime.now();
        let mut link = LinkQueue::new(8000.0, t0);
        let limit = Some(Duration::from_millis(2500));
        assert!(link.enqueue(t0, q(t0, 1000), limit, None).is_ok());
        assert!(link.enqueue(t0, q(t0, 1000), limit, None).is_ok());
        assert!(link.enqueue(t0, q(t0, 1000), limit, None).is_err());
        // 0.5 s later half a packet has gone: 1.5 s of backlog + 1 s fits in 2.5 s.
        let t = t0 + Duration::from_millis(500);
        assert!(link.enqueue(t, q(t, 1000), limit, None).is_ok());
        assert_eq!(link.len(), 3);
        assert!(link.enqueue(t, q(t, 10), None, Some(2505)).is_err());
        assert!(link.enqueue(t, q(t, 10), None, Some(2510)).is_ok());
    }
}
