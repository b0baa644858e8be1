//! Closed loop in virtual time (str0m style): a sender following `RtclabCc`'s target, a
//! bottleneck from rtclab-netem's sans-I/O model, and TWCC-like feedback, on the RFC 8867 §5.1
//! capacity schedule. No sockets, no clock reads: 100 virtual seconds run in well under a
//! second of CPU.
//!
//! Run with `cargo test -p rtclab-cc --test closed_loop -- --nocapture` for the figures.

use bytes::Bytes;
use rtc::interceptor::{BandwidthEstimator, PacketReport};
use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
use rtclab_cc::{CcConfig, RtclabCc, Usage};
use rtclab_netem::{Impairer, ImpairmentConfig, Link, Packet, Schedule, Step, Verdict};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const PACKET: usize = 1200;
/// IPv4 + UDP headers, counted against the link rate by netem (its default).
const OVERHEAD: usize = 28;
const FRAME: Duration = Duration::from_nanos(33_333_333);
/// rtclab's pacer releases at 2.5 × the target.
const PACING_FACTOR: f64 = 2.5;
/// A keyframe (start, or a probe request) is this many P-frames.
const KEYFRAME_FACTOR: f64 = 4.0;
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
const ONE_WAY: Duration = Duration::from_millis(50);
const RUN: Duration = Duration::from_secs(100);

/// RFC 8867 §5.1: capacity steps at 0/40/60/80 s, 50 ms one-way delay, 300 ms drop-tail queue;
/// plus, optionally, normal jitter of `jitter_ms` (not in the RFC: a robustness variant).
fn rfc8867_5_1(jitter_ms: Option<f64>) -> (Schedule, Vec<(f64, f64)>) {
    let steps = vec![(0.0, 1000.0), (40.0, 2500.0), (60.0, 600.0), (80.0, 1000.0)];
    let schedule = Schedule {
        base: ImpairmentConfig {
            rate_kbps: Some(steps[0].1),
            queue_ms: Some(300.0),
            delay_ms: Some(ONE_WAY.as_secs_f64() * 1000.0),
            jitter_ms,
            jitter_distribution: jitter_ms.map(|_| rtclab_netem::JitterDistribution::Normal),
            ..Default::default()
        },
        steps: steps[1..]
            .iter()
            .map(|&(at_s, kbps)| Step {
                at_s,
                until_s: None,
                set: ImpairmentConfig {
                    rate_kbps: Some(kbps),
                    ..Default::default()
                },
            })
            .collect(),
    };
    (schedule, steps)
}

