//! `rtclab lab failures`: failure scenarios, each run without and with one mitigation rtclab
//! can switch on, on the same seeded link, and a table of what changed (issue 14 #4).
//!
//! Each run is an ordinary `rtclab run` into `OUT/<case>/{without,with}/`; the lab writes
//! `failures.txt` (the terminal table), `failures.md` (with each mitigation's reason) and
//! `failures.json`.

use crate::bench::write;
use crate::error::RunError;
use crate::run::{RunRequest, run_for_table};
use rtclab_report::failures::{FailureRow, failures_markdown, failures_table};
use rtclab_scenarios::Scenario;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A switch the second run turns on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mitigation {
    /// FlexFEC-03 repair packets next to NACK (`rtclab run --fec`).
    Fec,
    /// Start the congestion controller at this rate instead of the scenario's, kbps.
    LowerStart(u32),
    /// Let the sender scale its resolution (the run without it has `--no-scaling`).
    ResolutionScaling,
    /// A jitter buffer that holds every frame at least this long (`--min-playout-delay`).
    LargerJitterBuffer(Duration),
}

impl Mitigation {
    /// Sets up `req` for the run without (`on = false`) or with the mitigation.
    pub fn apply(self, req: &mut RunRequest, on: bool) {
        match self {
            Mitigation::Fec => req.fec = on,
            Mitigation::LowerStart(kbps) => {
                if on {
                    req.scenario.initial_bps = kbps * 1000;
                }
            }
            // The baseline is the sender that cannot scale.
            Mitigation::ResolutionScaling => req.resolution_scaling = on,
            Mitigation::LargerJitterBuffer(d) => {
                req.min_playout_delay = if on { d } else { Duration::ZERO }
            }
        }
    }

    /// How the table names it.
    pub fn label(self) -> String {
        match self {
            Mitigation::Fec => "FlexFEC-03 (NACK + FEC instead of NACK only)".into(),
            Mitigation::LowerStart(k) => format!("start at {k} kbps instead of the default"),
            Mitigation::ResolutionScaling => {
                "resolution scaling on (without: fixed 720p, --no-scaling)".into()
            }
            Mitigation::LargerJitterBuffer(d) => {
                format!("jitter buffer holds frames ≥ {} ms", d.as_millis())
            }
        }
    }
}

/// One failure of the lab.
#[derive(Debug, Clone)]
pub struct FailureCase {
    /// Short id (folder name, `--only`).
    pub id: &'static str,
    /// The failure, in a few words.
    pub failure: &'static str,
    /// The shipped scenario that makes it (file stem in `scenarios/`).
    pub scenario: &'static str,
    /// Seconds per run: enough to include the failure and the recovery.
    pub duration_s: f64,
    /// The switch.
    pub mitigation: Mitigation,
    /// Why the mitigation should help, in one sentence.
    pub why: &'static str,
}

/// The lab's failures and their mitigations.
pub fn cases() -> Vec<FailureCase> {
    vec![
        FailureCase {
            id: "random-loss",
            failure: "5 % random loss each way, 200 ms RTT",
            scenario: "mobile-rtt200-loss5",
            duration_s: 20.0,
            mitigation: Mitigation::Fec,
            why: "a repair packet rebuilds a lost packet at once; a retransmission needs a round \
                  trip (200 ms) and may be lost too",
        },
        FailureCase {
            id: "burst-loss",
            failure: "bursts of loss (Gilbert-Elliott, mean burst 5 packets)",
            scenario: "burst-loss",
            duration_s: 20.0,
            mitigation: Mitigation::Fec,
            why: "FEC can rebuild one packet per protected group; longer bursts still need NACK \
                  or a keyframe, so expect a smaller gain than with random loss",
        },
        FailureCase {
            id: "start-above-capacity",
            failure: "720p started at 500 kbps behind a 300 kbps bottleneck",
            scenario: "cap-300k",
            duration_s: 15.0,
            mitigation: Mitigation::LowerStart(250),
            why: "starting below the capacity avoids filling the 300 ms queue before the first \
                  over-use is detected, so the first seconds are neither late nor lost",
        },
        FailureCase {
            id: "capacity-drop",
            failure: "capacity drops from 3 Mbps to 500 kbps at 20 s",
            scenario: "bandwidth-drop",
            duration_s: 35.0,
            mitigation: Mitigation::ResolutionScaling,
            why: "at 500 kbps a 720p encoder must starve every frame or skip frames; a smaller \
                  picture keeps the frame rate and the quality per pixel",
        },
        FailureCase {
            id: "jitter",
            failure: "40 ms delay with 30 ms jitter (normal)",
            scenario: "jitter-30ms",
            duration_s: 15.0,
            mitigation: Mitigation::LargerJitterBuffer(Duration::from_millis(150)),
            why: "holding every frame 150 ms absorbs the late ones, at the price of 150 ms more \
                  latency",
        },
    ]
}

