//! What happened to the packets of one direction: counters by fate and cause, and queue delay.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Which direction of a session a model impairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// The media direction: sender to receiver.
    Downlink,
    /// The feedback direction: receiver to sender.
    Uplink,
}

impl Link {
    /// `"downlink"` or `"uplink"`, as in scenario files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Downlink => "downlink",
            Link::Uplink => "uplink",
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the model dropped a packet. A packet is counted under the first cause that hits it,
/// in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// An outage was in force.
    Outage,
    /// It was the n-th packet (`drop_every_nth`).
    Nth,
    /// The Gilbert-Elliott model lost it (`burst`).
    Burst,
    /// Independent random loss (`loss_pct`).
    Random,
    /// The bottleneck queue was full (drop-tail).
    QueueOverflow,
}

/// A number of packets and their payload bytes (UDP payload, no headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
}

impl Counter {
    /// Counts one packet of `bytes` bytes.
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    fn plus(self, o: Counter) -> Counter {
        Counter {
            packets: self.packets + o.packets,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Dropped packets by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Drops {
    /// `loss_pct`.
    pub random: Counter,
    /// `burst` (Gilbert-Elliott).
    pub burst: Counter,
    /// `drop_every_nth`.
    pub nth: Counter,
    /// Drop-tail at the bottleneck queue.
    pub queue_overflow: Counter,
    /// `outage`.
    pub outage: Counter,
}

impl Drops {
    /// All causes together.
    pub fn total(&self) -> Counter {
        self.random
            .plus(self.burst)
            .plus(self.nth)
            .plus(self.queue_overflow)
            .plus(self.outage)
    }

    /// The counter of one cause.
    pub fn get(&self, cause: DropCause) -> Counter {
        match cause {
            DropCause::Random => self.random,
            DropCause::Burst => self.burst,
            DropCause::Nth => self.nth,
            DropCause::QueueOverflow => self.queue_overflow,
            DropCause::Outage => self.outage,
        }
    }

    fn get_mut(&mut self, cause: DropCause) -> &mut Counter {
        match cause {
            DropCause::Random => &mut self.random,
            DropCause::Burst => &mut self.burst,
            DropCause::Nth => &mut self.nth,
            DropCause::QueueOverflow => &mut self.queue_overflow,
            DropCause::Outage => &mut self.outage,
        }
    }
}

/// Percentiles of a set of delays.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DelaySummary {
    /// Number of samples.
    pub samples: u64,
    /// Median in ms (`None` without samples); within 1.6 % (histogram resolution).
    pub p50_ms: Option<f64>,
    /// 95th percentile in ms, same resolution.
    pub p95_ms: Option<f64>,
    /// Largest sample in ms, exact to the microsecond.
    pub max_ms: Option<f64>,
    /// Mean in ms, exact to the microsecond.
    pub mean_ms: Option<f64>,
}

/// Sub-buckets per power of two: 64 gives a relative error below 1/64 ≈ 1.6 %, the layout of
/// HdrHistogram with two significant decimal digits (Gil Tene, HdrHistogram).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values are microseconds, capped at 2^40 µs (12.7 days); 35 doublings above 2^6 cover that.
const MAX_US: u64 = (1 << 40) - 1;
const BUCKETS: usize = (SUB as usize) * (41 - SUB_BITS as usize + 1);

/// A log-linear histogram of microsecond values: fixed memory, O(1) record.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let shift = (63 - v.leading_zeros()) - SUB_BITS;
        (SUB + u64::from(shift) * SUB + ((v >> shift) - SUB)) as usize
    }

    /// Middle of the bucket's value range.
    fn value(idx: usize) -> u64 {
        let idx = idx as u64;
        if idx < SUB {
            return idx;
        }
        let shift = (idx - SUB) / SUB;
        let lower = (SUB + (idx - SUB) % SUB) << shift;
        lower + ((1u64 << shift) >> 1)
    }

    /// Records one delay.
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros().min(u128::from(MAX_US))) as u64;
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        if self.total > 0 {
            self.counts.fill(0);
        }
        self.total = 0;
        self.sum_us = 0;
        self.max_us = 0;
    }

    /// Value at quantile `q` (0..=1) in µs, `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return Some(self.max_us);
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(i).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// p50, p95, max and mean in ms.
    pub fn summary(&self) -> DelaySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        DelaySummary {
            samples: self.total,
            p50_ms: self.quantile_us(0.50).map(ms),
            p95_ms: self.quantile_us(0.95).map(ms),
            max_ms: (self.total > 0).then(|| ms(self.max_us)),
            mean_ms: (self.total > 0).then(|| self.sum_us as f64 / self.total as f64 / 1000.0),
        }
    }
}

