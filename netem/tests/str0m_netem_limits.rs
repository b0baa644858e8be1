//! Measurements of str0m-netem 0.4 that decided what rtclab builds around it (README.md).
//!
//! Each test asserts the upstream behaviour as measured; if one starts failing after an
//! upgrade, upstream changed and the split in README.md should be revisited. Run with
//! `--nocapture` to see the numbers.

use std::time::{Duration, Instant};
use str0m_netem::{
    Bitrate, DataSize, Input, LossModel, Netem, NetemConfig, Output, Probability, RandomLoss,
};
use webrtc::runtime::{Runtime, TokioRuntime};

fn t0() -> Instant {
    TokioRuntime.now()
}

/// Drives a `Netem` with packets `(time, seq)`; returns `(seq, delivered_at)` in delivery order.
/// Time advances in 100 µs steps, so delivery times are accurate to 100 µs.
fn drive(
    netem: &mut Netem<Vec<u8>>,
    start: Instant,
    sends: &[(Duration, u32)],
    size: usize,
) -> Vec<(u32, Duration)> {
    let step = Duration::from_micros(100);
    let end = sends.last().map_or(Duration::ZERO, |s| s.0) + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut next = 0;
    let mut t = Duration::ZERO;
    while t <= end {
        netem.handle_input(Input::Timeout(start + t));
        while next < sends.len() && sends[next].0 <= t {
            let mut data = vec![0u8; size];
            data[..4].copy_from_slice(&sends[next].1.to_be_bytes());
            netem.handle_input(Input::Packet(start + sends[next].0, data));
            next += 1;
        }
        while let Some(o) = netem.poll_output() {
            if let Output::Packet(data) = o {
                let seq = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                out.push((seq, t));
            }
        }
        t += step;
    }
    out
}

#[test]
fn link_buffer_counts_packets_still_in_propagation_delay() {
    // 1 Mbps link with a 37,500-byte buffer (300 ms of it), 1 s of latency, offered 0.5 Mbps.
    // A bottleneck at half load never overflows; str0m-netem counts every packet still
    // waiting out its latency as "queued" and tail-drops.
    let start = t0();
    let config = NetemConfig::new()
        .latency(Duration::from_secs(1))
        .link(Bitrate::kbps(1000), DataSize::bytes(37_500))
        .seed(1);
    let mut netem = Netem::new(config);
    let gap = Duration::from_micros(19_200); // 1200 bytes every 19.2 ms = 0.5 Mbps
    let sends: Vec<_> = (0..500u32).map(|i| (gap * i, i)).collect();
    let out = drive(&mut netem, start, &sends, 1200);
    let delivered = out.len() as f64 / sends.len() as f64;
    println!(
        "str0m-netem, 0.5 Mbps into 1 Mbps / 300 ms buffer with 1 s latency: {:.1} % delivered",
        delivered * 100.0
    );
    assert!(delivered < 0.9, "delivered {delivered}");
}

#[test]
fn jitter_never_reorders() {
    // 20 ms ± 15 ms uniform, packets 1 ms apart: independent draws would overtake in ~47 % of
    // adjacent pairs. str0m-netem orders its queue by packet index, so a packet waits for
    // every earlier one (head-of-line) and there is no way to let jitter reorder (its only
    // reordering is `reorder_gap`: every n-th packet swapped with its predecessor). Keeping
    // order this way raises the mean delay; rtclab's `reorder = false` does the same.
    let start = t0();
    let config = NetemConfig::new()
        .latency(Duration::from_millis(20))
        .jitter(Duration::from_millis(15))
        .seed(1);
    let mut netem = Netem::new(config);
    let sends: Vec<_> = (0..2000u32)
        .map(|i| (Duration::from_millis(u64::from(i)), i))
        .collect();
    let out = drive(&mut netem, start, &sends, 100);
    let inversions = out.windows(2).filter(|w| w[1].0 < w[0].0).count();
    let mean_ms = out
        .iter()
        .map(|(seq, at)| (*at - Duration::from_millis(u64::from(*seq))).as_secs_f64() * 1000.0)
        .sum::<f64>()
        / out.len() as f64;
    println!(
        "str0m-netem, 20 ± 15 ms jitter, 1 ms spacing: {inversions} inversions, mean delay {mean_ms:.1} ms (configured mean 20 ms)"
    );
    assert_eq!(inversions, 0);
    assert!(mean_ms > 28.0, "mean {mean_ms}");
}

#[test]
fn set_config_replays_the_same_random_pattern() {
    // set_config reseeds the generator from the config's seed, so a schedule that re-applies a
    // config (or changes an unrelated field) repeats the loss pattern from the start.
    let start = t0();
    let config = NetemConfig::new()
        .loss(LossModel::Random(RandomLoss::new(Probability::new(0.3))))
        .seed(5);
    let mut netem: Netem<Vec<u8>> = Netem::new(config);
    let pattern = |netem: &mut Netem<Vec<u8>>| {
        (0..1000)
            .map(|_| {
                netem.handle_input(Input::Packet(start, vec![0]));
                let mut n = 0;
                while let Some(o) = netem.poll_output() {
                    if matches!(o, Output::Packet(_)) {
                        n += 1;
                    }
                }
                n
            })
            .collect::<Vec<u8>>()
    };
    let first = pattern(&mut netem);
    netem.set_config(config);
    let second = pattern(&mut netem);
    assert_eq!(first, second);
    println!("str0m-netem, set_config with the same seed: the next 1000 verdicts repeat exactly");
}

#[test]
fn a_rate_change_does_not_reach_packets_already_queued() {
    // 8 kbps: a 1000-byte packet takes 1 s. Three packets at 0 s leave at 0, 1 and 2 s (str0m
    // releases a packet when its transmission starts). Raising the rate tenfold at 0.5 s leaves
    // them at 1 and 2 s: departure times are fixed at enqueue.
    let start = t0();
    let slow = NetemConfig::new()
        .link(Bitrate::kbps(8), DataSize::bytes(100_000))
        .seed(1);
    let fast = NetemConfig::new()
        .link(Bitrate::kbps(80), DataSize::bytes(100_000))
        .seed(1);
    let mut netem = Netem::new(slow);
    for i in 0..3u32 {
        let mut data = vec![0u8; 1000];
        data[..4].copy_from_slice(&i.to_be_bytes());
        netem.handle_input(Input::Packet(start, data));
    }
    let mut out = Vec::new();
    let step = Duration::from_millis(10);
    let mut t = Duration::ZERO;
    while t <= Duration::from_secs(3) {
        if t == Duration::from_millis(500) {
            netem.set_config(fast);
        }
        netem.handle_input(Input::Timeout(start + t));
        while let Some(o) = netem.poll_output() {
            if let Output::Packet(_) = o {
                out.push(t);
            }
        }
        t += step;
    }
    println!("str0m-netem, 8 -> 80 kbps at 0.5 s: departures at {out:?}");
    assert_eq!(
        out,
        vec![
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(2)
        ]
    );
}
