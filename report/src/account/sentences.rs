//! The sentences: one builder per [`Topic`] — the startup, the link, each outage, capacity
//! drop and rise, period of loss and other impairment change, the freezes and resolution
//! changes no period explains, and the closing line on what the viewer saw. Each builder picks
//! the facts its topic tells and the clauses that follow, in the order a reader needs them; the
//! clauses themselves and the wording of numbers are shared, in `clauses` and `words`.

use super::clauses::{
    Frozen, Recovery, adapt_clause, chain, contact_clause, freeze_clause, low_cause, pli_clause,
    reaction_cause, repair_clause,
};
use super::episodes::{Episode, Owning, REPAIR_TAIL_S};
use super::facts::{Adapt, ChangeLine, Facts, FreezeItem, LossPeriod};
use super::words::{
    adapt_reason, at, at2, capitalised, join_and, keyframe_reason, ms, packets, paren, pli_reason,
    res, sentence, settings_words, span, times, were,
};
use super::{Sentence, Topic};
use crate::impair::ImpairSample;
use crate::metrics::{CapacityDrop, CapacityRise, RunReport};
use crate::tables::fmt_bps;

/// A round trip this long is worth a sentence: NACK repair needs at least one.
const LONG_RTT_MS: f64 = 100.0;

/// More freezes or resolution changes than this outside every period are told as one sentence.
const MAX_LOOSE_SENTENCES: usize = 3;

pub(super) fn startup(f: &Facts) -> Option<Sentence> {
    let mut parts = Vec::new();
    if let Some(t) = f.offer_sent {
        parts.push(format!("the offer went out at {}", at2(t)));
    }
    if let Some(t) = f.ice_connected {
        parts.push(format!("ICE connected at {}", at2(t)));
    }
    if let Some(t) = f.pc_connected {
        parts.push(format!("the peer connection (ICE and DTLS) at {}", at2(t)));
    }
    let mut media = Vec::new();
    if let Some(t) = f.first_keyframe {
        media.push(format!("the first keyframe left the encoder at {}", at2(t)));
    }
    if let Some(t) = f.first_rtp_received {
        media.push(format!(
            "the first RTP packet reached the receiver at {}",
            at2(t)
        ));
    }
    // `media.first` dates the first picture exactly; older logs and browsers only have the
    // receiver's statistics, once a second.
    match (f.first_frame_decoded, f.first_decoded) {
        (Some(t), _) => media.push(format!(
            "the first frame was decoded at {} (the startup delay)",
            at2(t)
        )),
        (None, Some((t, _))) => media.push(format!(
            "the receiver had decoded its first frame by {} (its statistics come once a second)",
            at2(t)
        )),
        (None, None) if f.has_receiver => {
            media.push("the receiver never decoded a frame".to_owned())
        }
        (None, None) => {}
    }
    if parts.is_empty() && media.is_empty() {
        return None;
    }
    let mut text = String::from("Startup: ");
    if !parts.is_empty() {
        text.push_str(&join_and(&parts));
        text.push_str(". ");
    }
    if !media.is_empty() {
        text.push_str(&capitalised(&join_and(&media)));
        text.push('.');
    }
    let text = text.trim_end().to_owned();
    // The startup is measured from the session's start, so it is told from there.
    Some(Sentence {
        t_s: 0.0,
        topic: Topic::Startup,
        text,
    })
}

/// The link as it was from the start: its capacity when limited, and its round trip when long
/// enough to matter for repairs.
pub(super) fn link(f: &Facts, report: &RunReport) -> Option<Sentence> {
    let mut parts = Vec::new();
    // Dated from statistics only, the first step may sit at the first line's interval start.
    if let Some(first) = report.raw.capacity_steps.first()
        && let Some(c) = first.capacity_bps.filter(|c| *c > 0.0)
        && first.t <= 1.5
    {
        parts.push(format!(
            "From the start the downlink (sender → receiver) carried at most {}: that is the \
             capacity the congestion controller had to find.",
            fmt_bps(c)
        ));
    }
    let mut rtt: Vec<f64> = f.rtt.iter().map(|(_, v)| *v).collect();
    if let Some(median) = rtt_median(&mut rtt).filter(|m| *m >= LONG_RTT_MS) {
        parts.push(format!(
            "A round trip took {} (the median RTT): a lost packet cannot be retransmitted \
             sooner than that.",
            ms(median)
        ));
    }
    (!parts.is_empty()).then(|| Sentence {
        t_s: 0.0,
        topic: Topic::Link,
        text: parts.join(" "),
    })
}

fn rtt_median(values: &mut [f64]) -> Option<f64> {
    rtclab_events::stats::percentile(values, 50.0)
}

