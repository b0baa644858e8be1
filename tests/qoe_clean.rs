//! Receiver QoE on a clean Rust→Rust run, once per codec: a `qoe` line every second, glass-to-
//! glass latency for every decoded frame, and PSNR above 35 dB against the regenerated source
//! (issue 5's test).

use rtclab_events::{Event, PeerRole};
use rtclab_media::Codec;
use rtclab_tests::{of, run_short, scenario};

/// Long enough for a few `qoe` lines after the first second's keyframe backlog, short for CI.
const DURATION_S: f64 = 5.0;

/// Generous bound on the median glass-to-glass latency, ms. Measured on this 2-core machine in
/// debug builds: 37 ms (H.264) and 44 ms (VP8) at 720p30 — one frame interval of pacing and
/// encode/decode time. 150 ms leaves room for a loaded CI machine, and still fails on what this
/// test is for: a capture time from the wrong clock or anchor (off by seconds), or latency
/// piling up in a queue (the pacer bug of issue 2 kept ~700 ms).
const G2G_P50_BOUND_MS: f64 = 150.0;

/// Issue 5: PSNR of a clean run above 35 dB. A frame compared against the wrong source index
/// scores ~26 dB on the moving test pattern (720p, neighbouring frames), so this also checks
/// that the index is carried right.
const PSNR_MIN_DB: f64 = 35.0;

async fn qoe_run(codec: Codec, name: &str) {
    let run = run_short(name, scenario("clean"), DURATION_S, |req| {
        req.codec = Some(codec)
    })
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);
    let qoe: Vec<_> = of(&records, PeerRole::Receiver, "qoe")
        .into_iter()
        .filter_map(|r| match &r.event {
            Event::Qoe(q) => Some(q.clone()),
            _ => None,
        })
        .collect();

    // One line per second (the last one may close a partial second).
    assert!(
        qoe.len() as f64 >= DURATION_S - 1.0,
        "{name}: {} qoe lines in {DURATION_S} s",
        qoe.len()
    );
    let decoded: u64 = qoe.iter().map(|q| q.frames_decoded).sum();
    assert_eq!(
        decoded, s.frames_decoded,
        "{name}: qoe frames ≠ media.stats"
    );

    // Every frame carries abs-capture-time, so every decoded frame has a latency, and each is
    // positive: decoded after it was captured, on one wall clock.
    let g2g: Vec<f64> = qoe.iter().flat_map(|q| q.g2g_ms.iter().copied()).collect();
    assert!(
        g2g.len() as f64 >= 0.95 * s.frames_decoded as f64,
        "{name}: latency for {} of {} decoded frames",
        g2g.len(),
        s.frames_decoded
    );
    // rtclab stamps every frame: nothing is extrapolated.
    let interpolated: u32 = qoe.iter().map(|q| q.g2g_interpolated).sum();
    assert_eq!(
        interpolated, 0,
        "{name}: rtclab's sender left frames unstamped"
    );
    assert!(
        g2g.iter().all(|v| *v > 0.0),
        "{name}: a frame decoded before its capture time: {g2g:?}"
    );
    let p50 = s.g2g_p50_ms.expect("g2g p50 in the summary");
    assert!(
        p50 < G2G_P50_BOUND_MS,
        "{name}: glass-to-glass p50 {p50} ms (bound {G2G_P50_BOUND_MS} ms)"
    );

    // Quality against the regenerated testsrc2 frames.
    let psnr = s.psnr_mean_db.expect("PSNR in the summary");
    let ssim = s.ssim_mean.expect("SSIM in the summary");
    assert!(psnr > PSNR_MIN_DB, "{name}: mean PSNR {psnr} dB");
    assert!(ssim > 0.9 && ssim < 1.0, "{name}: mean SSIM {ssim}");
    // Every 3rd frame is scored; a busy machine may skip some, but not most.
    assert!(
        s.scored_frames as f64 >= 0.5 * s.frames_decoded as f64 / 3.0,
        "{name}: only {} of {} frames scored",
        s.scored_frames,
        s.frames_decoded
    );
    for q in &qoe {
        if let Some(p) = q.psnr_db {
            assert!(p > 30.0, "{name}: a second at {p} dB: {q:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_h264_run_has_low_latency_and_psnr_above_35_db() {
    qoe_run(Codec::H264, "qoe-h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_vp8_run_has_low_latency_and_psnr_above_35_db() {
    qoe_run(Codec::Vp8, "qoe-vp8").await;
}
