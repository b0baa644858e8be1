//! Events drawn as vertical markers on every plot (issue 14 #2): resolution changes, keyframes
//! and why, impairment changes and outages, and the congestion controller's over-use — so a
//! reader sees on the bitrate, delay, loss and frame-rate plots alike what caused what.

use rtclab_events::{Event, KeyframeReason, Record};
use serde::Serialize;

/// What a marker stands for; each kind has its own colour and legend entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    /// The impairment changed (a scenario step), or an outage began or ended.
    Impairment,
    /// The delay-based detector saw over-use (the queue was growing); the first line of each
    /// run of over-use lines.
    Overuse,
    /// A keyframe the sender made on request (PLI, FIR, a probe or a new resolution).
    Keyframe,
    /// The sender changed its resolution.
    Resolution,
}

impl MarkerKind {
    /// The legend's words.
    pub fn label(self) -> &'static str {
        match self {
            MarkerKind::Impairment => "impairment change",
            MarkerKind::Overuse => "over-use (queue growing)",
            MarkerKind::Keyframe => "keyframe on request",
            MarkerKind::Resolution => "resolution change",
        }
    }
}

/// One marker: when, what, and a short text (drawn for resolution changes, which are few).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// Session time, s.
    pub t: f64,
    /// What it marks.
    pub kind: MarkerKind,
    /// Short text, e.g. `720p→540p` or `keyframe (pli)`.
    pub text: String,
}

/// Over-use lines closer than this to the previous over-use are the same episode.
const OVERUSE_EPISODE_S: f64 = 1.0;

/// The markers of a log, in time order.
pub fn markers(records: &[Record]) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut last_overuse: Option<f64> = None;
    for r in records.iter().filter(|r| r.t.is_finite()) {
        let (kind, text) = match &r.event {
            Event::EncoderAdapt {
                from_height,
                to_height,
                ..
            } => (
                MarkerKind::Resolution,
                format!("{from_height}p→{to_height}p"),
            ),
            Event::EncoderKeyframe { reason, .. } if *reason != KeyframeReason::Start => {
                let why = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (MarkerKind::Keyframe, format!("keyframe ({why})"))
            }
            Event::ImpairChange {
                direction,
                settings,
                ..
            } => {
                let outage = settings.get("outage").and_then(serde_json::Value::as_bool);
                let what = match outage {
                    Some(true) => "outage".to_owned(),
                    _ => format!("{direction} changed"),
                };
                (MarkerKind::Impairment, what)
            }
            Event::BweEstimate { detail, .. } if detail.state.as_deref() == Some("overuse") => {
                let new_episode = last_overuse.is_none_or(|t| r.t - t > OVERUSE_EPISODE_S);
                last_overuse = Some(r.t);
                if !new_episode {
                    continue;
                }
                (MarkerKind::Overuse, "over-use".to_owned())
            }
            _ => continue,
        };
        out.push(Marker { t: r.t, kind, text });
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtclab_events::{BweDetail, PeerRole};

    fn rec(t: f64, event: Event) -> Record {
        Record {
            t,
            peer: PeerRole::Sender,
            event,
        }
    }

    fn overuse(t: f64) -> Record {
        rec(
            t,
            Event::BweEstimate {
                estimator: "rtclab".into(),
                target_bps: 1e6,
                delay_based_bps: None,
                loss_based_bps: None,
                loss_ratio: None,
                rtt_ms: None,
                detail: BweDetail {
                    state: Some("overuse".into()),
                    ..Default::default()
                },
            },
        )
    }

    #[test]
    fn each_cause_is_marked_once_and_over_use_once_per_episode() {
        let records = vec![
            rec(
                1.0,
                Event::EncoderKeyframe {
                    reason: KeyframeReason::Start,
                    frame_index: 0,
                    after_request_ms: None,
                },
            ),
            rec(
                8.0,
                Event::ImpairChange {
                    direction: "downlink".into(),
                    at_s: 8.0,
                    until_s: None,
                    settings: serde_json::json!({"rate_kbps": 500}),
                    source: None,
                },
            ),
            overuse(8.3),
            overuse(8.5),
            overuse(9.2),
            overuse(12.0),
            rec(
                8.9,
                Event::EncoderAdapt {
                    from_width: 1280,
                    from_height: 720,
                    to_width: 960,
                    to_height: 540,
                    target_bps: 5e5,
                    reason: "target_below_floor".into(),
                },
            ),
            rec(
                9.0,
                Event::EncoderKeyframe {
                    reason: KeyframeReason::Resize,
                    frame_index: 240,
                    after_request_ms: Some(0.0),
                },
            ),
            rec(
                15.0,
                Event::ImpairChange {
                    direction: "downlink".into(),
                    at_s: 15.0,
                    until_s: Some(18.0),
                    settings: serde_json::json!({"outage": true}),
                    source: None,
                },
            ),
        ];
        let m: Vec<(f64, MarkerKind, String)> = markers(&records)
            .into_iter()
            .map(|m| (m.t, m.kind, m.text))
            .collect();
        assert_eq!(
            m,
            vec![
                (8.0, MarkerKind::Impairment, "downlink changed".into()),
                (8.3, MarkerKind::Overuse, "over-use".into()),
                (8.9, MarkerKind::Resolution, "720p→540p".into()),
                (9.0, MarkerKind::Keyframe, "keyframe (resize)".into()),
                (12.0, MarkerKind::Overuse, "over-use".into()),
                (15.0, MarkerKind::Impairment, "outage".into()),
            ]
        );
    }
}
