//! Clauses shared by the sentences: the short statements that follow a sentence's head and
//! tell what a period led to — the picture's freezes, the encoder's resolution steps, NACK
//! repair, PLIs and the keyframes that answered, the target's recovery, ICE losing contact, and
//! why the controller reacted as it did. Several topics tell the same consequences, so they are
//! worded once, here, and read the same wherever they appear.

use super::facts::{Adapt, Estimate, Facts, FreezeItem, LostContact};
use super::words::{adapt_reason, at, count_of, packets, pli_reason, res, span, times};
use crate::metrics::CapacityRise;
use crate::tables::fmt_bps;

/// The share of its earlier level the target must regain to count as recovered (as in
/// [`CapacityRise::goal_bps`]).
pub(super) const RECOVERED_SHARE: f64 = 0.9;

/// The freezes of one episode.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Frozen {
    pub(super) count: u64,
    pub(super) total_ms: f64,
    /// The longest, when every freeze is known on its own.
    pub(super) longest_ms: Option<f64>,
    /// When the picture moved again, for a single freeze told from its event.
    until: Option<f64>,
}

impl Frozen {
    pub(super) fn of(items: &[&FreezeItem]) -> Frozen {
        let known: Option<Vec<(f64, f64)>> = items.iter().map(|i| i.span).collect();
        Frozen {
            count: items.iter().map(|i| i.count).sum(),
            total_ms: items.iter().map(|i| i.total_ms).sum(),
            // Each item told from an event is one freeze, its total its length.
            longest_ms: known
                .is_some()
                .then(|| items.iter().map(|i| i.total_ms).fold(0.0, f64::max)),
            until: match (items, &known) {
                ([_], Some(k)) => k.first().map(|(_, end)| *end),
                _ => None,
            },
        }
    }
}

/// "the picture froze N times, X in all (longest Y)", or that it did not; nothing when the log
/// has no receiver to tell (a relay's log, a sender's own).
pub(super) fn freeze_clause(f: &Facts, fr: &Frozen) -> Option<String> {
    if !f.has_receiver {
        return None;
    }
    Some(match (fr.count, fr.until, fr.longest_ms) {
        (0, _, _) => "the picture did not freeze".to_owned(),
        (1, Some(until), _) => format!(
            "the picture froze for {}, until {}",
            span(fr.total_ms / 1e3),
            at(until)
        ),
        (1, None, _) => format!("the picture froze once, for {}", span(fr.total_ms / 1e3)),
        (n, _, Some(longest)) => format!(
            "the picture froze {}, {} in all (longest {})",
            times(n as usize),
            span(fr.total_ms / 1e3),
            span(longest / 1e3)
        ),
        (n, _, None) => format!(
            "the picture froze {}, {} in all",
            times(n as usize),
            span(fr.total_ms / 1e3)
        ),
    })
}

/// "the encoder went 720p → 540p → 360p (why the first step)".
pub(super) fn adapt_clause(adapts: &[&Adapt]) -> Option<String> {
    let first = adapts.first()?;
    Some(format!(
        "the encoder went {} ({}{})",
        chain(adapts),
        if adapts.len() > 1 {
            "first because "
        } else {
            ""
        },
        adapt_reason(first.reason)
    ))
}

pub(super) fn chain(adapts: &[&Adapt]) -> String {
    let mut s = adapts.first().map(|a| res(a.from_h)).unwrap_or_default();
    for a in adapts {
        s.push_str(" → ");
        s.push_str(&res(a.to_h));
    }
    s
}

/// NACK repair over `[a, b]`: what the receiver asked for, what the sender resent, what FEC
/// rebuilt, what stayed lost. `dropped` is what the network dropped, for the retransmissions
/// per lost packet.
pub(super) fn repair_clause(f: &Facts, a: f64, b: f64, dropped: Option<u64>) -> Option<String> {
    let (nacks, seqs) = f.nacks_in(a, b);
    let rtx = f.retransmitted.change(a, b);
    let fec = f.fec_recovered.change(a, b);
    let stayed = f.recv_lost.change(a, b);
    let mut parts = Vec::new();
    if nacks > 0 {
        // A NACK names every packet still missing, again until it arrives: the names outnumber
        // the packets.
        parts.push(format!(
            "the receiver sent {} naming missing packets {} (it asks again until a repair \
             arrives)",
            count_of(nacks, "NACK", "NACKs"),
            times(seqs as usize)
        ));
    }
    if rtx > 0 {
        let per_lost = dropped
            .filter(|d| *d > 0)
            .map(|d| format!(" ({:.2} per lost packet)", rtx as f64 / d as f64))
            .unwrap_or_default();
        parts.push(format!("the sender retransmitted {rtx}{per_lost}"));
    }
    if fec > 0 {
        parts.push(format!("FEC rebuilt {}", packets(fec)));
    }
    if parts.is_empty() && dropped.is_none_or(|d| d == 0) {
        return None;
    }
    parts.push(if stayed == 0 {
        "none stayed lost".to_owned()
    } else {
        format!("{stayed} stayed lost")
    });
    Some(parts.join("; "))
}

