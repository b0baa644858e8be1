//! The event-log reader and everything `rtclab report` does with what it read.
//!
//! The input is the bytes of an `events.jsonl`. It is read leniently, as `rtclab report` reads
//! it (bad lines skipped and listed), then turned into the summary, the report's figures, the
//! terminal tables, the plots and `report.html`, the same calls `rtclab report` makes.
#![no_main]

use rtclab_events::sink::read_log_lenient_from;
use rtclab_fuzz::fuzz_target;
use rtclab_report::{RunReport, Summary};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where `report.html` and its plots are written, one folder for the whole run.
fn out_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rtclab-fuzz-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("runs/fuzz/events.jsonl");
    let Ok((records, damage)) = read_log_lenient_from(data, path) else {
        return;
    };
    assert!(!records.is_empty() || damage.bad_line_count == 0);
    assert!(damage.bad_lines.len() <= rtclab_events::MAX_LISTED_BAD_LINES);
    let summary = Summary::from_records(&records);
    let mut report = RunReport::from_records(&records);
    report.note_damage(&damage);
    let merged = rtclab_report::summary::merged(&summary, &report);
    let mut tables = Vec::new();
    rtclab_report::print_tables(&report, &merged, &mut tables).expect("tables into memory");
    // Plots, the sequence diagram and the page.
    rtclab_report::write_html(&report, &merged, out_dir()).expect("report.html");
});
