//! What users write: the impairment of one direction, its schedule, and the pair of directions.
//!
//! Everything here is plain data with `serde` derives; [`Schedule::validate`] and
//! [`Impairment::validate`] check it and name the offending field by its path in the scenario
//! file (`downlink.schedule[2].rate_kbps`), so the scenario parser can point at the line.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-packet header bytes counted against `rate_kbps` by default: an IPv4 header without
/// options (20 bytes, RFC 791 §3.1) plus a UDP header (8 bytes, RFC 768).
pub const DEFAULT_OVERHEAD_BYTES: u32 = 28;

/// Drop-tail bound used when `rate_kbps` is set without `queue_ms` or `queue_bytes`: the 300 ms
/// bottleneck queue of the RFC 8867 §5 congestion-control test cases.
pub const DEFAULT_QUEUE_MS: f64 = 300.0;

/// Largest delay, jitter or queue time accepted, in ms (one hour). Anything larger is a typo,
/// and the bound keeps every value representable as a `Duration`.
pub const MAX_MS: f64 = 3_600_000.0;

/// Largest schedule time accepted, in s (ten days), for the same reasons as [`MAX_MS`].
pub const MAX_AT_S: f64 = 864_000.0;

/// Largest rate accepted, in kbps (1 Tbps): far above anything a loopback socket carries.
pub const MAX_RATE_KBPS: f64 = 1e9;

/// Most `[[downlink.schedule]]` (or uplink) steps accepted per direction.
///
/// A scenario lasts at most an hour (`duration_s` ≤ 3600 in rtclab-scenarios), so a recorded
/// bandwidth trace replayed at one step per second needs 3,600 steps; 10,000 leaves room for a
/// step every 0.36 s over the whole hour, or both ends of 5,000 periods. Beyond that a schedule
/// is a generated file gone wrong rather than an experiment, and every step also becomes an
/// `impair.change` event in the log and a row of the report; the cap keeps loading, logging and
/// reporting bounded (issue 18 #2).
pub const MAX_STEPS: usize = 10_000;

/// Shape of the random part of the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JitterDistribution {
    /// `delay_ms ± jitter_ms`, uniform; the default, as in Linux netem without a table
    /// (tc-netem(8)).
    #[default]
    Uniform,
    /// Normal with mean `delay_ms` and standard deviation `jitter_ms`, cut at zero.
    Normal,
}

/// Gilbert-Elliott bursty loss: a two-state Markov chain evaluated once per packet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstLoss {
    /// Per-packet probability of moving from the good to the bad state, in %.
    pub p_pct: f64,
    /// Per-packet probability of moving from the bad back to the good state, in %; the mean
    /// burst length is 100 / `r_pct` packets.
    pub r_pct: f64,
    /// Loss probability while in the bad state, in % (default 100).
    #[serde(default = "hundred")]
    pub loss_in_bad_pct: f64,
    /// Loss probability while in the good state, in % (default 0).
    #[serde(default)]
    pub loss_in_good_pct: f64,
}

fn hundred() -> f64 {
    100.0
}

/// The impairment of one direction. Every part is optional; an absent part does nothing.
///
/// In a schedule step the same keys mean "replace this field from now on"; absent keys keep
/// their current value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairmentConfig {
    /// Independent (Bernoulli) loss per packet, in %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// Bursty loss (Gilbert-Elliott), on top of `loss_pct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstLoss>,
    /// Drop every n-th packet reaching the loss stage (10 = the 10th, 20th, ...); 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_every_nth: Option<u32>,
    /// Fixed one-way propagation delay, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Random delay variation, in ms (half-width for uniform, standard deviation for normal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Distribution of the jitter (default uniform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_distribution: Option<JitterDistribution>,
    /// Whether jitter may reorder packets (default false: order kept, a packet is never
    /// delivered before the one sent ahead of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
    /// Probability of delivering a packet twice, in %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_pct: Option<f64>,
    /// Bottleneck capacity in kbps (1 kbps = 1000 bit/s), headers included (`overhead_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kbps: Option<f64>,
    /// Drop-tail bound of the bottleneck queue as the time to drain it, in ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    /// Drop-tail bound of the bottleneck queue in bytes (headers included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_bytes: Option<u64>,
    /// Header bytes added to each datagram's size on the bottleneck (default 28 = IPv4 + UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_bytes: Option<u32>,
    /// 100 % loss while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<bool>,
}

