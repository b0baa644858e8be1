//! What a peer is asked to do.

use rtclab_media::{Codec, Resolution, SourceSpec};
use std::sync::Arc;
use std::time::Duration;

/// Sender or receiver of the video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Encodes and sends video; makes the offer.
    Sender,
    /// Receives and decodes video; answers.
    Receiver,
}

impl Role {
    /// The event-log `peer` value for this role.
    pub fn peer(self) -> rtclab_events::PeerRole {
        match self {
            Role::Sender => rtclab_events::PeerRole::Sender,
            Role::Receiver => rtclab_events::PeerRole::Receiver,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    /// `send` or `recv`, as on the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "send" => Ok(Role::Sender),
            "recv" => Ok(Role::Receiver),
            other => Err(format!("role {other:?}: expected send or recv")),
        }
    }
}

/// Which congestion controller a Rust sender runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcKind {
    /// rtclab's own GCC-family controller (crate `rtclab-cc`).
    #[default]
    Rtclab,
    /// webrtc-rs's stock `Gcc`, for comparison.
    Stock,
}

impl CcKind {
    /// The name in the log (`bwe.estimate` `estimator`, `session.start` config).
    pub fn name(self) -> &'static str {
        match self {
            CcKind::Rtclab => "rtclab",
            CcKind::Stock => "stock",
        }
    }
}

impl std::str::FromStr for CcKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rtclab" => Ok(CcKind::Rtclab),
            "stock" => Ok(CcKind::Stock),
            other => Err(format!(
                "unknown congestion controller `{other}`: use rtclab or stock"
            )),
        }
    }
}

/// Which candidates ICE may use (W3C `iceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Relay candidates only: every packet goes through a TURN server.
    Relay,
}

impl std::fmt::Display for IcePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IcePolicy::All => "all",
            IcePolicy::Relay => "relay",
        })
    }
}

impl std::str::FromStr for IcePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(IcePolicy::All),
            "relay" => Ok(IcePolicy::Relay),
            other => Err(format!("ice policy {other:?}: expected all or relay")),
        }
    }
}