pub(super) fn outage(
    f: &Facts,
    e: &Episode,
    end: Option<f64>,
    recovery: Option<&Recovery>,
    own: &Owning,
) -> Sentence {
    let t0 = e.start;
    let dropped: u64 = f
        .downlink(t0, e.until)
        .map(|s| s.dropped.get("outage").copied().unwrap_or(0))
        .sum();
    let mut text = match end {
        Some(end) => format!(
            "At {} the link went dead for {} (an outage: every packet dropped",
            at(t0),
            span(end - t0)
        ),
        None => format!(
            "At {} the link went dead until the end of the run (an outage: every packet dropped",
            at(t0)
        ),
    };
    if dropped > 0 {
        text.push_str(&format!(", {dropped} in all"));
    }
    text.push(')');
    // The viewer's side first, then the repair, then what the controller and encoder did.
    let mut clauses = Vec::new();
    clauses.extend(freeze_clause(f, &own.frozen));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    clauses.extend(repair_clause(f, t0, e.until, Some(dropped)));
    clauses.extend(pli_clause(f, t0, e.until));
    if let Some(end) = end
        && let Some((t, r)) = f.keyframes.iter().find(|(t, _)| *t >= end && *t <= e.until)
    {
        clauses.push(format!(
            "the first keyframe after the link came back left the encoder at {} ({})",
            at(*t),
            keyframe_reason(*r)
        ));
    }
    let after = "the link came back";
    match (f.target_at(t0), f.lowest(t0, e.until), recovery) {
        (Some(before), Some(low), rec) if low.target < before => clauses.push(format!(
            "the target fell from {} to {}{}{}",
            fmt_bps(before),
            fmt_bps(low.target),
            paren(low_cause(low)),
            rec.map(|r| format!(" and {}", r.predicate(after)))
                .unwrap_or_default()
        )),
        (_, _, Some(rec)) => clauses.push(rec.clause(after)),
        _ => {}
    }
    clauses.extend(adapt_clause(own.adapts));
    sentence(t0, Topic::Outage, text, clauses)
}

pub(super) fn capacity_drop(f: &Facts, e: &Episode, d: &CapacityDrop, own: &Owning) -> Sentence {
    let t0 = d.t_s;
    let text = match d.from_bps {
        Some(from) => format!(
            "At {} the capacity fell from {} to {}",
            at(t0),
            fmt_bps(from),
            fmt_bps(d.to_bps)
        ),
        None => format!(
            "At {} the capacity was capped at {}",
            at(t0),
            fmt_bps(d.to_bps)
        ),
    };
    let mut clauses = Vec::new();
    let lines: Vec<&ImpairSample> = f.downlink(t0, e.until).collect();
    let queue = lines
        .iter()
        .filter_map(|s| s.queue_delay_max_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let overflow: u64 = lines
        .iter()
        .map(|s| s.dropped.get("queue_overflow").copied().unwrap_or(0))
        .sum();
    match (queue, overflow) {
        (Some(q), 0) => clauses.push(format!(
            "the queue at the bottleneck reached {} and nothing was dropped",
            ms(q)
        )),
        (Some(q), n) => clauses.push(format!(
            "the queue at the bottleneck reached {} and {} dropped when it was full",
            ms(q),
            were(n)
        )),
        (None, n) if n > 0 => clauses.push(format!("{} dropped at the full queue", were(n))),
        _ => {}
    }
    // A log without a controller (a relay's, a receiver's) cannot say what the target did.
    clauses.extend((!f.estimates.is_empty()).then(|| match d.reaction_s {
        Some(r) if r <= 0.0 => "the target was already below the new capacity".to_owned(),
        Some(r) => format!(
            "the target fell below the new capacity in {:.2} s{}",
            r,
            paren(reaction_cause(f, t0, t0 + r))
        ),
        None => "the target never got below the new capacity".to_owned(),
    }));
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(freeze_clause(f, &own.frozen));
    clauses.extend(pli_clause(f, t0, e.until));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(t0, Topic::CapacityDrop, text, clauses)
}

pub(super) fn capacity_rise(f: &Facts, e: &Episode, r: &CapacityRise, own: &Owning) -> Sentence {
    let t0 = r.t_s;
    let text = match r.to_bps {
        Some(to) => format!(
            "At {} the capacity rose from {} to {}",
            at(t0),
            fmt_bps(r.from_bps),
            fmt_bps(to)
        ),
        None => format!(
            "At {} the capacity limit of {} was lifted",
            at(t0),
            fmt_bps(r.from_bps)
        ),
    };
    let mut clauses = Vec::new();
    clauses.extend(Recovery::of_rise(r).map(|rec| rec.clause("the rise")));
    clauses.extend(adapt_clause(own.adapts));
    if own.frozen.count > 0 {
        clauses.extend(freeze_clause(f, &own.frozen));
    }
    clauses.extend(pli_clause(f, t0, e.until));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(t0, Topic::CapacityRise, text, clauses)
}

pub(super) fn loss(f: &Facts, e: &Episode, l: &LossPeriod, own: &Owning) -> Sentence {
    let lines: Vec<&ImpairSample> = f.downlink(l.from, l.to).collect();
    let mut by_cause = [("random", 0u64), ("burst", 0), ("nth", 0)];
    for s in &lines {
        for (cause, n) in &mut by_cause {
            *n += s.dropped.get(*cause).copied().unwrap_or(0);
        }
    }
    let dropped: u64 = by_cause.iter().map(|(_, n)| n).sum();
    let packets_in: u64 = lines.iter().map(|s| s.packets_in).sum();
    let how: Vec<&str> = by_cause
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, _)| match *c {
            "random" => "at random",
            "burst" => "in bursts",
            _ => "every n-th packet",
        })
        .collect();
    let when = if l.from < 1.5 {
        "From the start".to_owned()
    } else {
        format!("From {}", at(l.from))
    };
    let until = if l.to_end {
        format!("to the end ({})", at(l.to))
    } else {
        format!("to {}", at(l.to))
    };
    let set = l
        .set_pct
        .map(|p| format!("; the scenario set {p} %"))
        .unwrap_or_default();
    let text = if !l.measured {
        format!(
            "{when} {until} the receiver found packets missing, with no impairment in this log \
             (the network's own loss, or an impairment logged elsewhere, such as by a relay)"
        )
    } else if packets_in > 0 {
        format!(
            "{when} {until} the link lost {:.1} % of the packets on the downlink {} ({dropped} of \
             {packets_in}{set})",
            100.0 * dropped as f64 / packets_in as f64,
            join_and(&how)
        )
    } else {
        format!(
            "{when} {until} the link lost {} {}",
            packets(dropped),
            join_and(&how)
        )
    };
    let dropped = l.measured.then_some(dropped);
    let mut clauses = Vec::new();
    clauses.extend(repair_clause(f, l.from, l.to + REPAIR_TAIL_S, dropped));
    clauses.extend(pli_clause(f, l.from, e.until));
    clauses.extend(freeze_clause(f, &own.frozen));
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(l.from, Topic::Loss, text, clauses)
}

