//! `rtclab sweep`: one scenario, run once per value of one setting (and per seed with
//! `--repeat`), compared in one table; `--jobs` runs several at once, `--shard` runs a slice of
//! them, and [`merge_sweep`] (`rtclab report merge`) joins the slices.

use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use crate::shard::Shard;
use futures::FutureExt;
use futures::stream::{self, StreamExt};
use rtclab_report::merge::{self, MergedVariant, SweepRun, VARIANT_FILE, VariantMeta};
use rtclab_scenarios::Scenario;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What `rtclab sweep` was asked.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    /// The scenario file.
    pub file: PathBuf,
    /// The key to vary (dotted, or an alias such as `loss`).
    pub key: String,
    /// Its values, one variant each.
    pub values: Vec<String>,
    /// The sweep's folder: one folder per run, and the table.
    pub out: PathBuf,
    /// Overrides each variant's duration.
    pub duration_s: Option<f64>,
    /// Runs at once (1: one after the other).
    pub jobs: usize,
    /// The slice of the runs this process runs.
    pub shard: Shard,
    /// Runs per variant, with seeds `seed`, `seed + 1`, ...
    pub repeat: usize,
    /// Which clock each run keeps.
    pub clock: Clock,
}

/// Which clock the runs of a sweep or bench keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// Virtual time ([`crate::virtual_run`]) for every run that can have it (Rust peers, no
    /// STUN/TURN server), real time for the others. The default: a sweep's runs are then fast,
    /// repeatable and do not disturb each other when run side by side.
    #[default]
    Auto,
    /// Virtual time for every run; a run that cannot have it is an error.
    Virtual,
    /// Real time for every run, whatever a scenario file says (to measure what the machine
    /// itself does, e.g. how many sessions it holds).
    Real,
}

impl Clock {
    /// Whether a run of `scenario` keeps virtual time, with `browser_sends` for a Chromium sender.
    pub fn is_virtual(self, scenario: &Scenario, browser_sends: bool) -> bool {
        match self {
            Clock::Real => false,
            Clock::Virtual => true,
            // A scenario that asks for virtual time (`virtual_time = true`) gets it, or the
            // run's error saying why it cannot.
            Clock::Auto => {
                scenario.virtual_time
                    || crate::run::virtual_time_refusal(scenario, scenario.receiver, browser_sends)
                        .is_none()
            }
        }
    }
}

impl SweepRequest {
    /// One run of each value, one after the other, all in this process.
    pub fn new(file: PathBuf, key: String, values: Vec<String>, out: PathBuf) -> Self {
        SweepRequest {
            file,
            key,
            values,
            out,
            duration_s: None,
            jobs: 1,
            shard: Shard::ALL,
            repeat: 1,
            clock: Clock::Auto,
        }
    }
}

/// One run a sweep plans: its scenario (seed set), folder and what `variant.json` will say.
struct Planned {
    scenario: Scenario,
    dir: PathBuf,
    meta: VariantMeta,
}

/// `rtclab sweep`: runs this shard's runs of `req` (every run of every value when not sharded),
/// each into its own folder under `req.out` with a `variant.json`, at most `req.jobs` at once,
/// and writes the table of what ran: `sweep.txt`, `sweep.json`, `comparison.svg` (bitrates
/// overlaid) and `sweep.html`. Stops starting runs, keeping what ran, on `interrupt`. A shard
/// with no runs (more shards than runs) returns no rows and writes nothing.
pub async fn run_sweep(
    req: &SweepRequest,
    interrupt: impl Future<Output = ()>,
) -> Result<(Vec<MergedVariant>, String), RunError> {
    let plan = plan(req)?;
    if plan.is_empty() {
        // More shards than runs: this one has nothing to do. Not an error, so that a scheduler
        // started with a round number of tasks does not mark the spare ones failed.
        return Ok((Vec::new(), String::new()));
    }
    // One interrupt for every run in flight: each stops early and keeps its log.
    let interrupt = interrupt.shared();
    let stopped = AtomicBool::new(false);
    let results: Vec<Option<Result<SweepRun, RunError>>> = stream::iter(plan)
        .map(|p| {
            let mut interrupt = interrupt.clone();
            let stopped = &stopped;
            let (duration_s, clock) = (req.duration_s, req.clock);
            async move {
                if stopped.load(Ordering::Relaxed) {
                    return None; // interrupted: start nothing new
                }
                Some(run_one(p, duration_s, clock, &mut interrupt, stopped).await)
            }
        })
        .buffer_unordered(req.jobs.max(1))
        .collect()
        .await;
    let mut runs = Vec::new();
    for result in results.into_iter().flatten() {
        runs.push(result?);
    }
    let rows = merge::merge_runs(runs).map_err(|e| RunError::Failed(e.to_string()))?;
    let text = write_sweep(&req.out, &rows)?;
    Ok((rows, text))
}

