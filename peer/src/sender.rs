//! The sending media loop: FFmpeg source → encoder at the congestion controller's target →
//! RTP track, one frame per tick of the runtime clock. A PLI or FIR makes the next frame a
//! keyframe. The encoder adapts (`rtclab_media::AdaptiveEncoder`): it scales the resolution
//! down and up with the target and skips frames when over budget; each change is logged as
//! `encoder.adapt`, skipped frames in `encoder.rate`.
//!
//! Encoding runs on its own thread (libavcodec calls block for milliseconds); the loop that paces
//! frames, reads the target and writes RTP is async and takes its time from the webrtc-rs runtime.

use crate::bwe::TargetHandle;
use crate::config::PeerConfig;
use crate::error::PeerError;
use crate::interceptors::counters::SharedCounters;
use crate::keyframe_gate::KeyframeGate;
use crate::qoe::{ExtIds, SourceTag, WallAnchor};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packetizer::Packetizer;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtclab_events::{Event, EventSink, First, KeyframeReason, MediaStats, PeerRole};
use rtclab_media::{
    AdaptOutput, AdaptiveEncoder, EncoderConfig, Resolution, SourceSpec, VideoSource,
};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::runtime::{JoinHandle, Runtime};

/// Everything the sending loop needs.
pub struct SenderContext {
    /// Peer settings (codec, source, size, fps, bitrate limits).
    pub cfg: PeerConfig,
    /// The local track to write RTP to.
    pub track: Arc<TrackLocalStaticRTP>,
    /// The negotiated codec (decides the RTP payload format).
    pub codec: RTCRtpCodec,
    /// Negotiated payload type.
    pub payload_type: u8,
    /// The congestion controller's target.
    pub target: TargetHandle,
    /// The session log.
    pub sink: EventSink,
    /// Clock and task spawner.
    pub runtime: Arc<dyn Runtime>,
    /// Wire counters of this peer.
    pub counters: SharedCounters,
    /// Negotiated ids of the capture-time and frame-tag extensions (see [`crate::qoe`]).
    pub ext: ExtIds,
}

/// A request for a keyframe, with when it arrived on the session clock.
#[derive(Debug, Clone)]
struct KeyframeRequest {
    reason: KeyframeReason,
    at: Instant,
}

/// One frame's worth of work for the encoder thread.
struct EncodeJob {
    target_bps: u32,
    keyframe: bool,
    /// Session time of the frame (runtime clock), for the encoder's adaptation.
    at: Duration,
    reply: oneshot::Sender<Result<AdaptOutput, rtclab_media::MediaError>>,
    /// Held until the result is handed back ([`crate::config::WorkGate`]).
    guard: Option<crate::config::WorkGuard>,
}

/// A running sender; `stop` ends it and writes its final statistics.
pub struct SenderHandle {
    running: Arc<AtomicBool>,
    done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    tasks: Vec<Box<dyn JoinHandle>>,
    runtime: Arc<dyn Runtime>,
}

