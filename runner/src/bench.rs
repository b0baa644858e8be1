//! `rtclab bench cc`: the same scenario and impairment, three senders, one table.
//!
//! (a) the Rust sender with rtclab's controller, (b) the Rust sender with webrtc-rs's stock GCC,
//! (c) headless Chromium sending its fake camera (720p30, same codec) with its own GoogCC to the
//! Rust receiver, whose ingress then carries the downlink impairment. Every leg is an ordinary
//! `rtclab run` into `OUT/<scenario>/<leg>/`, so each has its log, summary and report; the bench
//! adds `bench.txt`/`bench.json` and one comparison plot per scenario.

use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use crate::shard::Shard;
use crate::sweep::Clock;
use futures::{FutureExt, StreamExt, stream};
use rtclab_events::read_log;
use rtclab_peer::config::CcKind;
use rtclab_report::merge::VariantMeta;
use rtclab_scenarios::Scenario;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One sender of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// Rust sender, rtclab's controller.
    Rtclab,
    /// Rust sender, webrtc-rs's stock GCC.
    Stock,
    /// Headless Chromium as the sender.
    Chromium,
}

impl Leg {
    /// All three, in table order.
    pub const ALL: [Leg; 3] = [Leg::Rtclab, Leg::Stock, Leg::Chromium];

    /// Name in the table and the folder.
    pub fn name(self) -> &'static str {
        match self {
            Leg::Rtclab => "rtclab",
            Leg::Stock => "stock",
            Leg::Chromium => "chromium",
        }
    }
}

impl std::str::FromStr for Leg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Leg::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown sender `{s}`: use rtclab, stock or chromium"))
    }
}

/// What the bench was asked for.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Scenario files.
    pub scenarios: Vec<PathBuf>,
    /// Which senders.
    pub legs: Vec<Leg>,
    /// Output folder.
    pub out: PathBuf,
    /// Overrides every scenario's duration, s.
    pub duration_s: Option<f64>,
    /// The page for the Chromium leg.
    pub web_dir: Option<PathBuf>,
    /// Legs at once (1: one after the other).
    pub jobs: usize,
    /// The slice of the legs this process runs: leg `k` of the bench (scenario by scenario,
    /// senders in the order given) is shard `k mod n`'s.
    pub shard: Shard,
    /// The Rust legs' clock. The Chromium leg always keeps real time, so [`Clock::Virtual`]
    /// with a Chromium leg is refused and [`Clock::Auto`] gives it real time.
    pub clock: Clock,
}

impl BenchRequest {
    /// Every leg of every scenario, one after the other, the Rust legs in virtual time.
    pub fn new(scenarios: Vec<PathBuf>, legs: Vec<Leg>, out: PathBuf) -> Self {
        BenchRequest {
            scenarios,
            legs,
            out,
            duration_s: None,
            web_dir: None,
            jobs: 1,
            shard: Shard::ALL,
            clock: Clock::Auto,
        }
    }
}

