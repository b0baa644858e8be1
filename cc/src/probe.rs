//! Probing with media (libwebrtc `ProbeBitrateEstimator`, clusters found rather than scheduled).
//!
//! rtclab's pacer releases packets at 2.5 × the target, so a keyframe or the start-up burst
//! already leaves as a cluster well above the target. A run of at least [`MIN_PACKETS`] packets,
//! each sent within the time it would take at [`CLUSTER_RATE_FACTOR`] × the target of the time,
//! is a cluster; its send rate and receive rate (over the receiver's clock) give the result
//! `min(send, receive)`, or 0.95 × receive when the link visibly limited it (receive < 90 % of
//! send). A cluster whose send/receive ratio exceeds 3 is discarded (libwebrtc
//! `kMaxValidRatio` is 2): the packets were spread by something more than the link's capacity.

use rtc::interceptor::PacketReport;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets a cluster needs (libwebrtc `kMinProbePacketsSent`… 5).
pub const MIN_PACKETS: usize = 5;
/// A packet is in a cluster when sent faster than this × the target.
pub const CLUSTER_RATE_FACTOR: f64 = 1.5;
/// A full RTP packet, bytes (rtclab's and webrtc-rs's MTU): the pacer's burst.
const FULL_PACKET: usize = 1200;
/// Received fraction a cluster needs (libwebrtc `kMinReceivedProbesRatio`).
const MIN_RECEIVED_RATIO: f64 = 0.8;
/// send/receive above this is not a valid measurement. libwebrtc's `kMaxValidRatio` is 2 for
/// probes it paces itself; rtclab's media clusters leave at 2.5 × target, so a cluster at a
/// target near capacity is naturally received at 1/2.5 of its send rate: 3 keeps those.
const MAX_VALID_RATIO: f64 = 3.0;
/// Below this receive/send the link limited the cluster (libwebrtc `kMinRatioForUnsaturatedLink`).
const UNSATURATED_RATIO: f64 = 0.9;
/// A limited cluster reports this fraction of its receive rate (libwebrtc `kTargetUtilizationFraction`).
const SATURATED_FRACTION: f64 = 0.95;
/// The receive rates of a cluster's two halves may differ by at most this factor.
const MAX_HALF_RATIO: f64 = 1.25;
/// Send or receive spans longer than this are not a probe (libwebrtc `kMaxProbeInterval`, 1 s).
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// How long target history is kept to look up the target at a packet's departure.
const TARGET_HISTORY: Duration = Duration::from_secs(10);

/// A measured cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeResult {
    /// The result, bps.
    pub bps: f64,
    /// Send rate of the cluster, bps.
    pub send_bps: f64,
    /// Receive rate of the cluster, bps.
    pub recv_bps: f64,
    /// Packets in the cluster.
    pub packets: usize,
    /// The link limited the cluster (receive < 90 % of send): `bps` measures the capacity.
    pub saturated: bool,
    /// Whether the controller used it to raise the estimate.
    pub applied: bool,
}

/// Why the controller wants a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeReason {
    /// Start of the session: ramp up quickly.
    Startup,
    /// The sender left the application-limited region: the estimate is stale.
    AlrEnded,
    /// Stable for a while, no probe recently: the capacity may have grown.
    Periodic,
    /// The queue drained with no decrease of ours to explain it: the capacity grew.
    QueueDrained,
}

impl ProbeReason {
    /// `Startup` while in start-up, else `Periodic` (a follow-up probe inside a window).
    pub fn or_window(self, startup: bool) -> ProbeReason {
        if startup { self } else { ProbeReason::Periodic }
    }
}

/// A request the application may act on (force a keyframe, or send padding) so that a cluster
/// at about `bps` leaves soon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeRequest {
    /// The rate to probe at, bps.
    pub bps: f64,
    /// Why.
    pub reason: ProbeReason,
}

#[derive(Debug, Clone, Copy)]
struct Pkt {
    departure: Instant,
    arrival: Option<Duration>,
    size: usize,
}

/// Finds clusters in acknowledged packets and measures them.
#[derive(Debug, Default)]
pub struct ProbeDetector {
    cluster: Vec<Pkt>,
    targets: VecDeque<(Instant, f64)>,
}

