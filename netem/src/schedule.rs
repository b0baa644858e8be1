//! The schedule compiled into breakpoints, and the fully resolved settings in force at a time.

use crate::config::{
    BurstLoss, ConfigError, DEFAULT_OVERHEAD_BYTES, DEFAULT_QUEUE_MS, ImpairmentConfig,
    JitterDistribution, MAX_AT_S, MAX_STEPS, Schedule, ms_to_duration, s_to_duration,
};
use std::time::Duration;

/// One moment at which settings change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Breakpoint {
    /// Offset from the schedule's start.
    pub at: Duration,
    /// The same offset as written, in seconds (for the change event).
    pub at_s: f64,
    /// End of the period that starts here, if one does.
    pub until_s: Option<f64>,
    /// Every field that changes here, with its value from this moment on; a field in `mask`
    /// but absent here goes back to its default (a period ending).
    pub changed: ImpairmentConfig,
    /// Which fields change here (values irrelevant).
    pub mask: ImpairmentConfig,
    /// Who put this point here when it is not the schedule being played (the end of a live
    /// outage); `None` = the schedule.
    pub source: Option<String>,
}

/// A validated schedule as a sorted list of breakpoints after the base settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    /// Settings from the start.
    pub base: ImpairmentConfig,
    /// Changes in time order, no two at the same time.
    pub points: Vec<Breakpoint>,
}

impl Timeline {
    /// Validates `schedule` (paths start with `prefix`) and compiles it.
    ///
    /// Linear in the number of steps (plus one sort of the breakpoint times): a scenario file
    /// is user input, and an earlier version that rescanned every step per step took 11.8 s
    /// (release build) for 50,000 steps (issue 18 #2). The steps must already be sorted, so
    /// order, equal times and overlapping periods are all checked against neighbours only.
    pub fn compile(schedule: &Schedule, prefix: &str) -> Result<Timeline, ConfigError> {
        // Before anything per step, so an oversized schedule costs nothing to refuse.
        if schedule.steps.len() > MAX_STEPS {
            return Err(ConfigError::TooManySteps {
                path: format!("{prefix}.schedule"),
                count: schedule.steps.len(),
                max: MAX_STEPS,
            });
        }
        Self::compile_uncapped(schedule, prefix)
    }

    /// [`Timeline::compile`] without the [`MAX_STEPS`] cap, so that a test can show the
    /// checks themselves stay linear well beyond it.
    fn compile_uncapped(schedule: &Schedule, prefix: &str) -> Result<Timeline, ConfigError> {
        let steps = &schedule.steps;
        schedule.base.validate(prefix)?;
        // The latest period seen so far (index, end). Periods are sorted by start and, once
        // checked, disjoint, so only the latest one can still be running at a later start.
        let mut last_period: Option<(usize, f64)> = None;
        for (i, step) in steps.iter().enumerate() {
            let path = format!("{prefix}.schedule[{i}]");
            if !(step.at_s.is_finite() && (0.0..=MAX_AT_S).contains(&step.at_s)) {
                return Err(ConfigError::OutOfRange {
                    path: format!("{path}.at_s"),
                    value: step.at_s,
                    expected: "seconds from 0 to 864000",
                });
            }
            step.set.validate(&path)?;
            if let Some(until) = step.until_s {
                if !(until.is_finite() && until <= MAX_AT_S) {
                    return Err(ConfigError::OutOfRange {
                        path: format!("{path}.until_s"),
                        value: until,
                        expected: "seconds from 0 to 864000",
                    });
                }
                if until <= step.at_s {
                    return Err(ConfigError::EndBeforeStart {
                        path: format!("{path}.until_s"),
                        at_s: step.at_s,
                        until_s: until,
                    });
                }
            }
            if i > 0 {
                let prev = &steps[i - 1];
                if step.at_s < prev.at_s {
                    return Err(ConfigError::Unsorted {
                        path: format!("{path}.at_s"),
                        at_s: step.at_s,
                        previous_at_s: prev.at_s,
                    });
                }
                if step.at_s == prev.at_s {
                    return Err(ConfigError::SameTime {
                        path: format!("{path}.at_s"),
                        other: format!("{prefix}.schedule[{}]", i - 1),
                        at_s: step.at_s,
                    });
                }
            }
            if let Some(until) = step.until_s {
                if let Some((j, earlier_until)) = last_period
                    && step.at_s < earlier_until
                {
                    return Err(ConfigError::Overlap {
                        path,
                        other: format!("{prefix}.schedule[{j}]"),
                        at_s: step.at_s,
                        until_s: until,
                        other_until_s: earlier_until,
                    });
                }
                last_period = Some((i, until));
            }
        }
        // A queue bound only means something on a rate-limited link; refuse one on a
        // direction that is never rate-limited, since it is almost certainly a mistake.
        let ever_rate =
            schedule.base.rate_kbps.is_some() || steps.iter().any(|s| s.set.rate_kbps.is_some());
        if !ever_rate {
            let tables = std::iter::once((prefix.to_owned(), &schedule.base)).chain(
                steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("{prefix}.schedule[{i}]"), &s.set)),
            );
            for (path, cfg) in tables {
                let field = match (cfg.queue_ms, cfg.queue_bytes) {
                    (Some(_), _) => "queue_ms",
                    (None, Some(_)) => "queue_bytes",
                    (None, None) => continue,
                };
                return Err(ConfigError::QueueWithoutRate {
                    path: format!("{path}.{field}"),
                });
            }
        }
        Ok(Timeline {
            base: schedule.base.clone(),
            points: sweep(schedule),
        })
    }
}

