//! Wording and numbers: how the account writes instants, durations, rates, resolutions and
//! counts, joins clauses into sentences, and names the log's reasons (for a keyframe, a
//! resolution change, a PLI) and an impairment's settings in plain words. Kept in one place so
//! every sentence writes the same number the same way.

use super::episodes::TOLD_ELSEWHERE;
use super::{Sentence, Topic};
use crate::tables::fmt_bps;
use rtclab_events::{KeyframeReason, PliReason};
use serde_json::Value;

/// The head sentence, then each clause as a short sentence of its own.
pub(super) fn sentence(t_s: f64, topic: Topic, head: String, clauses: Vec<String>) -> Sentence {
    let mut text = head;
    text.push('.');
    for c in clauses {
        text.push(' ');
        text.push_str(&capitalised(&c));
        text.push('.');
    }
    Sentence { t_s, topic, text }
}

/// An instant: one decimal, as the plots' axes.
pub(super) fn at(t: f64) -> String {
    format!("{t:.1} s")
}

/// An instant of the startup, where tenths of a second matter.
pub(super) fn at2(t: f64) -> String {
    format!("{t:.2} s")
}

/// A duration: ms under a second, else seconds with one decimal.
pub(super) fn span(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

pub(super) fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// A picture height as video people say it: 720p.
pub(super) fn res(height: u32) -> String {
    format!("{height}p")
}

pub(super) fn packets(n: u64) -> String {
    count_of(n, "packet", "packets")
}

/// "1 packet was", "2 packets were".
pub(super) fn were(n: u64) -> String {
    format!("{} {}", packets(n), if n == 1 { "was" } else { "were" })
}

pub(super) fn count_of(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn times(n: usize) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

pub(super) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn paren(s: Option<String>) -> String {
    s.map(|s| format!(" ({s})")).unwrap_or_default()
}

/// "a", "a and b", "a, b and c".
pub(super) fn join_and<S: AsRef<str>>(parts: &[S]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Words for an `impair.change`'s settings, with the scenario file's keys.
pub(super) fn settings_words(settings: &Value, downlink: bool) -> Vec<String> {
    let Some(m) = settings.as_object() else {
        return Vec::new();
    };
    m.iter()
        .filter(|(k, _)| !downlink || !TOLD_ELSEWHERE.contains(&k.as_str()))
        .map(|(k, v)| {
            let name = match k.as_str() {
                "loss_pct" => "random loss",
                "burst" => "bursty loss",
                "drop_every_nth" => "every n-th packet dropped",
                "delay_ms" => "one-way delay",
                "jitter_ms" => "jitter",
                "jitter_distribution" => "jitter distribution",
                "reorder" => "reordering",
                "duplicate_pct" => "duplicates",
                "rate_kbps" => "capacity",
                "queue_ms" => "queue limit",
                "queue_bytes" => "queue limit",
                "overhead_bytes" => "header overhead",
                "outage" => "outage",
                other => other,
            };
            let value = match (k.as_str(), v) {
                (_, Value::Null) => return format!("{name} back to its default"),
                ("rate_kbps", v) => v.as_f64().map(|x| fmt_bps(x * 1e3)),
                (k, v) if k.ends_with("_pct") => v.as_f64().map(|x| format!("{x} %")),
                (k, v) if k.ends_with("_ms") => v.as_f64().map(|x| format!("{x} ms")),
                ("queue_bytes" | "overhead_bytes", v) => v.as_f64().map(|x| format!("{x} bytes")),
                (_, Value::Bool(b)) => Some(if *b { "on" } else { "off" }.to_owned()),
                (_, Value::String(s)) => Some(s.clone()),
                ("burst", _) => Some("on".to_owned()),
                (_, v) => Some(v.to_string()),
            };
            format!("{name} {}", value.unwrap_or_else(|| v.to_string()))
        })
        .collect()
}

pub(super) fn keyframe_reason(r: KeyframeReason) -> &'static str {
    match r {
        KeyframeReason::Start => "the stream's first",
        KeyframeReason::Pli => "asked for by a PLI",
        KeyframeReason::Fir => "asked for by a FIR",
        KeyframeReason::Resize => "the first at a new resolution",
        KeyframeReason::Probe => "sent as a bandwidth probe",
    }
}

pub(super) fn adapt_reason(r: &str) -> String {
    match r {
        "target_below_floor" => "the target fell below what the resolution needs".to_owned(),
        "overshoot" => "too many frames went over budget".to_owned(),
        "target_recovered" => "the target recovered".to_owned(),
        other => other.replace('_', " "),
    }
}

pub(super) fn pli_reason(r: PliReason) -> &'static str {
    match r {
        PliReason::FrameLost => "a frame was lost for good",
        PliReason::DecodeError => "a frame could not be decoded",
        PliReason::Interval => "a fixed test interval",
    }
}