impl ProbeDetector {
    /// No history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The target changed at `now` (send clock); clusters are judged against the target their
    /// packets were sent under.
    pub fn on_target(&mut self, now: Instant, bps: f64) {
        if self.targets.back().is_some_and(|&(_, b)| b == bps) {
            return;
        }
        self.targets.push_back((now, bps));
        while self.targets.len() > 1
            && self
                .targets
                .get(1)
                .is_some_and(|&(t, _)| now.saturating_duration_since(t) > TARGET_HISTORY)
        {
            self.targets.pop_front();
        }
    }

    fn target_at(&self, at: Instant) -> Option<f64> {
        self.targets
            .iter()
            .rev()
            .find(|&&(t, _)| t <= at)
            .or(self.targets.front())
            .map(|&(_, b)| b)
    }

    /// One reported packet (in send order); returns a result when it closes a valid cluster.
    pub fn on_report(&mut self, r: &PacketReport) -> Option<ProbeResult> {
        let pkt = Pkt {
            departure: r.departure,
            arrival: if r.arrived { r.arrival } else { None },
            size: r.size,
        };
        let Some(last) = self.cluster.last().copied() else {
            self.cluster.push(pkt);
            return None;
        };
        if pkt.departure < last.departure {
            return None;
        }
        let target = self.target_at(pkt.departure).unwrap_or(0.0);
        let gap = pkt.departure.duration_since(last.departure).as_secs_f64();
        // Judged as if the packet were full-size: a pacer releases bytes in bursts of about one
        // full packet, so a run of small packets (a probe keyframe split to make a cluster)
        // leaves in bunches with gaps of a full packet's time between them.
        let max_gap = if target > 0.0 {
            pkt.size.max(FULL_PACKET) as f64 * 8.0 / (CLUSTER_RATE_FACTOR * target)
        } else {
            0.0
        };
        if gap <= max_gap {
            self.cluster.push(pkt);
            return None;
        }
        let result = measure(&self.cluster);
        self.cluster.clear();
        self.cluster.push(pkt);
        result
    }
}

