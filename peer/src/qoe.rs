//! Receiver quality of experience: what the sender stamps on each frame (capture time, source
//! frame index) and what the receiver makes of it (glass-to-glass latency, PSNR/SSIM).
//!
//! # The clock behind glass-to-glass latency
//!
//! The sender stamps the first RTP packet of every frame with the **abs-capture-time** header
//! extension (<http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time>: a 64-bit
//! UQ32.32 NTP timestamp of when the frame was captured). "Captured" is the moment the frame left
//! the source, read from the session's webrtc-rs `Runtime` clock (monotonic; virtual in tests).
//! A monotonic instant has no absolute meaning, so it is mapped to NTP through one [`WallAnchor`]:
//! the wall clock (`SystemTime`) read once, next to the runtime clock, when the session's media
//! loops start; after that NTP = anchor wall time + runtime time elapsed since the anchor.
//! The receiver maps its decode instant to NTP the same way, and g2g = decode NTP − capture NTP.
//!
//! This is only meaningful because **both peers run on one machine**, so they share one wall
//! clock: in `rtclab run` both peers are in one process and share the very same anchor (the
//! latency is then exact up to the runtime clock's resolution); two `rtclab peer` processes, or
//! Chromium as the sender (libwebrtc stamps NTP from its own reading of the same wall clock), agree
//! up to how far the wall clock was slewed between the two anchors' readings — microseconds to
//! milliseconds on a machine that is not stepping its clock. Across machines the number would
//! include their clock offset, and rtclab does not try to correct that.
//!
//! # The source frame index
//!
//! To score a decoded frame the receiver needs the exact source picture. The default source,
//! `testsrc2`, is deterministic per frame index, so the sender also stamps the first packet of
//! every frame with an rtclab-specific extension, [`TESTSRC_FRAME_URI`]: the frame's index in
//! the source and the source's size and rate (9 bytes, [`SourceTag`]). It is sent only when the
//! source *is* `testsrc2`; the receiver regenerates that frame (`rtclab_media::quality::Reference`)
//! and compares. A file source, or a sender that is not rtclab (Chromium never negotiates an
//! unknown URI), gives no tag, and PSNR/SSIM are reported as absent, never guessed. Carrying the
//! index in the stream (rather than deriving it from RTP timestamps) keeps it right when the
//! encoder drops frames and needs nothing from the session.

use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpHeaderExtensionCapability, RTCRtpHeaderExtensionParameters, RtpCodecKind,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use webrtc::runtime::Runtime;

/// The abs-capture-time RTP header extension (libwebrtc's
/// `docs/native-code/rtp-hdrext/abs-capture-time`).
pub const ABS_CAPTURE_TIME_URI: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// rtclab's own extension: "this frame is `testsrc2` frame N of a W×H source at F fps".
pub const TESTSRC_FRAME_URI: &str = "urn:rtclab:rtp-hdrext:testsrc2-frame";

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970) (RFC 5905 §6).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// RTP clock rate of video (RFC 3551 §5: 90 kHz for all video payload formats rtclab uses).
const VIDEO_CLOCK_HZ: f64 = 90_000.0;

/// Registers both extensions for video, so they are offered and accepted on both peers.
pub fn register_extensions(media_engine: &mut MediaEngine) -> Result<(), webrtc::error::Error> {
    for uri in [ABS_CAPTURE_TIME_URI, TESTSRC_FRAME_URI] {
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )?;
    }
    Ok(())
}

/// Unix time to a 64-bit UQ32.32 NTP timestamp (RFC 5905 §6; wraps in 2036 as NTP era 0 does).
pub fn unix_to_ntp(unix: Duration) -> u64 {
    let secs = (unix.as_secs() + NTP_UNIX_OFFSET_S) & 0xffff_ffff;
    let frac = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// NTP `later − earlier` in milliseconds, signed (a capture stamped after the decode is
/// negative, which would mean the two clocks disagree).
pub fn ntp_diff_ms(later: u64, earlier: u64) -> f64 {
    (later.wrapping_sub(earlier) as i64) as f64 / 4_294_967_296.0 * 1000.0
}

/// Age after which a new media loop takes a fresh [`WallAnchor`] (sessions of `rtclab run` are
/// far shorter; the demo may run for hours).
pub const ANCHOR_MAX_AGE: Duration = Duration::from_secs(600);

/// Maps runtime-clock instants to NTP through one reading of the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallAnchor {
    /// The runtime instant of the reading.
    pub at: Instant,
    /// The wall clock at that instant, since the Unix epoch.
    pub unix: Duration,
}

