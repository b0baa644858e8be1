//! The impairment engine's events (`impair.stats`, `impair.change`), read into plain structs.
//!
//! The rest of the crate only sees [`ImpairData`], so the metrics can be tested with synthetic
//! impairment data and do not care how the events are spelled in the schema.

use rtclab_events::Record;
use serde_json::Value;
use std::collections::BTreeMap;

/// One `impair.stats` line: one direction, over the interval since the previous line.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ImpairSample {
    /// Session time of the line, s.
    pub t: f64,
    /// `downlink` (sender → receiver) or `uplink`.
    pub direction: String,
    /// Packets that entered the impairment over the interval.
    pub packets_in: u64,
    /// Packets it delivered over the interval.
    pub packets_out: u64,
    /// Bytes that entered over the interval.
    pub bytes_in: u64,
    /// Bytes delivered over the interval.
    pub bytes_out: u64,
    /// Packets dropped over the interval, per cause (random loss, queue overflow, ...).
    pub dropped: BTreeMap<String, u64>,
    /// Link capacity in force, bps; `None` when the link is unlimited.
    pub capacity_bps: Option<f64>,
    /// Queuing delay percentiles of the packets delivered over the interval, ms.
    pub queue_delay_p50_ms: Option<f64>,
    /// See `queue_delay_p50_ms`.
    pub queue_delay_p95_ms: Option<f64>,
    /// See `queue_delay_p50_ms`.
    pub queue_delay_max_ms: Option<f64>,
    /// Packets in the queue at the end of the interval.
    pub queue_len: Option<f64>,
}

impl ImpairSample {
    /// All packets dropped over the interval, whatever the cause.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// A capacity step of the downlink schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CapacityStep {
    /// When the step took effect, s.
    pub t: f64,
    /// The new capacity, bps; `None` = unlimited.
    pub capacity_bps: Option<f64>,
}

/// Everything the report uses from the impairment engine; empty for a clean run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImpairData {
    /// Statistics lines, both directions, in log order.
    pub samples: Vec<ImpairSample>,
    /// Downlink capacity steps from `impair.change`, in log order (empty if none were logged).
    pub changes: Vec<CapacityStep>,
}

impl ImpairData {
    /// Samples of one direction.
    pub fn direction<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a ImpairSample> + 'a {
        self.samples.iter().filter(move |s| s.direction == dir)
    }

    /// Downlink capacity steps: the schedule's own steps when it logged them (exact times),
    /// otherwise the points where the capacity reported by `impair.stats` changed.
    pub fn capacity_steps(&self) -> Vec<CapacityStep> {
        if !self.changes.is_empty() {
            return dedup_steps(self.changes.iter().copied());
        }
        // From statistics only: the capacity changed somewhere in the interval before the first
        // line that reports it. Date the change at the start of that interval so a reaction time
        // is never shorter than the truth (it may be up to one interval longer).
        let mut steps = Vec::new();
        let mut prev_t = None;
        for s in self.direction("downlink") {
            // The first line covers the second before it.
            let t = prev_t.unwrap_or((s.t - 1.0).max(0.0));
            steps.push(CapacityStep {
                t,
                capacity_bps: s.capacity_bps,
            });
            prev_t = Some(s.t);
        }
        dedup_steps(steps.into_iter())
    }
}

/// Keeps only the steps that change the capacity.
fn dedup_steps(steps: impl Iterator<Item = CapacityStep>) -> Vec<CapacityStep> {
    let mut out: Vec<CapacityStep> = Vec::new();
    for s in steps {
        // A step at the same instant as the previous one overrides it (it lasted no time).
        if out.last().is_some_and(|l| l.t == s.t) {
            out.pop();
        }
        if out.last().is_none_or(|l| l.capacity_bps != s.capacity_bps) {
            out.push(s);
        }
    }
    out
}

/// Reads the impairment events of a log.
pub(crate) fn extract(records: &[Record]) -> ImpairData {
    let mut data = ImpairData::default();
    for r in records {
        // Matched by kind name and read back through JSON: the report keeps working whatever
        // the variant's Rust shape is, as long as the logged field names stay the documented ones.
        let kind = r.event.kind();
        if kind != "impair.stats" && kind != "impair.change" {
            continue;
        }
        let Ok(v) = serde_json::to_value(&r.event) else {
            continue;
        };
        if kind == "impair.stats" {
            if let Some(s) = parse_stats(r.t, &v) {
                data.samples.push(s);
            }
        } else if let Some(c) = parse_change(r.t, &v) {
            data.changes.push(c);
        }
    }
    data
}

fn first_f64(v: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_f64))
}

fn first_u64(v: &Value, keys: &[&str]) -> u64 {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_f64))
        .map_or(0, |x| x.max(0.0).round() as u64)
}

