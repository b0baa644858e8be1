//! Statistical and timing tests of the sans-I/O model, in virtual time with fixed seeds.
//!
//! Every statistical bound is stated next to its assertion. With a fixed seed the outcome is
//! deterministic, so a bound is not "flaky at 4σ": it says the model's law is right, and it
//! fails when the law is wrong (e.g. a wrong parameter mapping shifts the mean by far more).

use bytes::Bytes;
use rtclab_netem::{
    BurstLoss, Delivery, DropCause, Impairer, ImpairmentConfig, JitterDistribution, Link, Packet,
    Schedule, Step, Verdict,
};
use std::time::{Duration, Instant};
use webrtc::runtime::{Runtime, TokioRuntime};

/// An arbitrary origin; only differences matter to the model.
fn t0() -> Instant {
    TokioRuntime.now()
}

fn packet(seq: u64, size: usize) -> Packet<u64> {
    Packet {
        payload: Bytes::from(vec![0u8; size]),
        meta: seq,
    }
}

fn direction(schedule: Schedule, start: Instant, seed: u64) -> Impairer<u64> {
    Impairer::new(Link::Downlink, &schedule, start, seed).expect("valid schedule")
}

/// Sends `n` packets of `size` bytes every `gap` from `start`; returns each verdict and every
/// delivery in delivery order.
fn run(
    d: &mut Impairer<u64>,
    start: Instant,
    n: u64,
    gap: Duration,
    size: usize,
) -> (Vec<Verdict>, Vec<Delivery<u64>>) {
    let mut verdicts = Vec::with_capacity(n as usize);
    let mut out = Vec::new();
    for i in 0..n {
        let now = start + gap * i as u32;
        while let Some(x) = d.poll_output(now) {
            out.push(x);
        }
        verdicts.push(d.handle_packet(now, packet(i, size)));
    }
    while let Some(at) = d.poll_timeout() {
        while let Some(x) = d.poll_output(at) {
            out.push(x);
        }
    }
    (verdicts, out)
}

fn cfg() -> ImpairmentConfig {
    ImpairmentConfig::default()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn bernoulli_loss_of_5_pct_is_within_4_sigma() {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(5.0),
            ..cfg()
        }),
        start,
        42,
    );
    let n = 20_000u64;
    let (verdicts, out) = run(&mut d, start, n, Duration::from_millis(1), 100);
    let lost = verdicts
        .iter()
        .filter(|v| **v == Verdict::Dropped(DropCause::Random))
        .count() as f64;
    // Binomial(n = 20000, p = 0.05): mean 1000, σ = sqrt(n p (1 - p)) = 30.8; ±4σ = ±123.
    let (mean, sigma) = (1000.0, (n as f64 * 0.05 * 0.95).sqrt());
    assert!(
        (lost - mean).abs() <= 4.0 * sigma,
        "lost {lost}, expected {mean} ± {}",
        4.0 * sigma
    );
    let s = d.stats();
    assert_eq!(s.dropped.random.packets as f64, lost);
    assert_eq!(s.output.packets as usize, out.len());
    assert_eq!(
        s.input.packets,
        s.output.packets + s.dropped.total().packets
    );
    println!(
        "5 % loss: {lost} of {n} lost (bound 1000 ± {:.0})",
        4.0 * sigma
    );
}

#[test]
fn gilbert_elliott_mean_burst_is_one_over_r() {
    let start = t0();
    let (p, r) = (0.01, 0.2);
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            burst: Some(BurstLoss {
                p_pct: p * 100.0,
                r_pct: r * 100.0,
                loss_in_bad_pct: 100.0,
                loss_in_good_pct: 0.0,
            }),
            ..cfg()
        }),
        start,
        7,
    );
    let n = 200_000u64;
    let (verdicts, _) = run(&mut d, start, n, Duration::from_millis(1), 100);
    // With loss 100 % in bad and 0 % in good, runs of losses are the sojourns in the bad state,
    // geometric with mean 1/r = 5 and variance (1 - r)/r² = 20.
    let mut bursts = Vec::new();
    let mut run_len = 0u64;
    for v in &verdicts {
        if *v == Verdict::Dropped(DropCause::Burst) {
            run_len += 1;
        } else if run_len > 0 {
            bursts.push(run_len as f64);
            run_len = 0;
        }
    }
    let (mean, _) = mean_sd(&bursts);
    // About n·π_good·p ≈ 1900 bursts: SE of the mean = sqrt(20 / 1900) ≈ 0.10; ±4 SE ≈ ±0.41.
    let se = (20.0 / bursts.len() as f64).sqrt();
    assert!(
        (mean - 1.0 / r).abs() <= 4.0 * se,
        "mean burst {mean} over {} bursts, expected 5 ± {}",
        bursts.len(),
        4.0 * se
    );
    // Stationary loss p / (p + r) = 4.76 %.
    let loss = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Dropped(_)))
        .count() as f64
        / n as f64;
    assert!((loss - p / (p + r)).abs() < 0.01, "loss {loss}");
    println!(
        "Gilbert-Elliott p=1 % r=20 %: {} bursts, mean length {mean:.3} (bound 5 ± {:.3}), loss {:.2} %",
        bursts.len(),
        4.0 * se,
        loss * 100.0
    );
}

