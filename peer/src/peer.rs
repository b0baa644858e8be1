//! One Rust peer: builds the webrtc-rs connection, follows the signaling protocol, and logs the
//! ICE/DTLS/connection life cycle. The media itself lives in [`crate::sender`] and
//! [`crate::receiver`].

use crate::bwe::TargetHandle;
use crate::candidates;
use crate::config::{PeerConfig, Role};
use crate::error::PeerError;
use crate::interceptors::{self, counters::SharedCounters};
use crate::receiver::{self, ReceiverContext};
use crate::sender::{self, SenderHandle};
use crate::signal_client::{self, SignalClient};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtclab_events::{Candidate, Event, EventSink, Observed, PeerRole, Side};
use rtclab_media::Codec;
use rtclab_signaling::protocol::{ClientMessage, IceCandidate, ServerMessage};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};
use webrtc::runtime::Runtime;

/// RTP payload types rtclab offers (dynamic range, RFC 3551 §6).
const PT_VP8: u8 = 96;
const PT_H264: u8 = 102;
/// H.264 Constrained Baseline 3.1, packetization-mode 1 (RFC 6184 §8.1): what libx264's output
/// with our settings fits, and what Chromium decodes.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// How often the selected pair and DTLS state are polled (webrtc-rs has no event for either).
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long to wait for the connection once the other peer is known.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Reconnecting to signaling lost mid-session (issue 18 finding 7): the first wait, doubled
/// after each failed try up to [`RECONNECT_MAX_DELAY`], for at most [`RECONNECT_TRIES`] tries
/// (about 45 s of trying), each bounded by [`RECONNECT_ATTEMPT_TIMEOUT`]. Media does not need
/// signaling, so giving up only means no bye can reach this peer any more.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two reconnect tries.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Reconnect tries before giving up.
const RECONNECT_TRIES: u32 = 12;
/// One reconnect try: a server that accepts TCP but never answers must not hold it forever.
const RECONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The `signaling` event logged when the server goes away during an established session.
pub const SIGNALING_LOST: &str = "connection to the signaling server lost; media continues";
/// The `signaling` event logged when the peer is back on the signaling server.
pub const SIGNALING_BACK: &str = "reconnected to the signaling server";

/// Why a peer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerExit {
    /// The caller's shutdown future fired.
    Shutdown,
    /// The other peer said bye or vanished.
    PeerLeft,
}

/// What the handler tells the control loop.
enum Control {
    Candidate(RTCIceCandidateInit),
    /// ICE changed state: the selected pair is read at once.
    IceChanged,
    /// The loop reads the transport, then logs this (`pc.state` after `dtls.state`).
    PcState(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    role: PeerRole,
    sink: EventSink,
    control: mpsc::UnboundedSender<Control>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        self.sink.emit(
            self.role,
            Event::IceCandidate {
                side: Side::Local,
                candidate: candidates::from_rtc(&event.candidate, Some(&event.url)),
            },
        );
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.control.send(Control::Candidate(init));
            }
            Err(e) => tracing::warn!("cannot serialise local candidate: {e}"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.sink.emit(
            self.role,
            Event::IceGathering {
                state: state.to_string(),
            },
        );
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.sink.emit(
            self.role,
            Event::IceState {
                state: state.to_string(),
            },
        );
        let _ = self.control.send(Control::IceChanged);
    }

    // webrtc-rs 0.21 reports no DTLS or selected-pair event (docs/notes/webrtc-rs-0.21.md), but
    // it derives the peer-connection state from both, so when that changes the control loop
    // reads them first and logs `pc.state` after them: the log keeps the wire's order (ICE
    // connected → DTLS connected → peer connection connected → first RTP).
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.control.send(Control::PcState(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.control.send(Control::Track(track));
    }
}

fn codec_parameters(codec: Codec) -> RTCRtpCodecParameters {
    let (mime, fmtp, pt) = match codec {
        Codec::H264 => (MIME_TYPE_H264, H264_FMTP, PT_H264),
        Codec::Vp8 => (MIME_TYPE_VP8, "", PT_VP8),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
        ..Default::default()
    }
}

/// The RTX codec (RFC 4588 §8.6) repairing `primary`, at the payload type after it.
fn rtx_parameters(primary: Codec) -> RTCRtpCodecParameters {
    let pt = codec_parameters(primary).payload_type;
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={pt}"),
            rtcp_feedback: vec![],
        },
        payload_type: pt + 1,
        ..Default::default()
    }
}

