//! The per-allocation bandwidth cap (coturn's `max-bps`): a token bucket per direction.
//!
//! RFC 8656 §21.3.1 (DoS against the TURN server): a client may flood its allocation to starve
//! the others; a per-allocation limit lets the server discard the excess at once. The bucket
//! is pure: it is handed the time of each datagram, so it is tested without sockets or sleeps.

use std::time::Instant;

/// The bucket holds this many milliseconds of the rate: a burst that long passes at once from a
/// full bucket. Half a second holds a video keyframe at any sensible cap (62 kB at 1 Mbit/s)
/// while the average over a few seconds stays close to the cap.
const DEPTH_MS: u64 = 500;

/// The bucket always holds at least this much, so that any UDP datagram can pass (the largest
/// is 65,507 bytes, RFC 768 with a 20-byte IPv4 header) and a very low cap still lets whole
/// packets through rather than starving them.
const MIN_DEPTH_BYTES: u64 = 65_536;

/// Nanoseconds per second: the level is kept in byte·ns/s units so that refilling is exact
/// integer arithmetic (no drift over a long allocation).
const NANOS: u128 = 1_000_000_000;

/// A token bucket over bytes: admits a datagram if the bucket holds its size, refills at
/// `rate` bytes per second up to `depth` bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_s: u64,
    depth_bytes: u64,
    /// Tokens, in bytes × 10⁹.
    level: u128,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket for a cap of `kbps` kbit/s (1 kbit = 1,000 bits): depth half a second of
    /// the rate, at least 64 KiB.
    pub fn from_kbps(kbps: u32) -> Self {
        let rate = u64::from(kbps) * 1000 / 8;
        Self::new(rate, (rate * DEPTH_MS / 1000).max(MIN_DEPTH_BYTES))
    }

    /// A full bucket of `depth_bytes`, refilled at `rate_bytes_per_s`.
    pub fn new(rate_bytes_per_s: u64, depth_bytes: u64) -> Self {
        TokenBucket {
            rate_bytes_per_s,
            depth_bytes,
            level: u128::from(depth_bytes) * NANOS,
            last: None,
        }
    }

    /// The refill rate, bytes per second.
    pub fn rate_bytes_per_s(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// The bucket's capacity, bytes.
    pub fn depth_bytes(&self) -> u64 {
        self.depth_bytes
    }

    /// Whether a datagram of `bytes` arriving at `now` is within the cap; if so its size is
    /// taken from the bucket. An earlier `now` than the last one refills nothing.
    pub fn admit(&mut self, now: Instant, bytes: usize) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let refill = elapsed.saturating_mul(u128::from(self.rate_bytes_per_s));
            self.level = self
                .level
                .saturating_add(refill)
                .min(u128::from(self.depth_bytes) * NANOS);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        let need = (bytes as u128) * NANOS;
        if need <= self.level {
            self.level -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_passes_its_depth_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 3000);
        // The depth passes at once...
        assert!(b.admit(t0, 1000));
        assert!(b.admit(t0, 2000));
        assert!(!b.admit(t0, 1), "empty");
        // ... then 1,000 bytes per second: 500 after half a second, not 501.
        let half = t0 + Duration::from_millis(500);
        assert!(!b.admit(half, 501));
        assert!(b.admit(half, 500));
        assert!(!b.admit(half, 1));
        // A long pause refills to the depth, no more.
        let later = t0 + Duration::from_secs(60);
        assert!(!b.admit(later, 3001));
        assert!(b.admit(later, 3000));
    }

    #[test]
    fn twice_the_cap_for_two_seconds_passes_the_cap_plus_the_depth() {
        // 1,000-byte datagrams at 2× a 100 kB/s cap, for 2 s, timed to the microsecond.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100_000, 50_000);
        let (mut passed, mut dropped) = (0u64, 0u64);
        for i in 0..400u64 {
            let now = t0 + Duration::from_micros(i * 5_000);
            if b.admit(now, 1000) {
                passed += 1000;
            } else {
                dropped += 1000;
            }
        }
        // The last datagram is at 1.995 s: depth + rate × 1.995 s = 249,500 bytes.
        assert_eq!(passed, 249_000, "whole datagrams only");
        assert_eq!(passed + dropped, 400_000);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1000, 1000);
        assert!(b.admit(t0, 1000));
        assert!(!b.admit(t0 - Duration::from_secs(5), 1));
        assert!(
            !b.admit(t0, 1),
            "the earlier time did not move the clock back"
        );
        assert!(b.admit(t0 + Duration::from_millis(1), 1));
    }

    #[test]
    fn depth_follows_the_rate_but_holds_any_datagram() {
        let b = TokenBucket::from_kbps(8_000); // 1 MB/s
        assert_eq!(b.rate_bytes_per_s(), 1_000_000);
        assert_eq!(b.depth_bytes(), 500_000);
        let low = TokenBucket::from_kbps(64);
        assert_eq!(low.rate_bytes_per_s(), 8_000);
        assert_eq!(low.depth_bytes(), MIN_DEPTH_BYTES);
        assert!(TokenBucket::from_kbps(1).admit(Instant::now(), 65_507));
    }
}