/// What happens to one step at one time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// The step's period ends here.
    End,
    /// The step starts here.
    Start,
}

/// The breakpoints of a validated schedule in one pass over its start and end times.
///
/// At each distinct time `t` the settings in force are the base, overlaid with every permanent
/// step started by `t`, overlaid with the one period running at `t` (periods win while they last
/// and never overlap). The permanent part only grows as `t` advances, so it is carried from one
/// time to the next instead of being rebuilt from every step.
fn sweep(schedule: &Schedule) -> Vec<Breakpoint> {
    let steps = &schedule.steps;
    let mut edges: Vec<(f64, Edge, usize)> = Vec::with_capacity(steps.len() * 2);
    for (i, s) in steps.iter().enumerate() {
        edges.push((s.at_s, Edge::Start, i));
        if let Some(until) = s.until_s {
            edges.push((until, Edge::End, i));
        }
    }
    // By time, then by step index: at one time a period ending (an earlier step) is marked
    // before the step starting there, as the order of the steps in the file says.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));

    let mut permanent = schedule.base.clone();
    let mut running: Option<usize> = None;
    let mut points = Vec::with_capacity(edges.len());
    let mut k = 0;
    while k < edges.len() {
        let t = edges[k].0;
        let mut touched = ImpairmentConfig::default();
        let mut until_s = None;
        // Every edge at `t` (`==`, not the sort order, decides: -0.0 and 0.0 are one time).
        while let Some(&(time, edge, i)) = edges.get(k)
            && time == t
        {
            let s = &steps[i];
            touched.overlay(&s.set);
            match edge {
                Edge::Start => {
                    until_s = until_s.or(s.until_s);
                    match s.until_s {
                        Some(_) => running = Some(i),
                        None => permanent.overlay(&s.set),
                    }
                }
                Edge::End => {
                    if running == Some(i) {
                        running = None;
                    }
                }
            }
            k += 1;
        }
        let mut effective = permanent.clone();
        if let Some(i) = running {
            effective.overlay(&steps[i].set);
        }
        points.push(Breakpoint {
            at: s_to_duration(t),
            at_s: t,
            until_s,
            changed: effective.masked(&touched),
            mask: touched,
            source: None,
        });
    }
    points
}

/// Every setting of a direction with defaults filled in and units converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// Bernoulli loss probability, 0..=1.
    pub loss: f64,
    /// Gilbert-Elliott parameters, if bursty loss is on.
    pub burst: Option<BurstLoss>,
    /// Drop every n-th packet; 0 = off.
    pub nth: u32,
    /// Fixed delay.
    pub delay: Duration,
    /// Jitter half-width (uniform) or standard deviation (normal).
    pub jitter: Duration,
    /// Jitter distribution.
    pub distribution: JitterDistribution,
    /// Whether jitter may reorder.
    pub reorder: bool,
    /// Duplication probability, 0..=1.
    pub duplicate: f64,
    /// Capacity in bit/s, `None` = unlimited.
    pub rate_bps: Option<f64>,
    /// Drop-tail bound in time to drain, if any.
    pub queue_limit: Option<Duration>,
    /// Drop-tail bound in bytes, if any.
    pub queue_limit_bytes: Option<u64>,
    /// Header bytes added per packet on the bottleneck.
    pub overhead: u32,
    /// 100 % loss.
    pub outage: bool,
}

