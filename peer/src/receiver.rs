//! The receiving media loop: RTP → the jitter buffer ([`crate::jitter`]) → libavcodec decoder.
//!
//! A decoder does not report a lost reference (docs/notes/ffmpeg.md#lost-references-are-silent):
//! the picture just degrades until the next keyframe. So the jitter buffer refuses to hand on a
//! frame past a hole: it waits for the repair until a deadline derived from the measured repair
//! time, then gives the frame up, skips to the next keyframe and asks for one with a PLI
//! (RFC 4585 §6.3.1). A decode error also asks for one; PLIs are rate-limited so one loss does
//! not become a PLI storm.

use crate::error::PeerError;
use crate::interceptors::counters::SharedCounters;
use crate::jitter::packet_buffer::unwrap_seq;
use crate::jitter::{Action, JitterBuffer};
use crate::qoe::{ExtIds, FrameInfo, FrameTags, QoeProbe};
use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtclab_events::{Event, EventSink, First, MediaStats, PeerRole, PliReason};
use rtclab_media::{Codec, Decoder};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::runtime::{JoinHandle, Runtime};

/// How long the receiving loop sleeps when the jitter buffer has nothing scheduled.
const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// Least time between two PLIs for the same reason of loss (libwebrtc uses a similar floor).
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// A sequence gap older than this many packets is counted as lost for good.
const LOSS_HORIZON: u64 = 1_000;

/// Everything the receiving loop needs.
pub struct ReceiverContext {
    /// The remote video track.
    pub track: Arc<dyn TrackRemote>,
    /// The session log.
    pub sink: EventSink,
    /// Clock and task spawner.
    pub runtime: Arc<dyn Runtime>,
    /// Wire counters of this peer.
    pub counters: SharedCounters,
    /// Also send a PLI this often (tests).
    pub pli_interval: Option<Duration>,
    /// Negotiated ids of the capture-time and frame-tag extensions (see [`crate::qoe`]).
    pub ext: ExtIds,
    /// FlexFEC was offered: a gap is left to the repair packet (and the NACK generator's next
    /// tick) instead of being NACKed at once.
    pub fec: bool,
    /// Smallest playout delay of the jitter buffer (zero: as measured).
    pub min_playout_delay: Duration,
    /// Off-thread work (decoding, scoring) announced to a virtual-time runtime.
    pub work_gate: crate::config::WorkGate,
    /// Virtual time: what decoding a frame costs (see [`crate::config::CodecCost`]).
    pub codec_cost: Option<crate::config::CodecCost>,
}

/// Sequence-number accounting of one RTP stream: losses and late (repaired) arrivals.
#[derive(Debug, Default)]
pub struct SeqTracker {
    highest: Option<u64>,
    missing: BTreeSet<u64>,
    lost_for_good: u64,
    /// Packets that arrived after being counted missing (retransmissions or reordering).
    pub recovered: u64,
    /// Packets seen twice.
    pub duplicates: u64,
}

impl SeqTracker {
    /// Records one arrival; returns true if it filled a gap.
    pub fn on_packet(&mut self, seq: u16) -> bool {
        let ext = match self.highest {
            None => {
                self.highest = Some(u64::from(seq) + (1 << 16));
                return false;
            }
            Some(h) => unwrap_seq(h, seq),
        };
        let h = self.highest.unwrap_or(ext);
        if ext > h {
            for s in h + 1..ext {
                self.missing.insert(s);
            }
            self.highest = Some(ext);
            while let Some(&oldest) = self.missing.first() {
                if oldest + LOSS_HORIZON < ext {
                    self.missing.remove(&oldest);
                    self.lost_for_good += 1;
                } else {
                    break;
                }
            }
            false
        } else if self.missing.remove(&ext) {
            self.recovered += 1;
            true
        } else {
            self.duplicates += 1;
            false
        }
    }

    /// Packets currently counted lost (never arrived).
    pub fn lost(&self) -> u64 {
        self.lost_for_good + self.missing.len() as u64
    }
}

#[derive(Debug, Default, Clone)]
struct RecvCounters {
    frames_assembled: u64,
    frames_decoded: u64,
    frames_skipped: u64,
    decode_errors: u64,
    plis: u64,
    lost: u64,
    recovered: u64,
    freezes: u64,
    freeze_ms: f64,
    /// Size of the last decoded picture (the sender may change it at any keyframe).
    size: Option<(u32, u32)>,
    /// The jitter buffer's playout delay and measured repair time, ms.
    playout_delay_ms: f64,
    repair_ms: f64,
}