/// One STUN or TURN server (W3C `RTCIceServer`).
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp|tcp` URLs.
    pub urls: Vec<String>,
    /// TURN username (a REST username `expiry:user` for rtclab's and coturn's secret auth).
    pub username: String,
    /// TURN password.
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of debug output.
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl IceServer {
    /// A STUN server (no credentials).
    pub fn stun(url: impl Into<String>) -> Self {
        IceServer {
            urls: vec![url.into()],
            username: String::new(),
            credential: String::new(),
        }
    }

    /// A TURN server with its credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        IceServer {
            urls: vec![url.into()],
            username: username.into(),
            credential: credential.into(),
        }
    }
}

/// Settings of one Rust peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Sender or receiver.
    pub role: Role,
    /// Video codec offered and used.
    pub codec: Codec,
    /// Test pattern or file (sender only).
    pub source: SourceSpec,
    /// Encoded size (sender only).
    pub size: Resolution,
    /// Frames per second (sender only).
    pub fps: u32,
    /// Congestion controller's starting target, bps.
    pub initial_bps: u32,
    /// Lowest target, bps.
    pub min_bps: u32,
    /// Highest target, bps.
    pub max_bps: u32,
    /// Receiver only: also send a PLI this often (tests use it to check keyframe latency).
    pub pli_interval: Option<Duration>,
    /// Local UDP address to gather on (loopback by default).
    pub udp_addr: String,
    /// Write this peer's decrypted RTP/RTCP here (one peer per session should).
    pub pcap: Option<crate::interceptors::pcap::PcapSink>,
    /// Congestion controller (sender only).
    pub cc: CcKind,
    /// Which candidates ICE may use.
    pub ice_policy: IcePolicy,
    /// STUN and TURN servers to gather from (none: host candidates only).
    pub ice_servers: Vec<IceServer>,
    /// Negotiate FlexFEC-03: the sender adds repair packets, the receiver rebuilds lost media
    /// from them (see [`crate::interceptors::fec`]). Both peers must have it for it to be used.
    pub fec: bool,
    /// Sender: scale the resolution down and up with the target (`false`: always the
    /// configured size; frames are still skipped when over budget).
    pub resolution_scaling: bool,
    /// Receiver: the jitter buffer holds frames at least this long (a larger buffer).
    pub min_playout_delay: Duration,
    /// ICE's timers: how long without a packet from the selected pair before `disconnected`,
    /// and how long after that before `failed`, which ends the session. `None` keeps
    /// webrtc-rs's defaults (5 s and 25 s; docs/notes/webrtc-rs-0.21.md).
    pub ice_timers: IceTimers,
    /// Work the peer does off the runtime's thread (encoding, decoding, quality scoring) is
    /// announced here, so that a virtual-time runtime holds its clock until it is done. In real
    /// time it is empty and costs nothing.
    pub work_gate: WorkGate,
    /// Sender: the SSRC and the first RTP sequence number come from this seed instead of at
    /// random (RFC 3550 §5.1, §8 ask for random ones), so that two virtual-time runs of one
    /// scenario send the same packets. `None` in real time.
    pub rtp_seed: Option<u64>,
    /// The CPU time a frame spends in the encoder and the decoder, added back as virtual time
    /// (a virtual clock stands still while they work). `None` in real time, where the work
    /// takes the time it takes.
    pub codec_cost: Option<CodecCost>,
    /// Virtual time: the runtime's instant zero. The sender starts its frames on the next
    /// [`START_GRID`] step of it, so that the handshake's few random bytes (an ECDSA signature
    /// is 70–72 bytes) cannot shift every later frame by microseconds. `None` in real time.
    pub virtual_epoch: Option<std::time::Instant>,
}

/// The step of virtual time the sender's first frame waits for (see
/// [`PeerConfig::virtual_epoch`]): 10 ms, a thousand times what two bytes take on a 1 Mbit/s
/// link, and small beside a 33 ms frame interval.
pub const START_GRID: Duration = Duration::from_millis(10);

/// How long to wait at `now` for the next [`START_GRID`] step counted from `epoch`.
pub fn until_grid(epoch: std::time::Instant, now: std::time::Instant) -> Duration {
    let since = now.saturating_duration_since(epoch).as_nanos();
    let step = START_GRID.as_nanos();
    let wait = (step - since % step) % step;
    Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
}

/// A fixed model of what encoding and decoding one frame costs, in milliseconds per megapixel
/// of the frame's size (so a frame the encoder scaled down costs less).
///
/// Per megapixel because the cost measured here is roughly proportional to the frame's area:
/// `cargo bench -p rtclab-media --bench codec_cost` (release, this lab's machine, testsrc2,
/// one thread per codec; medians) gave H.264 1.96 and 1.69 ms/MP to encode a 720p and a 360p
/// frame, 0.54 and 0.52 ms/MP to decode one; VP8 5.9 and 6.4 ms/MP, 1.0 and 1.1 ms/MP. Making
/// the source frame is not counted: the source thread makes frames ahead of the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecCost {
    /// From capture to the encoded frame (scaling to a lower rung, and the encoder), ms/MP.
    pub encode_ms_per_mp: f64,
    /// From a complete frame to its picture, ms/MP.
    pub decode_ms_per_mp: f64,
}

impl CodecCost {
    /// The costs measured on this lab's machine for `codec` (see the type's documentation).
    pub fn measured(codec: Codec) -> Self {
        match codec {
            Codec::H264 => CodecCost {
                encode_ms_per_mp: 1.9,
                decode_ms_per_mp: 0.55,
            },
            Codec::Vp8 => CodecCost {
                encode_ms_per_mp: 6.1,
                decode_ms_per_mp: 1.1,
            },
        }
    }

    fn time(ms_per_mp: f64, width: u32, height: u32) -> Duration {
        let mp = f64::from(width) * f64::from(height) / 1e6;
        Duration::from_secs_f64((ms_per_mp * mp / 1000.0).max(0.0))
    }

    /// What encoding one `width` × `height` frame costs.
    pub fn encode_time(&self, width: u32, height: u32) -> Duration {
        Self::time(self.encode_ms_per_mp, width, height)
    }

    /// What decoding one `width` × `height` frame costs.
    pub fn decode_time(&self, width: u32, height: u32) -> Duration {
        Self::time(self.decode_ms_per_mp, width, height)
    }

    /// As written into `session.start` (`codec_cost`): the model and what it gives at `size`.
    pub fn describe(&self, size: Resolution) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        serde_json::json!({
            "model": "fixed cost per frame, proportional to its area",
            "encode_ms_per_megapixel": self.encode_ms_per_mp,
            "decode_ms_per_megapixel": self.decode_ms_per_mp,
            "encode_ms_per_frame": ms(self.encode_time(size.width, size.height)),
            "decode_ms_per_frame": ms(self.decode_time(size.width, size.height)),
        })
    }
}

/// The SSRC and first sequence number for [`PeerConfig::rtp_seed`]: splitmix64 of the seed, so
/// nearby seeds give unrelated values; never SSRC 0.
pub fn seeded_rtp_ids(seed: u64) -> (u32, u16) {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let ssrc = (mix(seed) as u32).max(1);
    let seq = mix(seed ^ 0x5EED) as u16;
    (ssrc, seq)
}

/// A guard that lives while one piece of off-thread work (a frame encoded, decoded or scored)
/// is under way; see [`WorkGate`].
pub type WorkGuard = Box<dyn Send>;

/// Announces off-thread work to the runtime: `begin()` before handing a job to a thread, and the
/// thread drops the guard once it has handed the result back. A virtual-time runtime
/// (`rtclab_netem::SimRuntime::busy`) does not move its clock, nor run anything else, while a
/// guard lives, so CPU work takes no virtual time and the run stays deterministic.
#[derive(Clone, Default)]
pub struct WorkGate(Option<Arc<dyn Fn() -> WorkGuard + Send + Sync>>);

impl WorkGate {
    /// A gate that calls `begin` for every piece of work.
    pub fn new(begin: impl Fn() -> WorkGuard + Send + Sync + 'static) -> Self {
        WorkGate(Some(Arc::new(begin)))
    }

    /// A guard for one piece of work (`None` in real time).
    pub fn begin(&self) -> Option<WorkGuard> {
        self.0.as_ref().map(|f| f())
    }

    /// Whether the run is in virtual time (the gate is set).
    pub fn is_virtual(&self) -> bool {
        self.0.is_some()
    }

    /// Call after handing work to another thread. In virtual time the task steps back behind
    /// the tasks already queued, and the runtime runs nothing until the work is done, so what
    /// the work hands back (a reply, a keyframe request) is always seen at the same point of
    /// the run. Without it, a job that finished within the task's own turn would be seen at
    /// once, and a slower one a turn later: the run would depend on the machine's speed (it
    /// did: two runs of rfc8867-5.1 parted at 18 s once encoding got faster). In real time it
    /// does nothing.
    pub async fn settle(&self) {
        if self.is_virtual() {
            YieldOnce(false).await;
        }
    }
}

/// Pending once (waking itself at once), then ready.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl std::fmt::Debug for WorkGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "WorkGate(virtual time)"
        } else {
            "WorkGate(real time)"
        })
    }
}

/// ICE's timers (`[ice] disconnected_s`, `failed_s` in a scenario); `None` keeps webrtc-rs's
/// default. RFC 8445 §14 leaves them to the implementation; RFC 7675 §5.1 (consent freshness)
/// says a path is lost after 30 s without an answer, which the defaults add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IceTimers {
    /// Without a packet for this long, ICE says `disconnected`.
    pub disconnected: Option<Duration>,
    /// This long after `disconnected`, ICE says `failed`.
    pub failed: Option<Duration>,
}

/// webrtc-rs 0.21's `disconnected` timer (rtc-ice `agent_config.rs`), for the log and messages.
pub const DEFAULT_ICE_DISCONNECTED: Duration = Duration::from_secs(5);
/// webrtc-rs 0.21's `failed` timer, counted after `disconnected` (rtc-ice `agent_config.rs`).
pub const DEFAULT_ICE_FAILED: Duration = Duration::from_secs(25);

impl IceTimers {
    /// The `disconnected` timer in effect.
    pub fn disconnected(&self) -> Duration {
        self.disconnected.unwrap_or(DEFAULT_ICE_DISCONNECTED)
    }

    /// The `failed` timer in effect (after `disconnected`).
    pub fn failed(&self) -> Duration {
        self.failed.unwrap_or(DEFAULT_ICE_FAILED)
    }
}

impl PeerConfig {
    /// Defaults for `role`: H.264, test pattern, 720p30, 1 Mbps start within 100 kbps..3 Mbps.
    pub fn new(role: Role) -> Self {
        PeerConfig {
            role,
            codec: Codec::H264,
            source: SourceSpec::TestPattern,
            size: Resolution {
                width: 1280,
                height: 720,
            },
            fps: 30,
            initial_bps: 1_000_000,
            min_bps: 100_000,
            max_bps: 3_000_000,
            pli_interval: None,
            udp_addr: "127.0.0.1:0".to_owned(),
            pcap: None,
            cc: CcKind::default(),
            ice_policy: IcePolicy::All,
            ice_servers: Vec::new(),
            fec: false,
            resolution_scaling: true,
            min_playout_delay: Duration::ZERO,
            ice_timers: IceTimers::default(),
            work_gate: WorkGate::default(),
            rtp_seed: None,
            codec_cost: None,
            virtual_epoch: None,
        }
    }

    /// Settings as written into `session.start`.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "codec": self.codec.to_string(),
            "source": match &self.source {
                SourceSpec::TestPattern => "testsrc2".to_owned(),
                SourceSpec::File(p) => p.display().to_string(),
            },
            "width": self.size.width,
            "height": self.size.height,
            "fps": self.fps,
            "initial_bps": self.initial_bps,
            "min_bps": self.min_bps,
            "max_bps": self.max_bps,
            "estimator": self.cc.name(),
            "ice_policy": self.ice_policy.to_string(),
            "ice_servers": self.ice_servers.iter().flat_map(|s| s.urls.clone()).collect::<Vec<_>>(),
            "fec": self.fec,
            "resolution_scaling": self.resolution_scaling,
            "min_playout_delay_ms": self.min_playout_delay.as_secs_f64() * 1000.0,
            "ice_disconnected_s": self.ice_timers.disconnected().as_secs_f64(),
            "ice_failed_s": self.ice_timers.failed().as_secs_f64(),
            "codec_cost": self.codec_cost.map(|c| c.describe(self.size)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_waits_for_the_next_grid_step() {
        let epoch = std::time::Instant::now();
        let at = |us: u64| epoch + Duration::from_micros(us);
        assert_eq!(until_grid(epoch, at(0)), Duration::ZERO);
        assert_eq!(until_grid(epoch, at(10_000)), Duration::ZERO);
        // 403.016 ms and 403.032 ms (two more handshake bytes) both start at 410 ms.
        assert_eq!(until_grid(epoch, at(403_016)), Duration::from_micros(6_984));
        assert_eq!(until_grid(epoch, at(403_032)), Duration::from_micros(6_968));
    }

    #[test]
    fn a_codec_cost_follows_the_frames_area() {
        let h264 = CodecCost::measured(Codec::H264);
        let hd = h264.encode_time(1280, 720);
        // 1.9 ms/MP × 0.92 MP: the ~1.8 ms the codec_cost bench measured for a 720p frame.
        assert!((hd.as_secs_f64() * 1000.0 - 1.75).abs() < 0.01, "{hd:?}");
        // A quarter of the pixels, a quarter of the time (to the nanosecond's rounding).
        let sd = h264.encode_time(640, 360);
        assert!(hd.abs_diff(sd * 4) < Duration::from_micros(1), "{sd:?}");
        assert!(
            h264.decode_time(1280, 720) < hd,
            "decoding is cheaper than encoding"
        );
        assert!(
            CodecCost::measured(Codec::Vp8).encode_time(1280, 720) > hd,
            "libvpx is slower than x264 ultrafast"
        );
        let d = h264.describe(Resolution {
            width: 1280,
            height: 720,
        });
        assert_eq!(d["encode_ms_per_frame"], 1.75);
        assert_eq!(d["decode_ms_per_frame"], 0.51);
    }

    #[test]
    fn seeded_rtp_ids_repeat_for_a_seed_and_differ_between_seeds() {
        assert_eq!(seeded_rtp_ids(1), seeded_rtp_ids(1));
        let ids: std::collections::HashSet<(u32, u16)> = (0..1000).map(seeded_rtp_ids).collect();
        assert_eq!(ids.len(), 1000, "nearby seeds give unrelated ids");
        assert!(
            (0..1000).all(|s| seeded_rtp_ids(s).0 != 0),
            "SSRC 0 is never used"
        );
    }

    #[test]
    fn a_work_gate_hands_out_guards_only_when_set() {
        assert!(WorkGate::default().begin().is_none());
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Guard(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let counter = live.clone();
        let gate = WorkGate::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(Guard(counter.clone()))
        });
        let guard = gate.begin();
        assert_eq!(live.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(guard);
        assert_eq!(live.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
