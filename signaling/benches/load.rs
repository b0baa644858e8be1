//! The signaling server under load (issue 17, item 2): `rtclab serve` in its own process, with
//! its default limits, and 1,000 WebSocket clients in 500 rooms negotiating through it
//! (`rtclab_signaling::load`). Prints the relayed round trip (p50/p99/max) and the server's memory
//! before, while holding the clients, during the exchange and after they all left.
//!
//! Three runs against the same server, the second with a flooder in one more room. Comparing the
//! memory after each tells allocator retention (memory kept for reuse, no higher after run 3
//! than after run 2) from a leak (growing with every run).
//!
//! Needs the release binary: `cargo build --release -p rtclab` (`./lab bench` builds it), or
//! `RTCLAB_BIN=/path/to/rtclab`. `RTCLAB_LOAD_CLIENTS` and `RTCLAB_LOAD_ROUNDS` change the size.
//!
//! ```text
//! cargo build --release -p rtclab && cargo bench -p rtclab-signaling --bench load
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime};

use rtclab_signaling::limits::raise_open_files_limit;
use rtclab_signaling::load::{self, LoadConfig, LoadReport};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signaling load bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Kills the server when the bench ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn bench() -> Result<(), String> {
    let bin = rtclab_binary()?;
    warn_if_stale(&bin);
    // Started before this process raises its own open-files limit, so that the server starts
    // with the limit `rtclab serve` gets from the shell (it raises its own).
    let mut child = Command::new(&bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--web", "/nonexistent"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from rtclab serve")?;
    let pid = child.id();
    let _server = Server(child);
    let addr = server_address(stdout)?;
    let own = raise_open_files_limit().map_err(|err| format!("raising RLIMIT_NOFILE: {err}"))?;
    let clients = env_number("RTCLAB_LOAD_CLIENTS", 1000)?;
    let rounds = env_number("RTCLAB_LOAD_ROUNDS", 10)?;
    // The server's resident memory at rest, before any client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "rtclab serve (pid {pid}, {}) on {addr}; open-files limit: the server's {}, the driver's {own}",
        bin.display(),
        open_files_limit(pid)
    );

    let mut config = LoadConfig::new(addr, pid);
    config.clients = clients;
    config.rounds = rounds;
    let mut reports = Vec::new();
    // Run 2 floods; runs 1 and 3 are the same plain load, so that the memory after run 3 tells
    // retention (as after run 2) from a leak (higher again).
    for (run, flood) in [(1, None), (2, Some(20_000)), (3, None)] {
        config.room_prefix = format!("load{run}-");
        config.flood = flood;
        match flood {
            None => println!(
                "\nrun {run}: {} clients in {} rooms, {} rounds of offer/answer ({} B SDPs) + {} candidates, one round every {:?}",
                config.clients,
                config.rooms(),
                config.rounds,
                config.sdp_bytes,
                config.candidates_per_round,
                config.round_interval
            ),
            Some(count) => {
                println!("\nrun {run}: the same, while one more client floods {count} candidates")
            }
        }
        let report = load::run(&config).await.map_err(|err| err.to_string())?;
        print!("{report}");
        reports.push(report);
    }
    summary(&reports);
    let ok = reports.iter().all(|r| {
        r.failures == 0 && r.messages_received == r.messages_expected && r.peers_after == 0
    });
    if ok {
        Ok(())
    } else {
        Err("some clients failed or lost messages (see above)".to_owned())
    }
}

fn summary(reports: &[LoadReport]) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let Some(first) = reports.first() else { return };
    let base = first.memory.before.rss_kib;
    let held = first.memory.held.rss_kib.saturating_sub(base);
    println!("\nsummary: {} clients held", first.connected);
    for (run, r) in reports.iter().enumerate() {
        println!(
            "  run {}: round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS held {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
            run + 1,
            ms(r.round_trip.p50),
            ms(r.round_trip.p99),
            ms(r.round_trip.max),
            mib(r.memory.held.rss_kib),
            mib(r.memory.during.rss_kib),
            mib(r.memory.after.rss_kib),
        );
    }
    let last = reports.last().unwrap_or(first);
    println!(
        "server RSS at rest {:.1} MiB; holding the clients +{:.1} MiB ({:.1} KiB per client); VmHWM {:.1} MiB; after the last run {:.1} MiB ({:+.1} MiB from rest)",
        mib(base),
        mib(held),
        held as f64 / first.connected.max(1) as f64,
        mib(last.memory.after.hwm_kib),
        mib(last.memory.after.rss_kib),
        (last.memory.after.rss_kib as i64 - base as i64) as f64 / 1024.0,
    );
}

/// `RTCLAB_BIN`, else the release binary in the workspace's target directory.
fn rtclab_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RTCLAB_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/rtclab");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p rtclab` (or set RTCLAB_BIN)",
            bin.display()
        ))
    }
}

/// Warns when the binary is older than the server's sources: the figures would be of old code.
fn warn_if_stale(bin: &Path) {
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(bin) else { return };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let newest = std::fs::read_dir(src)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| modified(&entry.path()))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if newest > built {
        eprintln!(
            "warning: {} is older than signaling/src; rebuild it (cargo build --release -p rtclab)",
            bin.display()
        );
    }
}

/// Reads the server's first line, "rtclab signaling server on http://ADDR (...)".
fn server_address(stdout: std::process::ChildStdout) -> Result<SocketAddr, String> {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|err| format!("reading rtclab serve's output: {err}"))?;
    // Keep reading, so that a later line finds the pipe open (a closed pipe fails println!).
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            println!("rtclab serve: {line}");
        }
    });
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("no address in rtclab serve's first line: {line:?}"))
}

/// The "Max open files" soft limit of `pid`, as /proc/PID/limits says it.
fn open_files_limit(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn env_number(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}
