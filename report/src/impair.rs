//! The impairment engine's events (`impair.stats`, `impair.change`), read into plain structs.
//!
//! The lines are read through the real [`rtclab_events`] types: `impair.stats`
//! ([`ImpairStats`]) carries counters that are totals since the impairment's start, the capacity
//! in force (`null` when unlimited), the payload rate delivered over the last second and the
//! queue delay percentiles of the last second; `impair.change` carries the changed settings with
//! the scenario file's keys (`rate_kbps`, `outage`, ...; `null` = back to the default) and the
//! time the change took effect (`at_s`, `until_s` for a period). The rest of the crate only sees
//! [`ImpairData`], where the counters are already turned into per-interval deltas.

use rtclab_events::schema::{ImpairDrops, ImpairStats};
use rtclab_events::{Event, Record};
use serde_json::Value;
use std::collections::BTreeMap;

/// One `impair.stats` line: one direction, over the interval since the previous line of the
/// same direction (the first line covers the second before it).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ImpairSample {
    /// Session time of the line, s.
    pub t: f64,
    /// `downlink` (sender → receiver) or `uplink`.
    pub direction: String,
    /// Start of the interval the deltas cover, s.
    pub t_start: f64,
    /// Packets that entered the impairment over the interval.
    pub packets_in: u64,
    /// Packets it delivered over the interval (duplicates included).
    pub packets_out: u64,
    /// Payload bytes that entered over the interval.
    pub bytes_in: u64,
    /// Payload bytes delivered over the interval.
    pub bytes_out: u64,
    /// Packets dropped over the interval, per cause (`random`, `queue_overflow`, ...; only the
    /// causes that dropped something).
    pub dropped: BTreeMap<String, u64>,
    /// Link capacity in force at the line, bps (headers counted); `None` when unlimited.
    pub capacity_bps: Option<f64>,
    /// Payload bits per second delivered over the last second, as logged (`out_bps`).
    pub out_bps: f64,
    /// Queuing delay percentiles of the packets that left the queue in the last second, ms.
    pub queue_delay_p50_ms: Option<f64>,
    /// See `queue_delay_p50_ms`.
    pub queue_delay_p95_ms: Option<f64>,
    /// See `queue_delay_p50_ms`.
    pub queue_delay_max_ms: Option<f64>,
    /// Packets in the bottleneck queue at the line.
    pub queue_packets: u64,
    /// The line as logged: totals since the start.
    pub total: ImpairStats,
}

impl ImpairSample {
    /// All packets dropped over the interval, whatever the cause.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Drop counters by cause name, without the causes that dropped nothing.
pub(crate) fn drops_by_cause(d: &ImpairDrops) -> BTreeMap<String, u64> {
    [
        ("random", d.random),
        ("burst", d.burst),
        ("nth", d.nth),
        ("queue_overflow", d.queue_overflow),
        ("outage", d.outage),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(c, n)| (c.to_owned(), n))
    .collect()
}

/// `now - before` per cause; a counter that went backwards (a restart) counts from zero.
fn drops_delta(now: &ImpairDrops, before: &ImpairDrops) -> ImpairDrops {
    let d = |a: u64, b: u64| if a >= b { a - b } else { a };
    ImpairDrops {
        random: d(now.random, before.random),
        burst: d(now.burst, before.burst),
        nth: d(now.nth, before.nth),
        queue_overflow: d(now.queue_overflow, before.queue_overflow),
        outage: d(now.outage, before.outage),
    }
}

/// A capacity step of the downlink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CapacityStep {
    /// When the step took effect, s.
    pub t: f64,
    /// The new capacity, bps; `None` = unlimited, `Some(0.0)` = outage.
    pub capacity_bps: Option<f64>,
}

/// One downlink `impair.change` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImpairChange {
    /// Session time of the line, s.
    pub t: f64,
    /// When the change took effect, s after the impairment's start.
    pub at_s: f64,
    /// End of the period that starts here, if any.
    pub until_s: Option<f64>,
    /// The changed settings (`null` = everything back to the default).
    pub settings: Value,
}

/// Everything the report uses from the impairment engine; empty for a clean run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImpairData {
    /// Statistics lines, both directions, in log order.
    pub samples: Vec<ImpairSample>,
    /// Downlink `impair.change` lines, in log order (empty if none were logged).
    pub changes: Vec<ImpairChange>,
}

/// The capacity-related state of the downlink while replaying its changes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LinkState {
    rate_bps: Option<f64>,
    outage: bool,
}