/// One entry of `[[downlink.schedule]]`: from `at_s` on, replace the listed fields.
///
/// With `until_s` the step is a period: at `until_s` the listed fields go back to what they
/// would be without it (the usual use is `{ at_s, until_s, outage = true }`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds after the start of the run at which the step takes effect.
    pub at_s: f64,
    /// End of a period, in seconds after the start; absent for a permanent step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_s: Option<f64>,
    /// The fields to replace.
    #[serde(flatten)]
    pub set: ImpairmentConfig,
}

/// One direction: the settings in force from the start, and the changes over time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Settings from the start of the run.
    #[serde(flatten)]
    pub base: ImpairmentConfig,
    /// Changes, sorted by `at_s` (written `[[downlink.schedule]]`).
    #[serde(default, rename = "schedule", skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// Both directions of a media session. `Default` is no impairment at all.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// The media direction: sender to receiver.
    #[serde(default)]
    pub downlink: Schedule,
    /// The feedback direction: receiver to sender.
    #[serde(default)]
    pub uplink: Schedule,
}

/// A configuration the model refuses, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A number outside its allowed range (negative, above 100 %, not finite, ...).
    #[error("{path}: {value} is out of range: {expected}")]
    OutOfRange {
        /// Field path, e.g. `downlink.schedule[2].rate_kbps`.
        path: String,
        /// The value given.
        value: f64,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A step earlier in time than the one before it.
    #[error(
        "{path}: at_s = {at_s} comes before the previous step's at_s = {previous_at_s}; sort the steps by time"
    )]
    Unsorted {
        /// Path of the step's `at_s`.
        path: String,
        /// Its time.
        at_s: f64,
        /// The previous step's time.
        previous_at_s: f64,
    },
    /// Two steps at the same time, whose order would be ambiguous.
    #[error("{path}: another step ({other}) is already at at_s = {at_s}; merge them into one")]
    SameTime {
        /// Path of the later step's `at_s`.
        path: String,
        /// Path of the earlier step.
        other: String,
        /// The shared time.
        at_s: f64,
    },
    /// A period that ends before (or when) it starts.
    #[error("{path}: until_s = {until_s} is not after at_s = {at_s}")]
    EndBeforeStart {
        /// Path of the step's `until_s`.
        path: String,
        /// Start of the period.
        at_s: f64,
        /// End of the period.
        until_s: f64,
    },
    /// Two periods (e.g. outages) that overlap in time.
    #[error(
        "{path}: the period {at_s}..{until_s} s overlaps the period of {other}, which lasts until {other_until_s} s"
    )]
    Overlap {
        /// Path of the later period.
        path: String,
        /// Path of the earlier period.
        other: String,
        /// Start of the later period.
        at_s: f64,
        /// End of the later period.
        until_s: f64,
        /// End of the earlier period.
        other_until_s: f64,
    },
    /// More schedule steps in one direction than [`MAX_STEPS`].
    #[error(
        "{path}: {count} steps is more than the {max} allowed per direction; use fewer, longer steps"
    )]
    TooManySteps {
        /// Path of the schedule, e.g. `downlink.schedule`.
        path: String,
        /// How many steps were given.
        count: usize,
        /// The cap, [`MAX_STEPS`].
        max: usize,
    },
    /// A queue bound on a direction that has no rate limit at that time.
    #[error("{path}: a queue bound needs rate_kbps (only a rate-limited link builds a queue)")]
    QueueWithoutRate {
        /// Path of the `queue_ms` or `queue_bytes` field.
        path: String,
    },
}

impl ConfigError {
    /// Path of the field the error is about, e.g. `downlink.schedule[2].rate_kbps`.
    pub fn path(&self) -> &str {
        match self {
            ConfigError::OutOfRange { path, .. }
            | ConfigError::Unsorted { path, .. }
            | ConfigError::SameTime { path, .. }
            | ConfigError::EndBeforeStart { path, .. }
            | ConfigError::Overlap { path, .. }
            | ConfigError::TooManySteps { path, .. }
            | ConfigError::QueueWithoutRate { path } => path,
        }
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn check(
    prefix: &str,
    field: &str,
    value: f64,
    ok: impl Fn(f64) -> bool,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if value.is_finite() && ok(value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            path: join(prefix, field),
            value,
            expected,
        })
    }
}

fn pct(prefix: &str, field: &str, value: f64) -> Result<(), ConfigError> {
    check(
        prefix,
        field,
        value,
        |v| (0.0..=100.0).contains(&v),
        "a percentage from 0 to 100",
    )
}

fn millis(prefix: &str, field: &str, value: f64) -> Result<(), ConfigError> {
    check(
        prefix,
        field,
        value,
        |v| (0.0..=MAX_MS).contains(&v),
        "milliseconds from 0 to 3600000",
    )
}