impl SenderHandle {
    /// Stops the loop and waits for it to log its last statistics.
    pub async fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(done) = self.done.lock().await.take() {
            // On the runtime's clock: a virtual-time run has no tokio timer to wait on.
            let _ = webrtc::runtime::timeout(&*self.runtime, Duration::from_secs(3), done).await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens the source and encoder (so a bad file fails here, loudly) and starts sending.
pub async fn start(ctx: SenderContext) -> Result<SenderHandle, PeerError> {
    let ssrc = ctx
        .track
        .ssrcs()
        .await
        .first()
        .copied()
        .ok_or_else(|| PeerError::Failed("the video track has no SSRC".into()))?;
    rtclab_media::init()?;
    let source = VideoSource::open(&ctx.cfg.source, ctx.cfg.size, ctx.cfg.fps)?;
    let enc_cfg = EncoderConfig {
        codec: ctx.cfg.codec,
        size: ctx.cfg.size,
        fps: ctx.cfg.fps,
        target_bps: ctx.target.get().round() as u32,
    };
    let encoder = if ctx.cfg.resolution_scaling {
        AdaptiveEncoder::new(&enc_cfg)?
    } else {
        AdaptiveEncoder::fixed_size(&enc_cfg)?
    };
    let jobs = spawn_encoder_thread(source, encoder)?;
    let payloader = ctx.codec.payloader().map_err(|e| {
        PeerError::Failed(format!("no RTP payloader for {}: {e}", ctx.codec.mime_type))
    })?;
    let split = Arc::new(AtomicUsize::new(0));
    // MTU as webrtc-rs's own sample track uses (`RTP_OUTBOUND_MTU`).
    let packetizer: Box<dyn Packetizer + Send> = Box::new(rtc::rtp::packetizer::new_packetizer(
        ctx.runtime.now(),
        RTP_MTU,
        ctx.payload_type,
        ssrc,
        Box::new(ProbeSplit {
            inner: payloader,
            mtu: split.clone(),
        }),
        match ctx.cfg.rtp_seed {
            Some(seed) => Box::new(rtc::rtp::sequence::new_fixed_sequencer(
                crate::config::seeded_rtp_ids(seed).1,
            )),
            None => Box::new(rtc::rtp::sequence::new_random_sequencer()),
        },
        ctx.codec.clock_rate,
    ));

    let running = Arc::new(AtomicBool::new(true));
    let keyframe: Arc<Mutex<Option<KeyframeRequest>>> = Arc::new(Mutex::new(None));
    // Requests the gate held back since the last `encoder.rate` line.
    let held = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();

    // Keyframe requests: PLI/FIR reach the application through the track (the wire tap marks
    // them for delivery).
    {
        let track = ctx.track.clone();
        let keyframe = keyframe.clone();
        let runtime = ctx.runtime.clone();
        let held = held.clone();
        let mut gate = KeyframeGate::default();
        tasks.push(ctx.runtime.spawn(Box::pin(async move {
            while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
                for p in packets {
                    let any = p.as_any();
                    let reason = if any.is::<PictureLossIndication>() {
                        KeyframeReason::Pli
                    } else if any.is::<FullIntraRequest>() {
                        KeyframeReason::Fir
                    } else {
                        continue;
                    };
                    let now = runtime.now();
                    if !gate.admit(now) {
                        held.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut slot = keyframe.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the earliest pending request: latency is measured from it.
                    if slot.is_none() {
                        *slot = Some(KeyframeRequest { reason, at: now });
                    }
                }
            }
        })));
    }

    let (done_tx, done_rx) = oneshot::channel();
    let send_loop = SendLoop {
        ctx,
        packetizer,
        jobs,
        keyframe,
        held,
        running: running.clone(),
        split,
    };
    let runtime = send_loop.ctx.runtime.clone();
    tasks.push(runtime.spawn(Box::pin(async move {
        send_loop.run().await;
        let _ = done_tx.send(());
    })));
    Ok(SenderHandle {
        running,
        done: tokio::sync::Mutex::new(Some(done_rx)),
        tasks,
        runtime,
    })
}

/// Source frames made ahead of the encoder: the next one is ready when its job comes.
const SOURCE_AHEAD: usize = 2;

/// Runs `source` on a thread of its own, a few frames ahead of the encoder. A source frame
/// depends on its index only (a `testsrc2` picture, or a file's next frame), never on the
/// target or the clock, so making it early changes no picture and no timing; the encoder's
/// turn, which a virtual clock waits for, is then the encoding alone (~15 % less per frame
/// at 720p).
fn spawn_source_thread(
    mut source: VideoSource,
) -> Result<
    std::sync::mpsc::Receiver<Result<rtclab_media::RawFrame, rtclab_media::MediaError>>,
    PeerError,
> {
    let (tx, rx) = std::sync::mpsc::sync_channel(SOURCE_AHEAD);
    std::thread::Builder::new()
        .name("rtclab-source".into())
        .spawn(move || {
            loop {
                let frame = source.next_frame();
                let failed = frame.is_err();
                // Ends when the encoder is gone, or after handing over the source's error.
                if tx.send(frame).is_err() || failed {
                    break;
                }
            }
        })
        .map_err(|e| PeerError::Failed(format!("cannot start the source thread: {e}")))?;
    Ok(rx)
}

fn spawn_encoder_thread(
    source: VideoSource,
    mut encoder: AdaptiveEncoder,
) -> Result<std::sync::mpsc::Sender<EncodeJob>, PeerError> {
    let frames = spawn_source_thread(source)?;
    let (tx, rx) = std::sync::mpsc::channel::<EncodeJob>();
    std::thread::Builder::new()
        .name("rtclab-encoder".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                // The source thread ends only after handing over its error, which stops the
                // send loop; should it vanish anyway, dropping the job ends the loop too.
                let Ok(next) = frames.recv() else { break };
                let result = next.and_then(|mut raw| {
                    if job.keyframe {
                        encoder.request_keyframe();
                    }
                    encoder.encode(&mut raw, job.at, job.target_bps)
                });
                let _ = job.reply.send(result);
                // Only now: the send loop has its frame before a virtual clock may move.
                drop(job.guard);
            }
        })
        .map_err(|e| PeerError::Failed(format!("cannot start the encoder thread: {e}")))?;
    Ok(tx)
}

