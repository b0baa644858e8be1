//! Episodes: the periods the account tells one sentence each about (an outage, a capacity drop
//! or rise, a period of loss, another impairment change), each with the window in which what
//! happens is its consequence, and what each one owns (freezes, resolution changes, ICE losing
//! contact). Kept apart from the sentences so the rule "who explains what" lives in one place;
//! it includes how the target came back after an outage, which decides the outage's window.

use super::clauses::{Frozen, RECOVERED_SHARE, Recovery};
use super::facts::{
    Adapt, ChangeLine, Facts, FreezeItem, LossPeriod, LostContact, loss_periods, unmeasured_loss,
};
use crate::metrics::{CapacityDrop, CapacityRise, RunReport};

/// Repairs lag the loss they repair by about a round trip, and the counters that show them
/// come once a second: a period's NACK, retransmission and PLI counts run this much past its end.
pub(super) const REPAIR_TAIL_S: f64 = 1.0;

/// After the target has recovered, the encoder's resolution ladder climbs back within a few
/// seconds (it waits to be sure); a rise or an outage owns what happens until then.
const AFTERMATH_S: f64 = 3.0;

#[derive(Debug)]
pub(super) enum Kind<'r, 'a> {
    Outage {
        /// When the link came back (`None`: it never did within the log).
        end: Option<f64>,
        /// How the target came back after it, if it had fallen.
        recovery: Option<Recovery>,
    },
    Drop(&'r CapacityDrop),
    Rise(&'r CapacityRise),
    Loss(LossPeriod),
    Change(ChangeLine<'a>),
}

/// One period with its window: what happens in `[start, until)` is its consequence, unless a
/// later period's window holds it too.
#[derive(Debug)]
pub(super) struct Episode<'r, 'a> {
    pub(super) start: f64,
    pub(super) until: f64,
    pub(super) kind: Kind<'r, 'a>,
}

/// The episode that owns an instant: the latest-starting one whose window holds it (what
/// happened most recently is the likeliest cause).
pub(super) fn owner(episodes: &[Episode], t: f64) -> Option<usize> {
    episodes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.start <= t && t < e.until)
        .max_by(|(_, a), (_, b)| {
            a.start
                .total_cmp(&b.start)
                .then(a.kind.weight().cmp(&b.kind.weight()))
        })
        .map(|(i, _)| i)
}

impl Kind<'_, '_> {
    /// Of two periods starting together, the one that acts on the media more directly owns
    /// what follows: the outage over the capacity, the capacity over the loss, and the loss
    /// over any other change (an uplink change made at the same time, say).
    fn weight(&self) -> u8 {
        match self {
            Kind::Outage { .. } => 4,
            Kind::Drop(_) | Kind::Rise(_) => 3,
            Kind::Loss(_) => 2,
            Kind::Change(_) => 1,
        }
    }
}

/// What the episodes own, by episode index, and what none of them owns.
pub(super) struct Owned<'r, 'a> {
    pub(super) freezes: Vec<Vec<&'r FreezeItem>>,
    pub(super) adapts: Vec<Vec<&'r Adapt<'a>>>,
    pub(super) contact: Vec<Vec<&'r LostContact>>,
    pub(super) loose_freezes: Vec<&'r FreezeItem>,
    pub(super) loose_adapts: Vec<&'r Adapt<'a>>,
    pub(super) loose_contact: Vec<&'r LostContact>,
}

impl Owned<'_, '_> {
    pub(super) fn new(n: usize) -> Self {
        Owned {
            freezes: vec![Vec::new(); n],
            adapts: vec![Vec::new(); n],
            contact: vec![Vec::new(); n],
            loose_freezes: Vec::new(),
            loose_adapts: Vec::new(),
            loose_contact: Vec::new(),
        }
    }
}

/// What one episode owns.
pub(super) struct Owning<'o, 'r, 'a> {
    pub(super) frozen: Frozen,
    pub(super) adapts: &'o [&'r Adapt<'a>],
    pub(super) contact: &'o [&'r LostContact],
}

