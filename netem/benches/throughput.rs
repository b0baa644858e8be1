//! Throughput of the sans-I/O model on one core, in virtual time (not a timed test).
//!
//! `cargo bench -p rtclab-netem` pushes 1,000,000 packets of 1200 bytes through a direction
//! with 5 % loss, 40 ± 10 ms normal jitter and a 100 Mbps drop-tail bottleneck offered 120 % of
//! its capacity, polling for output after every packet, and prints packets/s and ns/packet.
//! Wall time is read from the webrtc-rs runtime clock, like every other time in this crate.

use bytes::Bytes;
use rtclab_netem::{Impairer, ImpairmentConfig, JitterDistribution, Link, Packet, Schedule};
use std::hint::black_box;
use std::time::Duration;
use webrtc::runtime::{Runtime, TokioRuntime};

const PACKETS: u64 = 1_000_000;
const SIZE: usize = 1200;

fn bench(name: &str, config: ImpairmentConfig, gap: Duration) {
    let clock = TokioRuntime;
    let start = clock.now();
    let mut d: Impairer<u64> =
        match Impairer::new(Link::Downlink, &Schedule::constant(config), start, 1) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{name}: invalid config: {e}");
                return;
            }
        };
    let payload = Bytes::from(vec![0u8; SIZE]);
    let mut delivered = 0u64;
    let wall = clock.now();
    for i in 0..PACKETS {
        let now = start + gap * i as u32;
        d.handle_packet(
            now,
            Packet {
                payload: payload.clone(),
                meta: i,
            },
        );
        while let Some(x) = d.poll_output(now) {
            delivered += 1;
            black_box(&x);
        }
    }
    while let Some(at) = d.poll_timeout() {
        while let Some(x) = d.poll_output(at) {
            delivered += 1;
            black_box(&x);
        }
    }
    let secs = clock.now().duration_since(wall).as_secs_f64();
    let s = d.stats();
    println!(
        "{name}: {PACKETS} packets in {secs:.3} s wall = {:.2} M packets/s, {:.0} ns/packet \
         (virtual {:.1} s; delivered {delivered}, lost {}, queue overflow {}, queue delay p50 {:.1} ms)",
        PACKETS as f64 / secs / 1e6,
        secs * 1e9 / PACKETS as f64,
        (gap * PACKETS as u32).as_secs_f64(),
        s.dropped.random.packets,
        s.dropped.queue_overflow.packets,
        s.queue_delay.p50_ms.unwrap_or(0.0),
    );
}

fn main() {
    // 100 Mbps carries 100e6 / ((1200 + 28) · 8) = 10,179 packets/s; offer 120 % of that.
    let capacity_pps = 100e6 / ((SIZE as f64 + 28.0) * 8.0);
    let overload = Duration::from_secs_f64(1.0 / (1.2 * capacity_pps));
    bench(
        "loss 5 % + jitter 40±10 ms normal + 100 Mbps cap (120 % offered)",
        ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(40.0),
            jitter_ms: Some(10.0),
            jitter_distribution: Some(JitterDistribution::Normal),
            rate_kbps: Some(100_000.0),
            queue_ms: Some(100.0),
            ..Default::default()
        },
        overload,
    );
    bench(
        "same, reorder = true",
        ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(40.0),
            jitter_ms: Some(10.0),
            jitter_distribution: Some(JitterDistribution::Normal),
            reorder: Some(true),
            rate_kbps: Some(100_000.0),
            queue_ms: Some(100.0),
            ..Default::default()
        },
        overload,
    );
    bench(
        "no impairment (accounting only)",
        ImpairmentConfig::default(),
        overload,
    );
}