impl WallAnchor {
    /// The process's current anchor: the runtime clock and the wall clock read side by side
    /// when a media loop starts and the last anchor is older than [`ANCHOR_MAX_AGE`] (or there is
    /// none). Both peers of an in-process session start within a second of each other, so they
    /// share one anchor and map time identically; a long-lived process (`rtclab demo`) takes a
    /// fresh one for a later session, so runtime-clock drift against the wall clock (what NTP
    /// slewing corrects) never accumulates over hours.
    pub fn process(runtime: &dyn Runtime) -> WallAnchor {
        static ANCHOR: Mutex<Option<WallAnchor>> = Mutex::new(None);
        let now = runtime.now();
        let mut slot = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
        match *slot {
            Some(a) if now.saturating_duration_since(a.at) < ANCHOR_MAX_AGE => a,
            _ => {
                let a = WallAnchor {
                    at: now,
                    // The one wall-clock reading, outside the per-frame path.
                    unix: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default(),
                };
                *slot = Some(a);
                a
            }
        }
    }

    /// `t` as a UQ32.32 NTP timestamp.
    pub fn ntp(&self, t: Instant) -> u64 {
        let unix = if t >= self.at {
            self.unix + (t - self.at)
        } else {
            self.unix.saturating_sub(self.at - t)
        };
        unix_to_ntp(unix)
    }
}

/// The negotiated one-byte extension ids (RFC 8285 §4.2) rtclab uses, if negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtIds {
    /// abs-capture-time.
    pub abs_capture_time: Option<u8>,
    /// rtclab's testsrc2 frame tag.
    pub testsrc_frame: Option<u8>,
}

impl ExtIds {
    /// Picks rtclab's extensions out of negotiated RTP parameters (ids above 14 are unusable
    /// with the one-byte header and ignored).
    pub fn from_params<'a>(
        exts: impl IntoIterator<Item = &'a RTCRtpHeaderExtensionParameters>,
    ) -> Self {
        let mut ids = ExtIds::default();
        for e in exts {
            let id = u8::try_from(e.id).ok().filter(|id| (1..=14).contains(id));
            if e.uri == ABS_CAPTURE_TIME_URI {
                ids.abs_capture_time = ids.abs_capture_time.or(id);
            } else if e.uri == TESTSRC_FRAME_URI {
                ids.testsrc_frame = ids.testsrc_frame.or(id);
            }
        }
        ids
    }
}

/// A `testsrc2` frame: its index and the source it came from (the extension's 9 bytes: index
/// u32, width u16, height u16, fps u8, big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTag {
    /// Frame index in the source (wraps after 2³² frames, 4.5 years at 30 fps).
    pub index: u32,
    /// Source width.
    pub width: u16,
    /// Source height.
    pub height: u16,
    /// Source frame rate.
    pub fps: u8,
}

impl SourceTag {
    /// The extension payload.
    pub fn encode(&self) -> [u8; 9] {
        let mut b = [0u8; 9];
        b[0..4].copy_from_slice(&self.index.to_be_bytes());
        b[4..6].copy_from_slice(&self.width.to_be_bytes());
        b[6..8].copy_from_slice(&self.height.to_be_bytes());
        b[8] = self.fps;
        b
    }

    /// Parses the extension payload (`None` if it is not 9 bytes or names an empty source).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; 9] = b.try_into().ok()?;
        let tag = SourceTag {
            index: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            width: u16::from_be_bytes([b[4], b[5]]),
            height: u16::from_be_bytes([b[6], b[7]]),
            fps: b[8],
        };
        (tag.width > 0 && tag.height > 0 && tag.fps > 0).then_some(tag)
    }
}

