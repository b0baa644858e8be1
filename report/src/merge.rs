//! Joining the runs of a sweep into one table: `rtclab sweep` (its own runs, in any order its
//! jobs finished) and `rtclab report merge DIR...` (the runs of several shards) both go through
//! [`merge_runs`], so the same runs give the same table whichever way they were run.
//!
//! Each run folder of a sweep holds `variant.json` ([`VariantMeta`]): which variant it is, its
//! place in the sweep and its seed. With `--repeat K` a variant has K runs, one per seed; its
//! row is the median of each figure, and a second table gives the spread (min – max).

use crate::tables::{decoded_pct, right_align, sweep_value, table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;

/// The file in each run folder of a sweep that says which variant the run is.
pub const VARIANT_FILE: &str = "variant.json";

/// What `variant.json` says about one run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantMeta {
    /// The swept scenario's name (the base, before the variant's suffix).
    pub scenario: String,
    /// The swept key, as given to `--set`.
    pub key: String,
    /// This variant's value of the key.
    pub value: String,
    /// The variant's name (the scenario name with the variant's suffix); one row per name.
    pub variant: String,
    /// The variant's place in the sweep (0 = the first value given): the row order.
    pub index: usize,
    /// Which of the `--repeat` runs this is (0 = the scenario's own seed).
    pub repeat: usize,
    /// The impairment seed the run used.
    pub seed: u64,
}

/// One finished run: what it was and its `summary.json`; `dir` is the run's folder.
#[derive(Debug, Clone)]
pub struct SweepRun {
    /// From `variant.json`.
    pub meta: VariantMeta,
    /// The run's `summary.json`.
    pub summary: Value,
    /// The run's folder (its `report.html` is what a row links to).
    pub dir: std::path::PathBuf,
}

/// One row of the joined table: a variant with all its runs.
#[derive(Debug, Clone)]
pub struct MergedVariant {
    /// The variant's name.
    pub name: String,
    /// Its runs, by repeat.
    pub runs: Vec<SweepRun>,
    /// The median of each figure over the runs (the run itself when there is one).
    pub median: Value,
}

/// Why runs cannot be joined.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// Nothing to join.
    #[error("no sweep runs found (a sweep's run folder holds {VARIANT_FILE} and summary.json)")]
    Empty,
    /// Runs of two different sweeps.
    #[error(
        "runs of different sweeps: {a} and {b}; merge the shards of one sweep (same scenario and --set key)"
    )]
    Mixed {
        /// One sweep, as `scenario --set key`.
        a: String,
        /// The other.
        b: String,
    },
    /// The same run twice (a shard's folder given twice, or two shards that overlap).
    #[error(
        "variant {variant}, repeat {repeat} appears twice ({first} and {second}); give each shard's folder once"
    )]
    Duplicate {
        /// The variant.
        variant: String,
        /// The repeat.
        repeat: usize,
        /// One folder.
        first: String,
        /// The other.
        second: String,
    },
}

/// Groups `runs` into rows in sweep order (by index, then repeat), whatever order they come in.
pub fn merge_runs(mut runs: Vec<SweepRun>) -> Result<Vec<MergedVariant>, MergeError> {
    let first = runs.first().ok_or(MergeError::Empty)?;
    let sweep = |m: &VariantMeta| format!("{} --set {}", m.scenario, m.key);
    let base = sweep(&first.meta);
    if let Some(other) = runs.iter().find(|r| sweep(&r.meta) != base) {
        return Err(MergeError::Mixed {
            a: base,
            b: sweep(&other.meta),
        });
    }
    runs.sort_by(|a, b| {
        (a.meta.index, a.meta.repeat, &a.meta.variant).cmp(&(
            b.meta.index,
            b.meta.repeat,
            &b.meta.variant,
        ))
    });
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0].meta, &pair[1].meta);
        if (a.index, a.repeat, &a.variant) == (b.index, b.repeat, &b.variant) {
            return Err(MergeError::Duplicate {
                variant: a.variant.clone(),
                repeat: a.repeat,
                first: pair[0].dir.display().to_string(),
                second: pair[1].dir.display().to_string(),
            });
        }
    }
    let mut rows: Vec<MergedVariant> = Vec::new();
    for run in runs {
        match rows.last_mut() {
            Some(row) if row.name == run.meta.variant => row.runs.push(run),
            _ => rows.push(MergedVariant {
                name: run.meta.variant.clone(),
                runs: vec![run],
                median: Value::Null,
            }),
        }
    }
    for row in &mut rows {
        let values: Vec<&Value> = row.runs.iter().map(|r| &r.summary).collect();
        row.median = median_value(&values);
    }
    Ok(rows)
}