/// A running receiver; `stop` ends it after logging its final statistics.
pub struct ReceiverHandle {
    running: Arc<AtomicBool>,
    stats_done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    tasks: Vec<Box<dyn JoinHandle>>,
    runtime: Arc<dyn Runtime>,
}

impl ReceiverHandle {
    /// Stops receiving and waits for the last `media.stats`.
    pub async fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(done) = self.stats_done.lock().await.take() {
            // On the runtime's clock: a virtual-time run has no tokio timer to wait on.
            let _ = webrtc::runtime::timeout(&*self.runtime, Duration::from_secs(3), done).await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts receiving `ctx.track`.
pub async fn start(ctx: ReceiverContext) -> Result<ReceiverHandle, PeerError> {
    let ssrc = ctx.track.ssrcs().await.first().copied().unwrap_or(0);
    let mime = ctx
        .track
        .codec(ssrc)
        .await
        .map(|c| c.mime_type.to_lowercase())
        .unwrap_or_default();
    let codec = if mime.contains("vp8") {
        Codec::Vp8
    } else if mime.contains("h264") {
        Codec::H264
    } else {
        return Err(PeerError::Failed(format!(
            "received a {mime:?} track; rtclab decodes video/H264 and video/VP8"
        )));
    };
    rtclab_media::init()?;
    let decoder = Decoder::new(codec)?;
    let counters = Arc::new(Mutex::new(RecvCounters::default()));
    let running = Arc::new(AtomicBool::new(true));
    let (pli_tx, mut pli_rx) = mpsc::unbounded_channel::<PliReason>();
    let (probe, qoe) = QoeProbe::new(ctx.runtime.as_ref(), ctx.sink.clone());
    let probe = probe.with_work_gate(ctx.work_gate.clone());
    let frames = spawn_decoder_thread(
        decoder,
        probe,
        ctx.runtime.clone(),
        ctx.sink.clone(),
        counters.clone(),
        pli_tx.clone(),
        ctx.codec_cost,
    )?;
    let mut tasks: Vec<Box<dyn JoinHandle>> = Vec::new();

    // RTP in, frames out, PLIs back.
    {
        let ctx_ext = ctx.ext;
        let min_playout_delay = ctx.min_playout_delay;
        // With FEC, the repair packet of a block arrives a few packets after a loss and rebuilds
        // it; an immediate NACK would have the retransmission race it (measured on loss-10:
        // 20 of 108 losses rebuilt instead of over a quarter). The generator's 50 ms tick gives
        // the block time to complete, as before.
        let nack_at_once = !ctx.fec;
        let track = ctx.track.clone();
        let runtime = ctx.runtime.clone();
        let counters = counters.clone();
        let sink = ctx.sink.clone();
        let wire = ctx.counters.clone();
        let gate = ctx.work_gate.clone();
        tasks.push(ctx.runtime.spawn(Box::pin(async move {
            let mut assembler = Assembler::new(codec, frames, counters.clone(), pli_tx, wire);
            assembler.gate = gate;
            assembler.jitter.set_min_delay(min_playout_delay);
            assembler.tags = FrameTags::new(ctx_ext);
            let mut last_pli: Option<Instant> = None;
            let mut first_rtp_seen = false;
            loop {
                // Wake when the jitter buffer has a frame due, a deadline or a keyframe retry.
                let wait = assembler
                    .next_wakeup()
                    .map_or(IDLE_WAKEUP, |t| t.saturating_duration_since(runtime.now()));
                tokio::select! {
                    // In order, not at random: a virtual-time run must take the same branch every time.
                    biased;
                    event = track.poll() => match event {
                        Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                            if !first_rtp_seen {
                                first_rtp_seen = true;
                                sink.emit(PeerRole::Receiver, Event::MediaFirst { what: First::RtpReceived });
                            }
                            let nack = assembler.push(runtime.now(), packet);
                            assembler.settle().await;
                            if nack_at_once {
                                send_nack(track.as_ref(), ssrc, nack).await;
                            }
                        }
                        Some(TrackRemoteEvent::OnEnded) | None => break,
                        Some(_) => {}
                    },
                    _ = runtime.sleep(wait) => {
                        let nack = assembler.poll(runtime.now());
                        assembler.settle().await;
                        if nack_at_once {
                            send_nack(track.as_ref(), ssrc, nack).await;
                        }
                    }
                    Some(reason) = pli_rx.recv() => {
                        let now = runtime.now();
                        // "interval" PLIs are the caller's explicit request; loss PLIs are limited.
                        if reason != PliReason::Interval
                            && last_pli.is_some_and(|t| now.saturating_duration_since(t) < PLI_MIN_INTERVAL)
                        {
                            continue;
                        }
                        last_pli = Some(now);
                        sink.emit(PeerRole::Receiver, Event::DecoderPli { reason });
                        counters.lock().unwrap_or_else(|e| e.into_inner()).plis += 1;
                        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
                        if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                            tracing::debug!("PLI: {e}");
                        }
                    }
                }
            }
        })));
    }

