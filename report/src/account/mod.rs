//! "What happened": the short account that opens every report — a few timed sentences in plain
//! words, generated from the log by fixed rules (no model), for people learning real-time media.
//!
//! [`account`] tells, in time order: how the call started; the link's capacity at the start;
//! each outage, capacity drop and capacity rise and what followed (the controller's reaction and
//! why, the queue, drops, resolution changes, freezes, recovery); each period of packet loss and
//! its repair (NACKs, retransmissions, PLIs, keyframes); other impairment changes; the freezes,
//! resolution changes and ICE disconnections no period explains; and a closing line on what the
//! viewer saw. Every number comes from the log. Where the log says why — a `bwe.estimate`'s
//! detector state and estimates, an `encoder.adapt` reason, a `decoder.pli` reason, a keyframe's
//! reason — the sentence says it too; where it does not, the sentence does not guess.
//!
//! The rules are split by concept: `facts` reads the log once (and finds its periods of loss and
//! its freezes), `episodes` groups what happened into periods and decides which one explains
//! each freeze, resolution change and loss of contact, `sentences` builds each topic's sentence
//! from `clauses` shared between topics, and `words` writes the numbers and reasons; `tests`
//! checks the whole on hand-built and recorded logs. This file holds the public types and puts
//! the sentences in order.

mod clauses;
mod episodes;
mod facts;
mod sentences;
mod words;

use crate::metrics::RunReport;
use clauses::{Frozen, contact_clause};
use episodes::{Kind, Owned, Owning, episodes, owner};
use facts::{Facts, freeze_items};
use rtclab_events::Record;
use sentences::{
    capacity_drop, capacity_rise, change, link, loose_pictures, loss, outage, startup, viewer,
};
use serde::{Deserialize, Serialize};
use words::capitalised;

/// What a sentence of the account is about. The order is the order of sentences that share a
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// How the call started: ICE, the peer connection, the first keyframe, the first picture.
    Startup,
    /// The capacity of the link from the start.
    Link,
    /// The link carried nothing for a while (100 % loss).
    Outage,
    /// The bottleneck's capacity fell.
    CapacityDrop,
    /// The bottleneck's capacity rose, or its limit was lifted.
    CapacityRise,
    /// Packets were lost on the way (random, bursty or every n-th), and how they were repaired.
    Loss,
    /// Another change of the impairment: delay, jitter, the uplink (feedback) path, ...
    Impairment,
    /// ICE lost contact with the other peer (disconnected or failed).
    Connection,
    /// A freeze or a resolution change that no period above explains.
    Picture,
    /// Nothing went wrong.
    Clean,
    /// The closing line: what the viewer saw over the whole run.
    Viewer,
}

/// One item of the account: a moment or a period of the run and what followed it, told in
/// one to a few short sentences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentence {
    /// When what it tells began, s since the session started (the closing line: the log's end).
    pub t_s: f64,
    /// What it is about.
    pub topic: Topic,
    /// The text, in plain words, with its numbers.
    pub text: String,
}

/// The account of a run, in time order, from its records and the figures [`RunReport`] computed
/// from the same records (its capacity drops and rises, freezes and totals are reused, so the
/// account never disagrees with the tables below it).
pub fn account(records: &[Record], report: &RunReport) -> Vec<Sentence> {
    let facts = Facts::read(records, report);
    let episodes = episodes(&facts, report);
    let freezes = freeze_items(&facts, &report.freezes_list);
    let mut owned = Owned::new(episodes.len());
    for f in &freezes {
        match owner(&episodes, f.t) {
            Some(e) => owned.freezes[e].push(f),
            None => owned.loose_freezes.push(f),
        }
    }
    for a in &facts.adapts {
        match owner(&episodes, a.t) {
            Some(e) => owned.adapts[e].push(a),
            None => owned.loose_adapts.push(a),
        }
    }
    for c in &facts.lost_contact {
        match owner(&episodes, c.t) {
            Some(e) => owned.contact[e].push(c),
            None => owned.loose_contact.push(c),
        }
    }

    let mut out = Vec::new();
    out.extend(startup(&facts));
    out.extend(link(&facts, report));
    for (i, e) in episodes.iter().enumerate() {
        let ctx = Owning {
            frozen: Frozen::of(&owned.freezes[i]),
            adapts: &owned.adapts[i],
            contact: &owned.contact[i],
        };
        out.push(match &e.kind {
            Kind::Outage { end, recovery } => outage(&facts, e, *end, recovery.as_ref(), &ctx),
            Kind::Drop(d) => capacity_drop(&facts, e, d, &ctx),
            Kind::Rise(r) => capacity_rise(&facts, e, r, &ctx),
            Kind::Loss(l) => loss(&facts, e, l, &ctx),
            Kind::Change(c) => change(&facts, e, c, &ctx),
        });
    }
    out.extend(loose_pictures(
        &facts,
        &owned.loose_freezes,
        &owned.loose_adapts,
    ));
    out.extend(owned.loose_contact.iter().map(|c| Sentence {
        t_s: c.t,
        topic: Topic::Connection,
        text: capitalised(&format!("{}.", contact_clause(c))),
    }));
    // Anything told beyond the startup and the link, or any loss the receiver counted, is
    // something that went wrong.
    let troubled = out
        .iter()
        .any(|s| !matches!(s.topic, Topic::Startup | Topic::Link))
        || report.packets_lost > 0
        || report.plis > 0
        || facts.freeze_total.0 > 0;
    // A run that decoded (nearly) nothing did not go well, whatever else it says.
    let decoded_poorly = report.frames_decoded_pct.is_some_and(|p| p < 90.0);
    if !troubled && !decoded_poorly && facts.has_receiver {
        out.push(Sentence {
            t_s: facts.end_t,
            topic: Topic::Clean,
            text: if report.impairment.is_empty() {
                "Nothing went wrong: the link was not impaired, no packet was lost and the \
                 picture never froze."
                    .to_owned()
            } else {
                "Nothing went wrong: no packet was lost for good and the picture never froze."
                    .to_owned()
            },
        });
    }
    out.extend(viewer(&facts, report));
    // Stable: sentences of the same time and topic keep the order they were made in.
    out.sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then(a.topic.cmp(&b.topic)));
    out
}

/// The account as plain text, one sentence per line (the terminal's form).
pub fn to_text(sentences: &[Sentence]) -> String {
    sentences.iter().map(|s| format!("{}\n", s.text)).collect()
}

#[cfg(test)]
mod tests;
