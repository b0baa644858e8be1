//! A PLI from the receiver makes the sender's very next frame a keyframe.

use rtclab_events::{Direction, Event, KeyframeReason, PeerRole, Rtcp};
use rtclab_media::Codec;
use rtclab_tests::{TestRun, run_short, scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pli_gets_a_keyframe_within_one_frame_interval() {
    let clean = scenario("clean");
    let frame_ms = 1000.0 / f64::from(clean.fps);
    let TestRun { records, .. } = run_short("keyframe-on-pli", clean, 6.0, |req| {
        req.codec = Some(Codec::H264);
        req.pli_interval = Some(Duration::from_millis(1500));
    })
    .await;

    let plis_in: Vec<f64> = records
        .iter()
        .filter(|r| r.peer == PeerRole::Sender)
        .filter(|r| {
            matches!(
                &r.event,
                Event::Rtcp {
                    direction: Direction::In,
                    packet: Rtcp::Pli { .. }
                }
            )
        })
        .map(|r| r.t)
        .collect();
    let keyframes: Vec<(f64, f64, u64)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::EncoderKeyframe {
                reason,
                after_request_ms,
                frame_index,
            } if *reason == KeyframeReason::Pli => {
                Some((r.t, after_request_ms.unwrap_or(f64::INFINITY), *frame_index))
            }
            _ => None,
        })
        .collect();
    assert!(plis_in.len() >= 2, "the sender saw {} PLIs", plis_in.len());
    assert!(
        keyframes.len() >= plis_in.len() - 1,
        "{} PLIs but {} PLI keyframes",
        plis_in.len(),
        keyframes.len()
    );
    // From the PLI's arrival, the next frame tick is at most one frame interval away; encoding a
    // forced 720p keyframe takes a few ms more (x264 2–6 ms measured, see
    // docs/notes/ffmpeg.md#keyframes-on-demand). 20 ms of allowance covers that on a loaded
    // 2-core CI machine without admitting a second frame.
    for (t, after, index) in &keyframes {
        assert!(
            *after <= frame_ms + 20.0,
            "keyframe {index} at t={t} came {after:.1} ms after the PLI (frame interval {frame_ms:.1} ms)"
        );
    }
    // And no keyframe was produced without a reason: every keyframe the encoder reports in its
    // per-second rate lines has an `encoder.keyframe` line saying why (start, a PLI, a probe the
    // congestion controller asked for, or a resolution change).
    let total_keyframes: u64 = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::EncoderRate { keyframes, .. } => Some(u64::from(*keyframes)),
            _ => None,
        })
        .sum();
    // (A reason other than start, pli, fir, probe or resize would not even parse: the log's
    // schema has a closed set of them, `KeyframeReason`.)
    let reasons: Vec<KeyframeReason> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::EncoderKeyframe { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        total_keyframes,
        reasons.len() as u64,
        "keyframes without a logged reason: {reasons:?}"
    );
}
