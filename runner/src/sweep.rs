//! `rtclab sweep`: one scenario, run once per value of one setting, compared in one table.

use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use rtclab_scenarios::Scenario;
use std::future::Future;
use std::path::Path;

/// One variant of a sweep: its name and its `summary.json`.
pub type SweepRow = (String, serde_json::Value);

/// `rtclab sweep`: runs `file` once per value of `key` (see
/// [`rtclab_scenarios::with_override`]), each into `out/<variant>`, and writes `out/sweep.txt`
/// (the comparison table), `out/sweep.json`, `out/comparison.svg` (the variants' bitrates
/// overlaid) and `out/sweep.html` (plot, table, and what each column means). Stops early, keeping what ran, on `interrupt`.
pub async fn run_sweep(
    file: &Path,
    key: &str,
    values: &[String],
    out: &Path,
    duration_s: Option<f64>,
    interrupt: impl Future<Output = ()>,
) -> Result<(Vec<SweepRow>, String), RunError> {
    let text = std::fs::read_to_string(file).map_err(|source| RunError::Io {
        path: file.to_owned(),
        source,
    })?;
    // Parse every variant before running any, so a bad value fails in a second, not an hour.
    let mut variants = Vec::new();
    for value in values {
        let variant = rtclab_scenarios::with_override(&text, file, key, value)
            .and_then(|t| Scenario::parse(&t, file))
            .map_err(|e| RunError::Failed(format!("--set {key}={value}: {e}")))?;
        variants.push(variant);
    }
    tokio::pin!(interrupt);
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    let base = variants.first().map(|s| s.name.clone()).unwrap_or_default();
    for scenario in variants {
        let name = scenario.name.clone();
        let mut req = RunRequest::new(scenario, out.join(&name));
        req.duration_s = duration_s;
        let row = run_for_table(req, interrupt.as_mut()).await?;
        // Each variant's log, for the overlaid plot; a log that cannot be read only costs the
        // plot its line.
        if let Ok(records) = rtclab_events::read_log(&row.outcome.events) {
            reports.push((
                name.clone(),
                rtclab_report::RunReport::from_records(&records),
            ));
        }
        rows.push((name, row.summary));
        if row.interrupted {
            break;
        }
    }
    let table = rtclab_report::sweep_table(&rows);
    let write = |name: &str, body: String| {
        let path = out.join(name);
        std::fs::write(&path, body).map_err(|source| RunError::Io { path, source })
    };
    write("sweep.txt", table.clone() + "\n")?;
    // sweep.html: the same variants overlaid in one plot and tabled for loss and the viewer.
    let scenario = base.rsplit_once('.').map_or(base.as_str(), |b| b.0);
    crate::bench::write_plot(out, scenario, "variant", &reports);
    let title = format!("rtclab sweep of {scenario}: {key}");
    let svg = std::fs::read_to_string(out.join("comparison.svg")).ok();
    write(
        "sweep.html",
        rtclab_report::sweep_page::sweep_html(&title, &rows, svg.as_deref()),
    )?;
    write(
        "sweep.json",
        serde_json::to_string_pretty(
            &rows
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap_or_default(),
    )?;
    Ok((rows, table))
}