/// "the receiver sent N PLIs (why) and M keyframes answered".
pub(super) fn pli_clause(f: &Facts, a: f64, b: f64) -> Option<String> {
    let plis = Facts::count(&f.plis, a, b);
    if plis == 0 {
        return None;
    }
    let keyframes = f.requested_keyframes(a, b);
    let why = f
        .pli_reason(a, b)
        .map(|r| format!(" ({})", pli_reason(r)))
        .unwrap_or_default();
    Some(format!(
        "the receiver asked for a keyframe with {}{why}, and {} answered",
        count_of(plis as u64, "PLI", "PLIs"),
        count_of(keyframes as u64, "keyframe", "keyframes"),
    ))
}

/// The level the target had to regain, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recovery {
    pub(super) goal_bps: f64,
    /// Seconds after the event; `None`: not within the run.
    pub(super) after_s: Option<f64>,
    /// What `goal_bps` is 90 % of.
    pub(super) of_what: &'static str,
}

impl Recovery {
    /// From a rise as [`RunReport`](crate::metrics::RunReport) measured it.
    pub(super) fn of_rise(r: &CapacityRise) -> Option<Recovery> {
        let goal_bps = r.goal_bps?;
        // `goal_bps` is 90 % of the lower of the new capacity and the target before the drop.
        let of_what = match r.to_bps {
            Some(c) if (goal_bps / RECOVERED_SHARE - c).abs() < 1.0 => "of the new capacity",
            _ => "of its level before the drop",
        };
        Some(Recovery {
            goal_bps,
            after_s: r.recovery_s,
            of_what,
        })
    }

    pub(super) fn clause(&self, after: &str) -> String {
        format!("the target {}", self.predicate(after))
    }

    /// "was back to X (90 % of ...) N s after `after`", or that it never was.
    pub(super) fn predicate(&self, after: &str) -> String {
        let share = RECOVERED_SHARE * 100.0;
        match self.after_s {
            Some(s) => format!(
                "was back to {} ({share:.0} % {}) {s:.2} s after {after}",
                fmt_bps(self.goal_bps),
                self.of_what
            ),
            None => format!(
                "never got back to {} ({share:.0} % {}) within the run",
                fmt_bps(self.goal_bps),
                self.of_what
            ),
        }
    }
}

/// "the receiver's ICE lost contact at X (...) and reconnected at Y".
pub(super) fn contact_clause(c: &LostContact) -> String {
    let mut s = format!(
        "the {}'s ICE {} at {} (it had heard nothing from the other side for a while)",
        c.peer,
        if c.state == "failed" {
            "failed"
        } else {
            "lost contact"
        },
        at(c.t)
    );
    if let Some(b) = c.back {
        s.push_str(&format!(" and reconnected at {}", at(b)));
    }
    s
}

/// Why the target went under the new capacity, from the estimates up to the reaction: the
/// delay-based detector's over-use, else a loss-based estimate below the delay-based one.
pub(super) fn reaction_cause(f: &Facts, from: f64, to: f64) -> Option<String> {
    let window: Vec<&Estimate> = f
        .estimates
        .iter()
        .filter(|e| e.t > from && e.t <= to + 1e-9)
        .collect();
    let react = window.last()?;
    let overuse = window.iter().any(|e| e.state == Some("overuse"));
    let loss = react.loss_ratio.filter(|l| *l >= 0.02);
    if overuse {
        let mut s = "delay-based over-use: the queuing delay was growing".to_owned();
        if let Some(l) = loss {
            s.push_str(&format!("; {:.0} % loss reported", l * 100.0));
        }
        return Some(s);
    }
    low_cause(react)
}

/// Why an estimate was as low as it was, when the log says.
pub(super) fn low_cause(e: &Estimate) -> Option<String> {
    let loss_limited = match (e.loss_based, e.delay_based) {
        (Some(l), Some(d)) => l < d * 0.999 && (l - e.target).abs() <= 1.0,
        _ => false,
    };
    if loss_limited {
        return Some(match e.loss_ratio {
            Some(r) => format!("loss-based: {:.0} % loss reported", r * 100.0),
            None => "loss-based".to_owned(),
        });
    }
    if e.state == Some("overuse") {
        return Some("delay-based over-use: the queuing delay was growing".to_owned());
    }
    None
}
