//! PSNR/SSIM are reported as absent, never guessed, when the receiver cannot know the source:
//! a file source carries no testsrc2 frame tag. Glass-to-glass latency is still measured.

use rtclab_events::{Event, PeerRole};
use rtclab_media::{
    Codec, EncodedFrame, Encoder, EncoderConfig, Resolution, SourceSpec, VideoSource,
};
use rtclab_tests::{of, out_dir, run_short, scenario};
use std::path::Path;

/// Writes `n` VP8 frames of a 160x120 pattern as an IVF file (32-byte header, 12 per frame).
fn write_clip(path: &Path, n: usize) {
    let size = Resolution::new(160, 120);
    let mut src = VideoSource::open(&SourceSpec::TestPattern, size, 30).expect("pattern");
    let mut enc = Encoder::new(&EncoderConfig {
        codec: Codec::Vp8,
        size,
        fps: 30,
        target_bps: 300_000,
    })
    .expect("encoder");
    let frames: Vec<EncodedFrame> = (0..n)
        .flat_map(|_| {
            enc.encode(&mut src.next_frame().expect("frame"))
                .expect("encode")
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"DKIF");
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"VP80");
    out.extend_from_slice(&160u16.to_le_bytes());
    out.extend_from_slice(&120u16.to_le_bytes());
    out.extend_from_slice(&30u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for f in &frames {
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&f.frame_index.to_le_bytes());
        out.extend_from_slice(&f.data);
    }
    std::fs::write(path, out).expect("write clip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_gives_no_psnr_but_latency() {
    // The clip lives in a folder of its own: the run's folder is emptied when the run starts.
    let clip = out_dir("qoe-file-source-clip").join("clip.ivf");
    write_clip(&clip, 30);
    let mut sc = scenario("clean");
    sc.source = Some(clip);
    let run = run_short("qoe-file-source", sc, 3.0, |req| {
        req.codec = Some(Codec::H264)
    })
    .await;
    let s = &run.outcome.summary;
    assert!(
        s.frames_decoded > 30,
        "only {} frames decoded",
        s.frames_decoded
    );
    let records = &run.records;
    let qoe = of(records, PeerRole::Receiver, "qoe");
    assert!(qoe.len() >= 2, "{} qoe lines", qoe.len());
    for r in &qoe {
        let Event::Qoe(q) = &r.event else {
            unreachable!()
        };
        assert_eq!(
            (q.scored_frames, q.psnr_db, q.ssim),
            (0, None, None),
            "{q:?}"
        );
    }
    assert_eq!(
        (s.psnr_mean_db, s.ssim_mean, s.scored_frames),
        (None, None, 0)
    );
    assert!(s.g2g_p50_ms.is_some(), "latency needs no known source");
}