/// The median of each number over `values`, field by field: objects by the first value's keys,
/// arrays element by element when all have one length; anything else (text, or a figure some
/// runs lack) is the first value's. The median of an even count is the mean of the middle two.
pub fn median_value(values: &[&Value]) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    if values.len() == 1 {
        return (*first).clone();
    }
    match first {
        Value::Number(_) => {
            let mut xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            if xs.len() != values.len() {
                return (*first).clone();
            }
            median(&mut xs).map_or(Value::Null, Value::from)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let field: Vec<&Value> = values.iter().filter_map(|o| o.get(k)).collect();
                    let m = if field.len() == values.len() {
                        median_value(&field)
                    } else {
                        v.clone()
                    };
                    (k.clone(), m)
                })
                .collect(),
        ),
        Value::Array(items) => {
            let arrays: Vec<&Vec<Value>> = values.iter().filter_map(|v| v.as_array()).collect();
            if arrays.len() != values.len() || arrays.iter().any(|a| a.len() != items.len()) {
                return (*first).clone();
            }
            Value::Array(
                (0..items.len())
                    .map(|i| median_value(&arrays.iter().map(|a| &a[i]).collect::<Vec<_>>()))
                    .collect(),
            )
        }
        _ => (*first).clone(),
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// The rows as [`crate::sweep_table`] and `sweep.html` take them: name and median summary.
pub fn table_rows(rows: &[MergedVariant]) -> Vec<(String, Value)> {
    rows.iter()
        .map(|r| (r.name.clone(), r.median.clone()))
        .collect()
}

/// Reads one figure from a run's summary.
type Figure = fn(&Value) -> Option<f64>;

/// The spread over seeds of the headline figures, one row per variant: `None` when no variant
/// ran more than once. A wide spread says one run of this variant cannot be trusted alone.
pub fn spread_table(rows: &[MergedVariant]) -> Option<String> {
    if rows.iter().all(|r| r.runs.len() < 2) {
        return None;
    }
    let figures: [(&str, Figure, &str); 5] = [
        (
            "utilisation",
            |v| sweep_value(v, &["link_utilisation_pct"]),
            "%",
        ),
        (
            "queue delay p95",
            |v| sweep_value(v, &["queue_delay_p95_ms"]),
            "ms",
        ),
        ("frames decoded", decoded_pct, "%"),
        (
            "freeze time",
            |v| sweep_value(v, &["freeze_total_ms", "freeze_ms"]),
            "ms",
        ),
        ("NACKs", |v| sweep_value(v, &["nacks"]), ""),
    ];
    let mut header = vec!["variant", "seeds"];
    header.extend(figures.iter().map(|f| f.0));
    let mut t = table(&header);
    for row in rows {
        let mut cells = vec![row.name.clone(), row.runs.len().to_string()];
        for (_, read, unit) in &figures {
            let xs: Vec<f64> = row.runs.iter().filter_map(|r| read(&r.summary)).collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            cells.push(if xs.is_empty() {
                "–".to_owned()
            } else {
                format!("{lo:.1} – {hi:.1} {unit}").trim_end().to_owned()
            });
        }
        t.add_row(cells);
    }
    right_align(&mut t, 1);
    Some(t.to_string())
}