/// Stamps the first packet of a frame with its capture time and, for `testsrc2`, its index.
pub fn stamp_first_packet(
    packet: &mut Packet,
    ids: ExtIds,
    capture_ntp: u64,
    source: Option<SourceTag>,
) {
    if let Some(id) = ids.abs_capture_time {
        // Only the 8-byte form: the optional estimated capture clock offset is for mixers.
        let payload = bytes::Bytes::copy_from_slice(&capture_ntp.to_be_bytes());
        if let Err(e) = packet.header.set_extension(id, payload) {
            tracing::debug!("abs-capture-time: {e}");
        }
    }
    if let (Some(id), Some(tag)) = (ids.testsrc_frame, source) {
        let payload = bytes::Bytes::copy_from_slice(&tag.encode());
        if let Err(e) = packet.header.set_extension(id, payload) {
            tracing::debug!("testsrc2 frame tag: {e}");
        }
    }
}

/// What the receiver knows about one frame (by RTP timestamp) from its packets' extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Capture time, NTP UQ32.32, from abs-capture-time (or interpolated, see [`FrameTags`]).
    pub capture_ntp: Option<u64>,
    /// The `testsrc2` frame, if the sender tagged it.
    pub source: Option<SourceTag>,
    /// True when `capture_ntp` was extrapolated from an earlier frame's stamp.
    pub interpolated: bool,
}

/// Frames older than this many RTP timestamps behind the newest are forgotten.
const TAG_HORIZON: usize = 512;

/// Collects extensions per RTP timestamp as packets arrive, for the decoder to look up.
///
/// libwebrtc does not stamp every frame: it sends abs-capture-time when the capture time
/// cannot be extrapolated from the last one sent within 1 ms, and at least once a second
/// (`AbsoluteCaptureTimeSender`). Receivers interpolate, as libwebrtc's
/// `AbsoluteCaptureTimeInterpolator` does: capture = last stamped capture + RTP timestamp
/// difference / 90 kHz, for up to [`INTERPOLATION_LIMIT`] from the last stamp (either way).
#[derive(Debug, Default)]
pub struct FrameTags {
    ids: ExtIds,
    frames: BTreeMap<u32, FrameInfo>,
    last_stamp: Option<(u32, u64)>,
}

/// How far past the last stamped frame a capture time is extrapolated (libwebrtc: 5 s).
pub const INTERPOLATION_LIMIT: Duration = Duration::from_secs(5);

impl FrameTags {
    /// Reads extensions with the negotiated `ids`.
    pub fn new(ids: ExtIds) -> Self {
        FrameTags {
            ids,
            ..Default::default()
        }
    }

    /// Whether any extension rtclab reads was negotiated.
    pub fn enabled(&self) -> bool {
        self.ids.abs_capture_time.is_some() || self.ids.testsrc_frame.is_some()
    }

    /// Notes one packet's extensions.
    pub fn on_packet(&mut self, packet: &Packet) {
        let ts = packet.header.timestamp;
        let capture = self
            .ids
            .abs_capture_time
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|p| p.get(..8).and_then(|b| b.try_into().ok()))
            .map(u64::from_be_bytes);
        let source = self
            .ids
            .testsrc_frame
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|p| SourceTag::decode(&p));
        if capture.is_none() && source.is_none() {
            return;
        }
        let e = self.frames.entry(ts).or_default();
        if let Some(c) = capture {
            e.capture_ntp = Some(c);
            self.last_stamp = Some((ts, c));
        }
        e.source = e.source.or(source);
        while self.frames.len() > TAG_HORIZON {
            self.frames.pop_first();
        }
    }

    /// What is known about the frame with RTP timestamp `ts` (forgets it and older frames).
    pub fn take(&mut self, ts: u32) -> FrameInfo {
        let mut info = self.frames.remove(&ts).unwrap_or_default();
        // RTP timestamps wrap; forget only entries "before" ts in serial-number order.
        self.frames
            .retain(|&k, _| (k.wrapping_sub(ts) as i32) > 0 && k.wrapping_sub(ts) < 1 << 30);
        if info.capture_ntp.is_none()
            && let Some((stamp_ts, stamp_ntp)) = self.last_stamp
        {
            let dt_s = f64::from(ts.wrapping_sub(stamp_ts) as i32) / VIDEO_CLOCK_HZ;
            // Backwards too: the sample builder releases a frame only when the next frame's
            // first packet arrives, so that packet's stamp is often the latest one known.
            let limit = INTERPOLATION_LIMIT.as_secs_f64();
            if (-limit..=limit).contains(&dt_s) {
                let dt_ntp = (dt_s * 4_294_967_296.0).round() as i64 as u64;
                info.capture_ntp = Some(stamp_ntp.wrapping_add(dt_ntp));
                info.interpolated = true;
            }
        }
        info
    }
}

