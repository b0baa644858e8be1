//! Packet groups and their deltas (draft-ietf-rmcat-gcc-02 §5.1–5.2, libwebrtc `InterArrivalDelta`).
//!
//! Packets sent within [`BURST_TIME`] of the first packet of a group form one group (a frame, or
//! a pacer burst); the delay gradient is measured between groups, not packets, because the
//! sender's own burstiness would otherwise dominate it. Departure instants are on our clock,
//! arrivals on the receiver's: only differences of each are used.

use std::time::{Duration, Instant};

/// Packets sent within this time of a group's first packet belong to the group (draft §5.2: 5 ms).
pub const BURST_TIME: Duration = Duration::from_millis(5);
/// A packet arriving within this of the group's last arrival, with a negative propagation
/// delta, is part of the same arrival burst (draft §5.2 pre-filtering; libwebrtc 5 ms).
const BURST_ARRIVAL: Duration = Duration::from_millis(5);
/// An arrival burst never lasts longer than this (libwebrtc `kMaxBurstDuration`).
const MAX_BURST: Duration = Duration::from_millis(100);
/// An arrival gap beyond this means the receiver's clock jumped: start over
/// (libwebrtc `kArrivalTimeOffsetThreshold`, 3 s).
const ARRIVAL_JUMP_MS: f64 = 3000.0;

/// Delay between two consecutive groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupDelta {
    /// Send time of this group's last packet minus the previous group's, ms.
    pub send_delta_ms: f64,
    /// Arrival time of this group's last packet minus the previous group's, ms.
    pub arrival_delta_ms: f64,
    /// This group's arrival time on the receiver's clock, ms.
    pub arrival_ms: f64,
    /// Bytes in this group.
    pub size_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: Instant,
    last_send: Instant,
    first_arrival: Duration,
    last_arrival: Duration,
    size: usize,
}

impl Group {
    fn new(departure: Instant, arrival: Duration, size: usize) -> Self {
        Group {
            first_send: departure,
            last_send: departure,
            first_arrival: arrival,
            last_arrival: arrival,
            size,
        }
    }
}

/// Groups packets and yields a [`GroupDelta`] each time a group completes.
#[derive(Debug, Default)]
pub struct InterArrival {
    current: Option<Group>,
    prev: Option<Group>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl InterArrival {
    /// An empty grouper.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one arrived packet (in send order); returns the delta when it closes a group.
    pub fn add(
        &mut self,
        departure: Instant,
        arrival: Duration,
        size: usize,
    ) -> Option<GroupDelta> {
        let Some(mut cur) = self.current else {
            self.current = Some(Group::new(departure, arrival, size));
            return None;
        };
        if departure < cur.first_send {
            // Reordered report of an older group: its group is already closed.
            return None;
        }
        if departure.duration_since(cur.first_send) <= BURST_TIME
            || Self::in_burst(&cur, departure, arrival)
        {
            cur.last_send = cur.last_send.max(departure);
            cur.last_arrival = cur.last_arrival.max(arrival);
            cur.size += size;
            self.current = Some(cur);
            return None;
        }
        let mut out = None;
        if let Some(prev) = self.prev {
            let arrival_delta_ms = ms(cur.last_arrival) - ms(prev.last_arrival);
            let send_delta_ms = ms(cur.last_send.duration_since(prev.last_send));
            if !(0.0..=ARRIVAL_JUMP_MS).contains(&arrival_delta_ms) {
                // The receiver's clock went backwards or jumped: nothing before is comparable.
                self.prev = None;
                self.current = Some(Group::new(departure, arrival, size));
                return None;
            }
            out = Some(GroupDelta {
                send_delta_ms,
                arrival_delta_ms,
                arrival_ms: ms(cur.last_arrival),
                size_bytes: cur.size,
            });
        }
        self.prev = Some(cur);
        self.current = Some(Group::new(departure, arrival, size));
        out
    }

    /// A packet that arrived with the group's last one, faster than it was sent, is queued
    /// behind it (a burst released by a queue), not a new group.
    fn in_burst(cur: &Group, departure: Instant, arrival: Duration) -> bool {
        let Some(arrival_delta) = arrival.checked_sub(cur.last_arrival) else {
            return false;
        };
        let send_delta = departure.duration_since(cur.last_send);
        let since_first = arrival.saturating_sub(cur.first_arrival);
        arrival_delta < send_delta && arrival_delta <= BURST_ARRIVAL && since_first < MAX_BURST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_within_five_ms_form_one_group() {
        let t0 = Instant::now();
        let mut ia = InterArrival::new();
        let mut deltas = Vec::new();
        // Groups every 20 ms of 3 packets 1 ms apart; path adds 2 ms per group.
        for g in 0..4u64 {
            for p in 0..3u64 {
                let dep = t0 + Duration::from_millis(g * 20 + p);
                let arr = Duration::from_millis(1000 + g * 22 + p);
                if let Some(d) = ia.add(dep, arr, 1200) {
                    deltas.push(d);
                }
            }
        }
        // The 4th group is still open; groups 1→2 and 2→3 completed.
        assert_eq!(deltas.len(), 2);
        for d in deltas {
            assert!((d.send_delta_ms - 20.0).abs() < 1e-6);
            assert!((d.arrival_delta_ms - 22.0).abs() < 1e-6);
            assert_eq!(d.size_bytes, 3600);
        }
    }
}