fn delays_ms(out: &[Delivery<u64>]) -> Vec<f64> {
    out.iter()
        .map(|x| (x.deliver_at - x.sent_at).as_secs_f64() * 1000.0)
        .collect()
}

fn jitter_run(dist: JitterDistribution, reorder: bool, gap: Duration) -> Vec<f64> {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            delay_ms: Some(50.0),
            jitter_ms: Some(10.0),
            jitter_distribution: Some(dist),
            reorder: Some(reorder),
            ..cfg()
        }),
        start,
        3,
    );
    let (_, out) = run(&mut d, start, 20_000, gap, 100);
    assert_eq!(out.len(), 20_000);
    delays_ms(&out)
}

#[test]
fn uniform_jitter_has_the_right_mean_and_spread() {
    let xs = jitter_run(JitterDistribution::Uniform, true, Duration::from_millis(1));
    let (mean, sd) = mean_sd(&xs);
    // U(40, 60): mean 50, sd 10/√3 = 5.774. n = 20000: SE(mean) = 0.041 ms; for a uniform,
    // SE(sd) = sd·sqrt((κ - 1)/(4n)) with kurtosis κ = 1.8, = 0.018 ms. Bounds: ±4 SE.
    assert!((mean - 50.0).abs() <= 4.0 * 0.041, "mean {mean}");
    assert!((sd - 5.774).abs() <= 4.0 * 0.018, "sd {sd}");
    assert!(xs.iter().all(|x| (40.0..=60.0).contains(x)));
    println!("uniform 50 ± 10 ms: mean {mean:.3} ms, sd {sd:.3} ms");
}

#[test]
fn normal_jitter_has_the_right_mean_and_spread() {
    let xs = jitter_run(JitterDistribution::Normal, true, Duration::from_millis(1));
    let (mean, sd) = mean_sd(&xs);
    // N(50, 10²) (the cut at 0 ms is 5σ away): SE(mean) = 10/√20000 = 0.071 ms,
    // SE(sd) = 10/√(2·20000) = 0.050 ms. Bounds: ±4 SE.
    assert!((mean - 50.0).abs() <= 4.0 * 0.071, "mean {mean}");
    assert!((sd - 10.0).abs() <= 4.0 * 0.050, "sd {sd}");
    // A normal, not a uniform: about 4.6 % of draws lie beyond ±2σ (a uniform of the same sd
    // has none beyond ±1.73σ).
    let tails = xs.iter().filter(|x| (**x - 50.0).abs() > 20.0).count() as f64 / xs.len() as f64;
    assert!((tails - 0.0455).abs() < 0.01, "tails {tails}");
    println!("normal 50, sd 10 ms: mean {mean:.3} ms, sd {sd:.3} ms, beyond 2σ {tails:.4}");
}

#[test]
fn order_kept_with_sparse_packets_leaves_the_distribution_alone() {
    // Packets 25 ms apart can never catch up within a 20 ms wide uniform: the order-keeping
    // floor never binds, so the delays are the plain distribution.
    let xs = jitter_run(
        JitterDistribution::Uniform,
        false,
        Duration::from_millis(25),
    );
    let (mean, sd) = mean_sd(&xs);
    assert!((mean - 50.0).abs() <= 4.0 * 0.041, "mean {mean}");
    assert!((sd - 5.774).abs() <= 4.0 * 0.018, "sd {sd}");
}