/// Every how many source frames one is scored (PSNR/SSIM), counted by source index.
///
/// Measured cost per scored 720p frame (`cargo run -p rtclab-media --example quality_cost`, dev
/// profile as in the tests): PSNR-Y 0.6 ms + SSIM-Y 2.4 ms. Regenerating the `testsrc2`
/// reference (1.6 ms) is paid for *every* frame whatever N is, because a libavfilter source
/// cannot seek. Scoring every 3rd frame keeps the whole quality thread near 80 ms of CPU per
/// second at 30 fps (about 8 % of one of this machine's two cores, next to the encoder and
/// decoder), and still averages 10 frames a second — every frame type and position in the
/// GOP is sampled, since 3 does not divide the keyframe pattern in any regular way.
pub const SCORE_EVERY: u32 = 3;

/// Scoring jobs that may wait for the quality thread; more are dropped (and counted as not
/// scored), so a slow machine loses samples, not real time.
const QUALITY_QUEUE: usize = 4;

/// QoE samples of the current second, drained once a second into a `qoe` event.
#[derive(Debug, Default, Clone)]
pub struct QoeSecond {
    /// Glass-to-glass latency of each decoded frame with a capture time, ms.
    pub g2g_ms: Vec<f64>,
    /// How many of those capture times were extrapolated (the frame itself had no stamp).
    pub g2g_interpolated: u32,
    /// Frames scored against the source.
    pub scored: u32,
    psnr_sum: f64,
    ssim_sum: f64,
}

impl QoeSecond {
    /// Adds one scored frame.
    pub fn add_quality(&mut self, q: rtclab_media::quality::Quality) {
        self.scored += 1;
        self.psnr_sum += q.psnr_y;
        self.ssim_sum += q.ssim_y;
    }

    /// The `qoe` event for this second.
    pub fn event(
        mut self,
        frames_decoded: u64,
        seconds: f64,
        freezes: u64,
        freeze_ms: f64,
    ) -> rtclab_events::Qoe {
        let round = |x: f64, k: f64| (x * k).round() / k;
        let mean = |sum: f64| (self.scored > 0).then(|| sum / f64::from(self.scored));
        self.g2g_ms.iter_mut().for_each(|v| *v = round(*v, 10.0));
        let mut sorted = self.g2g_ms.clone();
        rtclab_events::Qoe {
            frames_decoded,
            fps: round(frames_decoded as f64 / seconds.max(1e-3), 10.0),
            freezes,
            freeze_ms: freeze_ms.round(),
            g2g_p50_ms: rtclab_events::stats::percentile(&mut sorted, 50.0),
            g2g_p95_ms: rtclab_events::stats::percentile(&mut sorted, 95.0),
            g2g_ms: self.g2g_ms,
            g2g_interpolated: self.g2g_interpolated,
            scored_frames: self.scored,
            psnr_db: mean(self.psnr_sum).map(|v| round(v, 100.0)),
            ssim: mean(self.ssim_sum).map(|v| round(v, 10_000.0)),
        }
    }
}

/// The current second's samples, shared by the decoder thread, the quality thread and the
/// once-a-second logger.
pub type SharedQoe = std::sync::Arc<QoeShared>;

/// What [`SharedQoe`] holds: the second's samples, and in virtual time how many frames are with
/// the quality thread.
#[derive(Debug, Default)]
pub struct QoeShared {
    second: Mutex<QoeSecond>,
    scoring: Mutex<Scoring>,
    scored: std::sync::Condvar,
}

