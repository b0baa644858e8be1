//! Encoder adaptation decisions, sans I/O: which resolution to encode at, and whether to skip a
//! frame, from the target bitrate, the time (passed in) and what the encoder produced.
//!
//! Two parts, both pure state machines with no clock reads:
//! - [`Adapter`]: a resolution ladder (the source size × 1, 3/4, 1/2, 1/4, i.e. 720p → 540p →
//!   360p → 180p for a 720p source). Each rung has a *floor*, the lowest target worth its pixels.
//!   Down as soon as the target has stayed below the current rung's floor for [`DOWN_HOLD`], or
//!   when the encoder overshoots so much that the frame dropper skips a quarter of the frames;
//!   up one rung only after the target has stayed [`UP_MARGIN`] above the next rung's floor for
//!   [`UP_HOLD`]. The gap between the two thresholds is the hysteresis that stops flapping.
//! - [`FrameDropper`]: a leaky bucket of encoded bits drained at the target rate. A frame is
//!   skipped while the bucket holds more than [`DROP_THRESHOLD`] worth of the target, so what the
//!   encoder puts in front of the pacer (and the bottleneck) never exceeds that by much.
//!
//! [`crate::AdaptiveEncoder`] applies both to a real encoder.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::Resolution;

/// Scale factors of the ladder relative to the source size, as (numerator, denominator):
/// 720p → 540p → 360p → 180p for a 1280x720 source (the steps libwebrtc's quality scaler takes).
const LADDER: [(u32, u32); 4] = [(1, 1), (3, 4), (1, 2), (1, 4)];

/// A rung's floor in bits per pixel per frame: below `FLOOR_BITS_PER_PIXEL × w × h × fps` the
/// next smaller picture looks better than this one.
///
/// 0.03 puts the floors at 829 kbps (720p30), 466 kbps (540p30) and 207 kbps (360p30), close to
/// libwebrtc's default singlecast limits (`GetDefaultSinglecastBitrateLimits`: start 720p at
/// 1.5 Mbps, 540p at 800 kbps, 360p at 500 kbps, 270p at 300 kbps) but a little lower, because
/// those are *start* rates with a safety margin and ours is a floor with [`UP_MARGIN`] above it.
/// It also keeps VP8 at 720p well above the ~520 kbps it cannot go below on testsrc2
/// (docs/notes/ffmpeg.md#vp8-bitrate-floor).
pub const FLOOR_BITS_PER_PIXEL: f64 = 0.03;

/// Going up needs a target this many times the upper rung's floor (30 % hysteresis).
pub const UP_MARGIN: f64 = 1.3;

/// How long the target must stay below the current rung's floor before stepping down: one
/// second, so a single low estimate does not cost a keyframe.
pub const DOWN_HOLD: Duration = Duration::from_secs(1);

/// How long the target must stay above the upper rung's floor × [`UP_MARGIN`] before stepping
/// up: several seconds, because going up costs a keyframe at a larger size and a wrong step up
/// is paid again on the way down.
pub const UP_HOLD: Duration = Duration::from_secs(3);

/// After a change (and at the start), frames are no evidence of overshoot for this long: the
/// frame dropper is still paying off the previous size's backlog (up to [`DROP_THRESHOLD`]),
/// the new size starts with a keyframe (spread over [`KEYFRAME_SPREAD`]), and the encoder's
/// rate control starts over. The first verdict comes a full [`OVERSHOOT_WINDOW`] later.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The overshoot check looks at this much history of frames.
pub const OVERSHOOT_WINDOW: Duration = Duration::from_secs(1);

/// Share of frames the dropper skipped over [`OVERSHOOT_WINDOW`] that counts as overshoot:
/// the encoder cannot get down to the target at this size, so the picture must shrink.
pub const OVERSHOOT_DROP_RATIO: f64 = 0.25;

/// The frame dropper skips frames while it holds more than this much of the target's bits.
pub const DROP_THRESHOLD: Duration = Duration::from_millis(300);