/// Everything a running peer owns.
struct Peer {
    cfg: PeerConfig,
    role: PeerRole,
    sink: EventSink,
    runtime: Arc<dyn Runtime>,
    pc: Box<dyn PeerConnection>,
    counters: SharedCounters,
    target: Option<TargetHandle>,
    track: Option<Arc<TrackLocalStaticRTP>>,
    sender: Option<SenderHandle>,
    receiver: Option<receiver::ReceiverHandle>,
}

async fn build(
    cfg: &PeerConfig,
    sink: &EventSink,
    runtime: Arc<dyn Runtime>,
    control: mpsc::UnboundedSender<Control>,
) -> Result<Peer, PeerError> {
    let role = cfg.role.peer();
    let mut media_engine = MediaEngine::default();
    // Both codecs are offered, the configured one first: a browser picks with
    // setCodecPreferences, and the sender encodes whatever the answer put first.
    let codec = codec_parameters(cfg.codec);
    let other = match cfg.codec {
        Codec::H264 => Codec::Vp8,
        Codec::Vp8 => Codec::H264,
    };
    media_engine.register_codec(codec.clone(), RtpCodecKind::Video)?;
    media_engine.register_codec(codec_parameters(other), RtpCodecKind::Video)?;
    if cfg.role == Role::Receiver {
        // Accept RTX (RFC 4588) when a browser offers it: Chromium then sends its padding
        // (bandwidth probes, often most of its packets) on the RTX stream. Without RTX it pads
        // on the media SSRC, and every lost padding packet looked like a lost frame part, so
        // the receiver waited for keyframes (measured: 54 % of frames decoded at 5 % loss).
        // A Rust sender never offers RTX: between webrtc-rs peers RTX repairs are unwrapped
        // after the interceptor chain, where the NACK generator cannot see them (docs/notes/webrtc-rs-0.21.md#nackrtx-storm).
        for primary in [Codec::H264, Codec::Vp8] {
            media_engine.register_codec(rtx_parameters(primary), RtpCodecKind::Video)?;
        }
    }
    // Capture time and source frame index on every frame, for glass-to-glass latency and PSNR.
    crate::qoe::register_extensions(&mut media_engine)?;
    if cfg.fec {
        interceptors::fec::register(&mut media_engine)?;
    }

    // The interceptor chain, assembled in one place (interceptors/mod.rs).
    let interceptors::Chain {
        registry,
        counters,
        target,
    } = interceptors::build(cfg, sink, &mut media_engine)?;

    let setting_engine = SettingEngineBuilder::new()
        // mDNS would send multicast queries off the machine (loopback-only tests and benches;
        // docs/notes/webrtc-rs-0.21.md#ice).
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        // Answer as the DTLS server (a=setup:passive). The answer to a renegotiation must keep
        // the role of the first exchange; webrtc-rs would answer `active` again, which Chromium
        // refuses ("Failed to set SSL role") after it answered our first offer as `active`.
        .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
        // Late retransmissions must not be rejected as replays (see repair.rs).
        .with_srtp_replay_protection_window(interceptors::repair::SRTP_REPLAY_WINDOW)
        // `None` keeps webrtc-rs's own timer (and its keepalive interval).
        .with_ice_timeouts(cfg.ice_timers.disconnected, cfg.ice_timers.failed, None)
        .build();
    let handler = Arc::new(Handler {
        role,
        sink: sink.clone(),
        control,
    });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(ice_configuration(cfg))
        .with_setting_engine(setting_engine)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
        .with_runtime(runtime.clone())
        .with_udp_addrs(vec![cfg.udp_addr.clone()])
        .build()
        .await?;

    let mut track = None;
    match cfg.role {
        Role::Sender => {
            let ssrc: u32 = match cfg.rtp_seed {
                Some(seed) => crate::config::seeded_rtp_ids(seed).0,
                None => rand::random(),
            };
            // Offer both codecs on the transceiver the track will use; add_track would
            // otherwise narrow the offer to the track's own codec.
            let transceiver = pc
                .add_transceiver_from_kind(
                    RtpCodecKind::Video,
                    Some(RTCRtpTransceiverInit {
                        // add_track below takes this transceiver and makes it sendrecv (so a
                        // browser can send its camera back on it); webrtc-rs refuses a sending
                        // direction here without encodings.
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await?;
            let mut preferences = vec![codec.clone(), codec_parameters(other)];
            if cfg.fec {
                preferences.push(interceptors::fec::codec_parameters());
            }
            transceiver.set_codec_preferences(preferences).await?;
            // An RTP track: the sender packetizes itself, for whichever codec is negotiated.
            let t = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                "rtclab".to_owned(),
                "rtclab-video".to_owned(),
                "rtclab video".to_owned(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.rtp_codec.clone(),
                    ..Default::default()
                }],
            )));
            pc.add_track(t.clone() as Arc<dyn TrackLocal>).await?;
            track = Some(t);
        }
        Role::Receiver => {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
        }
    }
    Ok(Peer {
        cfg: cfg.clone(),
        role,
        sink: sink.clone(),
        runtime,
        pc: Box::new(pc),
        counters,
        target,
        track,
        sender: None,
        receiver: None,
    })
}

