//! The event log survives every way a run can end (issue 17 #4): Ctrl-C and SIGTERM end the run
//! cleanly with `session.end` and a summary; a panic in a task closes the log with `session.end`
//! naming the panic; `kill -9` keeps every line written before it, so only the last second is
//! lost, and `rtclab report` still reads the log and says it has no end.
//!
//! Each test runs a real session (`scenarios/clean.toml`, two webrtc-rs peers, FFmpeg), one at a
//! time (a lock), because two at once would share the machine's two cores.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtclab_events::{Event, Record, read_log, read_log_lenient};

static ONE_SESSION_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A run of `clean.toml` for up to 60 s into `dir/run`, its stderr in `dir/stderr.txt`.
struct Run {
    child: Child,
    out: PathBuf,
    stderr: PathBuf,
}

impl Run {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Run {
        Run::start_with(dir, env, &["--duration", "60"])
    }

    fn start_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
        let out = dir.join("run");
        let stderr = dir.join("stderr.txt");
        let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/clean.toml");
        let child = Command::new(env!("CARGO_BIN_EXE_rtclab"))
            .args(["run", scenario, "--out", out.to_str().unwrap()])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start rtclab");
        let run = Run { child, out, stderr };
        run.wait_for_media();
        run
    }

    fn log(&self) -> PathBuf {
        self.out.join("events.jsonl")
    }

    /// Waits until media flows (the sender has logged a second of statistics), at most 20 s: a
    /// debug build starts a session in 2–5 s on two busy cores.
    fn wait_for_media(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let flowing = std::fs::File::open(self.log()).ok().is_some_and(|f| {
                std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.contains("\"kind\":\"encoder.rate\""))
            });
            if flowing {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "media never started; see {}",
                self.log().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to exit; 15 s is far more than closing a session takes (under 1 s).
    fn wait(&mut self, after: &str) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "rtclab did not stop after {after}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A failed assertion must not leave a 60 s session running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn last_end(records: &[Record]) -> (String, serde_json::Value) {
    match &records.last().expect("a log with lines").event {
        Event::SessionEnd { reason, summary } => (reason.clone(), summary.clone()),
        other => panic!("the last line is {other:?}, not session.end"),
    }
}

/// SIGINT (Ctrl-C) and SIGTERM (`kill`, a service manager) both end the run as the user asked:
/// success, `session.end` with reason `interrupted`, the summary in the log and in summary.json.
fn ends_cleanly_on(signal: &str) {
    ends_cleanly_on_with(signal, &["--duration", "60"]);
}

fn ends_cleanly_on_with(signal: &str, args: &[&str]) {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::start_with(dir.path(), &[], args);
    run.signal(signal);
    let exit = run.wait(signal);
    assert!(
        exit.success(),
        "an interrupted run is not a failure: {exit:?}"
    );
    // Strict reading: every line is a valid event.
    let records = read_log(&run.log()).expect("every line is a valid event");
    let (reason, summary) = last_end(&records);
    assert_eq!(reason, "interrupted");
    assert!(summary["frames_sent"].as_u64().unwrap() > 0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(written, summary);
}

#[test]
fn ctrl_c_closes_the_log_and_writes_the_summary() {
    ends_cleanly_on("INT");
}

/// Ctrl-C reaches a virtual-time run too (issue 15): 120 virtual seconds take ~20 s of a debug
/// build, and the signal comes within a second of the first frames.
#[test]
fn ctrl_c_ends_a_virtual_time_run_the_same_way() {
    ends_cleanly_on_with("INT", &["--duration", "120", "--virtual-time"]);
}

#[test]
fn sigterm_closes_the_log_and_writes_the_summary() {
    ends_cleanly_on("TERM");
}

#[test]
fn a_panic_in_a_task_ends_the_log_with_the_panic_as_its_reason() {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The fault switch makes a tokio task (not the main one) panic on SIGUSR1.
    let mut run = Run::start(dir.path(), &[("RTCLAB_FAULT", "panic-on-usr1")]);
    run.signal("USR1");
    let exit = run.wait("the injected panic");
    assert_eq!(exit.code(), Some(101), "a panic exits with 101: {exit:?}");
    let records = read_log(&run.log()).expect("every line is a valid event");
    let (reason, _) = last_end(&records);
    assert!(
        reason.starts_with("panic: fault injected by RTCLAB_FAULT=panic-on-usr1 at "),
        "the reason names the panic and where: {reason}"
    );
    let stderr = std::fs::read_to_string(&run.stderr).unwrap();
    assert!(
        stderr.contains("a task panicked") && stderr.contains("1 event log(s) closed"),
        "stderr says what happened: {stderr}"
    );
}

/// Seconds since 1970 of an RFC 3339 UTC stamp as the sink writes it (`2026-12-05T03:50:12Z`).
fn unix_seconds(stamp: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm), the inverse of the sink's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

#[test]
fn kill_9_loses_at_most_the_last_second_and_the_log_still_reports() {
    let _one = ONE_SESSION_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::start(dir.path(), &[]);
    // Two more seconds of media, so the log has per-second statistics to lose.
    std::thread::sleep(Duration::from_secs(2));
    let before = std::fs::read_to_string(run.log()).unwrap();
    let lines_before = before.lines().count();
    run.signal("KILL");
    let killed_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let exit = run.wait("SIGKILL");
    assert!(!exit.success());

    let (records, damage) = read_log_lenient(&run.log()).expect("a killed run's log is readable");
    // Each line is written whole by one write(2) as it is emitted, so a kill cuts none.
    assert_eq!(damage.bad_line_count, 0, "{damage}");
    assert!(damage.missing_end && !damage.missing_start, "{damage}");
    assert!(
        records.len() >= lines_before,
        "lines read before the kill are still there"
    );
    // The session clock at the kill, from the start stamp (whole seconds, so up to 1 s early):
    // the last line is at most the last second, plus that 1 s of rounding, before it.
    let started = match &records[0].event {
        Event::SessionStart { started_at, .. } => unix_seconds(started_at),
        other => panic!("first line is {other:?}"),
    };
    let at_kill = killed_at.as_secs_f64() - started as f64;
    let last_t = records.last().unwrap().t;
    assert!(
        last_t >= at_kill - 2.0,
        "the last line (t = {last_t} s) is more than a second before the kill (t ≈ {at_kill:.1} s)"
    );

    // `rtclab report` reads it, reports, and names the damage.
    let report = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(["report", run.out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(report.status.success(), "rtclab report failed: {stderr}");
    assert!(
        stderr.contains("no session.end"),
        "report names the missing end: {stderr}"
    );
    assert!(run.out.join("report.html").is_file());
}