impl LinkState {
    fn capacity(self) -> Option<f64> {
        if self.outage {
            Some(0.0)
        } else {
            self.rate_bps
        }
    }

    /// Applies the keys `settings` sets; returns the state before, restricted to those keys
    /// (what the end of a period restores).
    fn apply(&mut self, settings: &Value) -> LinkPatch {
        let before = *self;
        let mut patch = LinkPatch::default();
        let all_default = settings.is_null();
        let rate = if all_default {
            Some(&Value::Null)
        } else {
            settings.get("rate_kbps")
        };
        if let Some(r) = rate {
            patch.rate_bps = Some(before.rate_bps);
            // null = back to the default: unlimited. (0 is not a valid rate: outage is.)
            self.rate_bps = r.as_f64().filter(|k| *k > 0.0).map(|k| k * 1e3);
        }
        let outage = if all_default {
            Some(&Value::Null)
        } else {
            settings.get("outage")
        };
        if let Some(o) = outage {
            patch.outage = Some(before.outage);
            self.outage = o.as_bool().unwrap_or(false);
        }
        patch
    }

    fn restore(&mut self, patch: &LinkPatch) {
        if let Some(r) = patch.rate_bps {
            self.rate_bps = r;
        }
        if let Some(o) = patch.outage {
            self.outage = o;
        }
    }
}

/// Fields to put back at the end of a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LinkPatch {
    rate_bps: Option<Option<f64>>,
    outage: Option<bool>,
}