    // Optional periodic PLI (tests measure keyframe latency with it).
    if let Some(every) = ctx.pli_interval {
        let runtime = ctx.runtime.clone();
        let running = running.clone();
        let pli = PliSender(ctx.track.clone(), ssrc);
        let sink = ctx.sink.clone();
        let counters = counters.clone();
        tasks.push(ctx.runtime.spawn(Box::pin(async move {
            let mut ticker = runtime.interval(every);
            ticker.tick().await;
            while running.load(Ordering::Relaxed) {
                ticker.tick().await;
                sink.emit(
                    PeerRole::Receiver,
                    Event::DecoderPli {
                        reason: PliReason::Interval,
                    },
                );
                counters.lock().unwrap_or_else(|e| e.into_inner()).plis += 1;
                pli.send().await;
            }
        })));
    }

    // Once a second: media.stats and qoe.
    let (done_tx, done_rx) = oneshot::channel();
    {
        let runtime = ctx.runtime.clone();
        let running = running.clone();
        let sink = ctx.sink.clone();
        let wire = ctx.counters.clone();
        tasks.push(ctx.runtime.spawn(Box::pin(async move {
            let mut ticker = runtime.interval(Duration::from_secs(1));
            ticker.tick().await;
            let mut last = (runtime.now(), 0u64, 0u64);
            loop {
                if running.load(Ordering::Relaxed) {
                    ticker.tick().await;
                }
                // Read after the tick: a stop requested while waiting makes this the last line.
                let stop = !running.load(Ordering::Relaxed);
                let now = runtime.now();
                let c = counters.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let w = wire.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let dt = now
                    .saturating_duration_since(last.0)
                    .as_secs_f64()
                    .max(1e-3);
                sink.emit(
                    PeerRole::Receiver,
                    Event::MediaStats(MediaStats {
                        direction: rtclab_events::MediaDirection::Recv,
                        packets: w.rtp_in,
                        bytes: w.rtp_in_bytes,
                        frames: c.frames_decoded,
                        lost: c.lost,
                        retransmitted: c.recovered,
                        bitrate_bps: ((w.rtp_in_bytes - last.1) as f64 * 8.0 / dt).round(),
                        fps: ((c.frames_decoded - last.2) as f64 / dt * 10.0).round() / 10.0,
                        decode_errors: c.decode_errors,
                        freezes: c.freezes,
                        freeze_ms: c.freeze_ms.round(),
                        fec_packets: w.fec_in,
                        fec_recovered: w.fec_recovered,
                        width: c.size.map(|s| s.0),
                        height: c.size.map(|s| s.1),
                        playout_delay_ms: Some(c.playout_delay_ms),
                        repair_ms: Some(c.repair_ms),
                        ..Default::default()
                    }),
                );
                let second = qoe.take();
                sink.emit(
                    PeerRole::Receiver,
                    Event::Qoe(second.event(c.frames_decoded - last.2, dt, c.freezes, c.freeze_ms)),
                );
                last = (now, w.rtp_in_bytes, c.frames_decoded);
                if stop {
                    break;
                }
            }
            let _ = done_tx.send(());
        })));
    }

    Ok(ReceiverHandle {
        running,
        stats_done: tokio::sync::Mutex::new(Some(done_rx)),
        tasks,
        runtime: ctx.runtime.clone(),
    })
}

/// Asks for `seqs` at once with a generic NACK (RFC 4585 §6.2.1).
async fn send_nack(track: &dyn TrackRemote, media_ssrc: u32, seqs: Vec<u16>) {
    if seqs.is_empty() {
        return;
    }
    let nack = TransportLayerNack {
        sender_ssrc: 0,
        media_ssrc,
        nacks: nack_pairs_from_sequence_numbers(&seqs),
    };
    if let Err(e) = track.write_rtcp(vec![Box::new(nack)]).await {
        tracing::debug!("NACK: {e}");
    }
}

struct PliSender(Arc<dyn TrackRemote>, u32);

impl PliSender {
    async fn send(&self) {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.1,
        };
        if let Err(e) = self.0.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!("PLI: {e}");
        }
    }
}