/// RTP payload budget per packet, as webrtc-rs's sample track (room for SRTP and extensions).
const RTP_MTU: usize = 1200;

/// Packets a probe keyframe is split into at least. The controller measures a probe from a
/// cluster of at least 5 packets (`rtclab_cc::probe::MIN_PACKETS`); at 360p a `testsrc2`
/// keyframe is 2-3 full packets, so without splitting a probe there measured nothing and the
/// rate crawled back after a capacity rise (rfc8867-5.1, 80 s).
const PROBE_MIN_PACKETS: usize = 10;
/// Smallest packet a probe keyframe is split into, bytes: below this the headers (~60 bytes with
/// SRTP, UDP and IP) dominate what the cluster measures.
const PROBE_MIN_MTU: usize = 300;

/// The codec's payloader, splitting one frame into smaller packets when `mtu` is non-zero.
#[derive(Debug)]
struct ProbeSplit {
    inner: Box<dyn rtc::rtp::packetizer::Payloader>,
    mtu: Arc<AtomicUsize>,
}

impl rtc::rtp::packetizer::Payloader for ProbeSplit {
    fn payload(
        &mut self,
        mtu: usize,
        b: &bytes::Bytes,
    ) -> rtc::shared::error::Result<Vec<bytes::Bytes>> {
        match self.mtu.load(Ordering::Relaxed) {
            0 => self.inner.payload(mtu, b),
            small => self.inner.payload(mtu.min(small), b),
        }
    }

    fn clone_to(&self) -> Box<dyn rtc::rtp::packetizer::Payloader> {
        Box::new(ProbeSplit {
            inner: self.inner.clone(),
            mtu: self.mtu.clone(),
        })
    }
}

/// The payload size that cuts a `len`-byte probe keyframe into [`PROBE_MIN_PACKETS`], or 0 when
/// full packets already make that many.
fn probe_mtu(len: usize) -> usize {
    let full = RTP_MTU - 12;
    if len.div_ceil(full) >= PROBE_MIN_PACKETS {
        0
    } else {
        (len / PROBE_MIN_PACKETS).clamp(PROBE_MIN_MTU, full)
    }
}

struct SendLoop {
    ctx: SenderContext,
    packetizer: Box<dyn Packetizer + Send>,
    jobs: std::sync::mpsc::Sender<EncodeJob>,
    keyframe: Arc<Mutex<Option<KeyframeRequest>>>,
    /// Keyframe requests the gate held back, taken by each `encoder.rate` line.
    held: Arc<AtomicU32>,
    running: Arc<AtomicBool>,
    /// Payload size for the frame being packetized (0: full packets); see [`ProbeSplit`].
    split: Arc<AtomicUsize>,
}

/// Per-second accounting of the encoder.
#[derive(Default)]
struct Window {
    bits: u64,
    frames: u32,
    keyframes: u32,
    /// Frames the encoder skipped (over budget).
    dropped: u32,
    /// The encoded size at the end of the window.
    size: Option<Resolution>,
}

