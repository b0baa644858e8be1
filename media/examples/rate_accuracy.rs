//! Offline measurement of how closely the adaptive encoder follows steady targets.
//!
//! testsrc2 at 1280x720/30 (or `--size`), no network: for each codec and target, encodes
//! `--seconds` of video at a constant target through [`AdaptiveEncoder`] (so the resolution is
//! the one the ladder picks) and prints the per-second output bitrate error after the first
//! `--settle` seconds, the resolution, and dropped frames.
//!
//! ```sh
//! cargo run --release -p rtclab-media --example rate_accuracy
//! cargo run --release -p rtclab-media --example rate_accuracy -- --codec vp8 --targets 300,800 --fixed
//! cargo run --release -p rtclab-media --example rate_accuracy -- --kf-every 3   # a PLI every 3 s
//! ```

use std::time::Duration;

use rtclab_media::{AdaptiveEncoder, Codec, EncoderConfig, Resolution, SourceSpec, VideoSource};

struct Args {
    codecs: Vec<Codec>,
    targets_kbps: Vec<u32>,
    seconds: u32,
    settle: u32,
    size: Resolution,
    fixed: bool,
    kf_every: Option<u32>,
    /// (target kbps, until second) pairs.
    steps: Vec<(u32, u32)>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        codecs: vec![Codec::H264, Codec::Vp8],
        targets_kbps: vec![300, 800, 1500, 2500],
        seconds: 12,
        settle: 2,
        size: Resolution::new(1280, 720),
        fixed: false,
        kf_every: None,
        steps: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--codec" => {
                a.codecs = value()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("{e}")))
                    .collect::<Result<_, _>>()?
            }
            "--targets" => {
                a.targets_kbps = value()?
                    .split(',')
                    .map(|t| t.parse().map_err(|_| format!("bad target {t}")))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = value()?.parse().map_err(|_| "bad --seconds")?,
            "--settle" => a.settle = value()?.parse().map_err(|_| "bad --settle")?,
            "--size" => a.size = value()?.parse().map_err(|e| format!("{e}"))?,
            "--fixed" => a.fixed = true,
            "--steps" => {
                a.steps = value()?
                    .split(',')
                    .map(|s| {
                        let (k, u) = s.split_once(':').ok_or(format!("bad step {s}"))?;
                        Ok((
                            k.parse().map_err(|_| format!("bad step {s}"))?,
                            u.parse().map_err(|_| format!("bad step {s}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?
            }
            "--kf-every" => a.kf_every = Some(value()?.parse().map_err(|_| "bad --kf-every")?),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("rate_accuracy: {e}");
        std::process::exit(2)
    });
    let fps = 30u32;
    if !args.steps.is_empty() {
        for &codec in &args.codecs {
            schedule(codec, &args, fps);
        }
        return;
    }
    println!(
        "codec  target_kbps  size        mean_kbps  mean_err  mean_abs_err  worst_err  dropped  keyframes  max_kf_ms  per-second errors (%)"
    );
    for &codec in &args.codecs {
        for &kbps in &args.targets_kbps {
            let target = kbps * 1000;
            let cfg = EncoderConfig {
                codec,
                size: args.size,
                fps,
                target_bps: target,
            };
            let mut enc = if args.fixed {
                AdaptiveEncoder::fixed_size(&cfg)
            } else {
                AdaptiveEncoder::new(&cfg)
            }
            .expect("open encoder");
            let mut src =
                VideoSource::open(&SourceSpec::TestPattern, args.size, fps).expect("testsrc2");
            let mut per_second = vec![0u64; args.seconds as usize];
            let (mut dropped, mut keyframes) = (0, 0);
            let mut max_kf_ms = 0.0f64;
            for i in 0..u64::from(args.seconds * fps) {
                let mut raw = src.next_frame().expect("frame");
                if args
                    .kf_every
                    .is_some_and(|s| i > 0 && i % u64::from(s * fps) == 0)
                {
                    enc.request_keyframe();
                }
                let now = Duration::from_secs_f64(i as f64 / f64::from(fps));
                let out = enc.encode(&mut raw, now, target).expect("encode");
                if let Some(c) = out.change {
                    eprintln!(
                        "  {codec} {kbps}k: {} -> {} at {:.2}s ({})",
                        c.from,
                        c.to,
                        now.as_secs_f64(),
                        c.reason
                    );
                }
                if out.dropped && i >= u64::from(args.settle * fps) {
                    dropped += 1;
                }
                for f in &out.frames {
                    per_second[(i / u64::from(fps)) as usize] += f.data.len() as u64 * 8;
                    keyframes += u32::from(f.keyframe);
                    if f.keyframe {
                        max_kf_ms =
                            max_kf_ms.max(f.data.len() as f64 * 8.0 / f64::from(target) * 1000.0);
                    }
                }
            }
            let errs: Vec<f64> = per_second[args.settle as usize..]
                .iter()
                .map(|&b| (b as f64 - f64::from(target)) / f64::from(target) * 100.0)
                .collect();
            let n = errs.len() as f64;
            let mean = errs.iter().sum::<f64>() / n;
            let mean_abs = errs.iter().map(|e| e.abs()).sum::<f64>() / n;
            let worst = errs
                .iter()
                .fold(0.0f64, |w, e| if e.abs() > w.abs() { *e } else { w });
            let mean_kbps =
                per_second[args.settle as usize..].iter().sum::<u64>() as f64 / n / 1000.0;
            let list: Vec<String> = errs.iter().map(|e| format!("{e:+.1}")).collect();
            println!(
                "{:<6} {:>11}  {:<10} {:>10.0} {:>8.1}% {:>12.1}% {:>9.1}% {:>8} {:>10} {:>10.0}  {}",
                codec.to_string(),
                kbps,
                enc.size().to_string(),
                mean_kbps,
                mean,
                mean_abs,
                worst,
                dropped,
                keyframes,
                max_kf_ms,
                list.join(" ")
            );
        }
    }
}

/// Follows `--steps`: prints every second's target, output, size and drops, and each change.
fn schedule(codec: Codec, args: &Args, fps: u32) {
    let target_at = |second: u32| {
        args.steps
            .iter()
            .find(|(_, until)| second < *until)
            .map(|(k, _)| k * 1000)
    };
    let Some(first) = target_at(0) else { return };
    let cfg = EncoderConfig {
        codec,
        size: args.size,
        fps,
        target_bps: first,
    };
    let mut enc = AdaptiveEncoder::new(&cfg).expect("open encoder");
    let mut src = VideoSource::open(&SourceSpec::TestPattern, args.size, fps).expect("testsrc2");
    println!("{codec}: second  target_kbps  output_kbps  err  size  dropped");
    let mut second = 0;
    while let Some(target) = target_at(second) {
        let (mut bits, mut dropped) = (0u64, 0);
        for i in 0..fps {
            let n = u64::from(second * fps + i);
            let now = Duration::from_secs_f64(n as f64 / f64::from(fps));
            let out = enc
                .encode(&mut src.next_frame().expect("frame"), now, target)
                .expect("encode");
            if let Some(c) = out.change {
                println!(
                    "{codec}:   change at {:.2} s: {} -> {} ({}, target {} kbps)",
                    now.as_secs_f64(),
                    c.from,
                    c.to,
                    c.reason,
                    c.target_bps / 1000
                );
            }
            dropped += u32::from(out.dropped);
            bits += out
                .frames
                .iter()
                .map(|f| f.data.len() as u64 * 8)
                .sum::<u64>();
        }
        println!(
            "{codec}: {second:>6}  {:>11}  {:>11.0}  {:+5.1}%  {}  {dropped}",
            target / 1000,
            bits as f64 / 1000.0,
            (bits as f64 - f64::from(target)) / f64::from(target) * 100.0,
            enc.size()
        );
        second += 1;
    }
}