/// A frame to decode: its bytes, its nominal duration (from RTP timestamps), what its packets'
/// extensions said about it, and in virtual time the [`crate::config::WorkGuard`] that holds
/// the clock until it is decoded.
type FrameJob = (Bytes, Duration, FrameInfo, Option<crate::config::WorkGuard>);
type FrameTx = std::sync::mpsc::Sender<FrameJob>;

/// Freeze detection by the W3C `freezeCount` rule (as libwebrtc): a gap between two decoded
/// frames longer than max(3 × frame interval, frame interval + 150 ms).
#[derive(Debug, Default)]
pub struct FreezeDetector {
    last: Option<Instant>,
}

/// Fixed part of the freeze threshold (webrtc-stats `freezeCount`).
const FREEZE_EXTRA: Duration = Duration::from_millis(150);

impl FreezeDetector {
    /// A frame was shown at `now`; returns the freeze that just ended, if any.
    pub fn on_frame(&mut self, now: Instant, interval: Duration) -> Option<Duration> {
        let gap = self.last.map(|l| now.saturating_duration_since(l));
        self.last = Some(now);
        let threshold = (interval * 3).max(interval + FREEZE_EXTRA);
        gap.filter(|g| *g > threshold)
    }
}

fn spawn_decoder_thread(
    mut decoder: Decoder,
    mut probe: QoeProbe,
    runtime: Arc<dyn Runtime>,
    sink: EventSink,
    counters: Arc<Mutex<RecvCounters>>,
    pli: mpsc::UnboundedSender<PliReason>,
    cost: Option<crate::config::CodecCost>,
) -> Result<FrameTx, PeerError> {
    let (tx, rx) = std::sync::mpsc::channel::<FrameJob>();
    std::thread::Builder::new()
        .name("rtclab-decoder".into())
        .spawn(move || {
            let mut freezes = FreezeDetector::default();
            // The guard (virtual time) is dropped at the end of each turn: after the frame's
            // events are logged and any PLI is queued.
            while let Ok((data, interval, info, _guard)) = rx.recv() {
                match decoder.decode(&data) {
                    Ok(frames) => {
                        tracing::trace!(out = frames.len(), "decoded");
                        // Virtual time: the picture is ready what decoding it would have
                        // cost after the clock's instant (the decoding itself took none).
                        let cost = match (cost, frames.first()) {
                            (Some(c), Some(p)) => c.decode_time(p.width, p.height),
                            _ => Duration::ZERO,
                        };
                        let now = runtime.now() + cost;
                        // One picture per frame (low-delay, single-threaded decoder).
                        if let Some(picture) = frames.first() {
                            probe.on_decoded(now, info, picture);
                        }
                        let frozen = if frames.is_empty() {
                            None
                        } else {
                            freezes.on_frame(now, interval)
                        };
                        let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
                        if c.frames_decoded == 0 && !frames.is_empty() {
                            sink.emit(
                                PeerRole::Receiver,
                                Event::MediaFirst {
                                    what: First::FrameDecoded,
                                },
                            );
                        }
                        c.frames_decoded += frames.len() as u64;
                        if let Some(p) = frames.last() {
                            c.size = Some((p.width, p.height));
                        }
                        if let Some(gap) = frozen {
                            let ms = gap.as_secs_f64() * 1000.0;
                            c.freezes += 1;
                            c.freeze_ms += ms;
                            drop(c);
                            sink.emit(
                                PeerRole::Receiver,
                                Event::VideoFreeze {
                                    duration_ms: ms.round(),
                                },
                            );
                        }
                    }
                    Err(e) => {
                        counters
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .decode_errors += 1;
                        sink.emit(
                            PeerRole::Receiver,
                            Event::DecoderError {
                                message: e.to_string(),
                            },
                        );
                        let _ = pli.send(PliReason::DecodeError);
                    }
                }
            }
        })
        .map_err(|e| PeerError::Failed(format!("cannot start the decoder thread: {e}")))?;
    Ok(tx)
}

/// Feeds the jitter buffer and carries out what it decides.
struct Assembler {
    jitter: JitterBuffer,
    seq: SeqTracker,
    tags: FrameTags,
    frames: FrameTx,
    counters: Arc<Mutex<RecvCounters>>,
    pli: mpsc::UnboundedSender<PliReason>,
    /// The peer's wire counters: which packets FlexFEC rebuilt.
    wire: SharedCounters,
    /// Announces each frame's decoding to a virtual-time runtime.
    gate: crate::config::WorkGate,
    /// A frame went to the decoder thread since the last [`Assembler::settle`].
    handed: bool,
}

