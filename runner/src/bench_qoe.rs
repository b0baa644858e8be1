//! `rtclab bench qoe`: what a viewer gets on lossy, delayed links — the Rust receiver against
//! headless Chromium, receiving from the same Rust sender over the same seeded link, cell by cell
//! over one-way delay × random loss (each way), with and without a rate cap.
//!
//! Every run is an ordinary `rtclab run` into `OUT/<cell>/<receiver>/`; the bench adds
//! `qoe.txt` (the table), `qoe.json` and `qoe.svg` (a heat map). The loss starts at 2 s, once
//! the call is up, as in the `mobile-*` scenarios (webrtc-rs 0.21's DTLS client does not resend a
//! lost last flight; see scenarios/README.md).

use crate::bench::write;
use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use rtclab_report::qoe_bench::{QoeCell, qoe_heatmap_svg, qoe_table};
use rtclab_scenarios::{ReceiverKind, Scenario};
use std::fmt::Write;
use std::future::Future;
use std::path::PathBuf;

/// When the loss starts in every cell, s: after the handshakes, even at 200 ms one way (ICE
/// connects at ~1.1 s there and DTLS needs two more round trips of 400 ms). webrtc-rs 0.21's DTLS
/// client does not resend a lost last flight, so loss during the handshake fails the call
/// (scenarios/README.md, the `mobile-*` links); with loss from 2 s, one 200 ms / 10 % run never connected.
const LOSS_FROM_S: f64 = 4.0;
/// Bottleneck queue when a cap is set, ms (as in the shipped scenarios).
const QUEUE_MS: f64 = 300.0;

/// What the bench was asked for.
#[derive(Debug, Clone)]
pub struct QoeBenchRequest {
    /// One-way delays (each way), ms.
    pub delays_ms: Vec<f64>,
    /// Random loss (each way), %.
    pub losses_pct: Vec<f64>,
    /// Downlink caps, kbps; `None` is "no cap".
    pub caps_kbps: Vec<Option<f64>>,
    /// Which receivers.
    pub receivers: Vec<ReceiverKind>,
    /// Seconds per run.
    pub duration_s: f64,
    /// Seed of every link.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// The page for the Chromium receiver.
    pub web_dir: Option<PathBuf>,
}

impl QoeBenchRequest {
    /// The grid of issue 12: 0/50/100/200 ms × 0/1/3/5/10 %, without and with a 2.5 Mbps cap,
    /// both receivers, 20 s each (80 runs, about half an hour).
    pub fn full(out: PathBuf) -> Self {
        QoeBenchRequest {
            delays_ms: vec![0.0, 50.0, 100.0, 200.0],
            losses_pct: vec![0.0, 1.0, 3.0, 5.0, 10.0],
            caps_kbps: vec![None, Some(2500.0)],
            receivers: vec![ReceiverKind::Rust, ReceiverKind::Browser],
            duration_s: 20.0,
            seed: 1,
            out,
            web_dir: None,
        }
    }
}

/// The scenario of one cell.
pub fn cell_scenario(
    delay_ms: f64,
    loss_pct: f64,
    cap_kbps: Option<f64>,
    req: &QoeBenchRequest,
) -> Result<Scenario, RunError> {
    let name = cell_name(delay_ms, loss_pct, cap_kbps);
    let mut text = format!(
        "name = \"{name}\"\n\
         description = \"bench qoe: {delay_ms} ms one way each way, {loss_pct} % loss each way \
         from {LOSS_FROM_S} s{}\"\n\
         duration_s = {}\ncodec = \"h264\"\nseed = {}\n",
        cap_kbps.map_or(String::new(), |c| format!(", {c} kbps down")),
        req.duration_s,
        req.seed
    );
    for dir in ["downlink", "uplink"] {
        let _ = writeln!(text, "\n[{dir}]\ndelay_ms = {delay_ms}");
        if let (Some(c), "downlink") = (cap_kbps, dir) {
            let _ = writeln!(text, "rate_kbps = {c}\nqueue_ms = {QUEUE_MS}");
        }
        if loss_pct > 0.0 {
            let _ = writeln!(
                text,
                "\n[[{dir}.schedule]]\nat_s = {LOSS_FROM_S}\nloss_pct = {loss_pct}"
            );
        }
    }
    Scenario::parse(&text, &req.out.join(format!("{name}.toml")))
        .map_err(|e| RunError::Failed(format!("bench qoe cell {name}: {e}")))
}