/// Frames handed to the quality thread and not scored yet (virtual time only), and whether
/// that thread is gone.
#[derive(Debug, Default)]
struct Scoring {
    pending: u64,
    gone: bool,
}

impl QoeShared {
    /// Runs `f` on the current second.
    pub fn with<R>(&self, f: impl FnOnce(&mut QoeSecond) -> R) -> R {
        f(&mut self.second.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the second's samples, leaving an empty one. In virtual time it first waits for
    /// every frame handed to the quality thread to be scored: that thread works beside the
    /// run instead of holding its clock, and this wait puts each score in the second its frame
    /// was decoded in, however fast the machine is. In real time nothing is pending.
    pub fn take(&self) -> QoeSecond {
        let mut scoring = self.scoring.lock().unwrap_or_else(|e| e.into_inner());
        while scoring.pending > 0 && !scoring.gone {
            scoring = self.scored.wait(scoring).unwrap_or_else(|e| e.into_inner());
        }
        drop(scoring);
        std::mem::take(&mut *self.second.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A frame is about to go to the quality thread; `false` if that thread is gone (then the
    /// frame is not sent, and nothing waits for it).
    fn begin_score(&self) -> bool {
        let mut scoring = self.scoring.lock().unwrap_or_else(|e| e.into_inner());
        if !scoring.gone {
            scoring.pending += 1;
        }
        !scoring.gone
    }

    fn end_score(&self) {
        let mut scoring = self.scoring.lock().unwrap_or_else(|e| e.into_inner());
        scoring.pending = scoring.pending.saturating_sub(1);
        self.scored.notify_all();
    }

    /// The quality thread is gone: nothing it was given will be scored, and from now on
    /// nothing is handed to it.
    fn scorer_gone(&self) {
        let mut scoring = self.scoring.lock().unwrap_or_else(|e| e.into_inner());
        scoring.gone = true;
        scoring.pending = 0;
        self.scored.notify_all();
    }
}

/// Tells [`QoeShared`] when the quality thread ends, however it ends.
struct ScorerExit(SharedQoe);

impl Drop for ScorerExit {
    fn drop(&mut self) {
        self.0.scorer_gone();
    }
}

/// The receiver's QoE measurement, driven by the decoder thread.
pub struct QoeProbe {
    anchor: WallAnchor,
    second: SharedQoe,
    quality: Option<std::sync::mpsc::SyncSender<QualityJob>>,
    quality_started: bool,
    sink: rtclab_events::EventSink,
    gate: crate::config::WorkGate,
}

/// A frame for the quality thread.
type QualityJob = (rtclab_media::ffmpeg::frame::Video, SourceTag);

impl QoeProbe {
    /// A probe mapping decode instants to NTP through the process's [`WallAnchor`].
    pub fn new(runtime: &dyn Runtime, sink: rtclab_events::EventSink) -> (Self, SharedQoe) {
        let second = SharedQoe::default();
        let probe = QoeProbe {
            anchor: WallAnchor::process(runtime),
            second: second.clone(),
            quality: None,
            quality_started: false,
            sink,
            gate: crate::config::WorkGate::default(),
        };
        (probe, second)
    }

    /// With a virtual-time `gate` (see [`crate::config::WorkGate`]), every due frame is scored
    /// and [`QoeShared::take`] waits for the scores.
    pub fn with_work_gate(mut self, gate: crate::config::WorkGate) -> Self {
        self.gate = gate;
        self
    }

    /// A frame was decoded at `decoded_at` (runtime clock): records its glass-to-glass latency
    /// and hands every [`SCORE_EVERY`]th `testsrc2` frame to the quality thread.
    pub fn on_decoded(
        &mut self,
        decoded_at: Instant,
        info: FrameInfo,
        picture: &rtclab_media::DecodedFrame,
    ) {
        if let Some(capture) = info.capture_ntp {
            let ms = ntp_diff_ms(self.anchor.ntp(decoded_at), capture);
            self.second.with(|second| {
                second.g2g_ms.push(ms);
                second.g2g_interpolated += u32::from(info.interpolated);
            });
        }
        let Some(tag) = info.source else { return };
        if !tag.index.is_multiple_of(SCORE_EVERY)
            || picture.frame.format() != rtclab_media::ffmpeg::format::Pixel::YUV420P
        {
            return;
        }
        if !self.quality_started {
            self.quality_started = true;
            self.quality = self.spawn_quality_thread();
        }
        let Some(tx) = &self.quality else { return };
        if self.gate.is_virtual() {
            // Virtual time: every due frame is scored, in order (which frames a busy thread
            // skips must not depend on how fast this machine is). The clock does not wait for
            // the score, only the once-a-second `qoe` line does (`QoeShared::take`), so
            // scoring runs beside the rest of the run on another core.
            if self.second.begin_score() && tx.send((picture.frame.clone(), tag)).is_err() {
                self.second.end_score();
            }
        } else if let Err(std::sync::mpsc::TrySendError::Full(_)) =
            tx.try_send((picture.frame.clone(), tag))
        {
            tracing::debug!(index = tag.index, "quality thread busy; frame not scored");
        }
    }

    fn spawn_quality_thread(&self) -> Option<std::sync::mpsc::SyncSender<QualityJob>> {
        use rtclab_media::Resolution;
        use rtclab_media::quality::{Reference, compare};
        let (tx, rx) = std::sync::mpsc::sync_channel::<QualityJob>(QUALITY_QUEUE);
        let second = self.second.clone();
        let sink = self.sink.clone();
        let spawned = std::thread::Builder::new()
            .name("rtclab-quality".into())
            .spawn(move || {
                let _exit = ScorerExit(second.clone());
                let mut reference: Option<Reference> = None;
                while let Ok((decoded, tag)) = rx.recv() {
                    let size = Resolution::new(u32::from(tag.width), u32::from(tag.height));
                    let fps = u32::from(tag.fps);
                    if !reference.as_ref().is_some_and(|r| r.matches(size, fps)) {
                        reference = match Reference::open(size, fps) {
                            Ok(r) => Some(r),
                            Err(e) => {
                                sink.emit(
                                    rtclab_events::PeerRole::Receiver,
                                    rtclab_events::Event::Note {
                                        level: rtclab_events::NoteLevel::Warn,
                                        message: format!("no PSNR/SSIM: cannot regenerate the testsrc2 reference: {e}"),
                                    },
                                );
                                return;
                            }
                        };
                    }
                    let Some(r) = reference.as_mut() else { return };
                    // Compared at the decoded size: the reference is scaled down when the
                    // sender scaled its resolution down.
                    let out = Resolution::new(decoded.width(), decoded.height());
                    match r.frame(u64::from(tag.index), out) {
                        Ok(refframe) => {
                            if let Some(q) = compare(&refframe, &decoded) {
                                second.with(|s| s.add_quality(q));
                            }
                        }
                        Err(e) => tracing::debug!("reference frame {}: {e}", tag.index),
                    }
                    // After the score is in the second (virtual time: `take` may go on).
                    second.end_score();
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!("cannot start the quality thread: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual time: a `qoe` line waits for the frames handed to the scorer, and an ended
    /// scorer never leaves it waiting.
    #[test]
    fn take_waits_for_pending_scores_and_not_for_a_gone_scorer() {
        let shared = SharedQoe::default();
        assert!(shared.begin_score());
        let scorer = shared.clone();
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            scorer.with(|s| s.scored += 1);
            scorer.end_score();
        });
        // The score is in the second `take` returns, however late the thread was.
        assert_eq!(shared.take().scored, 1);
        worker.join().expect("scorer");
        assert!(shared.begin_score());
        shared.scorer_gone();
        assert_eq!(shared.take().scored, 0, "a gone scorer is not waited for");
        assert!(!shared.begin_score(), "nothing is handed to a gone scorer");
        assert_eq!(shared.take().scored, 0);
    }

    #[test]
    fn unix_time_converts_to_ntp() {
        // The Unix epoch is NTP second 2208988800 (RFC 5905 §6), fraction 0.
        assert_eq!(unix_to_ntp(Duration::ZERO), NTP_UNIX_OFFSET_S << 32);
        // Half a second is fraction 2³¹.
        let t = unix_to_ntp(Duration::from_millis(1_700_000_000_500));
        assert_eq!(t >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_S);
        assert_eq!(t & 0xffff_ffff, 1 << 31);
        // 1 ms is 2³²/1000 ≈ 4294967 units of the fraction.
        let ms = unix_to_ntp(Duration::from_millis(1));
        assert_eq!(ms & 0xffff_ffff, 4_294_967);
    }

    #[test]
    fn ntp_differences_are_signed_milliseconds() {
        let a = unix_to_ntp(Duration::from_millis(1_000_000_000_000));
        let b = unix_to_ntp(Duration::from_millis(1_000_000_000_037));
        assert!((ntp_diff_ms(b, a) - 37.0).abs() < 0.001);
        assert!((ntp_diff_ms(a, b) + 37.0).abs() < 0.001);
    }

    #[test]
    fn anchor_maps_runtime_time_to_wall_time() {
        let at = Instant::now();
        let anchor = WallAnchor {
            at,
            unix: Duration::from_secs(1_700_000_000),
        };
        let later = anchor.ntp(at + Duration::from_millis(250));
        assert!((ntp_diff_ms(later, anchor.ntp(at)) - 250.0).abs() < 0.001);
        assert_eq!(
            anchor.ntp(at),
            unix_to_ntp(Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn source_tag_round_trips() {
        let tag = SourceTag {
            index: 123_456,
            width: 1280,
            height: 720,
            fps: 30,
        };
        assert_eq!(SourceTag::decode(&tag.encode()), Some(tag));
        assert_eq!(SourceTag::decode(&[0; 8]), None);
    }

    fn packet(ts: u32, ext: &[(u8, &[u8])]) -> Packet {
        let mut p = Packet::default();
        p.header.timestamp = ts;
        for (id, payload) in ext {
            p.header
                .set_extension(*id, bytes::Bytes::copy_from_slice(payload))
                .expect("extension");
        }
        p
    }

    #[test]
    fn tags_are_found_by_timestamp_and_capture_time_is_interpolated() {
        let ids = ExtIds {
            abs_capture_time: Some(3),
            testsrc_frame: Some(5),
        };
        let mut tags = FrameTags::new(ids);
        let t0 = unix_to_ntp(Duration::from_secs(1_700_000_000));
        let tag = SourceTag {
            index: 7,
            width: 640,
            height: 360,
            fps: 30,
        };
        tags.on_packet(&packet(1000, &[(3, &t0.to_be_bytes()), (5, &tag.encode())]));
        tags.on_packet(&packet(1000, &[]));
        tags.on_packet(&packet(4000, &[]));
        let first = tags.take(1000);
        assert_eq!(first.capture_ntp, Some(t0));
        assert_eq!(first.source, Some(tag));
        // 3000 ticks at 90 kHz later, unstamped: extrapolated 33.3 ms after the stamp.
        let second = tags.take(4000);
        assert_eq!(second.source, None);
        assert!(second.interpolated && !first.interpolated);
        let dt = ntp_diff_ms(second.capture_ntp.expect("interpolated"), t0);
        assert!((dt - 33.333).abs() < 0.01, "{dt}");
        // A frame released after the next frame's stamped packet arrived: extrapolated back.
        tags.on_packet(&packet(7000, &[]));
        let t3 = unix_to_ntp(Duration::from_millis(1_700_000_000_100));
        tags.on_packet(&packet(10_000, &[(3, &t3.to_be_bytes())]));
        let third = tags.take(7000);
        let dt = ntp_diff_ms(t3, third.capture_ntp.expect("extrapolated back"));
        assert!((dt - 33.333).abs() < 0.01, "{dt}");
    }

    #[test]
    fn nothing_is_made_up_without_extensions() {
        let mut tags = FrameTags::new(ExtIds::default());
        assert!(!tags.enabled());
        tags.on_packet(&packet(1000, &[(3, &[0; 8])]));
        assert_eq!(tags.take(1000), FrameInfo::default());
    }
}