impl Assembler {
    fn new(
        codec: Codec,
        frames: FrameTx,
        counters: Arc<Mutex<RecvCounters>>,
        pli: mpsc::UnboundedSender<PliReason>,
        wire: SharedCounters,
    ) -> Self {
        Assembler {
            wire,
            jitter: JitterBuffer::new(codec),
            seq: SeqTracker::default(),
            tags: FrameTags::default(),
            frames,
            counters,
            pli,
            gate: crate::config::WorkGate::default(),
            handed: false,
        }
    }

    /// One packet in; returns the sequence numbers to NACK now.
    fn push(&mut self, now: Instant, packet: rtc::rtp::Packet) -> Vec<u16> {
        self.seq.on_packet(packet.header.sequence_number);
        self.tags.on_packet(&packet);
        let h = &packet.header;
        let rebuilt = {
            let mut wire = self.wire.lock().unwrap_or_else(|e| e.into_inner());
            match wire
                .fec_rebuilt_seqs
                .iter()
                .position(|s| *s == h.sequence_number)
            {
                Some(i) => wire.fec_rebuilt_seqs.remove(i).is_some(),
                None => false,
            }
        };
        self.jitter.insert(
            now,
            h.sequence_number,
            h.timestamp,
            h.marker,
            packet.payload,
            rebuilt,
        );
        self.poll(now)
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.jitter.next_wakeup()
    }

    /// After a frame went to the decoder: see [`crate::config::WorkGate::settle`] (a decoded
    /// frame may send back a keyframe request this task reads).
    async fn settle(&mut self) {
        if std::mem::take(&mut self.handed) {
            self.gate.settle().await;
        }
    }

    /// Carries out what the jitter buffer decided; returns the sequence numbers to NACK now.
    fn poll(&mut self, now: Instant) -> Vec<u16> {
        let mut nack = Vec::new();
        for action in self.jitter.poll(now) {
            match action {
                Action::Nack(seqs) => nack.extend(seqs),
                Action::Decode(f) => {
                    let info = self.tags.take(f.ts);
                    tracing::trace!(
                        ts = f.ts,
                        bytes = f.data.len(),
                        key = f.keyframe,
                        "frame due"
                    );
                    let _ = self
                        .frames
                        .send((f.data, f.interval, info, self.gate.begin()));
                    self.handed = true;
                }
                Action::RequestKeyframe => {
                    let _ = self.pli.send(PliReason::FrameLost);
                }
            }
        }
        let st = self.jitter.stats();
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.lost = self.seq.lost();
        c.recovered = self.seq.recovered;
        c.frames_assembled = st.frames_released;
        c.frames_skipped = st.frames_dropped + st.frames_given_up;
        c.playout_delay_ms = self.jitter.target_delay().as_secs_f64() * 1000.0;
        c.repair_ms = self.jitter.repair_time().as_secs_f64() * 1000.0;
        nack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_as_lost_until_filled() {
        let mut t = SeqTracker::default();
        for s in [10u16, 11, 14, 15] {
            t.on_packet(s);
        }
        assert_eq!(t.lost(), 2);
        assert!(t.on_packet(12));
        assert_eq!((t.lost(), t.recovered), (1, 1));
        t.on_packet(12);
        assert_eq!(t.duplicates, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = SeqTracker::default();
        for s in [65534u16, 65535, 1, 2] {
            t.on_packet(s);
        }
        assert_eq!(t.lost(), 1, "only 0 is missing");
        assert!(t.on_packet(0));
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn freezes_follow_the_w3c_rule() {
        let mut f = FreezeDetector::default();
        let t0 = Instant::now();
        let frame = Duration::from_millis(33);
        assert_eq!(f.on_frame(t0, frame), None);
        // 180 ms at 30 fps: the threshold is max(99, 183) ms, so not a freeze.
        assert_eq!(f.on_frame(t0 + Duration::from_millis(180), frame), None);
        // 200 ms after that: a freeze of 200 ms.
        let gap = f.on_frame(t0 + Duration::from_millis(380), frame);
        assert_eq!(gap, Some(Duration::from_millis(200)));
        // At 5 fps the 3-interval part dominates: 500 ms is fine, 700 ms is not.
        let slow = Duration::from_millis(200);
        assert_eq!(f.on_frame(t0 + Duration::from_millis(880), slow), None);
        assert!(f.on_frame(t0 + Duration::from_millis(1580), slow).is_some());
    }
}