/// Parses every variant before running any, so that a bad value fails in a second, not an hour;
/// then keeps this shard's runs.
fn plan(req: &SweepRequest) -> Result<Vec<Planned>, RunError> {
    let text = std::fs::read_to_string(&req.file).map_err(|source| RunError::Io {
        path: req.file.clone(),
        source,
    })?;
    let base = Scenario::parse(&text, &req.file).map_err(|e| RunError::Failed(e.to_string()))?;
    let mut plan = Vec::new();
    let mut k = 0;
    for (index, value) in req.values.iter().enumerate() {
        let variant = rtclab_scenarios::with_override(&text, &req.file, &req.key, value)
            .and_then(|t| Scenario::parse(&t, &req.file))
            .map_err(|e| RunError::Failed(format!("--set {}={value}: {e}", req.key)))?;
        for repeat in 0..req.repeat.max(1) {
            k += 1;
            if !req.shard.takes(k - 1) {
                continue;
            }
            let mut scenario = variant.clone();
            scenario.seed = variant.seed.wrapping_add(repeat as u64);
            let dir = if req.repeat > 1 {
                req.out
                    .join(format!("{}.seed{}", variant.name, scenario.seed))
            } else {
                req.out.join(&variant.name)
            };
            plan.push(Planned {
                meta: VariantMeta {
                    scenario: base.name.clone(),
                    key: req.key.clone(),
                    value: value.clone(),
                    variant: variant.name.clone(),
                    index,
                    repeat,
                    seed: scenario.seed,
                },
                scenario,
                dir,
            });
        }
    }
    Ok(plan)
}

async fn run_one<F: Future<Output = ()> + Unpin>(
    p: Planned,
    duration_s: Option<f64>,
    clock: Clock,
    interrupt: &mut F,
    stopped: &AtomicBool,
) -> Result<SweepRun, RunError> {
    write_variant(&p.dir, &p.meta)?;
    let mut scenario = p.scenario;
    let virtual_time = clock.is_virtual(&scenario, false);
    // The sweep's clock wins over the file's `virtual_time` (`--real-time` means every run).
    scenario.virtual_time = virtual_time;
    let mut req = RunRequest::new(scenario, p.dir.clone());
    req.duration_s = duration_s;
    req.virtual_time = virtual_time;
    let row = run_for_table(req, std::pin::Pin::new(interrupt)).await?;
    if row.interrupted {
        stopped.store(true, Ordering::Relaxed);
    }
    Ok(SweepRun {
        meta: p.meta,
        summary: row.summary,
        dir: p.dir,
    })
}

/// Writes a run's `variant.json` into `dir` (created): what `rtclab report merge` reads.
pub(crate) fn write_variant(dir: &Path, meta: &VariantMeta) -> Result<(), RunError> {
    let body = serde_json::to_string_pretty(meta).unwrap_or_default() + "\n";
    crate::bench::write(dir, VARIANT_FILE, body)
}