/// What the lab was asked for.
#[derive(Debug, Clone)]
pub struct FailuresRequest {
    /// Output folder.
    pub out: PathBuf,
    /// Folder of the shipped scenarios.
    pub scenarios_dir: PathBuf,
    /// Only these case ids (empty: all).
    pub only: Vec<String>,
    /// Overrides every case's duration, s (short runs for tests).
    pub duration_s: Option<f64>,
}

fn load(dir: &Path, case: &FailureCase) -> Result<Scenario, RunError> {
    let path = dir.join(format!("{}.toml", case.scenario));
    Scenario::load(&path)
        .map_err(|e| RunError::Failed(format!("lab failures, case {}: {e}", case.id)))
}

/// Runs the cases; returns the rows and the terminal table (also written to `OUT`). Stops
/// early, keeping what ran, on `interrupt`.
pub async fn run_failures_lab(
    req: &FailuresRequest,
    interrupt: impl Future<Output = ()>,
    mut on_run: impl FnMut(&str),
) -> Result<(Vec<FailureRow>, String), RunError> {
    let all = cases();
    let unknown: Vec<&String> = req
        .only
        .iter()
        .filter(|id| !all.iter().any(|c| c.id == id.as_str()))
        .collect();
    if !unknown.is_empty() {
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        return Err(RunError::Failed(format!(
            "unknown case {unknown:?}; the cases are {}",
            ids.join(", ")
        )));
    }
    let chosen: Vec<FailureCase> = all
        .into_iter()
        .filter(|c| req.only.is_empty() || req.only.iter().any(|id| id == c.id))
        .collect();
    // Load every scenario first, so a missing file fails before anything runs.
    let scenarios = chosen
        .iter()
        .map(|c| load(&req.scenarios_dir, c))
        .collect::<Result<Vec<_>, _>>()?;
    tokio::pin!(interrupt);
    let mut rows = Vec::new();
    'cases: for (case, scenario) in chosen.iter().zip(scenarios) {
        let mut runs = Vec::new();
        for on in [false, true] {
            let leg = if on { "with" } else { "without" };
            on_run(&format!("{} / {leg}", case.id));
            let mut run = RunRequest::new(scenario.clone(), req.out.join(case.id).join(leg));
            run.duration_s = Some(req.duration_s.unwrap_or(case.duration_s));
            case.mitigation.apply(&mut run, on);
            let r = run_for_table(run, interrupt.as_mut()).await?;
            runs.push(r.summary);
            if r.interrupted {
                break 'cases;
            }
        }
        // An interrupted case keeps its first run; the table shows dashes for the missing one.
        let mut runs = runs.into_iter();
        if let Some(without) = runs.next() {
            rows.push(FailureRow {
                failure: case.failure.to_owned(),
                mitigation: case.mitigation.label(),
                why: case.why.to_owned(),
                without,
                with: runs.next().unwrap_or(serde_json::Value::Null),
            });
        }
    }
    let table = failures_table(&rows);
    write(&req.out, "failures.txt", table.clone() + "\n")?;
    write(&req.out, "failures.md", failures_markdown(&rows))?;
    write(
        &req.out,
        "failures.json",
        serde_json::to_string_pretty(&rows).unwrap_or_default(),
    )?;
    Ok((rows, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_names_a_shipped_scenario_and_changes_one_thing() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        for case in cases() {
            let s = load(&dir, &case).expect("the scenario ships");
            let mut without = RunRequest::new(s.clone(), PathBuf::from("/tmp/x"));
            let mut with = without.clone();
            case.mitigation.apply(&mut without, false);
            case.mitigation.apply(&mut with, true);
            let differs = (without.fec != with.fec) as u8
                + (without.scenario.initial_bps != with.scenario.initial_bps) as u8
                + (without.resolution_scaling != with.resolution_scaling) as u8
                + (without.min_playout_delay != with.min_playout_delay) as u8;
            assert_eq!(
                differs, 1,
                "{}: the two runs must differ in one switch",
                case.id
            );
            assert!(
                case.duration_s <= s.duration_s,
                "{}: longer than its scenario",
                case.id
            );
            assert!(
                s.cut_short(case.duration_s).is_none()
                    || case.mitigation == Mitigation::ResolutionScaling,
                "{}: the run cuts the failure off",
                case.id
            );
        }
    }
}