impl Settings {
    /// Resolves a (validated) configuration, filling in defaults.
    pub fn resolve(cfg: &ImpairmentConfig) -> Settings {
        let rate_bps = cfg.rate_kbps.map(|k| k * 1000.0);
        let queue_limit = match (cfg.queue_ms, cfg.queue_bytes) {
            (Some(ms), _) => Some(ms_to_duration(ms)),
            // A rate limit with no bound at all gets the default time bound.
            (None, None) if rate_bps.is_some() => Some(ms_to_duration(DEFAULT_QUEUE_MS)),
            _ => None,
        };
        Settings {
            loss: cfg.loss_pct.unwrap_or(0.0) / 100.0,
            burst: cfg.burst,
            nth: cfg.drop_every_nth.unwrap_or(0),
            delay: ms_to_duration(cfg.delay_ms.unwrap_or(0.0)),
            jitter: ms_to_duration(cfg.jitter_ms.unwrap_or(0.0)),
            distribution: cfg.jitter_distribution.unwrap_or_default(),
            reorder: cfg.reorder.unwrap_or(false),
            duplicate: cfg.duplicate_pct.unwrap_or(0.0) / 100.0,
            rate_bps,
            queue_limit,
            queue_limit_bytes: cfg.queue_bytes,
            overhead: cfg.overhead_bytes.unwrap_or(DEFAULT_OVERHEAD_BYTES),
            outage: cfg.outage.unwrap_or(false),
        }
    }
}

/// Validation lives here, beside the timeline it compiles, so that `config.rs` (the data) does
/// not depend on `schedule.rs` (what is done with it).
impl Schedule {
    /// Checks the base settings, every step, their order, and the periods.
    ///
    /// `prefix` is the path of this direction's table (`downlink` or `uplink`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        Timeline::compile(self, prefix).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Step;

    fn step(at_s: f64, until_s: Option<f64>, set: ImpairmentConfig) -> Step {
        Step { at_s, until_s, set }
    }

    #[test]
    fn rfc8867_capacity_steps_compile_in_order() {
        let rate = |k| ImpairmentConfig {
            rate_kbps: Some(k),
            ..Default::default()
        };
        let schedule = Schedule {
            base: rate(1000.0),
            steps: vec![
                step(40.0, None, rate(2500.0)),
                step(60.0, None, rate(600.0)),
                step(80.0, None, rate(1000.0)),
            ],
        };
        let t = Timeline::compile(&schedule, "downlink").unwrap();
        let got: Vec<_> = t
            .points
            .iter()
            .map(|p| (p.at, p.changed.rate_kbps))
            .collect();
        assert_eq!(
            got,
            vec![
                (Duration::from_secs(40), Some(2500.0)),
                (Duration::from_secs(60), Some(600.0)),
                (Duration::from_secs(80), Some(1000.0)),
            ]
        );
    }

    #[test]
    fn a_period_restores_what_was_in_force_at_its_end() {
        let outage = ImpairmentConfig {
            outage: Some(true),
            ..Default::default()
        };
        let loss = |p| ImpairmentConfig {
            loss_pct: Some(p),
            ..Default::default()
        };
        let schedule = Schedule {
            base: loss(1.0),
            steps: vec![
                step(
                    10.0,
                    Some(13.0),
                    ImpairmentConfig {
                        loss_pct: Some(50.0),
                        ..outage.clone()
                    },
                ),
                step(12.0, None, loss(5.0)),
            ],
        };
        let t = Timeline::compile(&schedule, "downlink").unwrap();
        assert_eq!(t.points.len(), 3);
        assert_eq!(t.points[0].until_s, Some(13.0));
        assert_eq!(t.points[0].changed.outage, Some(true));
        // The permanent step at 12 s does not override the period while it lasts...
        assert_eq!(t.points[1].changed.loss_pct, Some(50.0));
        // ...and at 13 s the period ends: outage back to unset, and the loss of the 12 s step.
        assert_eq!(t.points[2].changed.outage, None);
        assert_eq!(t.points[2].mask.outage, Some(true));
        assert_eq!(t.points[2].changed.loss_pct, Some(5.0));
        assert_eq!(t.points[2].at_s, 13.0);
    }

    /// The compiler before issue 18 #2, kept as the reference the linear sweep must match:
    /// the settings at each time rebuilt from every step (quadratic, but obviously right).
    fn reference_points(schedule: &Schedule) -> Vec<Breakpoint> {
        let steps = &schedule.steps;
        let mut times: Vec<f64> = steps
            .iter()
            .flat_map(|s| std::iter::once(s.at_s).chain(s.until_s))
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let effective = |t: f64| {
            let mut cfg = schedule.base.clone();
            for s in steps.iter().filter(|s| s.until_s.is_none() && s.at_s <= t) {
                cfg.overlay(&s.set);
            }
            for s in steps.iter().filter(|s| s.at_s <= t) {
                if let Some(until) = s.until_s
                    && t < until
                {
                    cfg.overlay(&s.set);
                }
            }
            cfg
        };
        times
            .into_iter()
            .map(|t| {
                let mut touched = ImpairmentConfig::default();
                let mut until_s = None;
                for s in steps {
                    if s.at_s == t {
                        touched.overlay(&s.set);
                        until_s = until_s.or(s.until_s);
                    }
                    if s.until_s == Some(t) {
                        touched.overlay(&s.set);
                    }
                }
                Breakpoint {
                    at: s_to_duration(t),
                    at_s: t,
                    until_s,
                    changed: effective(t).masked(&touched),
                    mask: touched,
                    source: None,
                }
            })
            .collect()
    }