/// Downlink keys the outage, capacity and loss sentences already tell.
pub(super) const TOLD_ELSEWHERE: [&str; 5] =
    ["rate_kbps", "outage", "loss_pct", "burst", "drop_every_nth"];

pub(super) fn episodes<'r, 'a>(
    facts: &'r Facts<'a>,
    report: &'r RunReport,
) -> Vec<Episode<'r, 'a>> {
    let end_t = facts.end_t;
    let steps = &report.raw.capacity_steps;
    let next_step = |t: f64| steps.iter().map(|s| s.t).find(|s| *s > t).unwrap_or(end_t);
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.capacity_bps.is_some_and(|c| c <= 0.0) {
            let after = steps.get(i + 1);
            let end = after.map(|n| n.t);
            let recovery = after.and_then(|a| outage_recovery(facts, s.t, a.t, a.capacity_bps));
            let until = match (end, recovery.as_ref().and_then(|r| r.after_s)) {
                (Some(e), Some(rec)) => next_step(e).min(e + rec + AFTERMATH_S),
                (Some(e), None) => next_step(e),
                (None, _) => end_t,
            };
            out.push(Episode {
                start: s.t,
                until: until.max(s.t),
                kind: Kind::Outage { end, recovery },
            });
        }
    }
    // An outage is zero capacity, not a drop the controller could get under; its end is told
    // with the outage.
    for d in report.capacity_drops.iter().filter(|d| d.to_bps > 0.0) {
        out.push(Episode {
            start: d.t_s,
            until: next_step(d.t_s),
            kind: Kind::Drop(d),
        });
    }
    for r in report.capacity_rises.iter().filter(|r| r.from_bps > 0.0) {
        let until = match r.recovery_s {
            Some(rec) => next_step(r.t_s).min(r.t_s + rec + AFTERMATH_S),
            None => next_step(r.t_s),
        };
        out.push(Episode {
            start: r.t_s,
            until,
            kind: Kind::Rise(r),
        });
    }
    for l in loss_periods(facts)
        .into_iter()
        .chain(unmeasured_loss(facts, report))
    {
        out.push(Episode {
            start: l.from,
            until: l.to + REPAIR_TAIL_S,
            kind: Kind::Loss(l),
        });
    }
    for (i, c) in facts.changes.iter().enumerate() {
        let untold = c.settings.is_null()
            || c.direction != "downlink"
            || c.settings
                .as_object()
                .is_some_and(|m| m.keys().any(|k| !TOLD_ELSEWHERE.contains(&k.as_str())));
        // Back to the defaults on the downlink is told by the periods it ends, unless nothing
        // was told about the downlink before it.
        let ends_told = c.direction == "downlink" && c.settings.is_null() && !out.is_empty();
        if !untold || ends_told {
            continue;
        }
        let until = facts.changes[i + 1..]
            .iter()
            .find(|n| n.direction == c.direction && n.at_s > c.at_s)
            .map_or(end_t, |n| n.at_s);
        out.push(Episode {
            start: c.at_s,
            until: until.max(c.at_s),
            kind: Kind::Change(c.clone()),
        });
    }
    out
}

/// How the target came back after an outage from `t0` to `end`: to 90 % of where it was before
/// (or of the capacity after it, if lower), measured from `end`. `None` when the target never
/// fell under that level (nothing to recover) or nothing was estimated before the outage.
/// ([`RunReport`]'s rises measure against the level before the last capacity *drop*, which an
/// outage is not.)
fn outage_recovery(f: &Facts, t0: f64, end: f64, capacity_after: Option<f64>) -> Option<Recovery> {
    let before = f.target_at(t0)?;
    let (level, of_what) = match capacity_after {
        Some(c) if c > 0.0 && c < before => (c, "of the capacity after it"),
        _ => (before, "of its level before the outage"),
    };
    let goal_bps = RECOVERED_SHARE * level;
    let fell = f.estimates.iter().any(|e| e.t >= t0 && e.target < goal_bps);
    if !fell {
        return None;
    }
    let after_s = f
        .estimates
        .iter()
        .find(|e| e.t >= end && e.target >= goal_bps)
        .map(|e| e.t - end);
    Some(Recovery {
        goal_bps,
        after_s,
        of_what,
    })
}