fn inversions(out: &[Delivery<u64>]) -> usize {
    out.windows(2)
        .filter(|w| w[1].packet.meta < w[0].packet.meta)
        .count()
}

fn reorder_run(reorder: bool) -> Vec<Delivery<u64>> {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            delay_ms: Some(20.0),
            jitter_ms: Some(15.0),
            reorder: Some(reorder),
            ..cfg()
        }),
        start,
        11,
    );
    run(&mut d, start, 5_000, Duration::from_millis(1), 100).1
}

#[test]
fn jitter_without_reorder_keeps_order() {
    let out = reorder_run(false);
    assert_eq!(out.len(), 5_000);
    assert_eq!(inversions(&out), 0);
    assert!(out.windows(2).all(|w| w[0].deliver_at <= w[1].deliver_at));
    // Every packet is delayed at least delay - jitter.
    assert!(
        out.iter()
            .all(|x| x.deliver_at - x.sent_at >= Duration::from_millis(5))
    );
    let (mean, _) = mean_sd(&delays_ms(&out));
    // Keeping order means waiting for the slowest packet ahead: the mean rises above 20 ms.
    assert!(mean > 25.0, "mean {mean}");
    println!("reorder = false, 20 ± 15 ms, 1 ms apart: mean delay {mean:.1} ms");
}

#[test]
fn jitter_with_reorder_lets_packets_overtake() {
    let out = reorder_run(true);
    let inv = inversions(&out) as f64 / out.len() as f64;
    // Two packets 1 ms apart with independent U(-15, 15) ms jitter swap with probability
    // P(D1 - D2 > 1 ms) = 29² / (2·30²) = 0.467 (triangular difference); adjacent inversions
    // in delivery order track it loosely, so only demand "a lot".
    assert!(inv > 0.2, "inversion rate {inv}");
    println!("reorder = true: {:.1} % adjacent inversions", inv * 100.0);
}

#[test]
fn rate_cap_under_2x_overload_delivers_capacity_and_bounds_queue_delay() {
    let start = t0();
    let capacity = 1_000_000.0;
    let queue_ms = 100.0;
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            rate_kbps: Some(capacity / 1000.0),
            queue_ms: Some(queue_ms),
            ..cfg()
        }),
        start,
        1,
    );
    // 372-byte payloads + 28 bytes of overhead = 3200 bits on the wire: 312.5 packets/s fill
    // the link; offer twice that for 20 s. Small packets make the overhead matter: a model
    // that forgot it would deliver 7.5 % too much and fail the 3 % bound.
    let wire_bits = (372.0 + 28.0) * 8.0;
    let gap = Duration::from_secs_f64(wire_bits / (2.0 * capacity));
    let n = (20.0 / gap.as_secs_f64()) as u64;
    let (verdicts, out) = run(&mut d, start, n, gap, 372);
    // Delivered rate over 1..19 s, once the queue is full, headers counted.
    let (a, b) = (
        start + Duration::from_secs(1),
        start + Duration::from_secs(19),
    );
    let in_window = out
        .iter()
        .filter(|x| x.deliver_at > a && x.deliver_at <= b)
        .count() as f64;
    let rate = in_window * wire_bits / 18.0;
    assert!(
        (rate - capacity).abs() <= 0.03 * capacity,
        "delivered {rate} bit/s"
    );
    // The drop-tail bound holds for every packet (1 µs of float-to-Duration rounding allowed).
    let bound = Duration::from_secs_f64(queue_ms / 1000.0) + Duration::from_micros(1);
    let worst = out.iter().map(|x| x.queue_delay).max().unwrap_or_default();
    assert!(worst <= bound, "queue delay {worst:?}");
    // Half the offered load has to go, all of it at the queue.
    let overflow = verdicts
        .iter()
        .filter(|v| **v == Verdict::Dropped(DropCause::QueueOverflow))
        .count() as f64;
    assert!(
        (overflow / n as f64 - 0.5).abs() < 0.02,
        "overflow {overflow} of {n}"
    );
    let s = d.stats();
    assert_eq!(s.capacity_bps, Some(capacity));
    assert!(s.queue_delay.p95_ms.unwrap() <= queue_ms + 0.001);
    println!(
        "rate cap 1 Mbps, 2x overload: delivered {:.4} Mbps ({:+.2} %), max queue delay {:?}, p50 {:?} ms, {overflow} of {n} dropped at the queue",
        rate / 1e6,
        (rate / capacity - 1.0) * 100.0,
        worst,
        s.queue_delay.p50_ms
    );
}