fn cell_name(delay_ms: f64, loss_pct: f64, cap_kbps: Option<f64>) -> String {
    let mut n = format!("d{delay_ms}-l{loss_pct}");
    if let Some(c) = cap_kbps {
        let _ = write!(n, "-cap{c}");
    }
    n
}

/// Runs the grid; returns the cells and the table (also in `OUT/qoe.txt`). Stops early, keeping
/// what ran, on `interrupt`.
pub async fn run_qoe_bench(
    req: &QoeBenchRequest,
    interrupt: impl Future<Output = ()>,
    mut on_run: impl FnMut(&str),
) -> Result<(Vec<QoeCell>, String), RunError> {
    // Build every cell before running any, so a bad value fails at once.
    let mut grid = Vec::new();
    for &cap in &req.caps_kbps {
        for &delay in &req.delays_ms {
            for &loss in &req.losses_pct {
                grid.push((delay, loss, cap, cell_scenario(delay, loss, cap, req)?));
            }
        }
    }
    tokio::pin!(interrupt);
    let mut cells = Vec::new();
    'grid: for (delay_ms, loss_pct, cap_kbps, scenario) in grid {
        let mut cell = QoeCell {
            delay_ms,
            loss_pct,
            cap_kbps,
            rust: None,
            chromium: None,
        };
        for &receiver in &req.receivers {
            let who = match receiver {
                ReceiverKind::Rust => "rust",
                ReceiverKind::Browser => "chromium",
            };
            on_run(&format!("{} / {who}", cell.label()));
            let out = req.out.join(&scenario.name).join(who);
            let mut run = RunRequest::new(scenario.clone(), out);
            run.receiver = Some(receiver);
            run.web_dir = req.web_dir.clone();
            // One run that fails (a call that never connects) is a result of its cell, not the
            // end of a half-hour grid: it is shown as FAILED and the grid goes on.
            let (summary, interrupted) = match run_for_table(run, interrupt.as_mut()).await {
                Ok(row) => (row.summary, row.interrupted),
                Err(e) => {
                    on_run(&format!("{} / {who} failed: {e}", cell.label()));
                    (serde_json::json!({ "error": e.to_string() }), false)
                }
            };
            match receiver {
                ReceiverKind::Rust => cell.rust = Some(summary),
                ReceiverKind::Browser => cell.chromium = Some(summary),
            }
            if interrupted {
                cells.push(cell);
                break 'grid;
            }
        }
        cells.push(cell);
    }
    let table = qoe_table(&cells);
    write(&req.out, "qoe.txt", table.clone() + "\n")?;
    write(
        &req.out,
        "qoe.json",
        serde_json::to_string_pretty(&cells).unwrap_or_default(),
    )?;
    write(&req.out, "qoe.svg", qoe_heatmap_svg(&cells))?;
    Ok((cells, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_a_valid_scenario_with_the_link_it_names() {
        let req = QoeBenchRequest::full(PathBuf::from("/tmp/qoe"));
        let s = cell_scenario(100.0, 5.0, Some(2500.0), &req).expect("valid");
        assert_eq!(s.name, "d100-l5-cap2500");
        let down = &s.impairment.downlink;
        assert_eq!(down.base.delay_ms, Some(100.0));
        assert_eq!(down.base.rate_kbps, Some(2500.0));
        assert_eq!(down.steps[0].at_s, LOSS_FROM_S);
        assert_eq!(s.impairment.uplink.steps.len(), 1, "loss both ways");
        let clean = cell_scenario(0.0, 0.0, None, &req).expect("valid");
        assert!(clean.impairment.downlink.steps.is_empty());
    }
}
