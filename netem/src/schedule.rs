//! The schedule compiled into breakpoints, and the fully resolved settings in force at a time.

use crate::config::{
    BurstLoss, ConfigError, DEFAULT_OVERHEAD_BYTES, DEFAULT_QUEUE_MS, ImpairmentConfig,
    JitterDistribution, MAX_AT_S, Schedule, ms_to_duration, s_to_duration,
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
    pub fn compile(schedule: &Schedule, prefix: &str) -> Result<Timeline, ConfigError> {
        schedule.base.validate(prefix)?;
        let steps = &schedule.steps;
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
            // Steps are sorted, so an earlier period overlaps this one exactly when it is
            // still running at this one's start.
            if let Some(until) = step.until_s {
                for (j, earlier) in steps[..i].iter().enumerate() {
                    if let Some(earlier_until) = earlier.until_s
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
                }
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
            // Periods win over permanent steps while they last; they never overlap.
            for s in steps.iter().filter(|s| s.at_s <= t) {
                if let Some(until) = s.until_s
                    && t < until
                {
                    cfg.overlay(&s.set);
                }
            }
            cfg
        };
        let points = times
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
                }
            })
            .collect();
        Ok(Timeline {
            base: schedule.base.clone(),
            points,
        })
    }
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
