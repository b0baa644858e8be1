//! Timing: how long repairs take, how much frames jitter, and so how long a frame may wait for a
//! missing packet (the deadline) and how long to hold frames before they are shown (the
//! playout delay).
//!
//! libwebrtc's receiver (`modules/video_coding/timing/`, `jitter_estimator.cc`, and
//! `nack_requester.cc`) sets its target delay to the jitter estimate plus the round-trip time
//! when NACK is in use, so that a retransmission arrives before the frame is due on screen. A
//! receive-only peer learns no RTT from RTCP (receiver reports carry the sender's view), so
//! rtclab measures what matters directly: the *repair time*, from the moment a gap is noticed to
//! the moment the missing packet arrives (NACK wait + round trip + the sender's queue).
//!
//! Frame times come from RTP timestamps (90 kHz, RFC 3550 §5.1): a frame is *expected* at its
//! capture time plus the smallest transit seen recently (the least-delayed frame), and anything
//! later than that is delay the buffer must absorb. Time is passed in; nothing here reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Video RTP clock (RFC 6184 §8.2.1, RFC 7741 §6.1).
const CLOCK_HZ: f64 = 90_000.0;
/// How long repair times and frame delays are remembered.
const WINDOW: Duration = Duration::from_secs(10);
/// Repair time assumed before the first repair is measured. libwebrtc assumes a 100–200 ms RTT
/// until it has one; 200 ms keeps the first losses on a mobile-like link from being given up too
/// early, and costs a short wait on a fast link until the first repair is measured.
pub const DEFAULT_REPAIR: Duration = Duration::from_millis(200);
/// Shortest wait for a missing packet: one NACK interval (50 ms) plus a loopback round trip and
/// a frame in the sender's pacer, with margin.
pub const MIN_DEADLINE: Duration = Duration::from_millis(150);
/// Repair times a frame may wait for a missing packet: room for four attempts where the NACKs
/// last that long. The sender resends a packet at most once per 1.25 × RTT (its NACK filter),
/// so the k-th retransmission arrives about (1.25 (k − 1) + 1) repair times after the gap: 4.75
/// for the fourth. With 10 %
/// loss each way an attempt fails ~19 % of the time; three attempts (3.5) still lost about one
/// packet a second for good at 400 ms RTT, each a PLI and a keyframe that loss hit in turn
/// (`rtclab bench qoe`, 200 ms / 10 %: 56 % decoded); with two (2.5), a 5 %-loss link lost a
/// repair twice about once in 400 lost packets.
pub const REPAIR_ATTEMPTS: f64 = 4.75;
/// Longest wait for a missing packet: libwebrtc's receiver also waits up to 3 s for a frame
/// before it asks for a keyframe (`kMaxWaitForFrame`, `video/video_receive_stream2.cc`). Past
/// it, a keyframe (one PLI round trip plus a large frame) is the faster way back. The NACK
/// generator asks for 1.5 s (see `repair.rs`); the wait beyond that lets the last
/// retransmission asked for arrive on a long round trip.
pub const MAX_DEADLINE: Duration = Duration::from_millis(3000);
/// Longest playout delay: beyond it, frames are shown late (a freeze) rather than the call's
/// latency growing without bound.
pub const MAX_TARGET_DELAY: Duration = Duration::from_millis(1000);

/// What the buffer has learned about the link.
#[derive(Debug, Default)]
pub struct Timing {
    /// The first frame: the origin of `f64` seconds below.
    origin: Option<(Instant, u64)>,
    last_ts: Option<u64>,
    /// (when, arrival minus capture time in seconds) of recent frames.
    transits: VecDeque<(Instant, f64)>,
    /// (when, delay beyond the expected arrival) of recent frames that needed no repair.
    delays: VecDeque<(Instant, Duration)>,
    /// (when, time to repair) of recent repaired packets.
    repairs: VecDeque<(Instant, Duration)>,
    /// Smallest playout delay (a larger jitter buffer, set by the user): see
    /// [`Timing::set_min_delay`].
    min_delay: Duration,
}

impl Timing {
    /// Holds every frame at least `min` after its expected arrival, and lets a frame wait at
    /// least that long for a missing packet: a larger jitter buffer, trading latency for fewer
    /// late frames (like libwebrtc's minimum playout delay; `rtclab run --min-playout-delay`).
    pub fn set_min_delay(&mut self, min: Duration) {
        self.min_delay = min.min(MAX_TARGET_DELAY);
    }

    /// A packet arrived `delay` after its gap was noticed.
    pub fn on_repair(&mut self, now: Instant, delay: Duration) {
        self.repairs.push_back((now, delay));
        self.expire(now);
    }

    /// Forgets whatever is older than [`WINDOW`], in every history. Called on every frame, not
    /// only when a history grows: a repair time measured during a burst of congestion (a second,
    /// behind a full queue) must stop adding to the playout delay once repairs stop, or the
    /// call keeps that latency for good (step-up-200-800: 1 s glass-to-glass for 30 s after
    /// the last repair).
    fn expire(&mut self, now: Instant) {
        forget(&mut self.repairs, now);
        forget(&mut self.delays, now);
        forget(&mut self.transits, now);
    }