impl SendLoop {
    async fn run(mut self) {
        let ctx = &self.ctx;
        let role = PeerRole::Sender;
        let frame_duration = Duration::from_secs_f64(1.0 / f64::from(ctx.cfg.fps));
        if let Some(epoch) = ctx.cfg.virtual_epoch {
            // Virtual time: on the grid, whatever the handshake's random length did.
            let wait = crate::config::until_grid(epoch, ctx.runtime.now());
            ctx.runtime.sleep(wait).await;
        }
        let mut ticker = ctx.runtime.interval(frame_duration);
        let mut window = Window::default();
        let mut window_start = ctx.runtime.now();
        let session_start = window_start;
        let mut frames_total: u64 = 0;
        let mut first_sent = false;
        let anchor = WallAnchor::process(ctx.runtime.as_ref());
        let testsrc = ctx.cfg.source == SourceSpec::TestPattern;
        let mut last_stats = StatsSnapshot::default();
        // The first frame out of an encoder is a keyframe anyway; log it as such.
        let mut pending_reason: Option<KeyframeRequest> = Some(KeyframeRequest {
            reason: KeyframeReason::Start,
            at: ctx.runtime.now(),
        });
        let (min, max) = (f64::from(ctx.cfg.min_bps), f64::from(ctx.cfg.max_bps));
        // The encoder's share of the target: all of it, or with FlexFEC the media packets'
        // share, so media + repair packets together follow the target (libwebrtc subtracts
        // its protection overhead the same way). Without this, FEC sent 20 % over the target
        // and a capped link answered with queuing and an over-use.
        let media_share = if ctx.cfg.fec {
            crate::interceptors::fec::MEDIA_SHARE
        } else {
            1.0
        };
        while self.running.load(Ordering::Relaxed) {
            ticker.tick().await;
            let target = ctx.target.get().clamp(min, max) * media_share;
            let request = self
                .keyframe
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .or_else(|| {
                    ctx.target.take_probe().then(|| KeyframeRequest {
                        reason: KeyframeReason::Probe,
                        at: ctx.runtime.now(),
                    })
                });
            let force = request.is_some();
            if let Some(r) = request {
                pending_reason.get_or_insert(r);
            }
            let (reply, result) = oneshot::channel();
            // The encoder thread takes the source's next frame (made ahead, see
            // `spawn_source_thread`) as soon as it gets the job: this is the capture time
            // abs-capture-time carries.
            let captured = ctx.runtime.now();
            if self
                .jobs
                .send(EncodeJob {
                    target_bps: target.round() as u32,
                    keyframe: force,
                    at: ctx.runtime.now().saturating_duration_since(session_start),
                    reply,
                    guard: ctx.cfg.work_gate.begin(),
                })
                .is_err()
            {
                break;
            }
            ctx.cfg.work_gate.settle().await;
            let out = match result.await {
                Ok(Ok(out)) => out,
                Ok(Err(e)) => {
                    ctx.sink.emit(
                        role,
                        Event::Note {
                            level: rtclab_events::NoteLevel::Error,
                            message: format!("encoding stopped: {e}"),
                        },
                    );
                    break;
                }
                Err(_) => break,
            };
            // Virtual time: the encoding took no time on the clock, so the frame waits here for
            // what it would have cost (the packets leave that much later; capture time stays).
            if let Some(cost) = ctx.cfg.codec_cost.filter(|_| !out.frames.is_empty()) {
                ctx.runtime
                    .sleep(cost.encode_time(out.size.width, out.size.height))
                    .await;
            }
            let now = ctx.runtime.now();
            window.dropped += u32::from(out.dropped);
            window.size = Some(out.size);
            if let Some(c) = out.change {
                ctx.sink.emit(
                    role,
                    Event::EncoderAdapt {
                        from_width: c.from.width,
                        from_height: c.from.height,
                        to_width: c.to.width,
                        to_height: c.to.height,
                        target_bps: f64::from(c.target_bps),
                        reason: c.reason.to_string(),
                    },
                );
                // The new size starts with a keyframe; log it with its cause.
                pending_reason.get_or_insert(KeyframeRequest {
                    reason: KeyframeReason::Resize,
                    at: now,
                });
            }
            for frame in out.frames {
                window.bits += frame.data.len() as u64 * 8;
                window.frames += 1;
                frames_total += 1;
                let mut probe = false;
                if frame.keyframe {
                    window.keyframes += 1;
                    if let Some(r) = pending_reason.take() {
                        probe = r.reason == KeyframeReason::Probe;
                        ctx.sink.emit(
                            role,
                            Event::EncoderKeyframe {
                                reason: r.reason,
                                frame_index: frame.frame_index,
                                after_request_ms: Some(
                                    now.saturating_duration_since(r.at).as_secs_f64() * 1000.0,
                                ),
                            },
                        );
                    }
                }
                let samples = (frame_duration.as_secs_f64() * f64::from(self.ctx.codec.clock_rate))
                    .round() as u32;
                self.split.store(
                    if probe {
                        probe_mtu(frame.data.len())
                    } else {
                        0
                    },
                    Ordering::Relaxed,
                );
                let mut packets = match self.packetizer.packetize(now, &frame.data, samples) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!("packetize: {e}");
                        continue;
                    }
                };
                if let Some(first) = packets.first_mut() {
                    let source = testsrc.then(|| SourceTag {
                        index: frame.frame_index as u32,
                        width: ctx.cfg.size.width as u16,
                        height: ctx.cfg.size.height as u16,
                        fps: ctx.cfg.fps.min(255) as u8,
                    });
                    crate::qoe::stamp_first_packet(first, ctx.ext, anchor.ntp(captured), source);
                }
                for packet in packets {
                    match self.ctx.track.write_rtp(packet).await {
                        Ok(_) if !first_sent => {
                            first_sent = true;
                            ctx.sink.emit(
                                role,
                                Event::MediaFirst {
                                    what: First::RtpSent,
                                },
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!("write_rtp: {e}"),
                    }
                }
            }
            let elapsed = now.saturating_duration_since(window_start).as_secs_f64();
            if elapsed >= 1.0 {
                self.emit_second(&window, elapsed, target, frames_total, &mut last_stats);
                window = Window {
                    size: window.size,
                    ..Window::default()
                };
                window_start = now;
            }
        }
        // Let the pacer drain what it still holds, so the last statistics count every packet
        // that reaches the wire (at 2.5x the target the queue empties in well under this).
        ctx.runtime.sleep(Duration::from_millis(300)).await;
        let elapsed = ctx
            .runtime
            .now()
            .saturating_duration_since(window_start)
            .as_secs_f64()
            .max(1e-3);
        let target = ctx.target.get().clamp(min, max) * media_share;
        self.emit_second(&window, elapsed, target, frames_total, &mut last_stats);
    }

