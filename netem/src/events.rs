//! The impairment's lines in the event log: `impair.stats` and `impair.change`.

use crate::accounting::{DirectionStats, Drops, IntervalStats};
use crate::model::Change;
use rtclab_events::Event;
use rtclab_events::schema::{ImpairDrops, ImpairStats};

fn drops(d: &Drops, bytes: bool) -> ImpairDrops {
    let pick = |c: crate::accounting::Counter| if bytes { c.bytes } else { c.packets };
    ImpairDrops {
        random: pick(d.random),
        burst: pick(d.burst),
        nth: pick(d.nth),
        queue_overflow: pick(d.queue_overflow),
        outage: pick(d.outage),
    }
}

/// The `impair.stats` event for a direction's totals and its last interval.
pub fn stats_event(total: &DirectionStats, interval: &IntervalStats) -> Event {
    let secs = interval.duration.as_secs_f64();
    Event::ImpairStats(ImpairStats {
        direction: total.link.as_str().to_owned(),
        packets_in: total.input.packets,
        bytes_in: total.input.bytes,
        packets_out: total.output.packets,
        bytes_out: total.output.bytes,
        dropped_packets: drops(&total.dropped, false),
        dropped_bytes: drops(&total.dropped, true),
        duplicated: total.duplicated.packets,
        capacity_bps: total.capacity_bps,
        out_bps: if secs > 0.0 {
            interval.output.bytes as f64 * 8.0 / secs
        } else {
            0.0
        },
        queue_delay_p50_ms: interval.queue_delay.p50_ms,
        queue_delay_p95_ms: interval.queue_delay.p95_ms,
        queue_delay_max_ms: interval.queue_delay.max_ms,
        queue_packets: total.queue_packets,
        queue_bytes: total.queue_bytes,
    })
}

/// The `impair.change` event for a change of settings.
pub fn change_event(change: &Change) -> Event {
    Event::ImpairChange {
        direction: change.link.as_str().to_owned(),
        at_s: change.at_s,
        until_s: change.until_s,
        settings: change.settings_json(),
        source: Some(change.source.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Link;
    use crate::config::ImpairmentConfig;
    use crate::model::Impairer;
    use rtclab_events::{PeerRole, Record};
    use webrtc::runtime::{Runtime, TokioRuntime};

    #[test]
    fn lines_are_flat_and_round_trip() {
        let t0 = TokioRuntime.now();
        let mut d: Impairer<()> = Impairer::unimpaired(Link::Uplink, t0);
        let interval = d.take_interval(t0 + std::time::Duration::from_secs(1));
        let record = Record {
            t: 1.0,
            peer: PeerRole::Lab,
            event: stats_event(&d.stats(), &interval),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            line.starts_with(
                r#"{"t":1.0,"peer":"lab","kind":"impair.stats","direction":"uplink","#
            ),
            "{line}"
        );
        assert!(line.contains(r#""capacity_bps":null"#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);

        let change = Change {
            link: Link::Downlink,
            at_s: 40.0,
            until_s: None,
            settings: ImpairmentConfig {
                rate_kbps: Some(2500.0),
                ..Default::default()
            },
            mask: ImpairmentConfig {
                rate_kbps: Some(0.0),
                outage: Some(false),
                ..Default::default()
            },
            source: "scenario".to_owned(),
        };
        let record = Record {
            t: 40.0,
            peer: PeerRole::Lab,
            event: change_event(&change),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            line.starts_with(r#"{"t":40.0,"peer":"lab","kind":"impair.change","direction":"downlink","at_s":40.0,"settings":{"#),
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["settings"],
            serde_json::json!({ "rate_kbps": 2500.0, "outage": null })
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
    }
}