    /// A frame with RTP timestamp `ts` whose first packet arrived at `first_arrival` became
    /// complete at `completed_at`.
    pub fn on_frame(
        &mut self,
        ts: u32,
        first_arrival: Instant,
        completed_at: Instant,
        repaired: bool,
    ) {
        let capture = self.capture_s(ts, first_arrival);
        let transit = self.secs(first_arrival) - capture;
        self.transits.push_back((completed_at, transit));
        if !repaired {
            let late = self.secs(completed_at) - (capture + self.min_transit());
            self.delays
                .push_back((completed_at, Duration::from_secs_f64(late.max(0.0))));
        }
        self.expire(completed_at);
    }

    /// Time to repair a lost packet: the 90th percentile of recent repairs.
    pub fn repair_time(&self) -> Duration {
        percentile(self.repairs.iter().map(|r| r.1), 0.9).unwrap_or(DEFAULT_REPAIR)
    }

    /// Frame delay jitter: the 95th percentile of recent frames' delay beyond the expected
    /// arrival (frames that needed a repair are the repair time's business).
    pub fn jitter(&self) -> Duration {
        percentile(self.delays.iter().map(|d| d.1), 0.95).unwrap_or_default()
    }

    /// How long a frame may wait for a missing packet before it is given up:
    /// [`REPAIR_ATTEMPTS`] repair times, plus twice the jitter, plus 50 ms for the NACK
    /// interval; bounded by [`MIN_DEADLINE`] and [`MAX_DEADLINE`].
    pub fn deadline(&self) -> Duration {
        (self.repair_time().mul_f64(REPAIR_ATTEMPTS)
            + self.jitter() * 2
            + Duration::from_millis(50))
        .max(self.min_delay)
        .clamp(MIN_DEADLINE, MAX_DEADLINE)
    }

    /// How long after its expected arrival a frame is shown: the jitter, plus the repair time
    /// while repairs are happening (libwebrtc adds the RTT when NACK is on), at most
    /// [`MAX_TARGET_DELAY`].
    pub fn target_delay(&self) -> Duration {
        let repair = if self.repairs.is_empty() {
            Duration::ZERO
        } else {
            self.repair_time()
        };
        (self.jitter() + repair)
            .max(self.min_delay)
            .min(MAX_TARGET_DELAY)
    }

    /// When a frame with RTP timestamp `ts` is due on screen (`None` before the first frame).
    pub fn render_time(&self, ts: u32) -> Option<Instant> {
        let (origin, _) = self.origin?;
        let due = self.capture_s_peek(ts)? + self.min_transit() + self.target_delay().as_secs_f64();
        Some(origin + Duration::from_secs_f64(due.max(0.0)))
    }

    fn secs(&self, t: Instant) -> f64 {
        self.origin
            .map_or(0.0, |(o, _)| t.saturating_duration_since(o).as_secs_f64())
    }

    /// Capture time of `ts` in seconds since the first frame, extending the 32-bit timestamp.
    fn capture_s(&mut self, ts: u32, arrival: Instant) -> f64 {
        let ext = match self.last_ts {
            None => {
                self.origin = Some((arrival, u64::from(ts) + (1 << 32)));
                u64::from(ts) + (1 << 32)
            }
            Some(last) => unwrap_ts(last, ts),
        };
        if self.last_ts.is_none_or(|l| ext > l) {
            self.last_ts = Some(ext);
        }
        let base = self.origin.map_or(ext, |(_, b)| b);
        (ext as f64 - base as f64) / CLOCK_HZ
    }

    fn capture_s_peek(&self, ts: u32) -> Option<f64> {
        let (_, base) = self.origin?;
        let ext = unwrap_ts(self.last_ts?, ts);
        Some((ext as f64 - base as f64) / CLOCK_HZ)
    }

    /// The smallest recent transit: the frame that was delayed least (0 before any frame).
    fn min_transit(&self) -> f64 {
        let m = self
            .transits
            .iter()
            .map(|t| t.1)
            .fold(f64::INFINITY, f64::min);
        if m.is_finite() { m } else { 0.0 }
    }
}

fn forget<T>(q: &mut VecDeque<(Instant, T)>, now: Instant) {
    while q
        .front()
        .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
    {
        q.pop_front();
    }
}