/// What `run_cc_bench` reports as legs start and finish (with `--jobs`, several are under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent<'a> {
    /// The leg with this label started.
    Started(&'a str),
    /// The leg with this label finished (its folder is complete).
    Finished(&'a str),
}

/// One row: `"<scenario> / <leg> (<clock>)"` and that run's `summary.json`.
pub type BenchRow = (String, serde_json::Value);

/// One leg the bench plans.
struct PlannedLeg {
    /// Index in the whole bench (before sharding): the row order.
    index: usize,
    scenario: Scenario,
    leg: Leg,
    virtual_time: bool,
}

impl PlannedLeg {
    fn label(&self) -> String {
        let clock = if self.virtual_time { "virtual" } else { "real" };
        format!("{} / {} ({clock})", self.scenario.name, self.leg.name())
    }
}

/// Runs this shard's legs (every leg of every scenario when not sharded), at most `req.jobs`
/// at once; returns the rows and the table (also written to `OUT/bench.txt`). Each leg's
/// folder `OUT/<scenario>/<leg>/` also gets a `variant.json`, so `rtclab report merge` joins
/// the folders of several shards into one table. Stops starting legs, keeping what ran, on
/// `interrupt` or when a leg fails; the table then holds the legs that finished, and the
/// failure is returned after it is written.
pub async fn run_cc_bench(
    req: &BenchRequest,
    interrupt: impl Future<Output = ()>,
    on_leg: impl Fn(LegEvent<'_>),
) -> Result<(Vec<BenchRow>, String), RunError> {
    // Parse every scenario before running any, so a typo fails in a second, not an hour.
    let scenarios = req
        .scenarios
        .iter()
        .map(|p| Scenario::load(p).map_err(|e| RunError::Failed(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if req.clock == Clock::Virtual && req.legs.contains(&Leg::Chromium) {
        return Err(RunError::Failed(
            "--virtual-time: the chromium leg keeps real time (Chromium has its own clock); \
             leave --virtual-time out (the Rust legs then run in virtual time) or drop \
             chromium from --senders"
                .into(),
        ));
    }
    // A scenario's name is its folder and its rows: two of one name would mix their legs.
    for (i, a) in scenarios.iter().enumerate() {
        if scenarios[..i].iter().any(|b| b.name == a.name) {
            return Err(RunError::Failed(format!(
                "two scenarios are named {:?}; give each scenario of a bench its own name",
                a.name
            )));
        }
    }
    // What `rtclab report merge` tells benches apart by: shards of one bench agree on it.
    let label = format!(
        "bench cc of {}",
        scenarios
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut plan = Vec::new();
    for scenario in &scenarios {
        for &leg in &req.legs {
            let index = plan.len();
            let virtual_time = req.clock.is_virtual(scenario, leg == Leg::Chromium);
            plan.push(PlannedLeg {
                index,
                scenario: scenario.clone(),
                leg,
                virtual_time,
            });
        }
    }
    plan.retain(|p| req.shard.takes(p.index));
    let interrupt = interrupt.shared();
    let stopped = AtomicBool::new(false);
    let on_leg = &on_leg;
    let label = &label;
    let results: Vec<Result<(usize, PlannedLeg, crate::run::TableRun), RunError>> =
        stream::iter(plan)
            .map(|p| {
                let mut interrupt = interrupt.clone();
                let stopped = &stopped;
                async move {
                    if stopped.load(Ordering::Relaxed) {
                        return None; // interrupted or failed: start nothing new
                    }
                    let name = p.label();
                    on_leg(LegEvent::Started(&name));
                    let result = run_leg(req, label, p, &mut interrupt, stopped).await;
                    match &result {
                        Ok(_) => on_leg(LegEvent::Finished(&name)),
                        Err(_) => stopped.store(true, Ordering::Relaxed),
                    }
                    Some(result)
                }
            })
            .buffer_unordered(req.jobs.max(1))
            .filter_map(|r| async move { r })
            .collect()
            .await;
    // The legs that finished are tabled even when one failed; the failure is returned after.
    let mut done = Vec::new();
    let mut failed = None;
    for result in results {
        match result {
            Ok(leg) => done.push(leg),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    done.sort_by_key(|(index, ..)| *index);
    let mut rows = Vec::new();
    for scenario in &scenarios {
        let mut reports = Vec::new();
        for (_, p, row) in done
            .iter()
            .filter(|(_, p, _)| p.scenario.name == scenario.name)
        {
            rows.push((p.label(), row.summary.clone()));
            let records = read_log(&row.outcome.events)?;
            reports.push((
                p.leg.name().to_owned(),
                rtclab_report::RunReport::from_records(&records),
            ));
        }
        if !reports.is_empty() {
            write_plot(
                &req.out.join(&scenario.name),
                &scenario.name,
                "sender",
                &reports,
            );
        }
    }
    let table = rtclab_report::bench_table(&rows);
    write(&req.out, "bench.txt", table.clone() + "\n")?;
    write(
        &req.out,
        "bench.json",
        serde_json::to_string_pretty(&serde_json::Value::Object(rows.iter().cloned().collect()))
            .unwrap_or_default(),
    )?;
    match failed {
        Some(e) => Err(e),
        None => Ok((rows, table)),
    }
}

/// Runs one leg into `OUT/<scenario>/<leg>/`, after writing its `variant.json`.
async fn run_leg<F: Future<Output = ()> + Unpin>(
    req: &BenchRequest,
    label: &str,
    p: PlannedLeg,
    interrupt: &mut F,
    stopped: &AtomicBool,
) -> Result<(usize, PlannedLeg, crate::run::TableRun), RunError> {
    let out = req.out.join(&p.scenario.name).join(p.leg.name());
    // For `rtclab report merge`: the bench as a sweep over "sender", one value per leg.
    let meta = VariantMeta {
        scenario: label.to_owned(),
        key: "sender".into(),
        value: format!("{} / {}", p.scenario.name, p.leg.name()),
        variant: format!("{}.{}", p.scenario.name, p.leg.name()),
        index: p.index,
        repeat: 0,
        seed: p.scenario.seed,
    };
    crate::sweep::write_variant(&out, &meta)?;
    let mut scenario = p.scenario.clone();
    // The bench's clock wins over the file's `virtual_time`.
    scenario.virtual_time = p.virtual_time;
    let mut run = RunRequest::new(scenario, out);
    run.duration_s = req.duration_s;
    run.web_dir = req.web_dir.clone();
    run.virtual_time = p.virtual_time;
    match p.leg {
        Leg::Rtclab => run.cc = Some(CcKind::Rtclab),
        Leg::Stock => run.cc = Some(CcKind::Stock),
        Leg::Chromium => run.browser_sender = true,
    }
    let row = run_for_table(run, std::pin::Pin::new(interrupt)).await?;
    if row.interrupted {
        stopped.store(true, Ordering::Relaxed);
    }
    Ok((p.index, p, row))
}

/// Writes `dir/name`, creating `dir` (the benches' output files).
pub(crate) fn write(dir: &Path, name: &str, body: String) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(name);
    std::fs::write(&path, body).map_err(|source| RunError::Io { path, source })
}

/// `DIR/comparison.svg`: capacity and every leg's target and send rate. A plot that cannot be
/// drawn is reported, not fatal: the table is the result.
/// `each` names what a line is ("sender", "variant").
pub(crate) fn write_plot(
    dir: &Path,
    scenario: &str,
    each: &str,
    reports: &[(String, rtclab_report::RunReport)],
) {
    let runs: Vec<(String, &rtclab_report::RunReport)> =
        reports.iter().map(|(n, r)| (n.clone(), r)).collect();
    let title = format!("{scenario}: target (thin) and sent (thick) per {each} vs capacity");
    match rtclab_report::comparison_plot(&title, &runs) {
        Ok(svg) => {
            if let Err(e) = write(dir, "comparison.svg", svg) {
                eprintln!("rtclab bench: {e}");
            }
        }
        Err(e) => eprintln!("rtclab bench: comparison plot for {scenario}: {e}"),
    }
}
