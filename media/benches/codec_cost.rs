//! What one video frame costs the CPU (not a timed test; `./lab bench` prints it).
//!
//! `cargo bench -p rtclab-media --bench codec_cost` takes 300 frames of the `testsrc2` pattern
//! at 720p30 and 360p30, encodes them with the same H.264 and VP8 encoders a session uses (one
//! thread each, x264 `ultrafast`/`zerolatency`, a fixed target) and decodes them again, timing
//! each step per frame. It prints the median and 95th percentile, the sender's CPU per 30 fps
//! stream (source + encode), and the receiver's (decode).
//!
//! These are the figures behind the fixed per-frame costs a virtual-time run models
//! (`rtclab_peer::config::CodecCost`): CPU work takes no virtual time, so the model adds it
//! back, and this bench is how to check the model against the machine.

use std::time::{Duration, Instant};

use rtclab_media::encoder::{Encoder, EncoderConfig};
use rtclab_media::{Codec, Decoder, Resolution, SourceSpec, VideoSource};

const FRAMES: usize = 300;
const FPS: u32 = 30;

/// Per-frame times of one pass, ms.
#[derive(Default)]
struct Times {
    source: Vec<f64>,
    encode: Vec<f64>,
    decode: Vec<f64>,
    bytes: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn pass(codec: Codec, size: Resolution, target_bps: u32) -> Result<Times, String> {
    let mut source =
        VideoSource::open(&SourceSpec::TestPattern, size, FPS).map_err(|e| e.to_string())?;
    let mut encoder = Encoder::new(&EncoderConfig {
        codec,
        size,
        fps: FPS,
        target_bps,
    })
    .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new(codec).map_err(|e| e.to_string())?;
    let mut t = Times::default();
    for _ in 0..FRAMES {
        let start = Instant::now();
        let mut raw = source.next_frame().map_err(|e| e.to_string())?;
        let generated = Instant::now();
        let frames = encoder.encode(&mut raw).map_err(|e| e.to_string())?;
        let encoded = Instant::now();
        t.source.push(ms(generated - start));
        t.encode.push(ms(encoded - generated));
        for f in frames {
            t.bytes += f.data.len();
            let before = Instant::now();
            decoder.decode(&f.data).map_err(|e| e.to_string())?;
            t.decode.push(ms(before.elapsed()));
        }
    }
    Ok(t)
}

fn main() {
    println!(
        "codec cost per frame, {FRAMES} frames of testsrc2 at {FPS} fps, one thread per codec (ms: median / p95)"
    );
    println!(
        "{:<6} {:<6} {:>9} {:>15} {:>15} {:>15} {:>13} {:>13}",
        "codec", "size", "target", "source", "encode", "decode", "sender CPU", "receiver CPU"
    );
    let cases = [
        (Codec::H264, 1280, 720, 1_500_000),
        (Codec::H264, 640, 360, 600_000),
        (Codec::Vp8, 1280, 720, 1_500_000),
        (Codec::Vp8, 640, 360, 600_000),
    ];
    for (codec, width, height, target) in cases {
        let size = Resolution { width, height };
        match pass(codec, size, target) {
            Ok(t) => {
                // Cores one 30 fps stream keeps busy: the mean cost per frame times the rate.
                let sender = (mean(&t.source) + mean(&t.encode)) * f64::from(FPS) / 1000.0;
                let receiver = mean(&t.decode) * f64::from(FPS) / 1000.0;
                println!(
                    "{:<6} {:<6} {:>6.1} Mb {:>6.2} / {:>6.2} {:>6.2} / {:>6.2} {:>6.2} / {:>6.2} {:>8.3} cores {:>8.3} cores",
                    codec.to_string(),
                    format!("{height}p"),
                    f64::from(target) / 1e6,
                    percentile(&t.source, 50.0),
                    percentile(&t.source, 95.0),
                    percentile(&t.encode, 50.0),
                    percentile(&t.encode, 95.0),
                    percentile(&t.decode, 50.0),
                    percentile(&t.decode, 95.0),
                    sender,
                    receiver,
                );
                let sent = t.bytes as f64 * 8.0 / (FRAMES as f64 / f64::from(FPS));
                // The unit of rtclab_peer::config::CodecCost, the virtual-time model.
                let mp = f64::from(width) * f64::from(height) / 1e6;
                println!(
                    "{:<14} encoded at {:.2} Mbit/s; medians per megapixel: encode {:.2} ms/MP, decode {:.2} ms/MP",
                    "",
                    sent / 1e6,
                    percentile(&t.encode, 50.0) / mp,
                    percentile(&t.decode, 50.0) / mp,
                );
            }
            Err(e) => println!("{codec} {height}p: failed: {e}"),
        }
    }
}