impl ImpairmentConfig {
    /// Checks every present field's range; `prefix` is the path of this table (e.g. `downlink`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if let Some(v) = self.loss_pct {
            pct(prefix, "loss_pct", v)?;
        }
        if let Some(b) = &self.burst {
            let p = join(prefix, "burst");
            pct(&p, "p_pct", b.p_pct)?;
            check(
                &p,
                "r_pct",
                b.r_pct,
                |v| v > 0.0 && v <= 100.0,
                "a percentage above 0 and at most 100 (0 would never leave the bad state; use outage)",
            )?;
            pct(&p, "loss_in_bad_pct", b.loss_in_bad_pct)?;
            pct(&p, "loss_in_good_pct", b.loss_in_good_pct)?;
        }
        if let Some(v) = self.delay_ms {
            millis(prefix, "delay_ms", v)?;
        }
        if let Some(v) = self.jitter_ms {
            millis(prefix, "jitter_ms", v)?;
        }
        if let Some(v) = self.duplicate_pct {
            pct(prefix, "duplicate_pct", v)?;
        }
        if let Some(v) = self.rate_kbps {
            check(
                prefix,
                "rate_kbps",
                v,
                |v| v > 0.0 && v <= MAX_RATE_KBPS,
                "kbps above 0 (for no capacity at all use outage = true)",
            )?;
        }
        if let Some(v) = self.queue_ms {
            check(
                prefix,
                "queue_ms",
                v,
                |v| v > 0.0 && v <= MAX_MS,
                "milliseconds above 0 and at most 3600000",
            )?;
        }
        if let Some(v) = self.queue_bytes
            && v == 0
        {
            return Err(ConfigError::OutOfRange {
                path: join(prefix, "queue_bytes"),
                value: 0.0,
                expected: "at least 1 byte",
            });
        }
        Ok(())
    }

    /// Replaces every field that `step` sets, keeping the others.
    pub fn overlay(&mut self, step: &ImpairmentConfig) {
        self.assign_masked(step, step);
    }

    /// The fields of `self` that `mask` sets (values from `self`), others absent.
    pub fn masked(&self, mask: &ImpairmentConfig) -> ImpairmentConfig {
        let mut out = ImpairmentConfig::default();
        out.assign_masked(self, mask);
        out
    }

    /// Sets every field that `mask` sets to its value in `from`, which may be absent (back to
    /// the default); the only way a schedule can switch a part off again at the end of a period.
    /// The one place that lists every field, so a new field is added here only.
    pub fn assign_masked(&mut self, from: &ImpairmentConfig, mask: &ImpairmentConfig) {
        macro_rules! assign {
            ($($f:ident),*) => { $( if mask.$f.is_some() { self.$f = from.$f.clone(); } )* };
        }
        assign!(
            loss_pct,
            burst,
            drop_every_nth,
            delay_ms,
            jitter_ms,
            jitter_distribution,
            reorder,
            duplicate_pct,
            rate_kbps,
            queue_ms,
            queue_bytes,
            overhead_bytes,
            outage
        );
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == ImpairmentConfig::default()
    }
}

impl Schedule {
    /// A schedule with only base settings.
    pub fn constant(base: ImpairmentConfig) -> Self {
        Schedule {
            base,
            steps: Vec::new(),
        }
    }
}

impl Impairment {
    /// Checks both directions; errors carry paths starting with `downlink` or `uplink`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.downlink.validate("downlink")?;
        self.uplink.validate("uplink")
    }
}

