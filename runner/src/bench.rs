//! `rtclab bench cc`: the same scenario and impairment, three senders, one table.
//!
//! (a) the Rust sender with rtclab's controller, (b) the Rust sender with webrtc-rs's stock GCC,
//! (c) headless Chromium sending its fake camera (720p30, same codec) with its own GoogCC to the
//! Rust receiver, whose ingress then carries the downlink impairment. Every leg is an ordinary
//! `rtclab run` into `OUT/<scenario>/<leg>/`, so each has its log, summary and report; the bench
//! adds `bench.txt`/`bench.json` and one comparison plot per scenario.

use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use rtclab_events::read_log;
use rtclab_peer::config::CcKind;
use rtclab_scenarios::Scenario;
use std::future::Future;
use std::path::{Path, PathBuf};

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
}

/// One row: `"<scenario> / <leg>"` and that run's `summary.json`.
pub type BenchRow = (String, serde_json::Value);

/// Runs every leg of every scenario; returns the rows and the table (also written to
/// `OUT/bench.txt`). Stops early, keeping what ran, on `interrupt`.
pub async fn run_cc_bench(
    req: &BenchRequest,
    interrupt: impl Future<Output = ()>,
    mut on_leg: impl FnMut(&str),
) -> Result<(Vec<BenchRow>, String), RunError> {
    // Parse every scenario before running any, so a typo fails in a second, not an hour.
    let scenarios = req
        .scenarios
        .iter()
        .map(|p| Scenario::load(p).map_err(|e| RunError::Failed(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    tokio::pin!(interrupt);
    let mut rows = Vec::new();
    'scenarios: for scenario in scenarios {
        let dir = req.out.join(&scenario.name);
        let mut reports = Vec::new();
        for leg in &req.legs {
            let label = format!("{} / {}", scenario.name, leg.name());
            on_leg(&label);
            let out = dir.join(leg.name());
            let mut run = RunRequest::new(scenario.clone(), out.clone());
            run.duration_s = req.duration_s;
            run.web_dir = req.web_dir.clone();
            match leg {
                Leg::Rtclab => run.cc = Some(CcKind::Rtclab),
                Leg::Stock => run.cc = Some(CcKind::Stock),
                Leg::Chromium => run.browser_sender = true,
            }
            let row = run_for_table(run, interrupt.as_mut()).await?;
            rows.push((label, row.summary));
            let records = read_log(&row.outcome.events)?;
            reports.push((
                leg.name().to_owned(),
                rtclab_report::RunReport::from_records(&records),
            ));
            if row.interrupted {
                write_plot(&dir, &scenario.name, "sender", &reports);
                break 'scenarios;
            }
        }
        write_plot(&dir, &scenario.name, "sender", &reports);
    }
    let table = rtclab_report::bench_table(&rows);
    write(&req.out, "bench.txt", table.clone() + "\n")?;
    write(
        &req.out,
        "bench.json",
        serde_json::to_string_pretty(&serde_json::Value::Object(rows.iter().cloned().collect()))
            .unwrap_or_default(),
    )?;
    Ok((rows, table))
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