fn percentile(values: impl Iterator<Item = Duration>, q: f64) -> Option<Duration> {
    let mut v: Vec<Duration> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Extends a 32-bit RTP timestamp to the value closest to `last` (wraps every 13 h at 90 kHz).
fn unwrap_ts(last: u64, ts: u32) -> u64 {
    let base = last & !0xffff_ffff;
    [base.wrapping_sub(1 << 32), base, base + (1 << 32)]
        .iter()
        .map(|b| b.wrapping_add(u64::from(ts)))
        .filter(|c| *c < u64::MAX / 2)
        .min_by_key(|c| c.abs_diff(last))
        .unwrap_or(base + u64::from(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(33_333);

    #[test]
    fn the_deadline_follows_the_measured_repair_time() {
        let t = Instant::now();
        let mut timing = Timing::default();
        assert_eq!(
            timing.deadline(),
            DEFAULT_REPAIR.mul_f64(REPAIR_ATTEMPTS) + Duration::from_millis(50)
        );
        // Loopback: repairs in ~55 ms → a short wait.
        for i in 0..10 {
            timing.on_repair(t + FRAME * i, Duration::from_millis(55));
        }
        assert_eq!(
            timing.deadline(),
            Duration::from_millis(55).mul_f64(REPAIR_ATTEMPTS) + Duration::from_millis(50)
        );
        // A 400 ms RTT: repairs in ~450 ms, room for four attempts (2.19 s).
        let mut slow = Timing::default();
        for i in 0..10 {
            slow.on_repair(t + FRAME * i, Duration::from_millis(450));
        }
        assert_eq!(
            slow.deadline(),
            Duration::from_millis(450).mul_f64(REPAIR_ATTEMPTS) + Duration::from_millis(50)
        );
        // A 1.2 s round trip (a satellite hop and a queue): bounded at 3 s.
        for i in 0..10 {
            slow.on_repair(t + FRAME * i, Duration::from_millis(1200));
        }
        assert_eq!(slow.deadline(), MAX_DEADLINE);
    }

    #[test]
    fn frames_are_due_at_capture_plus_least_transit_plus_target_delay() {
        let t0 = Instant::now();
        let mut timing = Timing::default();
        // Frames every 33 ms; transit 100 ms, every 4th one 40 ms later (jitter).
        for i in 0..60u32 {
            let capture = t0 + FRAME * i;
            let extra = if i % 4 == 3 {
                Duration::from_millis(40)
            } else {
                Duration::ZERO
            };
            let arrival = capture + Duration::from_millis(100) + extra;
            timing.on_frame(i * 3000, arrival, arrival, false);
        }
        let jitter = timing.jitter();
        assert!(
            jitter >= Duration::from_millis(39) && jitter <= Duration::from_millis(41),
            "{jitter:?}"
        );
        // No repair seen: the target is the jitter alone.
        assert_eq!(timing.target_delay(), jitter);
        let due = timing.render_time(60 * 3000).expect("frames seen");
        let expect = t0 + FRAME * 60 + Duration::from_millis(100) + jitter;
        assert!(
            due.max(expect) - due.min(expect) < Duration::from_millis(2),
            "{due:?} vs {expect:?}"
        );
        // Repairs add their time to the target delay (the frame waits for its retransmission
        // before it is due, not after).
        timing.on_repair(t0 + FRAME * 60, Duration::from_millis(250));
        assert_eq!(timing.target_delay(), jitter + Duration::from_millis(250));
    }

    #[test]
    fn a_repair_time_stops_counting_once_repairs_stop() {
        let t0 = Instant::now();
        let mut timing = Timing::default();
        // Frames every 33 ms, transit 50 ms, no jitter; one slow repair (behind a full queue)
        // at the start.
        let frame = |timing: &mut Timing, i: u32| {
            let arrival = t0 + FRAME * i + Duration::from_millis(50);
            timing.on_frame(i * 3000, arrival, arrival, false);
        };
        frame(&mut timing, 0);
        timing.on_repair(t0, Duration::from_millis(900));
        assert_eq!(timing.target_delay(), Duration::from_millis(900));
        // Still within the window: the buffer keeps waiting that long.
        for i in 1..=270 {
            frame(&mut timing, i);
        }
        assert_eq!(timing.target_delay(), Duration::from_millis(900));
        // Past WINDOW (10 s) without another repair, frames alone age it out.
        for i in 271..=320 {
            frame(&mut timing, i);
        }
        assert_eq!(timing.target_delay(), Duration::ZERO);
        assert_eq!(timing.repair_time(), DEFAULT_REPAIR);
    }

    #[test]
    fn a_minimum_delay_holds_frames_and_lets_them_wait_longer() {
        let t = Instant::now();
        let mut timing = Timing::default();
        timing.on_repair(t, Duration::from_millis(20));
        let before = timing.deadline();
        timing.set_min_delay(Duration::from_millis(400));
        assert_eq!(timing.target_delay(), Duration::from_millis(400));
        assert_eq!(timing.deadline(), Duration::from_millis(400).max(before));
        // Above it, the measured delay still rules.
        timing.on_repair(t, Duration::from_millis(600));
        assert_eq!(timing.target_delay(), Duration::from_millis(600));
    }

    #[test]
    fn the_target_delay_is_bounded() {
        let t = Instant::now();
        let mut timing = Timing::default();
        timing.on_repair(t, Duration::from_secs(5));
        assert_eq!(timing.target_delay(), MAX_TARGET_DELAY);
        assert_eq!(timing.deadline(), MAX_DEADLINE);
    }
}