pub(super) fn change(f: &Facts, e: &Episode, c: &ChangeLine, own: &Owning) -> Sentence {
    let path = match c.direction {
        "downlink" => "the downlink (sender → receiver, the media)",
        "uplink" => "the uplink (receiver → sender, the feedback)",
        other => other,
    };
    let what = settings_words(c.settings, c.direction == "downlink");
    let mut text = if c.settings.is_null() {
        format!("At {} {path} went back to no impairment", at(c.at_s))
    } else {
        format!("At {} {path} changed: {}", at(c.at_s), join_and(&what))
    };
    if let Some(u) = c.until_s {
        text.push_str(&format!(" until {}", at(u)));
    }
    let mut clauses = Vec::new();
    let delay_keys = ["delay_ms", "jitter_ms"];
    if delay_keys.iter().any(|k| c.settings.get(*k).is_some()) || c.settings.is_null() {
        let end = c.until_s.unwrap_or(e.until).min(e.until);
        if let (Some(before), Some(max)) = (f.rtt_at(c.at_s), f.rtt_max(c.at_s, end))
            && (max - before).abs() >= 5.0
        {
            clauses.push(format!(
                "the round-trip time went from {} to {}",
                ms(before),
                ms(max)
            ));
        }
    }
    if c.direction != "downlink" {
        let dropped: u64 = f
            .samples(c.direction, c.at_s, e.until)
            .map(ImpairSample::dropped_total)
            .sum();
        if dropped > 0 {
            clauses.push(format!(
                "{} of feedback and other traffic were dropped",
                packets(dropped)
            ));
        }
    }
    if own.frozen.count > 0 {
        clauses.extend(freeze_clause(f, &own.frozen));
    }
    clauses.extend(adapt_clause(own.adapts));
    clauses.extend(own.contact.iter().map(|c| contact_clause(c)));
    sentence(c.at_s, Topic::Impairment, text, clauses)
}