    /// A valid schedule of `n` steps drawn from `seed`: permanent steps and periods mixed, with
    /// half-second times so that periods touch each other and steps start where periods end.
    fn mixed_schedule(n: usize, seed: u64) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut at = 0.0;
        let mut period_end = 0.0_f64;
        let steps = (0..n)
            .map(|_| {
                at += f64::from(rng.u8(1..=4)) * 0.5;
                let mut set = ImpairmentConfig::default();
                if rng.bool() {
                    set.loss_pct = Some(f64::from(rng.u8(0..=100)));
                }
                if rng.bool() {
                    set.delay_ms = Some(f64::from(rng.u16(0..=500)));
                }
                if rng.u8(0..4) == 0 {
                    set.rate_kbps = Some(f64::from(rng.u16(100..=5000)));
                }
                let until_s = (at >= period_end && rng.u8(0..3) == 0).then(|| {
                    set.outage = Some(rng.bool());
                    period_end = at + f64::from(rng.u8(1..=6)) * 0.5;
                    period_end
                });
                Step {
                    at_s: at,
                    until_s,
                    set,
                }
            })
            .collect();
        Schedule {
            base: ImpairmentConfig {
                loss_pct: Some(1.0),
                rate_kbps: Some(1000.0),
                ..Default::default()
            },
            steps,
        }
    }

    #[test]
    fn the_linear_sweep_matches_the_reference_compiler() {
        for seed in 0..200 {
            let schedule = mixed_schedule(40, seed);
            let t = Timeline::compile(&schedule, "downlink").unwrap();
            assert_eq!(t.points, reference_points(&schedule), "seed {seed}");
        }
    }

    /// Issue 18 #2: 50,000 steps took 11.8 s to check in a release build (20,000: 1.7 s),
    /// because the settings at every breakpoint were rebuilt from every step. Linear checking
    /// takes tens of ms here even in a debug build; 2 s is generous for a slow, busy machine
    /// and still far below what the quadratic version needs (it needs more than that for
    /// 20,000 steps with full optimisation).
    #[test]
    fn fifty_thousand_steps_check_in_linear_time() {
        let schedule = mixed_schedule(50_000, 7);
        let periods = schedule
            .steps
            .iter()
            .filter(|s| s.until_s.is_some())
            .count();
        assert!(
            periods > 5_000,
            "both kinds of step are exercised: {periods}"
        );
        let started = std::time::Instant::now();
        let t = Timeline::compile_uncapped(&schedule, "downlink").unwrap();
        let took = started.elapsed();
        assert!(t.points.len() >= 50_000);
        assert!(
            took < Duration::from_secs(2),
            "checking 50,000 steps took {took:?}"
        );
    }

    #[test]
    fn a_schedule_over_the_cap_is_refused_naming_field_and_cap() {
        let at_cap = mixed_schedule(MAX_STEPS, 3);
        at_cap.validate("uplink").unwrap();
        let mut over = at_cap;
        over.steps.push(Step {
            at_s: MAX_AT_S,
            until_s: None,
            set: ImpairmentConfig::default(),
        });
        let err = over.validate("uplink").unwrap_err();
        assert_eq!(
            err,
            ConfigError::TooManySteps {
                path: "uplink.schedule".into(),
                count: MAX_STEPS + 1,
                max: MAX_STEPS,
            }
        );
        assert_eq!(err.path(), "uplink.schedule");
        let text = err.to_string();
        assert!(
            text.starts_with("uplink.schedule: 10001 steps") && text.contains("10000 allowed"),
            "{text}"
        );
    }

    #[test]
    fn defaults_fill_in() {
        let s = Settings::resolve(&ImpairmentConfig {
            rate_kbps: Some(1000.0),
            ..Default::default()
        });
        assert_eq!(s.rate_bps, Some(1e6));
        assert_eq!(s.queue_limit, Some(Duration::from_millis(300)));
        assert_eq!(s.overhead, 28);
        assert!(!s.reorder && !s.outage);
        let none = Settings::resolve(&ImpairmentConfig::default());
        assert_eq!(none.queue_limit, None);
        assert_eq!(none.rate_bps, None);
    }
}