fn capacity_at(steps: &[(f64, f64)], t_s: f64) -> f64 {
    steps
        .iter()
        .rev()
        .find(|&&(at, _)| at <= t_s)
        .map_or(steps[0].1, |&(_, k)| k)
        * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Outcome {
    link_bits_per_s: Vec<f64>,
    target_per_s: Vec<f64>,
    send_bits_per_s: Vec<f64>,
    queue_delays_ms: Vec<f64>,
    queue_p95_per_s: Vec<f64>,
    overflow_drops: u64,
    packets_sent: u64,
    targets: Vec<(f64, f64)>,
    overuse_reports: u64,
    probes_applied: u64,
    probe_requests: u64,
}

fn run(schedule: &Schedule) -> Outcome {
    // The epoch of the virtual clock; nothing below reads the clock again.
    let t0 = Instant::now();
    let end = t0 + RUN;
    let mut net: Impairer<u64> =
        Impairer::new(Link::Downlink, schedule, t0, 1).expect("a valid schedule");
    let mut cc = RtclabCc::new(CcConfig::new(300_000.0, 50_000.0, 5_000_000.0));

    let secs = RUN.as_secs() as usize;
    let mut out = Outcome {
        link_bits_per_s: vec![0.0; secs],
        target_per_s: vec![0.0; secs],
        send_bits_per_s: vec![0.0; secs],
        queue_delays_ms: Vec::new(),
        queue_p95_per_s: vec![0.0; secs],
        overflow_drops: 0,
        packets_sent: 0,
        targets: Vec::new(),
        overuse_reports: 0,
        probes_applied: 0,
        probe_requests: 0,
    };
    let mut per_s_delays: Vec<Vec<f64>> = vec![Vec::new(); secs];

    let mut departures: Vec<Instant> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    let mut arrivals: Vec<Option<Duration>> = Vec::new();
    let mut highest_arrived: Option<u64> = None;
    let mut next_unreported: u64 = 0;
    let mut pacer: VecDeque<usize> = VecDeque::new();
    let mut next_release = t0;
    let mut next_frame = t0;
    let mut next_feedback = t0 + FEEDBACK_INTERVAL;
    let mut in_flight_feedback: VecDeque<(Instant, Vec<PacketReport>)> = VecDeque::new();
    let mut keyframe = true;
    let mut last_probe = None;

    let mut guard = 0u64;
    loop {
        guard += 1;
        assert!(guard < 10_000_000, "event loop does not advance");
        let mut next = end.min(next_frame).min(next_feedback);
        if !pacer.is_empty() {
            next = next.min(next_release);
        }
        for t in [
            net.poll_timeout(),
            in_flight_feedback.front().map(|f| f.0),
            cc.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        let now = next;
        if now >= end {
            break;
        }
        let sec = now.duration_since(t0).as_secs() as usize;

        // The network.
        net.handle_timeout(now);
        while let Some(d) = net.poll_output(now) {
            let id = d.packet.meta as usize;
            arrivals[id] = Some(Duration::from_secs(1000) + d.deliver_at.duration_since(t0));
            highest_arrived = Some(highest_arrived.map_or(id as u64, |h| h.max(id as u64)));
            let exit = (d.sent_at + d.queue_delay).duration_since(t0).as_secs() as usize;
            if exit < secs {
                out.link_bits_per_s[exit] += ((sizes[id] + OVERHEAD) * 8) as f64;
            }
            let q = d.queue_delay.as_secs_f64() * 1000.0;
            out.queue_delays_ms.push(q);
            let s = d.sent_at.duration_since(t0).as_secs() as usize;
            if s < secs {
                per_s_delays[s].push(q);
            }
        }

        // Feedback reaching the sender.
        while in_flight_feedback.front().is_some_and(|f| f.0 <= now) {
            let Some((at, reports)) = in_flight_feedback.pop_front() else {
                break;
            };
            cc.on_reports(at, &reports);
            let st = cc.state();
            out.overuse_reports += u64::from(st.usage == Usage::Overuse);
            if st.last_probe != last_probe {
                last_probe = st.last_probe;
                out.probes_applied += u64::from(st.last_probe.is_some_and(|p| p.applied));
            }
            out.targets
                .push((at.duration_since(t0).as_secs_f64(), cc.target_bitrate()));
            if std::env::var_os("CC_TRACE").is_some() {
                println!(
                    "{:7.3} tgt {:7.0} dly {:7.0} loss {:7.0} {:?} {:?} m {:6.2} γ {:5.2} acked {:?} alr {} probe {:?}",
                    at.duration_since(t0).as_secs_f64(),
                    st.target_bps,
                    st.delay_based_bps,
                    st.loss_based_bps,
                    st.usage,
                    st.rate_control,
                    st.modified_trend,
                    st.threshold_ms,
                    st.acked_bps.map(|a| a.round()),
                    st.in_alr,
                    st.last_probe.map(|p| (
                        p.bps.round(),
                        p.send_bps.round(),
                        p.recv_bps.round(),
                        p.packets,
                        p.saturated,
                        p.applied
                    ))
                );
            }
            if cc.poll_probe_request().is_some() {
                // The lead's answer to a probe request: force a keyframe.
                out.probe_requests += 1;
                keyframe = true;
            }
        }
        if cc.poll_timeout().is_some_and(|t| t <= now) {
            cc.handle_timeout(now);
            out.targets
                .push((now.duration_since(t0).as_secs_f64(), cc.target_bitrate()));
        }

        // The encoder: one frame per 33 ms, sized to the target.
        if now >= next_frame {
            let target = cc.target_bitrate();
            out.target_per_s[sec] = target;
            let mut bytes = target / 30.0 / 8.0;
            if keyframe {
                bytes *= KEYFRAME_FACTOR;
                keyframe = false;
            }
            let mut left = bytes.max(1.0) as usize;
            while left > 0 {
                let size = left.min(PACKET);
                pacer.push_back(size);
                left -= size;
            }
            next_frame += FRAME;
        }

        // The pacer: 2.5 × target, one packet at a time; departure is the release instant.
        while !pacer.is_empty() && next_release <= now {
            let Some(size) = pacer.pop_front() else { break };
            let id = departures.len() as u64;
            departures.push(now);
            sizes.push(size);
            arrivals.push(None);
            out.packets_sent += 1;
            out.send_bits_per_s[sec] += (size * 8) as f64;
            let verdict = net.handle_packet(
                now,
                Packet {
                    payload: Bytes::from(vec![0u8; size]),
                    meta: id,
                },
            );
            if matches!(verdict, Verdict::Dropped(_)) {
                out.overflow_drops += 1;
            }
            next_release = now
                + Duration::from_secs_f64(
                    (size * 8) as f64 / (PACING_FACTOR * cc.target_bitrate()),
                );
        }
        if pacer.is_empty() && next_release < now {
            next_release = now;
        }

        // The receiver: TWCC-like feedback every 50 ms for everything up to the newest arrival
        // (a gap before it is a loss), reaching the sender 50 ms later (uplink unimpaired).
        if now >= next_feedback {
            if let Some(h) = highest_arrived {
                let reports: Vec<PacketReport> = (next_unreported..=h)
                    .map(|id| {
                        let i = id as usize;
                        PacketReport {
                            ssrc: 1,
                            id,
                            rtp_sequence_number: id as u16,
                            is_twcc: true,
                            twcc_sequence_number: id as u16,
                            size: sizes[i],
                            arrived: arrivals[i].is_some(),
                            departure: departures[i],
                            arrival: arrivals[i],
                            ecn: Ecn::NotEct,
                        }
                    })
                    .collect();
                next_unreported = h + 1;
                if !reports.is_empty() {
                    in_flight_feedback.push_back((now + ONE_WAY, reports));
                }
            }
            next_feedback += FEEDBACK_INTERVAL;
        }
    }
    for (s, mut d) in per_s_delays.into_iter().enumerate() {
        d.sort_by(f64::total_cmp);
        out.queue_p95_per_s[s] = percentile(&d, 0.95);
    }
    out
}

/// The figures of one run.
struct Figures {
    utilisation: f64,
    reaction_s: Option<f64>,
    queue_p95_ms: f64,
}

fn report(title: &str, steps: &[(f64, f64)], o: &Outcome) -> Figures {
    println!("{title}");
    println!("  t(s)  capacity  target   link-out  queue-p95(ms)");
    for s in (0..RUN.as_secs() as usize).step_by(2) {
        println!(
            "  {:>4}  {:>8.0}  {:>7.0}  {:>8.0}  {:>6.1}",
            s,
            capacity_at(steps, s as f64) / 1000.0,
            o.target_per_s[s] / 1000.0,
            o.link_bits_per_s[s] / 1000.0,
            o.queue_p95_per_s[s]
        );
    }

    let mut phase_util = Vec::new();
    let (mut carried, mut capacity) = (0.0, 0.0);
    for (i, &(from, kbps)) in steps.iter().enumerate() {
        let to = steps.get(i + 1).map_or(RUN.as_secs_f64(), |s| s.0);
        let bits: f64 = o.link_bits_per_s[from as usize..to as usize].iter().sum();
        let cap = kbps * 1000.0 * (to - from);
        phase_util.push((from, to, kbps, bits / cap));
        carried += bits;
        capacity += cap;
    }
    let utilisation = carried / capacity;
    let mut delays = o.queue_delays_ms.clone();
    delays.sort_by(f64::total_cmp);
    let (p50, p95, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.95),
        delays.last().copied().unwrap_or(f64::NAN),
    );
    let reaction = o
        .targets
        .iter()
        .find(|&&(t, bps)| t >= 60.0 && bps < 600_000.0)
        .map(|&(t, _)| t - 60.0);
    let ramp_1m = o
        .targets
        .iter()
        .find(|&&(_, bps)| bps >= 850_000.0)
        .map(|&(t, _)| t);

    for (from, to, kbps, u) in &phase_util {
        println!(
            "  {from:>3}-{to:<3} s at {kbps:>5.0} kbps: utilisation {:.1} %",
            u * 100.0
        );
    }
    println!(
        "  total utilisation (headers included, as the link counts them): {:.1} %",
        utilisation * 100.0
    );
    println!("  queue delay p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    println!(
        "  packets sent {}, dropped at the queue {} ({:.2} %)",
        o.packets_sent,
        o.overflow_drops,
        100.0 * o.overflow_drops as f64 / o.packets_sent as f64
    );
    println!(
        "  target below 600 kbps {:.2} s after the drop at 60 s",
        reaction.unwrap_or(f64::NAN)
    );
    println!(
        "  start-up: target ≥ 850 kbps at {:.2} s",
        ramp_1m.unwrap_or(f64::NAN)
    );
    println!(
        "  feedback reports with over-use {}, probe requests {}, probes applied {}",
        o.overuse_reports, o.probe_requests, o.probes_applied
    );

    Figures {
        utilisation,
        reaction_s: reaction,
        queue_p95_ms: p95,
    }
}

#[test]
fn rfc8867_5_1_capacity_steps() {
    let (schedule, steps) = rfc8867_5_1(None);
    let o = run(&schedule);
    let f = report(
        "RFC 8867 §5.1 closed loop (virtual time, rtclab-netem bottleneck, 300 ms queue, 50 ms one-way)",
        &steps,
        &o,
    );
    assert!(f.utilisation >= 0.85, "utilisation {:.3}", f.utilisation);
    let reaction = f
        .reaction_s
        .expect("the target never went below the new capacity");
    assert!(reaction <= 1.0, "reaction {reaction:.2} s");
    // The bound: 120 ms. The 300 ms drop-tail queue is full only around the 2.5 → 0.6 Mbps
    // drop (≤ ~1 s of 100 s, about 1 % of packets); elsewhere the trendline reacts to a rising
    // delay gradient long before a standing queue reaches 100 ms. What does reach ~100 ms is
    // the 4× keyframe each probe request forces (a burst at 2.5 × target), every ≥ 5 s, and a
    // 10 % back-off (BETA 0.9) drains it more slowly than libwebrtc's 15 %: measured 107 ms.
    assert!(
        f.queue_p95_ms <= 120.0,
        "queue delay p95 {:.1} ms",
        f.queue_p95_ms
    );
}

/// The same with 5 ms (σ) normal jitter, order kept: jitter bunches arrivals, which makes
/// small media clusters read above the link rate. Looser bounds, stated: the weakness is known.
#[test]
fn rfc8867_5_1_with_jitter() {
    let (schedule, steps) = rfc8867_5_1(Some(5.0));
    let o = run(&schedule);
    let f = report("RFC 8867 §5.1 + 5 ms normal jitter", &steps, &o);
    assert!(f.utilisation >= 0.80, "utilisation {:.3}", f.utilisation);
    let reaction = f
        .reaction_s
        .expect("the target never went below the new capacity");
    assert!(reaction <= 1.0, "reaction {reaction:.2} s");
    // Half the queue: a controller stuck on a full queue (zero delay gradient) would sit at
    // ~300 ms, which is what this guards against.
    assert!(
        f.queue_p95_ms <= 150.0,
        "queue delay p95 {:.1} ms",
        f.queue_p95_ms
    );
}