/// `sweep.txt`: the table of medians, and the spread when variants ran with several seeds.
pub fn sweep_text(rows: &[MergedVariant]) -> String {
    let mut text = crate::sweep_table(&table_rows(rows));
    if let Some(spread) = spread_table(rows) {
        let seeds = rows.iter().map(|r| r.runs.len()).max().unwrap_or(0);
        text.push_str(&format!(
            "\n\nEach row above is the median over up to {seeds} seeds. The spread (min – max):\n"
        ));
        text.push_str(&spread);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(variant: &str, index: usize, repeat: usize, util: f64) -> SweepRun {
        SweepRun {
            meta: VariantMeta {
                scenario: "loss-5".into(),
                key: "loss".into(),
                value: index.to_string(),
                variant: variant.into(),
                index,
                repeat,
                seed: 7 + repeat as u64,
            },
            summary: json!({
                "link_utilisation_pct": util,
                "frames_sent": 100,
                "frames_decoded": 90 + repeat,
                "name": variant,
                "impairment": [{"direction": "downlink", "packets_in": 10}],
            }),
            dir: format!("/runs/{variant}.r{repeat}").into(),
        }
    }

    #[test]
    fn rows_follow_the_sweep_order_not_the_order_runs_finished() {
        let runs = vec![
            run("b", 1, 0, 50.0),
            run("c", 2, 0, 40.0),
            run("a", 0, 0, 60.0),
        ];
        let rows = merge_runs(runs).expect("merge");
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        // One run per variant: the row is that run, unchanged, and there is no spread table.
        assert_eq!(rows[0].median, run("a", 0, 0, 60.0).summary);
        assert!(spread_table(&rows).is_none());
        assert!(!sweep_text(&rows).contains("spread"));
    }

    #[test]
    fn shards_in_any_split_give_the_same_table() {
        let all = vec![
            run("a", 0, 0, 60.0),
            run("b", 1, 0, 50.0),
            run("c", 2, 0, 40.0),
        ];
        let whole = sweep_text(&merge_runs(all.clone()).expect("whole"));
        let mut shards = vec![all[1].clone()];
        shards.extend([all[2].clone(), all[0].clone()]);
        assert_eq!(sweep_text(&merge_runs(shards).expect("shards")), whole);
    }

    #[test]
    fn repeats_give_the_median_and_the_spread() {
        let runs = vec![
            run("a", 0, 0, 60.0),
            run("a", 0, 1, 80.0),
            run("a", 0, 2, 70.0),
            run("b", 1, 0, 10.0),
            run("b", 1, 1, 20.0),
        ];
        let rows = merge_runs(runs).expect("merge");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].median["link_utilisation_pct"], json!(70.0));
        assert_eq!(rows[1].median["link_utilisation_pct"], json!(15.0));
        assert_eq!(rows[0].median["frames_decoded"], json!(91.0));
        // Text and arrays of one length are kept; numbers inside arrays are medians too.
        assert_eq!(rows[0].median["name"], json!("a"));
        assert_eq!(rows[0].median["impairment"][0]["packets_in"], json!(10.0));
        let text = sweep_text(&rows);
        assert!(text.contains("70.0 %"), "{text}");
        assert!(text.contains("60.0 – 80.0 %"), "{text}");
        assert!(text.contains("10.0 – 20.0 %"), "{text}");
        assert!(
            text.contains("90.0 – 92.0 %"),
            "frames decoded spread: {text}"
        );
    }

    #[test]
    fn bad_sets_of_runs_are_refused_with_what_to_do() {
        assert_eq!(merge_runs(vec![]).unwrap_err(), MergeError::Empty);
        let mut other = run("x", 0, 0, 1.0);
        other.meta.key = "delay".into();
        let err = merge_runs(vec![run("a", 0, 0, 1.0), other]).unwrap_err();
        assert!(err.to_string().contains("loss-5 --set delay"), "{err}");
        let err = merge_runs(vec![run("a", 0, 0, 1.0), run("a", 0, 0, 2.0)]).unwrap_err();
        assert!(
            matches!(err, MergeError::Duplicate { ref variant, repeat: 0, .. } if variant == "a"),
            "{err}"
        );
        assert!(err.to_string().contains("give each shard's folder once"));
    }
}