#[test]
fn queue_bytes_bounds_the_backlog() {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            rate_kbps: Some(100.0),
            queue_bytes: Some(10_000),
            overhead_bytes: Some(0),
            ..cfg()
        }),
        start,
        1,
    );
    // 100 packets of 1000 bytes at once: 10 fit (10,000 bytes), the rest overflow.
    let mut accepted = 0;
    for i in 0..100 {
        if d.handle_packet(start, packet(i, 1000)) == Verdict::Accepted {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(d.stats().queue_bytes, 10_000);
    assert_eq!(d.stats().dropped.queue_overflow.packets, 90);
}

#[test]
fn a_step_at_2_s_applies_at_2_s_not_before() {
    let start = t0();
    let schedule = Schedule {
        base: cfg(),
        steps: vec![Step {
            at_s: 2.0,
            until_s: Some(3.0),
            set: ImpairmentConfig {
                outage: Some(true),
                ..cfg()
            },
        }],
    };
    let mut d = direction(schedule, start, 1);
    let at = |ms: u64| start + Duration::from_millis(ms);
    assert_eq!(d.handle_packet(at(1999), packet(0, 10)), Verdict::Accepted);
    assert_eq!(
        d.handle_packet(at(2000), packet(1, 10)),
        Verdict::Dropped(DropCause::Outage)
    );
    assert_eq!(
        d.handle_packet(at(2999), packet(2, 10)),
        Verdict::Dropped(DropCause::Outage)
    );
    assert_eq!(d.handle_packet(at(3000), packet(3, 10)), Verdict::Accepted);
    let changes = d.take_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!((changes[0].at_s, changes[0].until_s), (2.0, Some(3.0)));
    assert_eq!(
        changes[1].settings_json(),
        serde_json::json!({ "outage": null })
    );
}

#[test]
fn a_capacity_step_changes_the_rate_of_the_packet_on_the_wire() {
    let start = t0();
    let rate = |k: f64| ImpairmentConfig {
        rate_kbps: Some(k),
        overhead_bytes: Some(0),
        queue_ms: Some(10_000.0),
        ..cfg()
    };
    let schedule = Schedule {
        base: rate(8.0),
        steps: vec![Step {
            at_s: 2.0,
            until_s: None,
            set: rate(16.0),
        }],
    };
    let mut d = direction(schedule, start, 1);
    // 1000 bytes at 8 kbps take 1 s; sent at 1.5 s, half is out at 2.0 s, the other 4000 bits
    // take 0.25 s at 16 kbps: delivered at 2.25 s (it would be 2.5 s without the step).
    d.handle_packet(start + Duration::from_millis(1500), packet(0, 1000));
    assert_eq!(d.poll_output(start + Duration::from_millis(2249)), None);
    let x = d
        .poll_output(start + Duration::from_millis(2250))
        .expect("due at 2.25 s");
    assert_eq!(x.deliver_at, start + Duration::from_millis(2250));
    assert_eq!(x.queue_delay, Duration::from_millis(750));
    assert_eq!(d.stats().capacity_bps, Some(16_000.0));
}

#[test]
fn outage_drops_everything_inside_and_nothing_outside() {
    let start = t0();
    let schedule = Schedule {
        base: cfg(),
        steps: vec![Step {
            at_s: 3.0,
            until_s: Some(5.0),
            set: ImpairmentConfig {
                outage: Some(true),
                ..cfg()
            },
        }],
    };
    let mut d = direction(schedule, start, 1);
    let gap = Duration::from_millis(10);
    let (verdicts, out) = run(&mut d, start, 1000, gap, 100);
    for (i, v) in verdicts.iter().enumerate() {
        let t = gap * i as u32;
        let inside = t >= Duration::from_secs(3) && t < Duration::from_secs(5);
        let expected = if inside {
            Verdict::Dropped(DropCause::Outage)
        } else {
            Verdict::Accepted
        };
        assert_eq!(*v, expected, "packet at {t:?}");
    }
    assert_eq!(out.len(), 800);
    assert_eq!(d.stats().dropped.outage.packets, 200);
}

#[test]
fn every_nth_drops_exactly_the_nth() {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            drop_every_nth: Some(10),
            ..cfg()
        }),
        start,
        1,
    );
    let (verdicts, _) = run(&mut d, start, 100, Duration::from_millis(1), 10);
    let dropped: Vec<usize> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == Verdict::Dropped(DropCause::Nth))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(dropped, (1..=10).map(|k| k * 10).collect::<Vec<_>>());
}

