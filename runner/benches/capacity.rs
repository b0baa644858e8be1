//! How many real-time 720p30 H.264 sessions at 1 Mbit/s this machine holds at once (issue 15
//! #7), and what one costs. For N = 1, 2, 4, 8, 12, 16 it runs `rtclab sweep --repeat N --jobs N` (N
//! sessions of one clean 720p scenario side by side, each a Rust sender and a Rust receiver in
//! one process, with frame scoring), and prints per N: frames lost (sent but never decoded), the
//! CPU the process used per session and second, its peak memory, and what each session added.
//!
//! A session "holds" while fewer than 1 % of its frames are lost. When the cores run out, the
//! encoder falls behind, frames queue and arrive late or are skipped, and that number climbs.
//! That is also the ceiling for `rtclab sweep --jobs` in real time (docs/sweeps.md).
//!
//! Needs the release binary (`./lab bench` builds it) or `RTCLAB_BIN`. `RTCLAB_CAPACITY_SESSIONS`
//! changes the list of N (`1,2,4`), `RTCLAB_CAPACITY_SECONDS` the duration (10 s).
//!
//! ```text
//! cargo build --release -p rtclab && cargo bench -p rtclab-runner --bench capacity
//! ```

mod common;

use common::rtclab_binary;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// What one child process used, from `wait4`.
struct Usage {
    cpu_s: f64,
    max_rss_mb: f64,
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("capacity bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench() -> Result<(), String> {
    let bin = rtclab_binary()?;
    let counts: Vec<u32> = match std::env::var("RTCLAB_CAPACITY_SESSIONS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("RTCLAB_CAPACITY_SESSIONS: {n:?} is not a count"))
            })
            .collect::<Result<_, _>>()?,
        Err(_) => vec![1, 2, 4, 8, 12, 16],
    };
    let seconds = env_number("RTCLAB_CAPACITY_SECONDS", 10).max(2);
    let dir = tempfile::tempdir().map_err(|e| format!("temp folder: {e}"))?;
    let clean = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/clean.toml"),
    )
    .map_err(|e| format!("scenarios/clean.toml: {e}"))?;
    // The clean 720p30 scenario held at 1 Mbit/s: the controller cannot raise the load as N
    // changes, so every N encodes the same bits.
    let fixed = clean
        .replace("min_kbps = 100", "min_kbps = 1000")
        .replace("max_kbps = 3000", "max_kbps = 1000");
    if fixed == clean {
        return Err("scenarios/clean.toml changed its bitrate keys: update this bench".into());
    }
    let scenario = dir.path().join("capacity.toml");
    std::fs::write(&scenario, fixed).map_err(|e| format!("{}: {e}", scenario.display()))?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "720p30 H.264 at 1 Mbit/s, {seconds} s each, sender and receiver in one process, {cores} cores"
    );
    println!(
        "{:>8} {:>14} {:>14} {:>8} {:>16} {:>14} {:>14}",
        "sessions",
        "frames lost",
        "worst session",
        "lowest",
        "CPU / session",
        "peak memory",
        "per session"
    );
    let mut first: Option<(u32, f64)> = None;
    for n in counts.into_iter().filter(|&n| n > 0) {
        let out = dir.path().join(format!("n{n}"));
        let log_path = dir.path().join(format!("n{n}.stderr"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let started = Instant::now();
        let child = Command::new(&bin)
            // Real time: this bench measures what the machine's cores hold (a sweep is in
            // virtual time unless told).
            .args(["sweep", "--real-time"])
            .arg(&scenario)
            .args(["--set", "bitrate.initial_kbps=1000"])
            .args(["--repeat", &n.to_string(), "--jobs", &n.to_string()])
            .args(["--duration", &seconds.to_string(), "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        // wait4, not Child::wait: it also gives the child's CPU time and peak memory.
        let (status, usage) = wait4(child.id())?;
        if status != 0 {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "rtclab sweep with {n} jobs failed ({status}): {text}"
            ));
        }
        let wall = started.elapsed().as_secs_f64();
        let (lost, lowest) = lost_pcts(&out)?;
        let mean = lost.iter().sum::<f64>() / lost.len().max(1) as f64;
        let worst = lost.iter().copied().fold(0.0, f64::max);
        // CPU per session and second of the whole process's run (set-up included).
        let cpu = usage.cpu_s / (f64::from(n) * wall);
        // Against the first (smallest) N: what each further session added.
        let added = match first {
            None => {
                first = Some((n, usage.max_rss_mb));
                "–".to_owned()
            }
            Some((n0, mb0)) if n > n0 => {
                format!("{:.0} MB", (usage.max_rss_mb - mb0) / f64::from(n - n0))
            }
            Some(_) => "–".to_owned(),
        };
        println!(
            "{n:>8} {:>12.2} % {:>12.2} % {:>7}p {:>10.2} cores {:>11.0} MB {:>14}",
            mean, worst, lowest, cpu, usage.max_rss_mb, added
        );
    }
    println!(
        "frames lost: sent but never decoded, mean over the sessions; a session holds below 1 %.\n\
         CPU / session: the process's CPU time ÷ (sessions × wall time), set-up included.\n\
         lowest: the smallest picture height decoded (720p unless resolution scaling stepped down).\n\
         per session: what each session beyond the first row's added to the peak memory."
    );
    Ok(())
}

/// Each session's frames lost, % of frames sent, from the runs' `summary.json`; and the
/// smallest picture height any session decoded (720 unless resolution scaling stepped down).
fn lost_pcts(out: &Path) -> Result<(Vec<f64>, u64), String> {
    let mut lost = Vec::new();
    let mut lowest = u64::MAX;
    for entry in std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))? {
        let summary = entry
            .map_err(|e| e.to_string())?
            .path()
            .join("summary.json");
        let Ok(text) = std::fs::read_to_string(&summary) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", summary.display()))?;
        let sent = v["frames_sent"].as_f64().unwrap_or(0.0);
        let decoded = v["frames_decoded"].as_f64().unwrap_or(0.0);
        if sent <= 0.0 {
            return Err(format!("{}: no frames sent", summary.display()));
        }
        lost.push((100.0 * (sent - decoded) / sent).max(0.0));
        if let Some(h) = v["lowest_height"].as_u64() {
            lowest = lowest.min(h);
        }
    }
    if lost.is_empty() {
        return Err(format!("{}: no run finished", out.display()));
    }
    Ok((lost, lowest))
}

/// Waits for `pid` and returns its exit status and resource usage (`wait4`, Linux).
fn wait4(pid: u32) -> Result<(i32, Usage), String> {
    let mut status = 0;
    // SAFETY: `rusage` is plain data; zeroed is a valid value and wait4 overwrites it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; the pointers are valid for the call.
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if got < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        status,
        Usage {
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            // Linux reports ru_maxrss in KiB.
            max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        },
    ))
}
