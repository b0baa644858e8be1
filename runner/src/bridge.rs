//! The browser bridge: what a page sends over the signaling socket, into the session log.
//!
//! A page may only write `browser.stats` and `browser.event` lines (anything else would let a page
//! forge the Rust peer's events). From each `browser.stats` snapshot the bridge also derives a
//! `media.stats` line with `peer: "browser"` (receive and/or send side), in the same units as the
//! Rust peers', and for a sending page its congestion controller's estimate as `bwe.estimate`, so
//! the summary, the report and the plots read a browser like a Rust peer.

use rtclab_events::{Event, EventSink, MediaStats, PeerRole};
use serde_json::Value;
use std::sync::Mutex;

/// Accepts a page's events into one session's log.
pub struct BrowserBridge {
    sink: EventSink,
    /// Baselines of the previous snapshot: inbound (receiving page) and outbound (sending page).
    prev: Mutex<[Option<Counters>; 2]>,
}

/// The cumulative inbound-rtp counters of one snapshot, for per-second rates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    /// getStats `timestamp`, ms (the browser's clock; only differences are used).
    at_ms: f64,
    bytes: u64,
}

impl BrowserBridge {
    /// A bridge writing into `sink`.
    pub fn new(sink: EventSink) -> Self {
        BrowserBridge {
            sink,
            prev: Mutex::new([None, None]),
        }
    }