/// The bucket never holds more than this much of the *current* target.
///
/// After a deep cut in the target (say 500 kbps → 100 kbps), a backlog measured in bits becomes
/// seconds of the new target, and the bucket would skip every frame for that long (measured in a
/// `cap-300k` run with VP8: 30 frames in a row, a 1 s freeze). The real queues drain faster than
/// the bucket's model: the pacer sends at 2.5 × the target and a bottleneck runs at or above it;
/// so what is older than this is forgotten, and a cut costs at most ~300 ms of skipped frames.
pub const MAX_BACKLOG: Duration = Duration::from_millis(600);

/// Above this backlog the encoder is asked for less than the target until it is paid back.
pub const PAYBACK_ABOVE: Duration = Duration::from_millis(100);

/// The backlog above [`PAYBACK_ABOVE`] is paid back over about this long, by lowering the
/// encoder's target by `excess / PAYBACK_TIME` (at most [`PAYBACK_MAX_SHARE`] of the target).
///
/// Without it a backlog never drains: an encoder that meets the target exactly adds as much as
/// the bucket loses, so after a cut (or a resolution change) the bucket would sit at the drop
/// threshold and skip frames indefinitely. Measured before this existed: VP8 at 360p/300 kbps
/// with the backlog of a 720p overshoot kept dropping over 25 % of its frames.
pub const PAYBACK_TIME: Duration = Duration::from_secs(1);

/// The encoder's target is never lowered by more than this share of the target for payback.
pub const PAYBACK_MAX_SHARE: f64 = 0.5;

/// A keyframe's bits above an average frame enter the dropper's bucket over this long, so one
/// keyframe does not cause a burst of skipped frames (libwebrtc's `FrameDropper` spreads large
/// frames the same way): the encoder's own rate control makes the next frames smaller.
pub const KEYFRAME_SPREAD: Duration = Duration::from_millis(500);

/// One step of the resolution ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Picture size at this step.
    pub size: Resolution,
    /// Lowest target this size is used at, bps (0 for the smallest rung).
    pub floor_bps: u32,
}

/// Why the resolution changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptReason {
    /// The target stayed below the current size's floor for [`DOWN_HOLD`].
    TargetBelowFloor,
    /// The frame dropper skipped at least [`OVERSHOOT_DROP_RATIO`] of the frames.
    Overshoot,
    /// The target stayed above the larger size's floor × [`UP_MARGIN`] for [`UP_HOLD`].
    TargetRecovered,
}

impl AdaptReason {
    /// The name used in the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            AdaptReason::TargetBelowFloor => "target_below_floor",
            AdaptReason::Overshoot => "overshoot",
            AdaptReason::TargetRecovered => "target_recovered",
        }
    }
}

