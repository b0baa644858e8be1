//! Encoder behaviour read back from the output: rate following, keyframes, bitstream format.

use super::*;
use crate::{SourceSpec, VideoSource};

fn encoder(codec: Codec, size: Resolution, fps: u32, target_bps: u32) -> Encoder {
    Encoder::new(&EncoderConfig {
        codec,
        size,
        fps,
        target_bps,
    })
    .expect("open encoder")
}

fn pattern(size: Resolution, fps: u32) -> VideoSource {
    VideoSource::open(&SourceSpec::TestPattern, size, fps).expect("open testsrc2")
}

/// Encodes `frames` frames of testsrc2, calling `before(frame_index, encoder)` before each one,
/// and returns every output.
fn run(
    enc: &mut Encoder,
    frames: u64,
    mut before: impl FnMut(u64, &mut Encoder),
) -> Vec<EncodedFrame> {
    let cfg = *enc.config();
    let mut src = pattern(cfg.size, cfg.fps);
    let mut out = Vec::new();
    for i in 0..frames {
        before(i, enc);
        let mut raw = src.next_frame().expect("source frame");
        let encoded = enc.encode(&mut raw).expect("encode");
        assert_eq!(
            encoded.len(),
            1,
            "{}: frame {i} gave {} outputs",
            cfg.codec,
            encoded.len()
        );
        out.extend(encoded);
    }
    out
}

fn keyframe_indices(out: &[EncodedFrame]) -> Vec<u64> {
    out.iter()
        .filter(|f| f.keyframe)
        .map(|f| f.frame_index)
        .collect()
}

/// (a) Per-second output bitrate follows 1.5 Mbps -> 500 kbps -> 1 Mbps at 640x360/30, over
/// 10 s (shorter than H.264's 10 s keyframe interval, so only frame 0 is a keyframe).
fn follows_target(codec: Codec) {
    const FPS: usize = 30;
    const SEGMENT: usize = 100;
    let targets = [1_500_000u32, 500_000, 1_000_000];
    let mut enc = encoder(codec, Resolution::new(640, 360), FPS as u32, targets[0]);
    let out = run(&mut enc, (targets.len() * SEGMENT) as u64, |i, e| {
        if (i as usize).is_multiple_of(SEGMENT) {
            e.set_target_bps(targets[i as usize / SEGMENT]);
        }
    });
    let mut worst = 0.0f64;
    let mut report = Vec::new();
    for (seg, &target) in targets.iter().enumerate() {
        // Every whole second after a change is reported; the first is the settling time (and
        // holds the first keyframe), so the bound applies from the second one on.
        for second in 0..SEGMENT / FPS {
            let start = seg * SEGMENT + second * FPS;
            let bits: usize = out[start..start + FPS]
                .iter()
                .map(|f| f.data.len() * 8)
                .sum();
            let err = (bits as f64 - f64::from(target)) / f64::from(target);
            if second > 0 {
                worst = worst.max(err.abs());
            }
            report.push(format!("{}k+{second}s:{:+.1}%", target / 1000, err * 100.0));
        }
    }
    eprintln!("{codec} per-second bitrate error: {}", report.join(" "));
    assert!(
        worst <= 0.25,
        "{codec}: worst per-second error {:.1}% > 25%",
        worst * 100.0
    );
    assert_eq!(
        keyframe_indices(&out),
        vec![0],
        "{codec}: rate changes produced keyframes"
    );
}

#[test]
fn h264_follows_target_bitrate() {
    follows_target(Codec::H264);
}

#[test]
fn vp8_follows_target_bitrate() {
    follows_target(Codec::Vp8);
}

/// (b) A request makes the very next output a keyframe; none come otherwise but the first.
fn keyframes_on_request(codec: Codec) {
    let requests = [20u64, 45, 46, 80];
    let mut enc = encoder(codec, Resolution::new(320, 240), 30, 400_000);
    let out = run(&mut enc, 100, |i, e| {
        if requests.contains(&i) {
            e.request_keyframe();
        }
    });
    let mut expected = vec![0];
    expected.extend(requests);
    assert_eq!(keyframe_indices(&out), expected, "{codec}");
    let indices: Vec<u64> = out.iter().map(|f| f.frame_index).collect();
    assert_eq!(
        indices,
        (0..100).collect::<Vec<_>>(),
        "{codec}: frame indices"
    );
}

#[test]
fn h264_keyframes_only_on_request() {
    keyframes_on_request(Codec::H264);
}

#[test]
fn vp8_keyframes_only_on_request() {
    keyframes_on_request(Codec::Vp8);
}