/// Freezes and resolution changes outside every period.
pub(super) fn loose_pictures(
    f: &Facts,
    freezes: &[&FreezeItem],
    adapts: &[&Adapt],
) -> Vec<Sentence> {
    let mut out = Vec::new();
    let spans: Option<Vec<(f64, f64)>> = freezes.iter().map(|i| i.span).collect();
    match spans {
        Some(spans) if spans.len() <= MAX_LOOSE_SENTENCES => {
            for (start, end) in spans {
                let why = f
                    .pli_reason(start, end)
                    .map(|r| format!(" ({}; the receiver asked for a keyframe)", pli_reason(r)))
                    .unwrap_or_default();
                out.push(Sentence {
                    t_s: start,
                    topic: Topic::Picture,
                    text: format!(
                        "At {} the picture froze for {}{why}.",
                        at(start),
                        span(end - start)
                    ),
                });
            }
        }
        _ => {
            if let Some(first) = freezes.first() {
                let t_s = first.span.map_or(first.t, |(start, _)| start);
                let frozen = Frozen::of(freezes);
                let longest = frozen
                    .longest_ms
                    .map(|l| format!(" (longest {})", span(l / 1e3)))
                    .unwrap_or_default();
                out.push(Sentence {
                    t_s,
                    topic: Topic::Picture,
                    text: format!(
                        "From {} the picture froze {} with no impairment change to explain it, \
                         {} in all{longest}.",
                        at(t_s),
                        times(frozen.count as usize),
                        span(frozen.total_ms / 1e3)
                    ),
                });
            }
        }
    }
    if adapts.len() <= MAX_LOOSE_SENTENCES {
        for a in adapts {
            out.push(Sentence {
                t_s: a.t,
                topic: Topic::Picture,
                text: format!(
                    "At {} the encoder went {} → {} at a target of {} ({}).",
                    at(a.t),
                    res(a.from_h),
                    res(a.to_h),
                    fmt_bps(a.target),
                    adapt_reason(a.reason)
                ),
            });
        }
    } else if let Some(first) = adapts.first() {
        out.push(Sentence {
            t_s: first.t,
            topic: Topic::Picture,
            text: format!(
                "From {} the encoder changed resolution {} ({}).",
                at(first.t),
                times(adapts.len()),
                chain(adapts)
            ),
        });
    }
    out
}

pub(super) fn viewer(f: &Facts, report: &RunReport) -> Option<Sentence> {
    if !f.has_media {
        return None;
    }
    if !f.has_receiver {
        return Some(Sentence {
            t_s: f.end_t,
            topic: Topic::Viewer,
            text: format!(
                "What the viewer saw is not in the log (no receiver statistics); the sender sent \
                 {} frames.",
                report.frames_sent
            ),
        });
    }
    if report.frames_decoded == 0 {
        return Some(Sentence {
            t_s: f.end_t,
            topic: Topic::Viewer,
            text: format!(
                "What the viewer saw: nothing — none of the {} frames sent was decoded.",
                report.frames_sent
            ),
        });
    }
    let decoded = if report.frames_sent > 0 {
        format!(
            "{} of the {} frames sent were decoded ({:.1} %)",
            report.frames_decoded,
            report.frames_sent,
            100.0 * report.frames_decoded as f64 / report.frames_sent as f64
        )
    } else {
        format!("{} frames were decoded", report.frames_decoded)
    };
    // A browser receiver logs no `video.freeze`; its statistics carry the totals.
    let (count, total_ms) = if f.freezes_from_stats {
        f.freeze_total
    } else {
        (report.freeze_count, report.freeze_total_ms)
    };
    let frozen = if count == 0 {
        "the picture never froze".to_owned()
    } else {
        let share = if report.media_duration_s > 0.0 {
            format!(
                " ({:.1} % of the time)",
                100.0 * total_ms / 1e3 / report.media_duration_s
            )
        } else {
            String::new()
        };
        format!(
            "the picture froze {}, {} in all{share}",
            times(count as usize),
            span(total_ms / 1e3)
        )
    };
    let mut clauses = Vec::new();
    let mut g2g = f.g2g.clone();
    if let Some(p50) = rtclab_events::stats::percentile(&mut g2g, 50.0) {
        clauses.push(format!(
            "glass-to-glass latency (capture to decoded picture) was {} at the median",
            ms(p50)
        ));
    }
    let lowest = f
        .adapts
        .iter()
        .map(|a| a.to_h)
        .chain(f.heights.iter().copied())
        .min();
    let highest = f.heights.iter().copied().max();
    match (lowest, highest) {
        (Some(lo), Some(hi)) if lo == hi => {
            clauses.push(format!("the video was sent at {} throughout", res(hi)))
        }
        (Some(lo), _) => clauses.push(format!("the resolution went as low as {}", res(lo))),
        _ => {}
    }
    Some(sentence(
        f.end_t,
        Topic::Viewer,
        format!("What the viewer saw: {decoded} and {frozen}"),
        clauses,
    ))
}
