//! Renders the report of a run directory: `cargo run -p rtclab-report --example render_run -- RUN_DIR [OUT_DIR]`.
//! Until `rtclab report` calls this crate, this is how to look at a run's report.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let Some(run) = args.next() else {
        eprintln!("usage: render_run RUN_DIR [OUT_DIR]");
        return ExitCode::from(2);
    };
    let out = args.next().unwrap_or_else(|| run.clone());
    let records = match rtclab_events::read_log(&run.join("events.jsonl")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // A run interrupted before the summary was written still has a report.
    let summary = std::fs::read_to_string(run.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    let report = rtclab_report::RunReport::from_records(&records);
    if let Err(e) = rtclab_report::print_tables(&report, &summary, &mut std::io::stdout().lock()) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match rtclab_report::write_html(&report, &summary, &out) {
        Ok(p) => {
            println!("\nreport: {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