/// `rtclab report merge DIR...`: finds the sweep runs in `dirs` (each a sweep's folder, or one
/// run's folder), joins them in sweep order and writes the same files as `rtclab sweep` into
/// `out`. Returns the rows and `sweep.txt`'s text.
pub fn merge_sweep(dirs: &[PathBuf], out: &Path) -> Result<(Vec<MergedVariant>, String), RunError> {
    let mut runs = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(RunError::Failed(format!(
                "{}: not a folder; give the folders rtclab sweep wrote (--out), one per shard",
                dir.display()
            )));
        }
        let found = find_runs(dir)?;
        if found.is_empty() {
            return Err(RunError::Failed(format!(
                "{}: no finished sweep runs in it (a run's folder holds {VARIANT_FILE} and summary.json)",
                dir.display()
            )));
        }
        runs.extend(found);
    }
    let rows = merge::merge_runs(runs).map_err(|e| RunError::Failed(e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|source| RunError::Io {
        path: out.to_owned(),
        source,
    })?;
    let text = write_sweep(out, &rows)?;
    Ok((rows, text))
}

/// The runs in `dir`: `dir` itself if it is a run's folder, else its sub-folders that are.
fn find_runs(dir: &Path) -> Result<Vec<SweepRun>, RunError> {
    if dir.join(VARIANT_FILE).is_file() {
        return read_run(dir).map(|r| vec![r]);
    }
    let children = |dir: &Path| -> Result<Vec<PathBuf>, RunError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RunError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect())
    };
    // A sweep's runs are its sub-folders; a `bench cc`'s are one level further down
    // (`<scenario>/<sender>/`).
    let mut dirs = Vec::new();
    for child in children(dir)? {
        if child.join(VARIANT_FILE).is_file() {
            dirs.push(child);
        } else {
            dirs.extend(
                children(&child)?
                    .into_iter()
                    .filter(|p| p.join(VARIANT_FILE).is_file()),
            );
        }
    }
    dirs.sort();
    let mut runs = Vec::new();
    for d in dirs {
        // A run that never finished (killed, or failed before its summary) is left out of the
        // table, and said so: the rest of a long sweep is still worth its table.
        if !d.join("summary.json").is_file() {
            eprintln!(
                "rtclab: skipping {}: no summary.json (the run did not finish); run that variant again",
                d.display()
            );
            continue;
        }
        runs.push(read_run(&d)?);
    }
    Ok(runs)
}

fn read_run(dir: &Path) -> Result<SweepRun, RunError> {
    let read = |name: &str| -> Result<serde_json::Value, RunError> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RunError::Failed(format!(
                "{}: {e}; the run did not finish (run that variant again, or leave its folder out)",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| RunError::Failed(format!("{}: not valid JSON: {e}", path.display())))
    };
    let meta: VariantMeta = serde_json::from_value(read(VARIANT_FILE)?).map_err(|e| {
        RunError::Failed(format!(
            "{}: not an rtclab sweep's variant file: {e}",
            dir.join(VARIANT_FILE).display()
        ))
    })?;
    Ok(SweepRun {
        meta,
        summary: read("summary.json")?,
        dir: dir.to_owned(),
    })
}