    fn emit_second(
        &self,
        window: &Window,
        elapsed: f64,
        target: f64,
        frames_total: u64,
        last: &mut StatsSnapshot,
    ) {
        let ctx = &self.ctx;
        ctx.sink.emit(
            PeerRole::Sender,
            Event::EncoderRate {
                codec: ctx.cfg.codec.to_string(),
                target_bps: target.round(),
                actual_bps: (window.bits as f64 / elapsed).round(),
                fps: round1(f64::from(window.frames) / elapsed),
                width: window.size.unwrap_or(ctx.cfg.size).width,
                height: window.size.unwrap_or(ctx.cfg.size).height,
                keyframes: window.keyframes,
                dropped: window.dropped,
                keyframe_requests_held: self.held.swap(0, Ordering::Relaxed),
            },
        );
        let c = ctx
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = StatsSnapshot {
            bytes: c.rtp_out_bytes,
            frames: frames_total,
        };
        ctx.sink.emit(
            PeerRole::Sender,
            Event::MediaStats(MediaStats {
                direction: rtclab_events::MediaDirection::Send,
                packets: c.rtp_out,
                bytes: c.rtp_out_bytes,
                frames: frames_total,
                lost: c.remote_cumulative_lost,
                retransmitted: c.rtx_out,
                fec_packets: c.fec_out,
                fec_bytes: c.fec_out_bytes,
                bitrate_bps: ((now.bytes - last.bytes) as f64 * 8.0 / elapsed).round(),
                fps: round1((now.frames - last.frames) as f64 / elapsed),
                ..Default::default()
            }),
        );
        *last = now;
    }
}

#[derive(Default)]
struct StatsSnapshot {
    bytes: u64,
    frames: u64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod probe_split_tests {
    use super::*;

    #[test]
    fn small_probe_keyframes_are_cut_into_enough_packets() {
        // 3 KB (a 360p keyframe): ~300-byte payloads, 10 packets.
        let mtu = probe_mtu(3_000);
        assert_eq!(mtu, PROBE_MIN_MTU);
        assert!(3_000usize.div_ceil(mtu) >= PROBE_MIN_PACKETS);
        // 8 KB: 800-byte payloads.
        assert_eq!(probe_mtu(8_000), 800);
        // 20 KB already makes 17 full packets.
        assert_eq!(probe_mtu(20_000), 0);
    }
}
