//! How much faster than real time a virtual-time run is (issue 15 #3, #7): RFC 8867 §5.1 (100 s,
//! H.264, Rust ↔ Rust) with `rtclab run --virtual-time`, at 720p30 and at 360p30, timed on the
//! wall clock. Prints the wall time, the speed-up and the CPU time (the run uses one core at a
//! time: the encoder, the decoder and the quality scorer take turns with the network).
//!
//! Needs the release binary (`./lab bench` builds it) or `RTCLAB_BIN`.
//!
//! ```text
//! cargo build --release -p rtclab && cargo bench -p rtclab-runner --bench virtual_speed
//! ```

mod common;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("virtual-time bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let bin = common::rtclab_binary()?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp folder: {e}"))?;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rfc8867-5.1.toml"),
    )
    .map_err(|e| format!("scenarios/rfc8867-5.1.toml: {e}"))?;
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "rfc8867-5.1", "virtual", "wall", "speed-up", "CPU", "utilisation"
    );
    for (label, width, height) in [("720p30", "1280", "720"), ("360p30", "640", "360")] {
        // The scenario leaves the size at its default (720p); set it in the top-level table.
        let sized = text.replacen(
            "\n[bitrate]",
            &format!("width = {width}\nheight = {height}\n\n[bitrate]"),
            1,
        );
        if sized == text {
            return Err("rfc8867-5.1.toml has no [bitrate] table: update this bench".into());
        }
        let scenario = dir.path().join(format!("{label}.toml"));
        std::fs::write(&scenario, sized).map_err(|e| e.to_string())?;
        let out = dir.path().join(label);
        let cpu_before = children_cpu_s();
        let started = Instant::now();
        let status = Command::new(&bin)
            .arg("run")
            .arg(&scenario)
            .arg("--virtual-time")
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let wall = started.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!(
                "rtclab run --virtual-time at {label} failed ({status})"
            ));
        }
        let cpu = children_cpu_s() - cpu_before;
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("summary.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let media = summary["log_duration_s"].as_f64().unwrap_or(100.0);
        let util = summary["link_utilisation_pct"]
            .as_f64()
            .or_else(|| summary["report"]["link_utilisation_pct"].as_f64());
        println!(
            "{:<22} {:>8.1} s {:>8.1} s {:>9.1}× {:>10.1} s {:>14}",
            format!("H.264 {label}"),
            media,
            wall,
            media / wall,
            cpu,
            util.map_or("–".to_owned(), |u| format!("{u:.1} %"))
        );
    }
    println!("virtual: the run's length on its own clock; wall: how long it took here.");
    Ok(())
}

/// CPU seconds used by this process's finished children.
fn children_cpu_s() -> f64 {
    // SAFETY: `rusage` is plain data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}