impl ImpairData {
    /// Samples of one direction.
    pub fn direction<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a ImpairSample> + 'a {
        self.samples.iter().filter(move |s| s.direction == dir)
    }

    /// Downlink capacity steps. With `impair.change` lines they are dated exactly from them
    /// (`at_s`; a period's settings are undone at its `until_s` unless a change at that time
    /// says otherwise); the capacity before the first change is the one `impair.stats` reported
    /// before it. Without them, the points where the capacity reported by `impair.stats` changed.
    pub fn capacity_steps(&self) -> Vec<CapacityStep> {
        if !self.changes.is_empty() {
            return self.steps_from_changes();
        }
        // From statistics only: the capacity changed somewhere in the interval before the first
        // line that reports it. Date the change at the start of that interval so a reaction time
        // is never shorter than the truth (it may be up to one interval longer).
        let steps = self.direction("downlink").map(|s| CapacityStep {
            t: s.t_start,
            capacity_bps: s.capacity_bps,
        });
        dedup_steps(steps)
    }

    fn steps_from_changes(&self) -> Vec<CapacityStep> {
        let first_change_t = self
            .changes
            .iter()
            .map(|c| c.t)
            .fold(f64::INFINITY, f64::min);
        // The capacity in force before the first change: the last statistics line logged
        // before it (none: the unimpaired default, unlimited).
        let initial = self
            .direction("downlink")
            .take_while(|s| s.t < first_change_t)
            .last()
            .and_then(|s| s.capacity_bps);
        let mut state = LinkState {
            rate_bps: initial,
            outage: false,
        };
        let mut steps = vec![CapacityStep {
            t: 0.0,
            capacity_bps: state.capacity(),
        }];
        let mut changes: Vec<&ImpairChange> = self.changes.iter().collect();
        changes.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let last_t = self
            .samples
            .iter()
            .map(|s| s.t)
            .chain(self.changes.iter().map(|c| c.t))
            .fold(f64::NEG_INFINITY, f64::max);
        // Ends of periods not yet reached: (until_s, what to restore).
        let mut pending: Vec<(f64, LinkPatch)> = Vec::new();
        for c in changes {
            // Periods that ended before this change restore what they replaced.
            pending.sort_by(|a, b| a.0.total_cmp(&b.0));
            while let Some(&(until, patch)) = pending.first()
                && until <= c.at_s
            {
                pending.remove(0);
                // A change logged at the very end of the period states the restored values.
                if until < c.at_s {
                    state.restore(&patch);
                    steps.push(CapacityStep {
                        t: until,
                        capacity_bps: state.capacity(),
                    });
                }
            }
            let patch = state.apply(&c.settings);
            if let Some(until) = c.until_s {
                pending.push((until, patch));
            }
            steps.push(CapacityStep {
                t: c.at_s,
                capacity_bps: state.capacity(),
            });
        }
        // Periods that ended within the log without a change line for their end.
        pending.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (until, patch) in pending {
            if until <= last_t {
                state.restore(&patch);
                steps.push(CapacityStep {
                    t: until,
                    capacity_bps: state.capacity(),
                });
            }
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
    // Per direction: the previous line (totals since the start) and its time.
    let mut prev: BTreeMap<String, (f64, ImpairStats)> = BTreeMap::new();
    for r in records {
        match &r.event {
            Event::ImpairStats(s) => {
                let (t_start, before) = match prev.get(&s.direction) {
                    Some((pt, p)) => (*pt, p.clone()),
                    // Totals since the start: the first line's values are its interval's.
                    None => ((r.t - 1.0).max(0.0), ImpairStats::default()),
                };
                let d = |a: u64, b: u64| if a >= b { a - b } else { a };
                data.samples.push(ImpairSample {
                    t: r.t,
                    direction: s.direction.clone(),
                    t_start,
                    packets_in: d(s.packets_in, before.packets_in),
                    packets_out: d(s.packets_out, before.packets_out),
                    bytes_in: d(s.bytes_in, before.bytes_in),
                    bytes_out: d(s.bytes_out, before.bytes_out),
                    dropped: drops_by_cause(&drops_delta(
                        &s.dropped_packets,
                        &before.dropped_packets,
                    )),
                    capacity_bps: s.capacity_bps.filter(|c| *c > 0.0),
                    out_bps: s.out_bps,
                    queue_delay_p50_ms: s.queue_delay_p50_ms,
                    queue_delay_p95_ms: s.queue_delay_p95_ms,
                    queue_delay_max_ms: s.queue_delay_max_ms,
                    queue_packets: s.queue_packets,
                    total: s.clone(),
                });
                prev.insert(s.direction.clone(), (r.t, s.clone()));
            }
            Event::ImpairChange {
                direction,
                at_s,
                until_s,
                settings,
                ..
            } if direction == "downlink" => data.changes.push(ImpairChange {
                t: r.t,
                at_s: *at_s,
                until_s: *until_s,
                settings: settings.clone(),
            }),
            _ => {}
        }
    }
    data
}

#[cfg(test)]
pub(crate) mod test_records {
    //! Synthetic impairment lines built from the real event types, so they cannot drift from
    //! what the impairment engine logs.
    use rtclab_events::schema::ImpairStats;
    use rtclab_events::{Event, PeerRole, Record};

    /// A line round-tripped through its JSON form, as the report reads it from a log.
    fn logged(t: f64, event: Event) -> Record {
        let line = serde_json::to_string(&Record {
            t,
            peer: PeerRole::Lab,
            event,
        })
        .expect("serialises");
        serde_json::from_str(&line).expect("parses back")
    }

    /// Running totals of one direction, to emit `impair.stats` lines from per-second figures.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct StatsLog {
        pub totals: ImpairStats,
    }

    impl StatsLog {
        pub(crate) fn new(direction: &str) -> Self {
            StatsLog {
                totals: ImpairStats {
                    direction: direction.to_owned(),
                    ..Default::default()
                },
            }
        }

        /// The line at `t` after one more second that delivered `packets_out` packets of
        /// `bytes_out` bytes and dropped `random` + `queue_overflow` packets (1000 bytes each).
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn second(
            &mut self,
            t: f64,
            capacity_bps: Option<f64>,
            packets_out: u64,
            bytes_out: u64,
            random: u64,
            queue_overflow: u64,
            queue_delay_ms: Option<(f64, f64, f64)>,
        ) -> Record {
            let s = &mut self.totals;
            let dropped = random + queue_overflow;
            s.packets_in += packets_out + dropped;
            s.bytes_in += bytes_out + dropped * 1000;
            s.packets_out += packets_out;
            s.bytes_out += bytes_out;
            s.dropped_packets.random += random;
            s.dropped_packets.queue_overflow += queue_overflow;
            s.dropped_bytes.random += random * 1000;
            s.dropped_bytes.queue_overflow += queue_overflow * 1000;
            s.capacity_bps = capacity_bps;
            s.out_bps = bytes_out as f64 * 8.0;
            s.queue_delay_p50_ms = queue_delay_ms.map(|q| q.0);
            s.queue_delay_p95_ms = queue_delay_ms.map(|q| q.1);
            s.queue_delay_max_ms = queue_delay_ms.map(|q| q.2);
            logged(t, Event::ImpairStats(s.clone()))
        }
    }

    /// An `impair.change` line logged just after `at_s`.
    pub(crate) fn change(
        direction: &str,
        at_s: f64,
        until_s: Option<f64>,
        settings: serde_json::Value,
    ) -> Record {
        logged(
            at_s + 0.001,
            Event::ImpairChange {
                direction: direction.to_owned(),
                at_s,
                until_s,
                settings,
                source: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_records::{StatsLog, change};
    use super::*;
    use serde_json::json;

    #[test]
    fn counters_since_the_start_become_deltas_and_totals_the_last_line() {
        let mut log = StatsLog::new("downlink");
        let records = vec![
            log.second(1.0, None, 100, 100_000, 2, 0, Some((3.0, 9.5, 12.0))),
            log.second(2.0, None, 90, 90_000, 1, 4, None),
        ];
        let data = extract(&records);
        let s = &data.samples;
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].packets_out, s[0].bytes_out), (100, 100_000));
        assert_eq!((s[1].packets_out, s[1].bytes_out), (90, 90_000));
        assert_eq!(s[0].t_start, 0.0);
        assert_eq!(s[1].t_start, 1.0);
        assert_eq!(s[0].dropped, BTreeMap::from([("random".to_owned(), 2)]));
        assert_eq!(
            s[1].dropped,
            BTreeMap::from([("random".to_owned(), 1), ("queue_overflow".to_owned(), 4)])
        );
        assert_eq!(s[0].queue_delay_p95_ms, Some(9.5));
        assert_eq!(s[1].queue_delay_p95_ms, None);
        assert_eq!(s[1].total.packets_out, 190);
        assert_eq!(s[1].total.dropped_packets.random, 3);
        assert_eq!(s[0].capacity_bps, None);
    }

    #[test]
    fn capacity_steps_are_dated_from_changes() {
        let mut log = StatsLog::new("downlink");
        let records = vec![
            log.second(1.0, Some(3e6), 100, 100_000, 0, 0, None),
            log.second(2.0, Some(3e6), 100, 100_000, 0, 0, None),
            change("downlink", 2.5, None, json!({"rate_kbps": 500.0})),
            change("uplink", 2.7, None, json!({"rate_kbps": 100.0})),
            log.second(3.0, Some(5e5), 60, 60_000, 0, 0, None),
            change("downlink", 3.5, None, json!({"loss_pct": 5.0})),
            change("downlink", 4.0, None, json!({"rate_kbps": null})),
            log.second(5.0, None, 100, 100_000, 0, 0, None),
        ];
        let steps = extract(&records).capacity_steps();
        let caps: Vec<(f64, Option<f64>)> = steps.iter().map(|s| (s.t, s.capacity_bps)).collect();
        assert_eq!(caps, vec![(0.0, Some(3e6)), (2.5, Some(5e5)), (4.0, None)]);
    }

    #[test]
    fn an_outage_is_zero_capacity_until_its_end() {
        let mut log = StatsLog::new("downlink");
        let stats: Vec<Record> = (1..=9)
            .map(|i| log.second(f64::from(i), Some(1e6), 100, 100_000, 0, 0, None))
            .collect();
        // A logged end of period...
        let mut records = stats.clone();
        records.push(change("downlink", 3.0, Some(5.0), json!({"outage": true})));
        records.push(change("downlink", 5.0, None, json!({"outage": null})));
        records.sort_by(|a, b| a.t.total_cmp(&b.t));
        let expected = vec![(0.0, Some(1e6)), (3.0, Some(0.0)), (5.0, Some(1e6))];
        let caps = |r: &[Record]| -> Vec<(f64, Option<f64>)> {
            extract(r)
                .capacity_steps()
                .iter()
                .map(|s| (s.t, s.capacity_bps))
                .collect()
        };
        assert_eq!(caps(&records), expected);
        // ...or only its start: the capacity comes back at until_s all the same.
        let mut records = stats;
        records.push(change("downlink", 3.0, Some(5.0), json!({"outage": true})));
        records.sort_by(|a, b| a.t.total_cmp(&b.t));
        assert_eq!(caps(&records), expected);
    }

    #[test]
    fn steps_from_stats_are_dated_at_the_interval_start() {
        let mut log = StatsLog::new("downlink");
        let records = vec![
            log.second(1.0, None, 1, 1000, 0, 0, None),
            log.second(2.0, Some(3e6), 1, 1000, 0, 0, None),
            log.second(3.0, Some(3e6), 1, 1000, 0, 0, None),
            log.second(4.0, Some(5e5), 1, 1000, 0, 0, None),
        ];
        let steps = extract(&records).capacity_steps();
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