#[test]
fn duplication_rate_and_accounting_add_up() {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            duplicate_pct: Some(10.0),
            loss_pct: Some(5.0),
            ..cfg()
        }),
        start,
        5,
    );
    let n = 20_000u64;
    let (_, out) = run(&mut d, start, n, Duration::from_millis(1), 100);
    let s = d.stats();
    // Duplicated survivors: Binomial(≈19000, 0.1): mean 1900, σ ≈ 41; ±4σ.
    let survivors = (n - s.dropped.random.packets) as f64;
    let dup = s.duplicated.packets as f64;
    let sigma = (survivors * 0.1 * 0.9).sqrt();
    assert!((dup - survivors * 0.1).abs() <= 4.0 * sigma, "dup {dup}");
    assert_eq!(out.iter().filter(|x| x.duplicate).count() as f64, dup);
    assert_eq!(
        s.input.packets + s.duplicated.packets,
        s.output.packets + s.dropped.total().packets
    );
}

fn pattern(seed: u64) -> Vec<Verdict> {
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(10.0),
            burst: Some(BurstLoss {
                p_pct: 2.0,
                r_pct: 30.0,
                loss_in_bad_pct: 100.0,
                loss_in_good_pct: 0.0,
            }),
            ..cfg()
        }),
        start,
        seed,
    );
    run(&mut d, start, 5_000, Duration::from_millis(1), 100).0
}

#[test]
fn same_seed_same_pattern_different_seed_different_pattern() {
    assert_eq!(pattern(1), pattern(1));
    let (a, b) = (pattern(1), pattern(2));
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    // Two independent patterns with ~15 % loss differ in ~25 % of positions.
    assert!(differing > 500, "only {differing} of 5000 differ");
}

#[test]
fn directions_of_one_seed_are_independent_but_reproducible() {
    let start = t0();
    let s = Schedule::constant(ImpairmentConfig {
        loss_pct: Some(20.0),
        ..cfg()
    });
    let verdicts = |link| {
        let mut d: Impairer<u64> = Impairer::new(link, &s, start, 9).unwrap();
        (0..1000)
            .map(|i| d.handle_packet(start, packet(i, 10)))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(Link::Downlink), verdicts(Link::Downlink));
    assert_ne!(verdicts(Link::Downlink), verdicts(Link::Uplink));
}

#[test]
fn later_steps_get_a_fresh_random_stream() {
    // str0m-netem reseeds on set_config; rtclab derives a new seed per change, so a step that
    // re-sets the same loss does not replay the first segment's pattern.
    let start = t0();
    let loss = ImpairmentConfig {
        loss_pct: Some(30.0),
        ..cfg()
    };
    let schedule = Schedule {
        base: loss.clone(),
        steps: vec![
            Step {
                at_s: 1.0,
                until_s: None,
                set: ImpairmentConfig {
                    loss_pct: Some(31.0),
                    ..cfg()
                },
            },
            Step {
                at_s: 2.0,
                until_s: None,
                set: loss,
            },
        ],
    };
    let mut d = direction(schedule, start, 1);
    let (v, _) = run(&mut d, start, 3000, Duration::from_millis(1), 10);
    assert_ne!(v[..1000], v[2000..]);
}

#[test]
fn a_half_loaded_bottleneck_with_long_delay_drops_nothing() {
    // The counterpart of str0m_netem_limits::link_buffer_counts_packets_still_in_propagation_delay:
    // 0.5 Mbps into 1 Mbps with a 300 ms queue and 1 s of delay. Packets in propagation are not
    // in the queue, so nothing overflows.
    let start = t0();
    let mut d = direction(
        Schedule::constant(ImpairmentConfig {
            delay_ms: Some(1000.0),
            rate_kbps: Some(1000.0),
            queue_ms: Some(300.0),
            overhead_bytes: Some(0),
            ..cfg()
        }),
        start,
        1,
    );
    let (_, out) = run(&mut d, start, 500, Duration::from_micros(19_200), 1200);
    assert_eq!(out.len(), 500);
    assert_eq!(d.stats().dropped.total().packets, 0);
}
