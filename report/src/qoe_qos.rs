//! QoE next to QoS (issue 14 #5): what the network did and what the viewer got, side by side,
//! each figure with one line saying what it means. QoS (quality of service) is the network's
//! side — loss, delay, jitter, capacity, queue; QoE (quality of experience) the viewer's —
//! startup, freezes, frame rate, resolution, picture quality, latency. A learner reads across:
//! which network figure explains which viewer figure.

use crate::metrics::RunReport;
use crate::tables::num;
use rtclab_events::{Direction, Event, Record, Rtcp};
use serde::Serialize;
use serde_json::Value;

/// One figure of either side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// What it is ("loss", "freezes").
    pub name: &'static str,
    /// The run's value, with its unit ("–" when the log cannot tell).
    pub value: String,
    /// What it means, in one line.
    pub meaning: &'static str,
}

/// Both sides of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideBySide {
    /// The network's side (QoS).
    pub network: Vec<Figure>,
    /// The viewer's side (QoE).
    pub viewer: Vec<Figure>,
}

fn figure(name: &'static str, value: Option<String>, meaning: &'static str) -> Figure {
    Figure {
        name,
        value: value.unwrap_or_else(|| "–".to_owned()),
        meaning,
    }
}

/// Median of the interarrival jitter the receiver reported in its RTCP receiver reports
/// (RFC 3550 §6.4.1), ms.
pub(crate) fn rr_jitter_ms(records: &[Record]) -> Option<f64> {
    let mut v: Vec<f64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Rtcp {
                direction: Direction::In,
                packet: Rtcp::ReceiverReport { reports, .. },
            } => reports.first().map(|b| b.jitter_ms),
            _ => None,
        })
        .filter(|j| j.is_finite())
        .collect();
    rtclab_events::stats::percentile(&mut v, 50.0)
}

/// The two sides of a run, from its report and its `summary.json` (for the viewer's figures
/// only the receiver measures: glass-to-glass, PSNR/SSIM, lowest resolution).
pub fn side_by_side(report: &RunReport, summary: &Value) -> SideBySide {
    let loss = report
        .impairment
        .iter()
        .find(|d| d.direction == "downlink")
        .filter(|d| d.packets_in > 0)
        .map(|d| 100.0 * d.dropped_total as f64 / d.packets_in as f64);
    let capacity = report
        .raw
        .capacity_steps
        .iter()
        .filter_map(|s| s.capacity_bps)
        .filter(|c| *c > 0.0)
        .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.min(c))));
    let network = vec![
        figure(
            "loss (downlink)",
            loss.map(|l| format!("{l:.1} %")),
            "packets the network dropped on the way to the viewer, before any repair",
        ),
        figure(
            "round-trip time",
            report.rtt_mean_ms.map(|m| {
                format!(
                    "{m:.0} ms mean, {:.0} ms max",
                    report.rtt_max_ms.unwrap_or(m)
                )
            }),
            "how long a NACK and its retransmission take at least: the price of every repair",
        ),
        figure(
            "jitter (RTCP RR)",
            report.rr_jitter_p50_ms.map(|j| format!("{j:.1} ms median")),
            "how unevenly packets arrive (RFC 3550 §6.4.1): what the jitter buffer must absorb",
        ),
        figure(
            "capacity (lowest)",
            Some(capacity.map_or_else(|| "unlimited".to_owned(), crate::tables::fmt_bps)),
            "the most the bottleneck carried at its narrowest: the ceiling for the video's bitrate",
        ),
        figure(
            "queuing delay p95",
            report.queue_delay_p95_ms.map(|q| format!("{q:.0} ms")),
            "time packets waited in the bottleneck's queue: what a congestion controller keeps low",
        ),
    ];
    let fps = (report.media_duration_s > 0.0)
        .then(|| report.frames_decoded as f64 / report.media_duration_s);
    let viewer = vec![
        figure(
            "startup delay",
            report
                .startup_delay
                .as_ref()
                .map(|s| format!("{:.0} ms", s.total_ms)),
            "from joining to the first picture (signaling, ICE, DTLS, first frame)",
        ),
        figure(
            "freezes",
            Some(format!(
                "{} ({:.1} s{})",
                report.freeze_count,
                report.freeze_total_ms / 1000.0,
                report
                    .frozen_pct
                    .map_or_else(String::new, |p| format!(", {p:.1} % of the time"))
            )),
            "the picture stood still (W3C rule): the viewer's version of rebuffering",
        ),
        figure(
            "frame rate",
            fps.map(|f| format!("{f:.1} fps decoded")),
            "smoothness: below the source's rate, motion stutters",
        ),
        figure(
            "lowest resolution",
            num(summary, "lowest_height").map(|h| format!("{h:.0}p")),
            "how far resolution scaling went down to fit the bitrate",
        ),
        figure(
            "picture quality",
            num(summary, "psnr_mean_db").map(|p| match num(summary, "ssim_mean") {
                Some(s) => format!("PSNR {p:.1} dB, SSIM {s:.3}"),
                None => format!("PSNR {p:.1} dB"),
            }),
            "how close the decoded picture is to the source (higher is better; ~40 dB looks clean)",
        ),
        figure(
            "glass-to-glass",
            num(summary, "g2g_p50_ms").map(|p| {
                let p95 = num(summary, "g2g_p95_ms").unwrap_or(p);
                format!("{p:.0} ms p50, {p95:.0} ms p95")
            }),
            "capture to decode: the delay a viewer feels in a conversation",
        ),
    ];
    SideBySide { network, viewer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_has_its_figures_and_says_dash_when_unknown() {
        let report = RunReport::default();
        let summary = serde_json::json!({
            "g2g_p50_ms": 120.0, "g2g_p95_ms": 180.0, "lowest_height": 360
        });
        let s = side_by_side(&report, &summary);
        let get = |side: &[Figure], name: &str| {
            side.iter()
                .find(|f| f.name == name)
                .map(|f| f.value.clone())
                .expect("present")
        };
        assert_eq!(get(&s.network, "loss (downlink)"), "–");
        assert_eq!(get(&s.network, "capacity (lowest)"), "unlimited");
        assert_eq!(get(&s.viewer, "glass-to-glass"), "120 ms p50, 180 ms p95");
        assert_eq!(get(&s.viewer, "lowest resolution"), "360p");
        assert_eq!(get(&s.viewer, "freezes"), "0 (0.0 s)");
        assert!(
            s.network
                .iter()
                .chain(&s.viewer)
                .all(|f| !f.meaning.is_empty())
        );
    }
}