/// Joins `room` on the signaling server at `signal_url` and runs until `shutdown` resolves or
/// the other peer leaves. Every step is logged into `sink`.
///
/// Signaling is needed to set up the call, not to keep it: once the peer connection is
/// connected, losing the signaling server logs [`SIGNALING_LOST`] and the peer reconnects in
/// the background ([`SIGNALING_BACK`]); the session then ends by `shutdown`, the other peer's
/// bye (with signaling back), or the peer connection failing or closing.
pub async fn run_peer(
    signal_url: &str,
    room: &str,
    cfg: PeerConfig,
    sink: EventSink,
    runtime: Arc<dyn Runtime>,
    shutdown: impl Future<Output = ()>,
) -> Result<PeerExit, PeerError> {
    let mut cfg = cfg;
    let mut signal = signal_client::connect(signal_url, room).await?;
    if cfg.ice_servers.is_empty() {
        signal = adopt_ice_servers(signal, &mut cfg, &runtime).await;
    }
    if cfg.ice_policy == crate::config::IcePolicy::Relay
        && !cfg
            .ice_servers
            .iter()
            .any(|s| s.urls.iter().any(|u| u.starts_with("turn")))
    {
        return Err(PeerError::Failed(
            "relay-only, but no TURN server: give one (--turn) or use a signaling server that hands them out (rtclab serve --turn)".into(),
        ));
    }
    run_with_signal(signal, cfg, sink, runtime, shutdown).await
}