/// Writes the sweep's files into `out` from its joined rows; returns `sweep.txt`'s text.
fn write_sweep(out: &Path, rows: &[MergedVariant]) -> Result<String, RunError> {
    let write = |name: &str, body: String| {
        let path = out.join(name);
        std::fs::write(&path, body).map_err(|source| RunError::Io { path, source })
    };
    let text = merge::sweep_text(rows);
    write("sweep.txt", text.clone() + "\n")?;
    let table_rows = merge::table_rows(rows);
    // The overlaid plot: each variant's first run. A log that cannot be read only costs the
    // plot its line.
    let reports: Vec<(String, rtclab_report::RunReport)> = rows
        .iter()
        .filter_map(|r| {
            let run = r.runs.first()?;
            let records = rtclab_events::read_log(&run.dir.join("events.jsonl")).ok()?;
            Some((
                r.name.clone(),
                rtclab_report::RunReport::from_records(&records),
            ))
        })
        .collect();
    let (scenario, key) = rows
        .first()
        .and_then(|r| r.runs.first())
        .map(|r| (r.meta.scenario.clone(), r.meta.key.clone()))
        .unwrap_or_default();
    crate::bench::write_plot(out, &scenario, "variant", &reports);
    let title = format!("rtclab sweep of {scenario}: {key}");
    let svg = std::fs::read_to_string(out.join("comparison.svg")).ok();
    let links: Vec<String> = rows
        .iter()
        .map(|r| {
            let dir = r.runs.first().map(|run| run.dir.as_path());
            dir.map_or_else(
                || format!("{}/report.html", r.name),
                |d| format!("{}/report.html", relative(out, d)),
            )
        })
        .collect();
    let spread = merge::spread_table(rows);
    write(
        "sweep.html",
        rtclab_report::sweep_page::sweep_html(&rtclab_report::sweep_page::SweepPage {
            title: &title,
            rows: &table_rows,
            reports: &links,
            overlay_svg: svg.as_deref(),
            spread: spread.as_deref(),
        }),
    )?;
    write(
        "sweep.json",
        serde_json::to_string_pretty(
            &table_rows
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap_or_default(),
    )?;
    Ok(text)
}

/// `to` as a path from `from` (both folders), for links in `sweep.html`: `name` for a run
/// inside the sweep's folder, `../shard-1/name` for one beside it; the absolute path when the
/// two share no ancestor that can be named.
fn relative(from: &Path, to: &Path) -> String {
    let (Ok(from), Ok(to)) = (from.canonicalize(), to.canonicalize()) else {
        return to.display().to_string();
    };
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut parts: Vec<String> = vec!["..".into(); ups];
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_page() {
        let root = tempfile::tempdir().expect("tempdir");
        let sweep = root.path().join("m");
        let run = root.path().join("shard-1").join("clean.loss-1");
        std::fs::create_dir_all(&sweep).expect("mkdir");
        std::fs::create_dir_all(&run).expect("mkdir");
        assert_eq!(relative(&sweep, &run), "../shard-1/clean.loss-1");
        assert_eq!(relative(root.path(), &run), "shard-1/clean.loss-1");
        assert_eq!(relative(&sweep, &sweep), ".");
    }

    #[test]
    fn a_plan_has_every_run_once_across_shards_with_seeds_per_repeat() {
        let file = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/loss-5.toml"
        ));
        let mut req = SweepRequest::new(
            file,
            "loss".into(),
            vec!["1".into(), "2".into(), "3".into()],
            "/tmp/x".into(),
        );
        req.repeat = 2;
        let whole: Vec<(usize, usize, u64)> = plan(&req)
            .expect("plan")
            .iter()
            .map(|p| (p.meta.index, p.meta.repeat, p.meta.seed))
            .collect();
        assert_eq!(whole.len(), 6);
        let seed = whole[0].2;
        assert_eq!(
            whole[1],
            (0, 1, seed + 1),
            "repeat 1 runs with the next seed"
        );
        let mut sharded = Vec::new();
        for index in 0..4 {
            req.shard = Shard { index, count: 4 };
            sharded.extend(
                plan(&req)
                    .expect("plan")
                    .iter()
                    .map(|p| (p.meta.index, p.meta.repeat, p.meta.seed)),
            );
        }
        sharded.sort();
        assert_eq!(sharded, whole);
        // Folders: one per seed with --repeat.
        req.shard = Shard::ALL;
        let dirs: Vec<PathBuf> = plan(&req)
            .expect("plan")
            .into_iter()
            .map(|p| p.dir)
            .collect();
        assert!(
            dirs[1].ends_with(format!("loss-5.loss-pct-1.seed{}", seed + 1)),
            "{dirs:?}"
        );
    }
}