impl fmt::Display for AdaptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolution change decided by the [`Adapter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptChange {
    /// The size before.
    pub from: Resolution,
    /// The size from now on.
    pub to: Resolution,
    /// The target when the decision was made, bps.
    pub target_bps: u32,
    /// Why.
    pub reason: AdaptReason,
}

/// What became of one frame, as the [`Adapter`] needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// The frame was encoded.
    Encoded,
    /// The frame dropper skipped it.
    Dropped,
}

/// The resolution ladder for a source size and frame rate, largest first.
pub fn ladder(source: Resolution, fps: u32) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Vec::with_capacity(LADDER.len());
    for (num, den) in LADDER {
        // Even sizes only (YUV 4:2:0); at least 2x2.
        let even = |x: u32| ((x * num / den) & !1).max(2);
        let size = Resolution::new(even(source.width), even(source.height));
        if rungs.last().is_some_and(|r| r.size == size) {
            continue;
        }
        let pixels_per_s = f64::from(size.width) * f64::from(size.height) * f64::from(fps);
        rungs.push(Rung {
            size,
            floor_bps: (FLOOR_BITS_PER_PIXEL * pixels_per_s).round() as u32,
        });
    }
    if let Some(last) = rungs.last_mut() {
        // Nothing smaller to go to: the last rung takes every target.
        last.floor_bps = 0;
    }
    rungs
}

/// Decides the encoded resolution from the target, time and the frames' fate.
///
/// Call [`Adapter::poll`] before each frame (it may return a change, to apply to that frame)
/// and [`Adapter::record`] after it.
#[derive(Debug, Clone)]
pub struct Adapter {
    rungs: Vec<Rung>,
    current: usize,
    /// Since when the target has been below the current rung's floor.
    below_since: Option<Duration>,
    /// Since when the target has been above the upper rung's floor × UP_MARGIN.
    above_since: Option<Duration>,
    /// When the last change (or the start) happened.
    changed_at: Option<Duration>,
    /// Fate of recent frames at the current size, oldest first.
    recent: VecDeque<(Duration, FrameOutcome)>,
}

impl Adapter {
    /// An adapter for `source` at `fps` that starts at the largest rung `initial_target_bps`
    /// reaches (libwebrtc also picks the start resolution from the start bitrate).
    pub fn new(source: Resolution, fps: u32, initial_target_bps: u32) -> Self {
        let rungs = ladder(source, fps);
        let current = best_rung(&rungs, initial_target_bps);
        Adapter {
            rungs,
            current,
            below_since: None,
            above_since: None,
            changed_at: None,
            recent: VecDeque::new(),
        }
    }

    /// The ladder, largest first.
    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// The size to encode at.
    pub fn size(&self) -> Resolution {
        self.rungs[self.current].size
    }

    /// Updates the decision with the target at `now`; returns a change to apply from this frame.
    pub fn poll(&mut self, now: Duration, target_bps: u32) -> Option<AdaptChange> {
        self.changed_at.get_or_insert(now);
        let floor = self.rungs[self.current].floor_bps;

        // Down: the target has stayed below this rung's floor long enough.
        if target_bps < floor {
            let since = *self.below_since.get_or_insert(now);
            if now.saturating_sub(since) >= DOWN_HOLD {
                // Straight to the rung the target reaches: one keyframe instead of several.
                let to = best_rung(&self.rungs, target_bps).max(self.current + 1);
                return Some(self.change(now, to, target_bps, AdaptReason::TargetBelowFloor));
            }
        } else {
            self.below_since = None;
        }

        // Down: the encoder cannot get down to the target at this size. The evidence is a full
        // window of frames recorded after SETTLE (see `record`).
        if self.current + 1 < self.rungs.len() {
            self.recent
                .retain(|(t, _)| now.saturating_sub(*t) < OVERSHOOT_WINDOW);
            let covered = self
                .recent
                .front()
                .is_some_and(|(t, _)| *t <= now.saturating_sub(OVERSHOOT_WINDOW) + WINDOW_SLACK);
            let dropped = self
                .recent
                .iter()
                .filter(|(_, o)| *o == FrameOutcome::Dropped)
                .count();
            if covered && dropped as f64 >= OVERSHOOT_DROP_RATIO * self.recent.len() as f64 {
                // This size evidently needs more than the current target: do not come back
                // to it before the target clearly exceeds what it failed at.
                let rung = &mut self.rungs[self.current];
                rung.floor_bps = rung.floor_bps.max(target_bps);
                // As for a low target, straight to the rung the target reaches (at least one
                // down): after a deep cut both rules fire, and the first should not cost an
                // extra keyframe.
                let to = best_rung(&self.rungs, target_bps).max(self.current + 1);
                return Some(self.change(now, to, target_bps, AdaptReason::Overshoot));
            }
        }

        // Up, one rung at a time, after the target has stayed clearly above its floor.
        if self.current > 0 {
            let upper = f64::from(self.rungs[self.current - 1].floor_bps);
            if f64::from(target_bps) >= upper * UP_MARGIN {
                let since = *self.above_since.get_or_insert(now);
                if now.saturating_sub(since) >= UP_HOLD {
                    return Some(self.change(
                        now,
                        self.current - 1,
                        target_bps,
                        AdaptReason::TargetRecovered,
                    ));
                }
            } else {
                self.above_since = None;
            }
        }
        None
    }

    /// Tells the adapter what became of the frame encoded (or skipped) at `now`.
    ///
    /// Frames in the first [`SETTLE`] after a change (or the start) are not evidence of
    /// overshoot: they pay off the backlog of the previous size and carry the new keyframe.
    pub fn record(&mut self, now: Duration, outcome: FrameOutcome) {
        if self.changed_at.is_some_and(|c| now < c + SETTLE) {
            return;
        }
        self.recent.push_back((now, outcome));
        // Bounded by the window; trimming here too keeps memory flat if poll is not called.
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) >= OVERSHOOT_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    fn change(
        &mut self,
        now: Duration,
        to: usize,
        target_bps: u32,
        reason: AdaptReason,
    ) -> AdaptChange {
        let from = self.rungs[self.current].size;
        self.current = to.min(self.rungs.len() - 1);
        self.below_since = None;
        self.above_since = None;
        self.changed_at = Some(now);
        self.recent.clear();
        AdaptChange {
            from,
            to: self.rungs[self.current].size,
            target_bps,
            reason,
        }
    }
}

/// Frames are recorded at frame ticks, so the oldest one in a full window can be up to a frame
/// interval younger than the window itself; this much slack still counts the window as covered.
const WINDOW_SLACK: Duration = Duration::from_millis(100);

/// The largest rung whose floor `target_bps` reaches (the smallest rung if none does).
fn best_rung(rungs: &[Rung], target_bps: u32) -> usize {
    rungs
        .iter()
        .position(|r| target_bps >= r.floor_bps)
        .unwrap_or(rungs.len() - 1)
}

/// A leaky bucket of encoded bits, drained at the target rate: frames are skipped while it
/// holds more than [`DROP_THRESHOLD`] of the target.
///
/// The bucket stands for the queue the encoder's overshoot builds in the pacer and at the
/// bottleneck (both send at about the target). Keyframes enter it spread over
/// [`KEYFRAME_SPREAD`], the encoder's rate control paying them back with smaller frames.
#[derive(Debug, Clone, Default)]
pub struct FrameDropper {
    /// Bits in the bucket.
    level: f64,
    /// Keyframe bits still to enter the bucket.
    spread_left: f64,
    /// Keyframe bits entering per second.
    spread_rate: f64,
    /// When the bucket was last updated.
    last: Option<Duration>,
}

impl FrameDropper {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Brings the bucket to `now` at `target_bps` and says whether the frame due now should be
    /// skipped.
    pub fn should_drop(&mut self, now: Duration, target_bps: u32) -> bool {
        self.advance(now, target_bps);
        self.level > f64::from(target_bps) * DROP_THRESHOLD.as_secs_f64()
    }

    /// Adds an encoded frame of `bits` (call after [`FrameDropper::should_drop`] said no).
    /// `frame_budget_bits` is the target's share of one frame (target / fps).
    pub fn on_encoded(&mut self, bits: u64, keyframe: bool, frame_budget_bits: f64) {
        let bits = bits as f64;
        if keyframe && bits > frame_budget_bits {
            self.level += frame_budget_bits;
            self.spread_left += bits - frame_budget_bits;
            self.spread_rate = self.spread_left / KEYFRAME_SPREAD.as_secs_f64();
        } else {
            self.level += bits;
        }
    }

    /// The target to give the encoder now: `target_bps`, lowered while the backlog is above
    /// [`PAYBACK_ABOVE`] so that it drains over [`PAYBACK_TIME`].
    pub fn encoder_target(&self, target_bps: u32) -> u32 {
        let target = f64::from(target_bps);
        let excess = self.level - target * PAYBACK_ABOVE.as_secs_f64();
        if excess <= 0.0 {
            return target_bps;
        }
        let cut = (excess / PAYBACK_TIME.as_secs_f64()).min(target * PAYBACK_MAX_SHARE);
        (target - cut).round() as u32
    }

    /// The bucket's content in milliseconds of `target_bps`.
    pub fn level_ms(&self, target_bps: u32) -> f64 {
        self.level * 1000.0 / f64::from(target_bps.max(1))
    }

    fn advance(&mut self, now: Duration, target_bps: u32) {
        let dt = self
            .last
            .map_or(0.0, |last| now.saturating_sub(last).as_secs_f64());
        self.last = Some(now);
        let spread = (self.spread_rate * dt).min(self.spread_left);
        self.spread_left -= spread;
        // Unused capacity is not saved up: a link that idled cannot send faster later.
        self.level = (self.level + spread - f64::from(target_bps) * dt)
            .clamp(0.0, f64::from(target_bps) * MAX_BACKLOG.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P720: Resolution = Resolution::new(1280, 720);

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    /// Feeds `target(t)` at 30 fps from `from` to `to` (ms), every frame encoded; returns the
    /// changes with their times.
    fn drive(
        a: &mut Adapter,
        from: u64,
        to: u64,
        target: impl Fn(u64) -> u32,
    ) -> Vec<(u64, AdaptChange)> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            if let Some(c) = a.poll(ms(t), target(t)) {
                out.push((t, c));
            }
            a.record(ms(t), FrameOutcome::Encoded);
            t += 33;
        }
        out
    }

    #[test]
    fn ladder_is_720_540_360_180_with_floors() {
        let r = ladder(P720, 30);
        let sizes: Vec<String> = r.iter().map(|r| r.size.to_string()).collect();
        assert_eq!(sizes, ["1280x720", "960x540", "640x360", "320x180"]);
        let floors: Vec<u32> = r.iter().map(|r| r.floor_bps).collect();
        assert_eq!(floors, [829_440, 466_560, 207_360, 0]);
        // Odd scaled sizes are rounded down to even.
        let odd = ladder(Resolution::new(642, 362), 30);
        assert!(odd.iter().all(|r| r.size.validate().is_ok()), "{odd:?}");
    }

    #[test]
    fn start_rung_follows_the_initial_target() {
        for (target, want) in [
            (3_000_000, 720),
            (1_500_000, 720),
            (800_000, 540),
            (300_000, 360),
            (100_000, 180),
        ] {
            assert_eq!(
                Adapter::new(P720, 30, target).size().height,
                want,
                "{target}"
            );
        }
    }

    #[test]
    fn steps_down_to_360p_one_second_after_a_drop_to_300k() {
        let mut a = Adapter::new(P720, 30, 2_500_000);
        let changes = drive(&mut a, 0, 10_000, |t| {
            if t < 3_000 { 2_500_000 } else { 300_000 }
        });
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (t, c) = changes[0];
        // The first poll at or after 3 s sees 300 k; the change comes DOWN_HOLD later (±1 frame).
        assert!((4_000..4_040).contains(&t), "changed at {t} ms");
        assert_eq!((c.from, c.to), (P720, Resolution::new(640, 360)));
        assert_eq!(c.reason, AdaptReason::TargetBelowFloor);
        assert_eq!(c.target_bps, 300_000);
    }

    #[test]
    fn a_short_dip_below_the_floor_does_not_step_down() {
        let mut a = Adapter::new(P720, 30, 1_500_000);
        // 900 ms at 300 k, then back up: shorter than DOWN_HOLD.
        let changes = drive(&mut a, 0, 8_000, |t| {
            if (2_000..2_900).contains(&t) {
                300_000
            } else {
                1_500_000
            }
        });
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn does_not_flap_around_a_threshold() {
        // Start at 540p and let the target wander around the 720p floor (829 k): ±15 % every
        // 400 ms, for a minute. It crosses the 720p floor constantly but never reaches
        // 1.3 × 829 k, and never falls below 540p's floor: the resolution must not change.
        let mut a = Adapter::new(P720, 30, 800_000);
        assert_eq!(a.size().height, 540);
        let changes = drive(&mut a, 0, 60_000, |t| {
            if (t / 400) % 2 == 0 { 720_000 } else { 950_000 }
        });
        assert!(changes.is_empty(), "{changes:?}");

        // The same wander around 540p's floor from 720p: one step down, then no flapping back.
        let mut a = Adapter::new(P720, 30, 1_000_000);
        let changes = drive(&mut a, 0, 60_000, |t| {
            if t < 2_000 {
                1_000_000
            } else if (t / 1_500) % 2 == 0 {
                420_000
            } else {
                520_000
            }
        });
        let sizes: Vec<u32> = changes.iter().map(|(_, c)| c.to.height).collect();
        assert_eq!(sizes, [360], "{changes:?}");

        // Long stretches on both sides of the 720p floor: 1.5 s at 780 k (long enough to step
        // down), then 4 s at 1 M (longer than UP_HOLD, above 829 k but below 1.3 × 829 k).
        // Without the margin this would go down and up every 5.5 s; with it, down once.
        let mut a = Adapter::new(P720, 30, 1_000_000);
        let changes = drive(&mut a, 0, 60_000, |t| {
            if t % 5_500 < 1_500 {
                780_000
            } else {
                1_000_000
            }
        });
        let sizes: Vec<u32> = changes.iter().map(|(_, c)| c.to.height).collect();
        assert_eq!(sizes, [540], "{changes:?}");
    }

    #[test]
    fn steps_back_up_one_rung_at_a_time_after_the_hold() {
        let mut a = Adapter::new(P720, 30, 300_000);
        assert_eq!(a.size().height, 360);
        let changes = drive(&mut a, 0, 20_000, |t| {
            if t < 2_000 { 300_000 } else { 2_500_000 }
        });
        let steps: Vec<(u64, u32, AdaptReason)> = changes
            .iter()
            .map(|(t, c)| (*t, c.to.height, c.reason))
            .collect();
        assert_eq!(steps.len(), 2, "{steps:?}");
        // 360p -> 540p UP_HOLD after the rise, 540p -> 720p UP_HOLD after that.
        assert_eq!(steps[0].1, 540);
        assert!((5_000..5_040).contains(&steps[0].0), "{steps:?}");
        assert_eq!(steps[1].1, 720);
        assert!((8_000..8_080).contains(&steps[1].0), "{steps:?}");
        assert!(steps.iter().all(|s| s.2 == AdaptReason::TargetRecovered));

        // A rise that does not last UP_HOLD does nothing.
        let mut a = Adapter::new(P720, 30, 300_000);
        let changes = drive(&mut a, 0, 20_000, |t| {
            if (t / 2_500) % 2 == 0 {
                300_000
            } else {
                2_500_000
            }
        });
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn steady_targets_pick_one_resolution_from_either_side() {
        // The hysteresis must not leave a steady target at different sizes depending on where
        // it came from: 300 k -> 360p, 800 k -> 540p, 1.5 M and 2.5 M -> 720p.
        for (target, want) in [
            (300_000, 360),
            (800_000, 540),
            (1_500_000, 720),
            (2_500_000, 720),
        ] {
            for start in [100_000, 3_000_000] {
                let mut a = Adapter::new(P720, 30, start);
                drive(&mut a, 0, 30_000, |_| target);
                assert_eq!(a.size().height, want, "{target} from {start}");
            }
        }
    }

    #[test]
    fn overshoot_steps_down_and_raises_the_floor() {
        let mut a = Adapter::new(P720, 30, 1_500_000);
        let mut t = 0;
        let mut change = None;
        // Every other frame dropped (50 %) at a target the 720p floor allows.
        while t < 5_000 && change.is_none() {
            change = a.poll(ms(t), 1_200_000);
            let outcome = if (t / 33) % 2 == 0 {
                FrameOutcome::Encoded
            } else {
                FrameOutcome::Dropped
            };
            a.record(ms(t), outcome);
            t += 33;
        }
        let c = change.expect("overshoot detected");
        assert_eq!(c.reason, AdaptReason::Overshoot);
        assert_eq!(c.to.height, 540);
        // Not before SETTLE + a full window of evidence (less the window's slack).
        assert!(t >= 1_900, "{t}");
        // 1.2 M would normally bring 540p back up to 720p (1.2 M > 1.3 × 829 k); not any more.
        let changes = drive(&mut a, t, t + 20_000, |_| 1_200_000);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(a.rungs()[0].floor_bps, 1_200_000);
    }

    #[test]
    fn a_few_dropped_frames_are_not_overshoot() {
        let mut a = Adapter::new(P720, 30, 1_500_000);
        for i in 0..300u64 {
            let now = ms(i * 33);
            assert_eq!(a.poll(now, 1_500_000), None, "frame {i}");
            // One in five dropped: 20 % < 25 %.
            let outcome = if i % 5 == 0 {
                FrameOutcome::Dropped
            } else {
                FrameOutcome::Encoded
            };
            a.record(now, outcome);
        }
    }

    #[test]
    fn dropper_keeps_the_backlog_near_the_threshold() {
        // An encoder producing twice the target: the dropper skips about half the frames and
        // the backlog never exceeds the threshold plus one frame.
        let target = 300_000;
        let frame_bits = 2.0 * f64::from(target) / 30.0;
        let mut d = FrameDropper::new();
        let mut dropped = 0;
        let mut max_level = 0.0f64;
        for i in 0..300u64 {
            let now = Duration::from_micros(i * 33_333);
            if d.should_drop(now, target) {
                dropped += 1;
            } else {
                d.on_encoded(frame_bits as u64, false, f64::from(target) / 30.0);
            }
            max_level = max_level.max(d.level_ms(target));
        }
        assert!((130..=170).contains(&dropped), "dropped {dropped} of 300");
        assert!(max_level <= 300.0 + 67.0 + 1.0, "backlog {max_level:.0} ms");
    }

    #[test]
    fn a_backlog_is_paid_back_by_a_lower_encoder_target() {
        // 400 ms of backlog (say, the last frames of a larger size), then an encoder that
        // produces exactly what it is asked for: the backlog drains with no more than a few
        // drops, and the encoder gets (almost) the full target again.
        let target = 300_000;
        let mut d = FrameDropper::new();
        d.should_drop(ms(0), target);
        d.on_encoded(120_000, false, 10_000.0);
        assert!(d.encoder_target(target) < target);
        let mut dropped = 0;
        for i in 1..90u64 {
            let now = Duration::from_micros(i * 33_333);
            if d.should_drop(now, target) {
                dropped += 1;
            } else {
                let asked = d.encoder_target(target);
                d.on_encoded(u64::from(asked) / 30, false, 10_000.0);
            }
        }
        assert!(dropped <= 4, "{dropped} dropped");
        // The payback is proportional, so the excess decays like e^(-t/PAYBACK_TIME): after
        // 3 s, 5 % of the 300 ms excess is left, plus the frame just added.
        assert!(
            d.level_ms(target) <= 100.0 + 15.0 + 34.0,
            "{}",
            d.level_ms(target)
        );
        assert!(d.encoder_target(target) >= target * 95 / 100);
        // With the encoder at the full target instead, the bucket would have stayed full.
        let mut d = FrameDropper::new();
        d.should_drop(ms(0), target);
        d.on_encoded(120_000, false, 10_000.0);
        let mut dropped = 0;
        for i in 1..90u64 {
            let now = Duration::from_micros(i * 33_333);
            if d.should_drop(now, target) {
                dropped += 1;
            } else {
                d.on_encoded(u64::from(target) / 30 + 500, false, 10_000.0);
            }
        }
        assert!(dropped >= 4, "{dropped} dropped");
    }

    #[test]
    fn a_deep_cut_skips_at_most_about_300_ms() {
        // 300 ms of backlog at 1.5 Mbps is 4.5 s of 100 kbps; the bucket forgets all but
        // MAX_BACKLOG of it, so about (600 - 300) ms of frames are skipped, not 4.5 s.
        let mut d = FrameDropper::new();
        d.should_drop(ms(0), 1_500_000);
        d.on_encoded(450_000, false, 50_000.0);
        let mut run = 0;
        let mut longest = 0;
        for i in 1..150u64 {
            let now = Duration::from_micros(i * 33_333);
            if d.should_drop(now, 100_000) {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
                d.on_encoded(3_333, false, 3_333.0);
            }
        }
        assert!(
            (8..=11).contains(&longest),
            "{longest} frames skipped in a row"
        );
    }

    #[test]
    fn dropper_spreads_a_keyframe_and_drops_nothing_at_the_target() {
        let target = 1_000_000;
        let budget = f64::from(target) / 30.0;
        let mut d = FrameDropper::new();
        for i in 0..300u64 {
            let now = Duration::from_micros(i * 33_333);
            assert!(!d.should_drop(now, target), "frame {i} dropped");
            // A 400 ms keyframe first (over the threshold on its own), then frames that pay it
            // back over the next 15, as an encoder's rate control does; then the budget.
            let (bits, key) = match i {
                0 => (0.4 * f64::from(target), true),
                1..=15 => (budget * 0.3, false),
                _ => (budget, false),
            };
            d.on_encoded(bits as u64, key, budget);
        }
        // The same bits counted at once would have skipped the next frame.
        let mut d = FrameDropper::new();
        d.should_drop(ms(0), target);
        d.on_encoded((0.4 * f64::from(target)) as u64, false, budget);
        assert!(d.should_drop(ms(33), target));
    }
}
