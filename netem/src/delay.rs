//! Propagation: fixed delay plus seeded jitter, with or without reordering.

use crate::config::JitterDistribution;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What the delay of one packet is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DelaySpec {
    /// Fixed part.
    pub delay: Duration,
    /// Half-width (uniform) or standard deviation (normal).
    pub jitter: Duration,
    /// Shape of the jitter.
    pub distribution: JitterDistribution,
    /// Whether a packet may arrive before one that left ahead of it.
    pub reorder: bool,
}

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Ties (same instant) go out in the order they came in.
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Packets in flight, released at their arrival time.
pub(crate) struct DelayLine<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
    /// Latest arrival time handed out so far; the floor for the next one when order is kept.
    last_at: Option<Instant>,
    rng: fastrand::Rng,
    spare_normal: Option<f64>,
}

impl<T> DelayLine<T> {
    /// An empty line whose jitter is drawn from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        DelayLine {
            heap: BinaryHeap::new(),
            seq: 0,
            last_at: None,
            rng: fastrand::Rng::with_seed(seed),
            spare_normal: None,
        }
    }

    /// A standard normal draw (Box-Muller; both values of a pair are used).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.rng.f64();
        let u2 = self.rng.f64();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// The one-way delay of the next packet.
    pub fn sample(&mut self, spec: &DelaySpec) -> Duration {
        if spec.jitter.is_zero() {
            return spec.delay;
        }
        let j = spec.jitter.as_secs_f64();
        let offset = match spec.distribution {
            JitterDistribution::Uniform => j * (2.0 * self.rng.f64() - 1.0),
            JitterDistribution::Normal => j * self.normal(),
        };
        // A negative delay cannot happen; the distribution is cut at zero.
        Duration::try_from_secs_f64((spec.delay.as_secs_f64() + offset).max(0.0))
            .unwrap_or(Duration::MAX)
    }

    /// Puts a packet that left the bottleneck at `departed` on the line; returns its arrival.
    pub fn push(&mut self, departed: Instant, spec: &DelaySpec, item: T) -> Instant {
        let delay = self.sample(spec);
        let mut at = departed.checked_add(delay).unwrap_or(departed);
        if !spec.reorder {
            // Order kept the way a FIFO behind the delay keeps it (Linux netem with a
            // pfifo child, tc-netem(8)): a packet never overtakes the one ahead of it, it waits.
            if let Some(last) = self.last_at {
                at = at.max(last);
            }
        }
        self.last_at = Some(self.last_at.map_or(at, |l| l.max(at)));
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            item,
        }));
        at
    }

    /// Arrival time of the next packet, if any is in flight.
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// The next packet due by `now`, with its arrival time.
    pub fn pop_due(&mut self, now: Instant) -> Option<(T, Instant)> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.item, e.at))
    }

    /// Packets in flight.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