/// Takes the STUN/TURN servers (with this peer's TURN credentials) from the server's `joined`
/// message, which comes first on every connection; the message is then handed on unchanged.
async fn adopt_ice_servers(
    mut signal: SignalClient,
    cfg: &mut PeerConfig,
    runtime: &Arc<dyn Runtime>,
) -> SignalClient {
    // `joined` is queued before the server reads anything from us; the bound only guards
    // against a server that never says it.
    let first = tokio::select! {
        // In order, not at random: a virtual-time run must take the same branch every time.
        biased;
        m = signal.rx.recv() => m,
        _ = runtime.sleep(Duration::from_secs(2)) => None,
    };
    let Some(first) = first else {
        return signal;
    };
    if let ServerMessage::Joined { ice_servers, .. } = &first {
        cfg.ice_servers = ice_servers
            .iter()
            .map(|s| crate::config::IceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(first);
    let mut old = signal.rx;
    tokio::spawn(async move {
        while let Some(m) = old.recv().await {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    signal.rx = rx;
    signal
}

/// Like [`run_peer`], on an already joined room.
pub async fn run_with_signal(
    signal: SignalClient,
    cfg: PeerConfig,
    sink: EventSink,
    runtime: Arc<dyn Runtime>,
    shutdown: impl Future<Output = ()>,
) -> Result<PeerExit, PeerError> {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let mut peer = build(&cfg, &sink, runtime, control_tx).await?;
    let result = peer.control_loop(signal, control_rx, shutdown).await;
    peer.stop().await;
    result
}

/// Reconnects to signaling in the background of an established session, with backoff on the
/// session clock (see [`RECONNECT_FIRST_DELAY`]); `None` after [`RECONNECT_TRIES`] failures.
async fn reconnect_signaling(
    handle: signal_client::ReconnectHandle,
    runtime: Arc<dyn Runtime>,
) -> Option<SignalClient> {
    let mut delay = RECONNECT_FIRST_DELAY;
    for _ in 0..RECONNECT_TRIES {
        runtime.sleep(delay).await;
        let attempt = tokio::select! {
            // In order, not at random: a virtual-time run must take the same branch every time.
            biased;
            r = handle.connect() => r.ok(),
            _ = runtime.sleep(RECONNECT_ATTEMPT_TIMEOUT) => None,
        };
        if attempt.is_some() {
            return attempt;
        }
        delay = (delay * 2).min(RECONNECT_MAX_DELAY);
    }
    None
}

impl Peer {
    fn note(&self, what: impl Into<String>) {
        self.sink
            .emit(self.role, Event::Signaling { what: what.into() });
    }

    async fn control_loop(
        &mut self,
        mut signal: SignalClient,
        mut control: mpsc::UnboundedReceiver<Control>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<PeerExit, PeerError> {
        tokio::pin!(shutdown);
        let mut pending_remote: Vec<RTCIceCandidateInit> = Vec::new();
        let mut have_remote = false;
        let mut selected: Option<(Candidate, Candidate)> = None;
        let mut dtls_state = String::new();
        let mut poll = self.runtime.interval(POLL_INTERVAL);
        // On the session clock, like everything else the peer times.
        let mut connect_deadline: Option<std::time::Instant> = None;
        // Once the peer connection is up, media no longer needs signaling: losing the server
        // then starts a background reconnect instead of ending the session.
        let mut established = false;
        // The two signs that the other peer is gone rather than its signaling: it left the
        // room, and ICE stopped hearing it (pc `disconnected`). Either alone is not enough: a
        // signaling server can restart under a live call, and ICE can stall for a moment. Both
        // together end the session at once instead of ~25 s later at ICE `failed`.
        let mut left_signaling = false;
        let mut ice_lost = false;
        let mut signal_up = true;
        let mut reconnect: Option<Pin<Box<dyn Future<Output = Option<SignalClient>> + Send>>> =
            None;
        loop {
            tokio::select! {
                // In order, not at random: a virtual-time run must take the same branch every time.
                biased;
                _ = &mut shutdown => {
                    let _ = signal.tx.send(ClientMessage::Bye);
                    self.note("bye sent");
                    return Ok(PeerExit::Shutdown);
                }
                back = async { reconnect.as_mut().expect("guarded by is_some").await },
                    if reconnect.is_some() =>
                {
                    reconnect = None;
                    match back {
                        Some(s) => {
                            signal = s;
                            signal_up = true;
                            self.note(SIGNALING_BACK);
                        }
                        None => self.note(format!(
                            "gave up reconnecting to the signaling server after {RECONNECT_TRIES} tries; media continues"
                        )),
                    }
                }
                msg = signal.rx.recv(), if signal_up => {
                    let Some(msg) = msg else {
                        if !established {
                            return Err(PeerError::Signaling(
                                "the signaling server closed the connection".into(),
                            ));
                        }
                        signal_up = false;
                        self.note(SIGNALING_LOST);
                        reconnect = Some(Box::pin(reconnect_signaling(
                            signal.reconnect_handle(),
                            self.runtime.clone(),
                        )));
                        continue;
                    };
                    match msg {
                        // Back after a reconnect: the room is new to the server, but the call
                        // is not; offering again would renegotiate a working connection.
                        ServerMessage::Joined { room, peers, .. } if established => {
                            self.note(format!("rejoined room {room} ({peers} peer(s))"));
                        }
                        ServerMessage::PeerJoined if established => {
                            self.note("the other peer rejoined signaling");
                        }
                        ServerMessage::Joined { room, peers, .. } => {
                            self.note(format!("joined room {room} ({peers} peer(s))"));
                            if peers == 2 {
                                self.other_peer_present(&signal).await?;
                                connect_deadline = Some(self.runtime.now() + CONNECT_TIMEOUT);
                            }
                        }
                        ServerMessage::PeerJoined => {
                            self.note("peer joined");
                            self.other_peer_present(&signal).await?;
                            connect_deadline = Some(self.runtime.now() + CONNECT_TIMEOUT);
                        }
                        ServerMessage::Offer { sdp } => {
                            self.note("offer received");
                            self.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                            have_remote = true;
                            self.add_candidates(&mut pending_remote).await;
                            let answer = self.pc.create_answer(None).await?;
                            self.pc.set_local_description(answer.clone()).await?;
                            let _ = signal.tx.send(ClientMessage::Answer { sdp: answer.sdp });
                            self.note("answer sent");
                        }
                        ServerMessage::Answer { sdp } => {
                            self.note("answer received");
                            self.pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
                            have_remote = true;
                            self.add_candidates(&mut pending_remote).await;
                        }
                        ServerMessage::Candidate { candidate } => {
                            if let Some(c) = candidates::parse_candidate_line(&candidate.candidate) {
                                self.sink.emit(self.role, Event::IceCandidate { side: Side::Remote, candidate: c });
                            }
                            pending_remote.push(RTCIceCandidateInit {
                                candidate: candidate.candidate,
                                sdp_mid: candidate.sdp_mid,
                                sdp_mline_index: candidate.sdp_mline_index,
                                username_fragment: candidate.username_fragment,
                                ..Default::default()
                            });
                            if have_remote {
                                self.add_candidates(&mut pending_remote).await;
                            }
                        }
                        // Session-log lines pushed for the browser page; a Rust peer has its own.
                        ServerMessage::Event { .. } => {}
                        // The other peer's socket closed without a bye: during a session that is
                        // what a signaling server going down looks like, so media goes on; a
                        // peer that is really gone ends the session through ICE (pc failed).
                        ServerMessage::PeerLeft if established && ice_lost => {
                            self.note("the other peer left signaling and ICE had already lost it: it is gone");
                            return Ok(PeerExit::PeerLeft);
                        }
                        ServerMessage::PeerLeft if established => {
                            left_signaling = true;
                            self.note("the other peer left signaling; media continues");
                        }
                        ServerMessage::Bye | ServerMessage::PeerLeft => {
                            self.note("peer left");
                            return Ok(PeerExit::PeerLeft);
                        }
                        ServerMessage::Error { code, message } => {
                            self.sink.emit(self.role, Event::Note {
                                level: rtclab_events::NoteLevel::Error,
                                message: format!("signaling error {code:?}: {message}"),
                            });
                            if code == rtclab_signaling::protocol::ErrorCode::RoomFull {
                                return Err(PeerError::Signaling(message));
                            }
                        }
                    }
                }
                Some(ctl) = control.recv() => match ctl {
                    Control::Candidate(init) => {
                        let _ = signal.tx.send(ClientMessage::Candidate {
                            candidate: IceCandidate {
                                candidate: init.candidate,
                                sdp_mid: init.sdp_mid,
                                sdp_mline_index: init.sdp_mline_index,
                                username_fragment: init.username_fragment,
                            },
                        });
                    }
                    Control::IceChanged => {
                        self.poll_transport(&mut selected, &mut dtls_state, Observed::OnStateChange).await;
                    }
                    Control::PcState(state) => {
                        self.log_pc_state(state, &mut selected, &mut dtls_state).await;
                        match state {
                            RTCPeerConnectionState::Connected => {
                                connect_deadline = None;
                                ice_lost = false;
                                self.start_media().await?;
                                established = true;
                            }
                            RTCPeerConnectionState::Disconnected if left_signaling => {
                                self.note("ICE lost the other peer after it left signaling: it is gone");
                                return Ok(PeerExit::PeerLeft);
                            }
                            RTCPeerConnectionState::Disconnected => ice_lost = true,
                            RTCPeerConnectionState::Failed if ice_lost => {
                                // Consent freshness (RFC 7675 §5.1): ICE heard nothing for
                                // both timers in a row. rtclab attempts no ICE restart.
                                let t = self.cfg.ice_timers;
                                return Err(PeerError::Failed(format!(
                                    "ICE failed: no packet from the other peer for {:.1} s ({:.1} s to `disconnected`, \
                                     {:.1} s more to `failed`); an outage longer than ICE's timers ends the session \
                                     (rtclab does not attempt an ICE restart; [ice] failed_s sets the timer)",
                                    (t.disconnected() + t.failed()).as_secs_f64(),
                                    t.disconnected().as_secs_f64(),
                                    t.failed().as_secs_f64(),
                                )));
                            }
                            RTCPeerConnectionState::Failed => {
                                return Err(PeerError::Failed(
                                    "the peer connection failed (ICE or DTLS); see ice.* and dtls.state in the log".into(),
                                ));
                            }
                            // Only this peer closes its connection, after this loop; a close seen
                            // here came from elsewhere and, without signaling, nothing else would
                            // end us.
                            RTCPeerConnectionState::Closed => {
                                return Err(PeerError::Failed("the peer connection was closed".into()));
                            }
                            _ => {}
                        }
                    }
                    Control::Track(track) => {
                        // Any role receives: a browser in the demo may send its camera back.
                        if self.receiver.is_none() {
                            let mut exts = Vec::new();
                            for r in self.pc.get_receivers().await {
                                if let Ok(p) = r.get_parameters().await {
                                    exts.extend(p.rtp_parameters.header_extensions);
                                }
                            }
                            self.receiver = Some(receiver::start(ReceiverContext {
                                ext: crate::qoe::ExtIds::from_params(&exts),
                                track,
                                sink: self.sink.clone(),
                                runtime: self.runtime.clone(),
                                counters: self.counters.clone(),
                                pli_interval: self.cfg.pli_interval,
                                fec: self.cfg.fec,
                                min_playout_delay: self.cfg.min_playout_delay,
                                work_gate: self.cfg.work_gate.clone(),
                                codec_cost: self.cfg.codec_cost,
                            }).await?);
                        }
                    }
                },
                _ = poll.tick() => {
                    self.poll_transport(&mut selected, &mut dtls_state, Observed::Poll).await;
                    if connect_deadline.is_some_and(|d| self.runtime.now() > d) {
                        return Err(PeerError::Timeout(format!(
                            "not connected {}s after the other peer joined; see ice.* events in the log",
                            CONNECT_TIMEOUT.as_secs()
                        )));
                    }
                }
            }
        }
    }

    async fn other_peer_present(&mut self, signal: &SignalClient) -> Result<(), PeerError> {
        // The sender always makes the offer: it owns the track, and a browser or Rust receiver
        // can then simply answer.
        if self.cfg.role == Role::Sender {
            let offer = self.pc.create_offer(None).await?;
            self.pc.set_local_description(offer.clone()).await?;
            let _ = signal.tx.send(ClientMessage::Offer { sdp: offer.sdp });
            self.note("offer sent");
        }
        Ok(())
    }

    async fn add_candidates(&self, pending: &mut Vec<RTCIceCandidateInit>) {
        for c in pending.drain(..) {
            if c.candidate.is_empty() {
                continue;
            }
            if let Err(e) = self.pc.add_ice_candidate(c.clone()).await {
                self.sink.emit(
                    self.role,
                    Event::Note {
                        level: rtclab_events::NoteLevel::Warn,
                        message: format!("remote candidate {:?} refused: {e}", c.candidate),
                    },
                );
            }
        }
    }

    async fn start_media(&mut self) -> Result<(), PeerError> {
        if self.cfg.role != Role::Sender || self.sender.is_some() {
            return Ok(());
        }
        let (Some(track), Some(target)) = (self.track.clone(), self.target.clone()) else {
            return Ok(());
        };
        let senders = self.pc.get_senders().await;
        let Some(rtp_sender) = senders.first() else {
            return Err(PeerError::Failed("connected without an RTP sender".into()));
        };
        let params = rtp_sender.get_parameters().await?;
        let Some(negotiated) = params.rtp_parameters.codecs.first() else {
            return Err(PeerError::Failed(
                "the other peer accepted neither video/H264 nor video/VP8".into(),
            ));
        };
        let pt = negotiated.payload_type;
        let ext = crate::qoe::ExtIds::from_params(&params.rtp_parameters.header_extensions);
        let negotiated_codec = negotiated.rtp_codec.clone();
        let mime = negotiated.rtp_codec.mime_type.to_lowercase();
        // FlexFEC's repair packets share the target with the media (libwebrtc's protection
        // overhead): with it negotiated, the encoder gets the media packets' share.
        let fec_negotiated = params.rtp_parameters.codecs.iter().any(|c| {
            c.rtp_codec.mime_type.eq_ignore_ascii_case(
                rtc::peer_connection::configuration::media_engine::MIME_TYPE_FLEX_FEC03,
            )
        });
        let mut cfg = self.cfg.clone();
        cfg.fec = fec_negotiated;
        cfg.codec = if mime.contains("vp8") {
            Codec::Vp8
        } else {
            Codec::H264
        };
        if cfg.codec != self.cfg.codec {
            self.sink.emit(
                self.role,
                Event::Note {
                    level: rtclab_events::NoteLevel::Info,
                    message: format!(
                        "the other peer chose {} over the configured {}",
                        cfg.codec, self.cfg.codec
                    ),
                },
            );
        }
        self.sender = Some(
            sender::start(sender::SenderContext {
                cfg,
                track,
                codec: negotiated_codec,
                payload_type: pt,
                target,
                sink: self.sink.clone(),
                runtime: self.runtime.clone(),
                counters: self.counters.clone(),
                ext,
            })
            .await?,
        );
        Ok(())
    }

    /// Reads the transport (so a DTLS change is logged first), then logs `pc.state`.
    async fn log_pc_state(
        &self,
        state: RTCPeerConnectionState,
        selected: &mut Option<(Candidate, Candidate)>,
        dtls_state: &mut String,
    ) {
        self.poll_transport(selected, dtls_state, Observed::OnStateChange)
            .await;
        const CONNECTED: &str = "connected";
        if state == RTCPeerConnectionState::Connected && dtls_state != CONNECTED {
            CONNECTED.clone_into(dtls_state);
            self.sink.emit(
                self.role,
                Event::DtlsState {
                    state: CONNECTED.into(),
                    observed: Some(Observed::ImpliedByPcState),
                },
            );
        }
        self.sink.emit(
            self.role,
            Event::PcState {
                state: state.to_string(),
            },
        );
    }

    /// Logs the DTLS state and the selected pair if they changed; `observed` says how this
    /// read was triggered (and so how late the line may be).
    async fn poll_transport(
        &self,
        selected: &mut Option<(Candidate, Candidate)>,
        dtls_state: &mut String,
        observed: Observed,
    ) {
        let transport = match self.cfg.role {
            Role::Sender => match self.pc.get_senders().await.first() {
                Some(s) => s.transport().await.ok().flatten(),
                None => None,
            },
            Role::Receiver => match self.pc.get_receivers().await.first() {
                Some(r) => r.transport().await.ok().flatten(),
                None => None,
            },
        };
        let Some(dtls) = transport else { return };
        if let Ok(state) = dtls.state().await {
            let state = state.to_string();
            if *dtls_state != state {
                *dtls_state = state.clone();
                self.sink.emit(
                    self.role,
                    Event::DtlsState {
                        state,
                        observed: Some(observed),
                    },
                );
            }
        }
        if let Ok(Some(pair)) = dtls.ice_transport().get_selected_candidate_pair().await {
            let now = (
                candidates::from_rtc(pair.local(), None),
                candidates::from_rtc(pair.remote(), None),
            );
            if selected.as_ref() != Some(&now) {
                if let Some(pcap) = &self.cfg.pcap {
                    let addr = |c: &Candidate| {
                        format!("{}:{}", c.address, c.port)
                            .parse::<std::net::SocketAddr>()
                            .ok()
                    };
                    if let (Some(l), Some(r)) = (addr(&now.0), addr(&now.1)) {
                        pcap.set_path(l, r);
                    }
                }
                self.sink.emit(
                    self.role,
                    Event::IceSelectedPair {
                        local: now.0.clone(),
                        remote: now.1.clone(),
                        observed: Some(observed),
                    },
                );
                *selected = Some(now);
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(s) = self.sender.take() {
            s.stop().await;
        }
        if let Some(r) = self.receiver.take() {
            r.stop().await;
        }
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing peer connection: {e}");
        }
    }
}

/// The ICE part of the peer connection's configuration: servers and transport policy.
fn ice_configuration(cfg: &PeerConfig) -> rtc::peer_connection::configuration::RTCConfiguration {
    use rtc::peer_connection::configuration::{RTCIceServer, RTCIceTransportPolicy};
    RTCConfigurationBuilder::new()
        .with_ice_servers(
            cfg.ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        )
        .with_ice_transport_policy(match cfg.ice_policy {
            crate::config::IcePolicy::All => RTCIceTransportPolicy::All,
            crate::config::IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        })
        .build()
}
