//! What the RTP path costs per packet (issue 15 #7): a 720p30 H.264 session on a clean link at
//! 1, 3 and 8 Mbit/s, in virtual time, and the CPU time of the one thread that ran both peers'
//! network stacks: packetizing, the interceptor chain (TWCC, pacer, NACK, RTCP reports, the
//! congestion controller, the wire tap), SRTP and the impairment on the way out; SRTP, the
//! interceptors and the jitter buffer on the way in. Encoding, decoding and quality scoring
//! run on threads of their own and are not counted.
//!
//! In virtual time that thread does nothing else, so its CPU time divided by the packets is the
//! path's cost, without the wall clock's noise. It covers both ends of the path: the send path
//! alone is cheaper, so the packets/s printed for it is a floor.
//!
//! ```text
//! cargo bench -p rtclab-runner --bench send_path
//! ```

use rtclab_runner::{RunRequest, run_scenario};
use rtclab_scenarios::Scenario;
use std::path::Path;
use std::process::ExitCode;

/// Virtual seconds per run: enough packets for CPU ticks of 10 ms to be a small error.
const SECONDS: f64 = 30.0;

#[tokio::main]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("send-path bench: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn bench() -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/clean.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp folder: {e}"))?;
    println!(
        "RTP path, 720p30 H.264 on a clean link, {SECONDS} s in virtual time (CPU of the thread that runs both peers' network stacks)"
    );
    println!(
        "{:>9} {:>10} {:>10} {:>12} {:>12} {:>18}",
        "target", "sent", "received", "loop CPU", "µs / packet", "packets/s / core"
    );
    for kbps in [1000, 3000, 8000] {
        // Start and stay at the rate: initial = max, so the controller has nothing to find.
        let k = kbps.to_string();
        let mut t = rtclab_scenarios::with_override(&text, &path, "bitrate.initial_kbps", &k)
            .map_err(|e| e.to_string())?;
        t = rtclab_scenarios::with_override(&t, &path, "bitrate.max_kbps", &k)
            .map_err(|e| e.to_string())?;
        let scenario = Scenario::parse(&t, &path).map_err(|e| e.to_string())?;
        let mut req = RunRequest::new(scenario, dir.path().join(format!("{kbps}")));
        req.duration_s = Some(SECONDS);
        req.virtual_time = true;
        let outcome = run_scenario(req, std::future::pending())
            .await
            .map_err(|e| format!("{kbps} kbit/s: {e}"))?;
        let s = &outcome.summary;
        let cpu = outcome
            .virtual_loop
            .and_then(|l| l.cpu)
            .ok_or("no CPU time for the virtual-time thread (/proc/thread-self/stat)")?;
        // Every packet crosses the loop twice (out of the sender, into the receiver); the
        // sender's first transmissions, retransmissions and the receiver's arrivals all count.
        let packets = s.packets_sent + s.retransmissions;
        let per_packet = cpu.as_secs_f64() / packets.max(1) as f64;
        println!(
            "{:>6.1} Mb {:>10} {:>10} {:>10.2} s {:>12.1} {:>18.0}",
            f64::from(kbps) / 1000.0,
            packets,
            s.packets_received,
            cpu.as_secs_f64(),
            per_packet * 1e6,
            1.0 / per_packet,
        );
    }
    Ok(())
}
