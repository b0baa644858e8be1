//! `rtclab sweep --shard I/N`: which of a sweep's runs this process runs, so that a sweep of
//! thousands of variants fans out over a batch scheduler that only starts N copies of one
//! command with an index each. The index may come from the scheduler's own variable
//! (`--shard auto/N`); nothing of ours runs in between, and `rtclab report merge` joins the
//! shards' folders afterwards.

use std::fmt;
use std::str::FromStr;

/// Where `--shard auto/N` looks for the index, in this order.
///
/// - `RTCLAB_SHARD_INDEX`: set it from a CI matrix variable (GitHub Actions, GitLab `parallel`).
/// - `JOB_COMPLETION_INDEX`: Kubernetes Indexed Jobs set it in every pod, 0 to N-1.
/// - `SLURM_ARRAY_TASK_ID`: Slurm job arrays; counted from `SLURM_ARRAY_TASK_MIN` when that is
///   set, so `--array=1-8` gives shards 0 to 7.
pub const INDEX_VARIABLES: [&str; 3] = [
    "RTCLAB_SHARD_INDEX",
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
];

/// One shard of a sweep: it runs the sweep's runs `k` with `k % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0 to `count - 1`.
    pub index: usize,
    /// How many shards the sweep is split into.
    pub count: usize,
}

impl Shard {
    /// The whole sweep in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether run `k` of the sweep (variants × repeats, in sweep order) is this shard's. Round
    /// robin, so that each shard gets a mix of variants rather than one end of the sweep.
    pub fn takes(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What `--shard` was given, before `auto` is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Fixed(Shard),
    /// `auto/N`: the index from [`INDEX_VARIABLES`].
    Auto {
        /// N.
        count: usize,
    },
}

/// A `--shard` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `I/N` or `auto/N`.
    #[error("--shard {0:?}: expected I/N (such as 0/4) or auto/N")]
    Syntax(String),
    /// N is 0, or I is not below N.
    #[error("--shard {index}/{count}: the index counts from 0 and must be below the count")]
    OutOfRange {
        /// I.
        index: usize,
        /// N.
        count: usize,
    },
    /// `auto` and no scheduler variable is set.
    #[error(
        "--shard auto/{0}: none of RTCLAB_SHARD_INDEX, JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID \
         is set; give the index yourself (--shard I/{0}) or set RTCLAB_SHARD_INDEX"
    )]
    NoIndex(usize),
    /// A scheduler variable that is not a number.
    #[error("{name}={value:?} is not a shard index (a whole number from 0)")]
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_owned());
        let (index, count) = s.split_once('/').ok_or_else(syntax)?;
        let count: usize = count.trim().parse().map_err(|_| syntax())?;
        if index.trim() == "auto" {
            if count == 0 {
                return Err(ShardError::OutOfRange { index: 0, count });
            }
            return Ok(ShardSpec::Auto { count });
        }
        let index: usize = index.trim().parse().map_err(|_| syntax())?;
        check(index, count).map(ShardSpec::Fixed)
    }
}

fn check(index: usize, count: usize) -> Result<Shard, ShardError> {
    if index < count {
        Ok(Shard { index, count })
    } else {
        Err(ShardError::OutOfRange { index, count })
    }
}

impl ShardSpec {
    /// The shard, with `auto`'s index read through `var` (the process environment in the CLI;
    /// a map in tests).
    pub fn resolve(self, var: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let count = match self {
            ShardSpec::Fixed(shard) => return Ok(shard),
            ShardSpec::Auto { count } => count,
        };
        let number = |name: &'static str, value: String| {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| ShardError::BadVariable { name, value })
        };
        for name in INDEX_VARIABLES {
            let Some(value) = var(name) else { continue };
            let mut index = number(name, value)?;
            if name == "SLURM_ARRAY_TASK_ID"
                && let Some(min) = var("SLURM_ARRAY_TASK_MIN")
            {
                index = index.saturating_sub(number("SLURM_ARRAY_TASK_MIN", min)?);
            }
            return check(index, count);
        }
        Err(ShardError::NoIndex(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn shards_split_the_runs_between_them_once_each() {
        for count in 1..6 {
            let mut taken = vec![0; 17];
            for index in 0..count {
                let shard = Shard { index, count };
                for (k, n) in taken.iter_mut().enumerate() {
                    if shard.takes(k) {
                        *n += 1;
                    }
                }
            }
            assert!(taken.iter().all(|&n| n == 1), "{count} shards: {taken:?}");
        }
        // Round robin: two shards of four runs take two each, alternating.
        let first = Shard { index: 0, count: 2 };
        assert_eq!(
            (0..4).filter(|&k| first.takes(k)).collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn fixed_and_bad_specs() {
        assert_eq!(
            "1/4".parse::<ShardSpec>(),
            Ok(ShardSpec::Fixed(Shard { index: 1, count: 4 }))
        );
        assert_eq!(
            "auto/8".parse::<ShardSpec>(),
            Ok(ShardSpec::Auto { count: 8 })
        );
        for bad in ["4", "a/4", "1/", "-1/4", "1/x", ""] {
            assert_eq!(
                bad.parse::<ShardSpec>(),
                Err(ShardError::Syntax(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            "4/4".parse::<ShardSpec>(),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
        assert!("0/0".parse::<ShardSpec>().is_err());
        assert!("auto/0".parse::<ShardSpec>().is_err());
    }

    #[test]
    fn auto_reads_the_schedulers_variable() {
        let auto = ShardSpec::Auto { count: 4 };
        let k8s = auto.resolve(env(&[("JOB_COMPLETION_INDEX", "3")]));
        assert_eq!(k8s, Ok(Shard { index: 3, count: 4 }));
        // Slurm arrays often count from 1: the minimum is taken off.
        let slurm = auto.resolve(env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]));
        assert_eq!(slurm, Ok(Shard { index: 3, count: 4 }));
        // rtclab's own variable wins, so a CI job inside a cluster can still choose.
        let both = auto.resolve(env(&[
            ("RTCLAB_SHARD_INDEX", "0"),
            ("JOB_COMPLETION_INDEX", "2"),
        ]));
        assert_eq!(both, Ok(Shard { index: 0, count: 4 }));
        assert_eq!(auto.resolve(env(&[])), Err(ShardError::NoIndex(4)));
        assert_eq!(
            auto.resolve(env(&[("JOB_COMPLETION_INDEX", "7")])),
            Err(ShardError::OutOfRange { index: 7, count: 4 })
        );
        let err = auto
            .resolve(env(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("SLURM_ARRAY_TASK_ID=\"x\""),
            "{err}"
        );
        // A fixed shard ignores the environment.
        let fixed = ShardSpec::Fixed(Shard { index: 1, count: 2 });
        assert_eq!(
            fixed.resolve(env(&[("JOB_COMPLETION_INDEX", "0")])),
            Ok(Shard { index: 1, count: 2 })
        );
    }
}
