//! The browser bridge: what a page sends over the signaling socket, into the session log.
//!
//! A page may only write `browser.stats` and `browser.event` lines (anything else would let a page
//! forge the Rust peer's events). From each `browser.stats` snapshot the bridge also derives a
//! `media.stats` line with `peer: "browser"`, in the same units as the Rust receiver's, so the
//! summary, the report and the plots read a browser receiver exactly like a Rust one.

use rtclab_events::{Event, EventSink, MediaStats, PeerRole};
use serde_json::Value;
use std::sync::Mutex;

/// Accepts a page's events into one session's log.
pub struct BrowserBridge {
    sink: EventSink,
    prev: Mutex<Option<Counters>>,
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
            prev: Mutex::new(None),
        }
    }

    /// Logs `event` (a page's `{kind, ...}` object) if it is a browser kind; returns why not.
    pub fn accept(&self, event: Value) -> Result<(), String> {
        match serde_json::from_value::<Event>(event) {
            Ok(Event::BrowserStats { stats }) => {
                let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
                let derived = media_stats(&stats, *prev);
                self.sink
                    .emit(PeerRole::Browser, Event::BrowserStats { stats });
                if let Some((m, counters)) = derived {
                    // The first snapshot only sets the baseline of the per-second rate.
                    if prev.replace(counters).is_some() {
                        self.sink.emit(PeerRole::Browser, Event::MediaStats(m));
                    }
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

/// The receiver's `media.stats` from a snapshot's video `inbound-rtp` (W3C webrtc-stats names),
/// or `None` before the browser has one.
fn media_stats(stats: &Value, prev: Option<Counters>) -> Option<(MediaStats, Counters)> {
    let rtp = stats.get("inbound-rtp").filter(|v| v.is_object())?;
    // bytesReceived counts payload only; the Rust receiver counts headers too.
    let bytes = u64_of(rtp, "bytesReceived") + u64_of(rtp, "headerBytesReceived");
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
    let m = MediaStats {
        direction: "recv".into(),
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
    };
    Some((m, now))
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
        let (first, c) = media_stats(&snap(1000.0, 0, 0), None).expect("inbound-rtp present");
        assert_eq!(
            first.bitrate_bps, 0.0,
            "no rate without a previous snapshot"
        );
        let (m, _) = media_stats(&snap(2000.0, 125_000, 30), Some(c)).expect("present");
        assert_eq!(m.bitrate_bps, 1_000_000.0, "125 kB in 1 s is 1 Mbps");
        assert_eq!((m.frames, m.lost, m.freezes), (30, 2, 1));
        assert_eq!(m.freeze_ms, 250.0);
        assert_eq!(m.direction, "recv");
    }

    #[test]
    fn no_inbound_rtp_yet_gives_nothing() {
        assert!(media_stats(&json!({"inbound-rtp": null}), None).is_none());
        assert!(media_stats(&json!({}), None).is_none());
    }
}
