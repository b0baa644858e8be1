//! What `rtclab report` costs on a long run's log (issue 17 #4: a very large log is streamed,
//! not loaded whole). Builds a one-hour log from the steady part of a real 26 s run
//! (`tests/fixtures/bandwidth-drop-short.jsonl`, repeated with its times shifted), then does
//! what `rtclab report` does: the lenient read, the summary, the report, the tables and the
//! HTML page. Prints the log's size, the time taken and the memory it took.
//!
//! `cargo bench -p rtclab-report --bench large_log` (release build; in `./lab bench`).

use std::io::{BufRead, Write};
use std::time::Instant;

/// The one hour a scenario may last at most (`duration_s` ≤ 3600).
const HOUR_S: f64 = 3600.0;

/// A line of `/proc/self/status` in kB (Linux), e.g. `VmHWM` (peak resident memory).
fn status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bandwidth-drop-short.jsonl"
    );
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(std::fs::File::open(fixture)?)
        .lines()
        .map(|l| serde_json::from_str(&l?).map_err(Into::into))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let (first, last) = (&lines[0], &lines[lines.len() - 1]);
    // The steady part: media flowing, after the start-up lines and before the end.
    let (from, to) = (2.0, 24.0);
    let middle: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["t"].as_f64().is_some_and(|t| (from..to).contains(&t)))
        .collect();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        writeln!(out, "{first}")?;
        let mut shift = 0.0;
        while from + shift < HOUR_S {
            for l in &middle {
                let mut l = (*l).clone();
                let t = l["t"].as_f64().unwrap_or(0.0) + shift;
                l["t"] = serde_json::json!((t * 1000.0).round() / 1000.0);
                writeln!(out, "{l}")?;
            }
            shift += to - from;
        }
        let mut end = last.clone();
        end["t"] = serde_json::json!(HOUR_S);
        writeln!(out, "{end}")?;
    }
    let bytes = std::fs::metadata(&path)?.len();
    let before_kb = status_kb("VmHWM:").unwrap_or(0);

    let started = Instant::now();
    let (records, damage) = rtclab_events::read_log_lenient(&path)?;
    let read_s = started.elapsed().as_secs_f64();
    let summary = rtclab_report::Summary::from_records(&records);
    let mut report = rtclab_report::RunReport::from_records(&records);
    report.note_damage(&damage);
    let merged = rtclab_report::summary::merged(&summary, &report);
    let mut tables = Vec::new();
    rtclab_report::print_tables(&report, &merged, &mut tables)?;
    rtclab_report::write_html(&report, &merged, dir.path())?;
    let total_s = started.elapsed().as_secs_f64();
    let peak_kb = status_kb("VmHWM:").unwrap_or(0);

    println!(
        "report on a one-hour log: {:.1} MB, {} lines ({} events kept); read {:.2} s, \
         read + report + tables + HTML {:.2} s; peak memory {:.0} MB ({:.0} MB more than \
         before reading, {:.1}× the file)",
        bytes as f64 / 1e6,
        records.len() + damage.bad_line_count,
        records.len(),
        read_s,
        total_s,
        peak_kb as f64 / 1024.0,
        peak_kb.saturating_sub(before_kb) as f64 / 1024.0,
        peak_kb.saturating_sub(before_kb) as f64 * 1024.0 / bytes as f64,
    );
    Ok(())
}