/// (c) Changing the target on every few frames never produces a keyframe.
fn rate_changes_without_keyframes(codec: Codec) {
    let mut enc = encoder(codec, Resolution::new(320, 240), 30, 300_000);
    let out = run(&mut enc, 90, |i, e| {
        if i % 5 == 4 {
            // Alternate between far-apart targets, as a congestion controller backing off would.
            e.set_target_bps(if (i / 5) % 2 == 0 { 150_000 } else { 900_000 });
        }
    });
    assert_eq!(enc.target_bps(), 900_000);
    assert_eq!(keyframe_indices(&out), vec![0], "{codec}");
}

#[test]
fn h264_rate_changes_do_not_force_keyframes() {
    rate_changes_without_keyframes(Codec::H264);
}

#[test]
fn vp8_rate_changes_do_not_force_keyframes() {
    rate_changes_without_keyframes(Codec::Vp8);
}

/// NAL unit types of an Annex-B access unit, in order.
fn nal_types(au: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            types.push(au[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[test]
fn h264_is_annex_b_constrained_baseline_with_headers_on_every_idr() {
    let mut enc = encoder(Codec::H264, Resolution::new(320, 240), 30, 300_000);
    let out = run(&mut enc, 30, |i, e| {
        if i == 15 {
            e.request_keyframe();
        }
    });
    for f in &out {
        assert!(
            f.data.starts_with(&[0, 0, 0, 1]) || f.data.starts_with(&[0, 0, 1]),
            "Annex-B"
        );
        let types = nal_types(&f.data);
        let has_headers = types.contains(&7) && types.contains(&8);
        assert_eq!(
            types.contains(&5),
            f.keyframe,
            "IDR iff keyframe: {types:?}"
        );
        assert_eq!(has_headers, f.keyframe, "SPS/PPS iff keyframe: {types:?}");
    }
    // SPS: profile_idc 66 (Baseline) with constraint_set1 = Constrained Baseline, level 3.1,
    // i.e. what SDP profile-level-id 42e01f (or 42c01f) announces.
    let first = &out[0].data;
    let sps = first
        .windows(4)
        .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
        .map(|p| &first[p + 4..p + 7])
        .expect("SPS in first frame");
    eprintln!(
        "SPS profile-level-id: {:02x}{:02x}{:02x}",
        sps[0], sps[1], sps[2]
    );
    assert_eq!(sps[0], 66, "profile_idc");
    assert!(sps[1] & 0x40 != 0, "constraint_set1_flag");
    assert_eq!(sps[2], 31, "level_idc");
}

#[test]
fn vp8_frames_have_key_flag_in_header() {
    let mut enc = encoder(Codec::Vp8, Resolution::new(320, 240), 30, 300_000);
    let out = run(&mut enc, 10, |i, e| {
        if i == 5 {
            e.request_keyframe();
        }
    });
    for f in &out {
        // RFC 6386 9.1: bit 0 of the first byte is 0 for key frames; key frames carry the
        // start code 9d 01 2a and the size.
        assert_eq!(f.data[0] & 1 == 0, f.keyframe, "frame {}", f.frame_index);
        if f.keyframe {
            assert_eq!(&f.data[3..6], &[0x9d, 0x01, 0x2a]);
            assert_eq!(u16::from_le_bytes([f.data[6], f.data[7]]) & 0x3fff, 320);
            assert_eq!(u16::from_le_bytes([f.data[8], f.data[9]]) & 0x3fff, 240);
        }
    }
}

#[test]
fn rejects_bad_configs_and_frames() {
    let bad = |cfg: EncoderConfig| Encoder::new(&cfg).err().map(|e| e.to_string());
    let ok = EncoderConfig {
        codec: Codec::Vp8,
        size: Resolution::new(320, 240),
        fps: 30,
        target_bps: 300_000,
    };
    assert!(
        bad(EncoderConfig {
            target_bps: 0,
            ..ok
        })
        .unwrap()
        .contains("target bitrate")
    );
    assert!(
        bad(EncoderConfig { fps: 0, ..ok })
            .unwrap()
            .contains("frame rate")
    );
    assert!(
        bad(EncoderConfig {
            size: Resolution::new(321, 240),
            ..ok
        })
        .unwrap()
        .contains("odd")
    );

    let mut enc = encoder(Codec::H264, Resolution::new(320, 240), 30, 300_000);
    let mut other = pattern(Resolution::new(160, 120), 30).next_frame().unwrap();
    let err = enc.encode(&mut other).unwrap_err();
    assert!(matches!(err, MediaError::FrameMismatch { .. }), "{err}");
    // Out-of-range targets are clamped rather than refused: they come from a controller.
    enc.set_target_bps(1);
    assert_eq!(enc.target_bps(), MIN_TARGET_BPS);
}