    /// Logs `event` (a page's `{kind, ...}` object) if it is a browser kind; returns why not.
    pub fn accept(&self, event: Value) -> Result<(), String> {
        match serde_json::from_value::<Event>(event) {
            Ok(Event::BrowserStats { stats }) => {
                let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
                let derived = [
                    media_stats(&stats, "inbound-rtp", prev[0]),
                    media_stats(&stats, "outbound-rtp", prev[1]),
                ];
                let estimate = chromium_estimate(&stats);
                self.sink
                    .emit(PeerRole::Browser, Event::BrowserStats { stats });
                for (slot, derived) in prev.iter_mut().zip(derived) {
                    if let Some((m, counters)) = derived {
                        // The first snapshot only sets the baseline of the per-second rate.
                        if slot.replace(counters).is_some() {
                            self.sink.emit(PeerRole::Browser, Event::MediaStats(m));
                        }
                    }
                }
                if let Some(e) = estimate {
                    self.sink.emit(PeerRole::Browser, e);
                }
                Ok(())
            }
            Ok(e @ Event::BrowserEvent { .. }) => {
                self.sink.emit(PeerRole::Browser, e);
                Ok(())
            }
            Ok(other) => Err(format!("ignoring {} event from a browser", other.kind())),
            Err(e) => Err(format!("ignoring malformed browser event: {e}")),
        }
    }
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or(0, |x| x.max(0.0) as u64)
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A `media.stats` line from a snapshot's video `inbound-rtp` (a receiving page) or
/// `outbound-rtp` (a sending page), W3C webrtc-stats names, or `None` when the page has none.
fn media_stats(stats: &Value, key: &str, prev: Option<Counters>) -> Option<(MediaStats, Counters)> {
    let rtp = stats.get(key).filter(|v| v.is_object())?;
    let recv = key == "inbound-rtp";
    // bytes{Received,Sent} count payload only; the Rust peers count headers too.
    let bytes = if recv {
        u64_of(rtp, "bytesReceived") + u64_of(rtp, "headerBytesReceived")
    } else {
        u64_of(rtp, "bytesSent") + u64_of(rtp, "headerBytesSent")
    };
    let now = Counters {
        at_ms: f64_of(rtp, "timestamp"),
        bytes,
    };
    let bitrate_bps = match prev {
        Some(p) if now.at_ms > p.at_ms && now.bytes >= p.bytes => {
            (now.bytes - p.bytes) as f64 * 8.0 / ((now.at_ms - p.at_ms) / 1000.0)
        }
        _ => 0.0,
    };
    let m = if recv {
        MediaStats {
            direction: rtclab_events::MediaDirection::Recv,
            packets: u64_of(rtp, "packetsReceived"),
            bytes,
            frames: u64_of(rtp, "framesDecoded"),
            lost: u64_of(rtp, "packetsLost"),
            retransmitted: u64_of(rtp, "retransmittedPacketsReceived"),
            bitrate_bps: bitrate_bps.round(),
            fps: f64_of(rtp, "framesPerSecond"),
            decode_errors: 0,
            freezes: u64_of(rtp, "freezeCount"),
            freeze_ms: (f64_of(rtp, "totalFreezesDuration") * 1000.0).round(),
            width: rtp
                .get("frameWidth")
                .and_then(Value::as_u64)
                .map(|w| w as u32),
            height: rtp
                .get("frameHeight")
                .and_then(Value::as_u64)
                .map(|h| h as u32),
            ..Default::default()
        }
    } else {
        MediaStats {
            direction: rtclab_events::MediaDirection::Send,
            packets: u64_of(rtp, "packetsSent"),
            bytes,
            frames: u64_of(rtp, "framesEncoded"),
            lost: 0,
            retransmitted: u64_of(rtp, "retransmittedPacketsSent"),
            bitrate_bps: bitrate_bps.round(),
            fps: f64_of(rtp, "framesPerSecond"),
            ..Default::default()
        }
    };
    Some((m, now))
}

/// A sending page's congestion-controller target: the selected candidate pair's
/// `availableOutgoingBitrate` (libwebrtc's GoogCC estimate), as `bwe.estimate` with estimator
/// `chromium`. Sampled once a second by the page, so its timing is only as good as that.
fn chromium_estimate(stats: &Value) -> Option<Event> {
    stats.get("outbound-rtp").filter(|v| v.is_object())?;
    let selected = stats
        .get("transport")
        .and_then(|t| t.get("selectedCandidatePairId"))
        .and_then(Value::as_str);
    let pairs = stats.get("candidate-pair")?.as_array()?;
    let pair = pairs
        .iter()
        .find(|p| selected.is_some() && p.get("id").and_then(Value::as_str) == selected)
        .or_else(|| {
            pairs
                .iter()
                .find(|p| p.get("nominated") == Some(&Value::Bool(true)))
        })?;
    let target = pair
        .get("availableOutgoingBitrate")
        .and_then(Value::as_f64)?;
    let rtt_ms = pair
        .get("currentRoundTripTime")
        .and_then(Value::as_f64)
        .map(|s| s * 1000.0);
    Some(Event::BweEstimate {
        estimator: "chromium".into(),
        target_bps: target.round(),
        delay_based_bps: None,
        loss_based_bps: None,
        loss_ratio: None,
        rtt_ms,
        detail: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(at_ms: f64, bytes: u64, frames: u64) -> Value {
        json!({"inbound-rtp": {
            "timestamp": at_ms, "bytesReceived": bytes, "headerBytesReceived": 0,
            "packetsReceived": 10, "framesDecoded": frames, "packetsLost": 2,
            "framesPerSecond": 30, "freezeCount": 1, "totalFreezesDuration": 0.25
        }})
    }

    #[test]
    fn browser_counters_become_receiver_stats() {
        let (first, c) =
            media_stats(&snap(1000.0, 0, 0), "inbound-rtp", None).expect("inbound-rtp present");
        assert_eq!(
            first.bitrate_bps, 0.0,
            "no rate without a previous snapshot"
        );
        let (m, _) =
            media_stats(&snap(2000.0, 125_000, 30), "inbound-rtp", Some(c)).expect("present");
        assert_eq!(m.bitrate_bps, 1_000_000.0, "125 kB in 1 s is 1 Mbps");
        assert_eq!((m.frames, m.lost, m.freezes), (30, 2, 1));
        assert_eq!(m.freeze_ms, 250.0);
        assert_eq!(m.direction, rtclab_events::MediaDirection::Recv);
    }

    #[test]
    fn no_inbound_rtp_yet_gives_nothing() {
        assert!(media_stats(&json!({"inbound-rtp": null}), "inbound-rtp", None).is_none());
        assert!(media_stats(&json!({}), "outbound-rtp", None).is_none());
    }

    #[test]
    fn a_sending_page_gives_send_stats_and_its_estimate() {
        let stats = json!({
            "outbound-rtp": {"timestamp": 5000.0, "bytesSent": 1000, "headerBytesSent": 100,
                             "packetsSent": 9, "framesEncoded": 30, "framesPerSecond": 30},
            "transport": {"selectedCandidatePairId": "CP2"},
            "candidate-pair": [
                {"id": "CP1", "availableOutgoingBitrate": 1.0},
                {"id": "CP2", "availableOutgoingBitrate": 812_345.0, "currentRoundTripTime": 0.002}
            ]
        });
        let (m, c) = media_stats(&stats, "outbound-rtp", None).expect("outbound-rtp present");
        assert_eq!(
            (m.direction.as_str(), m.bytes, m.frames),
            ("send", 1100, 30)
        );
        assert_eq!(c.at_ms, 5000.0);
        match chromium_estimate(&stats) {
            Some(Event::BweEstimate {
                estimator,
                target_bps,
                rtt_ms,
                ..
            }) => {
                assert_eq!((estimator.as_str(), target_bps), ("chromium", 812_345.0));
                assert_eq!(rtt_ms, Some(2.0));
            }
            other => panic!("expected the selected pair's estimate, got {other:?}"),
        }
        assert!(
            chromium_estimate(&json!({"inbound-rtp": {}})).is_none(),
            "a receiving page has none"
        );
    }
}