/// Converts validated milliseconds to a `Duration`; out-of-range input (already refused by
/// validation) saturates instead of panicking.
pub(crate) fn ms_to_duration(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(if ms > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// Converts validated seconds to a `Duration`, saturating like [`ms_to_duration`].
pub(crate) fn s_to_duration(s: f64) -> Duration {
    ms_to_duration(s * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Impairment, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn scenario_shape_parses() {
        let imp = parse(
            r#"
            [downlink]
            delay_ms = 50
            rate_kbps = 1000
            queue_ms = 300
            burst = { p_pct = 0.5, r_pct = 20 }

            [[downlink.schedule]]
            at_s = 40
            rate_kbps = 2500

            [[downlink.schedule]]
            at_s = 50
            until_s = 53
            outage = true

            [uplink]
            loss_pct = 10
            "#,
        )
        .unwrap();
        assert_eq!(imp.downlink.base.delay_ms, Some(50.0));
        assert_eq!(imp.downlink.base.burst.unwrap().loss_in_bad_pct, 100.0);
        assert_eq!(imp.downlink.steps.len(), 2);
        assert_eq!(imp.downlink.steps[1].until_s, Some(53.0));
        assert_eq!(imp.downlink.steps[1].set.outage, Some(true));
        assert_eq!(imp.uplink.base.loss_pct, Some(10.0));
        imp.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for text in [
            "[downlink]\nloss_pc = 5",
            "[downlink]\n[[downlink.schedule]]\nat_s = 1\nrate_kbs = 5",
            "[downlink.burst]\np_pct = 1\nr_pct = 2\nh = 3",
            "[sidelink]\nloss_pct = 1",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("unknown field"), "{text}: {err}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let cases = [
            ("[downlink]\nloss_pct = 101", "downlink.loss_pct"),
            ("[uplink]\ndelay_ms = -1", "uplink.delay_ms"),
            ("[downlink]\nrate_kbps = 0", "downlink.rate_kbps"),
            (
                "[downlink.burst]\np_pct = 1\nr_pct = 0",
                "downlink.burst.r_pct",
            ),
            (
                "[downlink]\nrate_kbps = 100\n[[downlink.schedule]]\nat_s = 1\n[[downlink.schedule]]\nat_s = 2\n[[downlink.schedule]]\nat_s = 3\nrate_kbps = -5",
                "downlink.schedule[2].rate_kbps",
            ),
            (
                "[[downlink.schedule]]\nat_s = -1\noutage = true",
                "downlink.schedule[0].at_s",
            ),
            ("[downlink]\nqueue_ms = 100", "downlink.queue_ms"),
        ];
        for (text, path) in cases {
            let err = parse(text).unwrap().validate().unwrap_err();
            assert_eq!(err.path(), path, "{text}: {err}");
            assert!(err.to_string().starts_with(path), "{err}");
        }
    }

    #[test]
    fn step_order_and_periods_are_checked() {
        let unsorted = "[[downlink.schedule]]\nat_s = 5\n[[downlink.schedule]]\nat_s = 4";
        assert!(matches!(
            parse(unsorted).unwrap().validate(),
            Err(ConfigError::Unsorted { ref path, .. }) if path == "downlink.schedule[1].at_s"
        ));
        let same = "[[downlink.schedule]]\nat_s = 5\n[[downlink.schedule]]\nat_s = 5";
        assert!(matches!(
            parse(same).unwrap().validate(),
            Err(ConfigError::SameTime { ref other, .. }) if other == "downlink.schedule[0]"
        ));
        let backwards = "[[uplink.schedule]]\nat_s = 5\nuntil_s = 4\noutage = true";
        assert!(matches!(
            parse(backwards).unwrap().validate(),
            Err(ConfigError::EndBeforeStart { ref path, .. }) if path == "uplink.schedule[0].until_s"
        ));
        let overlap = "[[downlink.schedule]]\nat_s = 1\nuntil_s = 4\noutage = true\n[[downlink.schedule]]\nat_s = 3\nuntil_s = 6\noutage = true";
        assert!(matches!(
            parse(overlap).unwrap().validate(),
            Err(ConfigError::Overlap { ref path, .. }) if path == "downlink.schedule[1]"
        ));
        let touching = "[[downlink.schedule]]\nat_s = 1\nuntil_s = 3\noutage = true\n[[downlink.schedule]]\nat_s = 3\nuntil_s = 6\noutage = true";
        parse(touching).unwrap().validate().unwrap();
        let queue_from_step =
            "[downlink]\nqueue_ms = 100\n[[downlink.schedule]]\nat_s = 0\nrate_kbps = 500";
        parse(queue_from_step).unwrap().validate().unwrap();
    }

    #[test]
    fn default_is_no_impairment_and_valid() {
        let imp = Impairment::default();
        imp.validate().unwrap();
        assert!(imp.downlink.base.is_empty() && imp.uplink.steps.is_empty());
        assert_eq!(parse("").unwrap(), imp);
    }

    #[test]
    fn overlay_replaces_only_listed_fields() {
        let mut base = ImpairmentConfig {
            rate_kbps: Some(1000.0),
            delay_ms: Some(50.0),
            ..Default::default()
        };
        base.overlay(&ImpairmentConfig {
            rate_kbps: Some(2500.0),
            ..Default::default()
        });
        assert_eq!(base.rate_kbps, Some(2500.0));
        assert_eq!(base.delay_ms, Some(50.0));
        let m = base.masked(&ImpairmentConfig {
            delay_ms: Some(0.0),
            ..Default::default()
        });
        assert_eq!(
            m,
            ImpairmentConfig {
                delay_ms: Some(50.0),
                ..Default::default()
            }
        );
    }
}
