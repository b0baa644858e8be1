//! Streams a TURN relay carried (`rtclab relay`'s per-allocation logs): one row per SSRC and
//! direction, from the `relay.rtp` lines. Traffic rtclab did not create has no `media.stats` or
//! encoder lines, so this is where its rates and losses are read.

use rtclab_events::{Event, Record};
use serde::Serialize;
use std::collections::BTreeMap;

/// One RTP stream in one direction through a relay allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelayStream {
    /// `from_client` (the client sent it) or `to_client` (the client received it).
    pub direction: String,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type.
    pub payload_type: u8,
    /// Inferred RTP clock rate.
    pub clock_hz: Option<u32>,
    /// Seconds with packets.
    pub seconds: u64,
    /// Mean rate over those seconds, bit/s.
    pub mean_bps: f64,
    /// Highest one-second rate, bit/s.
    pub max_bps: f64,
    /// Packets carried.
    pub packets: u64,
    /// Packets that never arrived (by sequence gaps).
    pub lost: i64,
    /// Packets whose sequence number came again (retransmissions on the same SSRC, duplicates).
    pub repeated: u64,
    /// Last interarrival jitter, ms.
    pub jitter_ms: Option<f64>,
}

/// The streams of a log, by direction then SSRC; empty for a log that is not a relay's.
pub fn streams(records: &[Record]) -> Vec<RelayStream> {
    let mut by: BTreeMap<(String, u32), RelayStream> = BTreeMap::new();
    for r in records {
        let Event::RelayRtp(x) = &r.event else {
            continue;
        };
        let s = by
            .entry((x.direction.clone(), x.ssrc))
            .or_insert_with(|| RelayStream {
                direction: x.direction.clone(),
                ssrc: x.ssrc,
                payload_type: x.payload_type,
                clock_hz: None,
                seconds: 0,
                mean_bps: 0.0,
                max_bps: 0.0,
                packets: 0,
                lost: 0,
                repeated: 0,
                jitter_ms: None,
            });
        s.seconds += 1;
        // Running mean of the per-second rates.
        s.mean_bps += (x.bps - s.mean_bps) / s.seconds as f64;
        s.max_bps = s.max_bps.max(x.bps);
        s.packets = x.packets_total;
        s.lost = x.lost_total;
        s.repeated += x.repeated;
        s.clock_hz = x.clock_hz.or(s.clock_hz);
        s.jitter_ms = x.jitter_ms.or(s.jitter_ms);
    }
    by.into_values().collect()
}

/// Column headers of [`rows`].
pub const HEADERS: [&str; 8] = [
    "direction",
    "SSRC",
    "PT / clock",
    "mean / max rate",
    "packets",
    "never arrived",
    "repeated",
    "jitter",
];

/// The streams as table rows.
pub fn rows(streams: &[RelayStream]) -> Vec<Vec<String>> {
    streams
        .iter()
        .map(|s| {
            vec![
                match s.direction.as_str() {
                    "from_client" => "sent by the client".to_owned(),
                    "to_client" => "received by the client".to_owned(),
                    other => other.to_owned(),
                },
                format!("{:08x}", s.ssrc),
                format!(
                    "{} / {}",
                    s.payload_type,
                    s.clock_hz
                        .map_or_else(|| "?".to_owned(), |hz| format!("{} kHz", hz / 1000))
                ),
                format!(
                    "{:.0} / {:.0} kbps",
                    s.mean_bps / 1000.0,
                    s.max_bps / 1000.0
                ),
                s.packets.to_string(),
                format!(
                    "{} ({:.2} %)",
                    s.lost,
                    100.0 * s.lost.max(0) as f64
                        / (s.packets as f64 + s.lost.max(0) as f64).max(1.0)
                ),
                s.repeated.to_string(),
                s.jitter_ms
                    .map_or_else(|| "–".to_owned(), |j| format!("{j:.1} ms")),
            ]
        })
        .collect()
}

/// What the table means, for learners.
pub const EXPLAINED: &str = "What the relay read of the RTP it carried (SRTP hides only the payload, \
RFC 3711 §3.1): per stream, its rate, the packets that never arrived (sequence gaps; on the \
received side after the impairment and after any retransmission), repeats (a sender without RTX \
resends on the same SSRC) and RFC 3550 jitter at the clock rate read from the timestamps.";

#[cfg(test)]
mod tests {
    use super::*;
    use rtclab_events::{PeerRole, RelayRtp};

    fn line(t: f64, direction: &str, bps: f64, total: u64, lost: i64, repeated: u64) -> Record {
        Record {
            t,
            peer: PeerRole::Lab,
            event: Event::RelayRtp(RelayRtp {
                direction: direction.into(),
                ssrc: 0xabc,
                payload_type: 96,
                clock_hz: Some(90_000),
                packets: 10,
                bytes: 0,
                bps,
                lost: 0,
                loss_pct: 0.0,
                jitter_ms: Some(2.0),
                repeated,
                packets_total: total,
                lost_total: lost,
            }),
        }
    }

    #[test]
    fn one_row_per_stream_and_direction_with_running_totals() {
        let records = vec![
            line(1.0, "to_client", 1_000_000.0, 100, 1, 0),
            line(2.0, "to_client", 2_000_000.0, 200, 3, 2),
            line(1.0, "from_client", 500_000.0, 50, 0, 5),
        ];
        let s = streams(&records);
        assert_eq!(s.len(), 2);
        let down = s.iter().find(|x| x.direction == "to_client").unwrap();
        assert_eq!(
            (down.seconds, down.packets, down.lost, down.repeated),
            (2, 200, 3, 2)
        );
        assert_eq!(down.mean_bps, 1_500_000.0);
        assert_eq!(down.max_bps, 2_000_000.0);
        let r = rows(&s);
        assert_eq!(r[1][0], "received by the client");
        assert_eq!(r[1][3], "1500 / 2000 kbps");
        assert_eq!(r[1][5], "3 (1.48 %)");
        assert!(streams(&[]).is_empty());
    }
}