/// One `impair.stats` line, or `None` if it names no direction.
pub(crate) fn parse_stats(t: f64, v: &Value) -> Option<ImpairSample> {
    let direction = v.get("direction")?.as_str()?.to_owned();
    let mut dropped = BTreeMap::new();
    match v.get("dropped") {
        Some(Value::Object(m)) => {
            for (cause, n) in m {
                if let Some(n) = n.as_f64() {
                    dropped.insert(cause.clone(), n.max(0.0).round() as u64);
                }
            }
        }
        Some(n) if n.is_number() => {
            dropped.insert("total".to_owned(), first_u64(v, &["dropped"]));
        }
        _ => {}
    }
    if let Some(m) = v.as_object() {
        // Flat spelling, e.g. `dropped_loss`, `dropped_queue`; byte counts are not packets.
        for (k, n) in m {
            if let (Some(cause), Some(n)) = (k.strip_prefix("dropped_"), n.as_f64())
                && !cause.contains("bytes")
            {
                dropped.insert(cause.to_owned(), n.max(0.0).round() as u64);
            }
        }
    }
    Some(ImpairSample {
        t,
        direction,
        packets_in: first_u64(v, &["packets_in"]),
        packets_out: first_u64(v, &["packets_out"]),
        bytes_in: first_u64(v, &["bytes_in"]),
        bytes_out: first_u64(v, &["bytes_out"]),
        dropped,
        capacity_bps: first_f64(v, &["capacity_bps"]).filter(|c| *c > 0.0),
        queue_delay_p50_ms: first_f64(v, &["queue_delay_p50_ms", "queue_p50_ms", "delay_p50_ms"]),
        queue_delay_p95_ms: first_f64(v, &["queue_delay_p95_ms", "queue_p95_ms", "delay_p95_ms"]),
        queue_delay_max_ms: first_f64(v, &["queue_delay_max_ms", "queue_max_ms", "delay_max_ms"]),
        queue_len: first_f64(v, &["queue_len", "queue_packets", "queue_length"]),
    })
}

/// A downlink capacity step from an `impair.change` line, or `None` if the line sets no capacity.
pub(crate) fn parse_change(t: f64, v: &Value) -> Option<CapacityStep> {
    let direction = v.get("direction").and_then(Value::as_str);
    if direction.is_some_and(|d| d != "downlink" && d != "both") {
        return None;
    }
    // The step's settings may be flat or under a `set`/`params` object, and the rate may be
    // spelled as in the scenario files (`rate_kbps`).
    const RATE_KEYS: [(&str, f64); 3] =
        [("capacity_bps", 1.0), ("rate_bps", 1.0), ("rate_kbps", 1e3)];
    let has_rate = |h: &Value| RATE_KEYS.iter().any(|(k, _)| h.get(*k).is_some());
    let holder = ["set", "params", "settings"]
        .iter()
        .filter_map(|k| v.get(*k))
        .find(|h| has_rate(h))
        .unwrap_or(v);
    let (cap, scale) = RATE_KEYS
        .iter()
        .find_map(|(k, scale)| holder.get(*k).map(|c| (c, *scale)))?;
    Some(CapacityStep {
        t,
        // null or 0 = unlimited.
        capacity_bps: cap.as_f64().filter(|c| *c > 0.0).map(|c| c * scale),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_stats_in_both_dropped_spellings() {
        let v = json!({"kind":"impair.stats","direction":"downlink","packets_in":100,"packets_out":90,
            "bytes_in":120000,"bytes_out":108000,"dropped":{"loss":4,"queue":6},"capacity_bps":null,
            "queue_delay_p50_ms":3.0,"queue_delay_p95_ms":9.5,"queue_delay_max_ms":12.0,"queue_len":4});
        let s = parse_stats(1.0, &v).expect("a direction");
        assert_eq!(s.dropped_total(), 10);
        assert_eq!(s.capacity_bps, None);
        assert_eq!(s.queue_delay_p95_ms, Some(9.5));
        let flat = json!({"direction":"uplink","dropped_loss":2,"dropped_bytes":3000});
        let s = parse_stats(2.0, &flat).expect("a direction");
        assert_eq!(s.dropped, BTreeMap::from([("loss".to_owned(), 2)]));
    }

    #[test]
    fn parses_capacity_changes_in_either_unit() {
        let v = json!({"kind":"impair.change","direction":"downlink","rate_kbps":500});
        assert_eq!(
            parse_change(20.0, &v),
            Some(CapacityStep {
                t: 20.0,
                capacity_bps: Some(5e5)
            })
        );
        let v = json!({"kind":"impair.change","direction":"downlink","set":{"capacity_bps":null}});
        assert_eq!(
            parse_change(40.0, &v),
            Some(CapacityStep {
                t: 40.0,
                capacity_bps: None
            })
        );
        let v = json!({"kind":"impair.change","direction":"uplink","rate_kbps":500});
        assert_eq!(parse_change(20.0, &v), None);
        let v = json!({"kind":"impair.change","direction":"downlink","loss":0.05});
        assert_eq!(parse_change(20.0, &v), None);
    }

    #[test]
    fn steps_from_stats_are_dated_at_the_interval_start() {
        let mk = |t: f64, cap: Option<f64>| ImpairSample {
            t,
            direction: "downlink".into(),
            capacity_bps: cap,
            ..Default::default()
        };
        let data = ImpairData {
            samples: vec![
                mk(1.0, None),
                mk(2.0, Some(3e6)),
                mk(3.0, Some(3e6)),
                mk(4.0, Some(5e5)),
            ],
            changes: vec![],
        };
        let steps = data.capacity_steps();
        assert_eq!(
            steps,
            vec![
                CapacityStep {
                    t: 0.0,
                    capacity_bps: None
                },
                CapacityStep {
                    t: 1.0,
                    capacity_bps: Some(3e6)
                },
                CapacityStep {
                    t: 3.0,
                    capacity_bps: Some(5e5)
                },
            ]
        );
    }
}