/// Send and receive rate of a cluster (libwebrtc `ProbeBitrateEstimator::HandleProbeAndEstimateBitrate`).
fn measure(c: &[Pkt]) -> Option<ProbeResult> {
    if c.len() < MIN_PACKETS {
        return None;
    }
    let mut arrived: Vec<(Duration, usize)> = c
        .iter()
        .filter_map(|p| p.arrival.map(|a| (a, p.size)))
        .collect();
    if arrived.len() < MIN_PACKETS || (arrived.len() as f64) < MIN_RECEIVED_RATIO * c.len() as f64 {
        return None;
    }
    let (first, last) = (c.first()?, c.last()?);
    let send_s = last.departure.duration_since(first.departure);
    // The last packet's bytes are still being sent when the interval ends.
    let send_bytes: usize = c[..c.len() - 1].iter().map(|p| p.size).sum();
    arrived.sort_by_key(|&(a, _)| a);
    let recv_s = arrived.last()?.0.checked_sub(arrived.first()?.0)?;
    // The first packet's bytes had arrived when the interval starts.
    let recv_bytes: usize = arrived[1..].iter().map(|&(_, s)| s).sum();
    if send_s.is_zero() || recv_s.is_zero() || send_s > MAX_INTERVAL || recv_s > MAX_INTERVAL {
        return None;
    }
    let send_bps = send_bytes as f64 * 8.0 / send_s.as_secs_f64();
    let recv_bps = recv_bytes as f64 * 8.0 / recv_s.as_secs_f64();
    // Consistency (clusters of 10 or more; with fewer, one short last packet of a frame skews a
    // half): the two halves of the arrivals must show the same rate. Jitter behind a
    // FIFO releases held packets in a bunch, which inflates one half (measured in the closed
    // loop with 5 ms jitter: clusters read 20-40 % above the link).
    let mid = arrived.len() / 2;
    let half_rate = |part: &[(Duration, usize)]| -> Option<f64> {
        let span = part.last()?.0.checked_sub(part.first()?.0)?;
        let bytes: usize = part[1..].iter().map(|&(_, s)| s).sum();
        (!span.is_zero()).then(|| bytes as f64 * 8.0 / span.as_secs_f64())
    };
    let (a, b) = (half_rate(&arrived[..=mid])?, half_rate(&arrived[mid..])?);
    if arrived.len() >= 2 * MIN_PACKETS && a.max(b) > MAX_HALF_RATIO * a.min(b) {
        return None;
    }
    if send_bps / recv_bps > MAX_VALID_RATIO {
        return None;
    }
    let saturated = recv_bps < UNSATURATED_RATIO * send_bps;
    let bps = if saturated {
        SATURATED_FRACTION * recv_bps
    } else {
        send_bps.min(recv_bps)
    };
    Some(ProbeResult {
        bps,
        send_bps,
        recv_bps,
        packets: c.len(),
        saturated,
        applied: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;

    /// Packet `id` of `size` bytes, sent `dep_s` after `t0`, arrived at `arr_s` (receiver clock).
    fn report(t0: Instant, id: u64, size: usize, dep_s: f64, arr_s: f64) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id,
            rtp_sequence_number: id as u16,
            is_twcc: true,
            twcc_sequence_number: id as u16,
            size,
            arrived: true,
            departure: t0 + Duration::from_secs_f64(dep_s),
            arrival: Some(Duration::from_secs_f64(arr_s)),
            ecn: Ecn::NotEct,
        }
    }

    /// `n` packets of 1200 bytes sent at `send_bps`, through a bottleneck of `link_bps`
    /// (arrivals spaced by the slower of the two), plus one packet 100 ms later to close it.
    fn cluster(n: usize, send_bps: f64, link_bps: f64) -> Option<ProbeResult> {
        let t0 = Instant::now();
        let mut d = ProbeDetector::new();
        d.on_target(t0, 1_000_000.0);
        let send_gap = 1200.0 * 8.0 / send_bps;
        let arr_gap = send_gap.max(1200.0 * 8.0 / link_bps);
        let mut out = None;
        for i in 0..=n {
            let (dep_s, arr_s) = if i < n {
                (i as f64 * send_gap, 0.05 + i as f64 * arr_gap)
            } else {
                (n as f64 * send_gap + 0.1, 0.2 + n as f64 * arr_gap)
            };
            if let Some(p) = d.on_report(&report(t0, i as u64, 1200, dep_s, arr_s)) {
                out = Some(p);
            }
        }
        out
    }

    #[test]
    fn an_unsaturated_cluster_measures_its_send_rate() {
        let p = cluster(10, 2_500_000.0, 5_000_000.0).expect("a cluster");
        assert_eq!(p.packets, 10);
        assert!((p.bps - 2_500_000.0).abs() < 1_000.0, "{p:?}");
    }

    #[test]
    fn a_saturated_cluster_measures_the_link() {
        // 2.5 Mbps into 2 Mbps: receive < 90 % of send, so 0.95 × 2 Mbps.
        let p = cluster(10, 2_500_000.0, 2_000_000.0).expect("a cluster");
        assert!((p.recv_bps - 2_000_000.0).abs() < 1_000.0, "{p:?}");
        assert!((p.bps - 1_900_000.0).abs() < 1_000.0, "{p:?}");
    }

    #[test]
    fn a_split_keyframe_released_in_full_packet_bunches_is_a_cluster() {
        // A 3.3 KB probe keyframe cut into 11 packets of 300 bytes, released by a pacer at
        // 2.5 × 600 kbps in bunches of 4 (one full packet's worth of budget), through 1 Mbps.
        let t0 = Instant::now();
        let mut d = ProbeDetector::new();
        d.on_target(t0, 600_000.0);
        let bunch_gap = 1200.0 * 8.0 / 1_500_000.0;
        let mut out = None;
        let mut arrival: f64 = 0.05;
        for i in 0..12 {
            let (dep, size) = if i < 11 {
                ((i / 4) as f64 * bunch_gap, 300)
            } else {
                (0.2, 1200)
            };
            arrival = if i < 11 {
                (arrival + 300.0 * 8.0 / 1_000_000.0).max(0.05 + dep)
            } else {
                0.35
            };
            if let Some(p) = d.on_report(&report(t0, i, size, dep, arrival)) {
                out = Some(p);
            }
        }
        let p = out.expect("a cluster");
        assert_eq!(p.packets, 11);
        assert!(p.saturated, "{p:?}");
    }

    #[test]
    fn too_few_packets_or_a_slow_send_is_no_cluster() {
        assert_eq!(cluster(4, 2_500_000.0, 5_000_000.0), None);
        // 1.2 × target is not above 1.5 × target: every packet is its own "cluster".
        assert_eq!(cluster(10, 1_200_000.0, 5_000_000.0), None);
        // Received at under a third of its send rate: not a capacity measurement.
        assert_eq!(cluster(10, 4_000_000.0, 1_000_000.0), None);
    }
}