/// Totals of one direction since its start, and its state now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionStats {
    /// Which direction.
    pub link: Link,
    /// Packets handed to the model.
    #[serde(rename = "in")]
    pub input: Counter,
    /// Packets delivered (duplicates included).
    #[serde(rename = "out")]
    pub output: Counter,
    /// Packets dropped, by cause.
    pub dropped: Drops,
    /// Extra copies created by `duplicate_pct`.
    pub duplicated: Counter,
    /// Capacity in force, bit/s; `None` when unlimited.
    pub capacity_bps: Option<f64>,
    /// Packets waiting in the bottleneck queue now.
    pub queue_packets: u64,
    /// Payload bytes waiting in the bottleneck queue now.
    pub queue_bytes: u64,
    /// Packets past the queue, still in propagation delay.
    pub in_flight_packets: u64,
    /// Time spent in the bottleneck queue (waiting plus own transmission), since the start.
    pub queue_delay: DelaySummary,
}

/// What one direction did over one reporting interval (normally a second).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalStats {
    /// Which direction.
    pub link: Link,
    /// Length of the interval.
    pub duration: Duration,
    /// Packets delivered during the interval.
    pub output: Counter,
    /// Queue delay of the packets that left the queue during the interval.
    pub queue_delay: DelaySummary,
}

/// The running accounting of one direction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounting {
    pub input: Counter,
    pub output: Counter,
    pub dropped: Drops,
    pub duplicated: Counter,
    pub total_delay: Histogram,
    pub window_delay: Histogram,
    pub window_output: Counter,
}

impl Accounting {
    pub fn on_input(&mut self, bytes: usize) {
        self.input.add(bytes);
    }

    pub fn on_drop(&mut self, cause: DropCause, bytes: usize) {
        self.dropped.get_mut(cause).add(bytes);
    }

    pub fn on_duplicate(&mut self, bytes: usize) {
        self.duplicated.add(bytes);
    }

    pub fn on_queue_exit(&mut self, queue_delay: Duration) {
        self.total_delay.record(queue_delay);
        self.window_delay.record(queue_delay);
    }

    pub fn on_output(&mut self, bytes: usize) {
        self.output.add(bytes);
        self.window_output.add(bytes);
    }

    /// The interval's figures; starts a new interval.
    pub fn take_window(&mut self, link: Link, duration: Duration) -> IntervalStats {
        let out = IntervalStats {
            link,
            duration,
            output: self.window_output,
            queue_delay: self.window_delay.summary(),
        };
        self.window_output = Counter::default();
        self.window_delay.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_resolution() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.samples, 1000);
        let p50 = s.p50_ms.unwrap();
        let p95 = s.p95_ms.unwrap();
        assert!((p50 - 500.0).abs() <= 500.0 / 64.0, "{p50}");
        assert!((p95 - 950.0).abs() <= 950.0 / 64.0, "{p95}");
        assert_eq!(s.max_ms, Some(1000.0));
        assert!((s.mean_ms.unwrap() - 500.5).abs() < 1e-9);
        h.clear();
        assert_eq!(h.summary(), DelaySummary::default());
    }

    #[test]
    fn histogram_small_and_huge_values() {
        let mut h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_micros(63));
        h.record(Duration::from_secs(1_000_000_000));
        assert_eq!(h.quantile_us(0.0), Some(0));
        assert_eq!(h.quantile_us(0.5), Some(63));
        assert_eq!(h.quantile_us(1.0), Some(MAX_US));
    }

    #[test]
    fn drop_totals_add_up() {
        let mut a = Accounting::default();
        a.on_drop(DropCause::Random, 10);
        a.on_drop(DropCause::QueueOverflow, 20);
        assert_eq!(
            a.dropped.total(),
            Counter {
                packets: 2,
                bytes: 30
            }
        );
        assert_eq!(a.dropped.get(DropCause::QueueOverflow).bytes, 20);
    }
}
