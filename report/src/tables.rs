//! The report as tables: the rows both the terminal and the HTML page show, the terminal view of
//! `rtclab report`, and the comparison table of a sweep.

use crate::metrics::RunReport;
use crate::summary::Summary;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;

/// "–": the figure does not apply to this run or was not logged.
pub(crate) const NONE: &str = "–";

/// RTCP types in the order a reader expects them.
const RTCP_ORDER: [&str; 10] = [
    "SR", "RR", "TWCC", "REMB", "NACK", "PLI", "FIR", "SDES", "BYE", "other",
];

/// A capacity: a bitrate, or "0 (outage)" for a link that carries nothing.
pub(crate) fn fmt_capacity(bps: f64) -> String {
    if bps == 0.0 {
        "0 (outage)".to_owned()
    } else {
        fmt_bps(bps)
    }
}

/// A bitrate in the unit that keeps it readable.
pub(crate) fn fmt_bps(bps: f64) -> String {
    if bps >= 1e6 {
        format!("{:.2} Mbps", bps / 1e6)
    } else {
        format!("{:.0} kbps", bps / 1e3)
    }
}

/// `f(v)`, or "–" when the log cannot tell: one table cell.
pub(crate) fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| NONE.to_owned(), f)
}

/// `f(v)` when there is a value, nothing otherwise: for optional parts of a cell.
fn suffix<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(String::new, f)
}

/// A number of a `summary.json`.
pub(crate) fn num(summary: &Value, key: &str) -> Option<f64> {
    summary.get(key).and_then(Value::as_f64)
}

fn text<'a>(summary: &'a Value, key: &str) -> Option<&'a str> {
    summary.get(key).and_then(Value::as_str)
}

/// Scenario description: the log's config first, then the summary.
pub(crate) fn description<'a>(report: &'a RunReport, summary: &'a Value) -> Option<&'a str> {
    report
        .scenario_description
        .as_deref()
        .or_else(|| text(summary, "description"))
        .or_else(|| text(summary, "scenario_description"))
}

/// Codec: the summary's (negotiated) first, then the configured one.
pub(crate) fn codec<'a>(report: &'a RunReport, summary: &'a Value) -> Option<&'a str> {
    text(summary, "codec")
        .filter(|c| !c.is_empty())
        .or_else(|| report.config.get("codec").and_then(Value::as_str))
}

/// (figure, value, how it is measured) rows of the figures table.
pub(crate) fn figure_rows(r: &RunReport, summary: &Value) -> Vec<[String; 3]> {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row = |a: &str, b: String, c: &str| rows.push([a.to_owned(), b, c.to_owned()]);
    row(
        "media duration",
        format!("{:.1} s", r.media_duration_s),
        "first to last sender statistics",
    );
    row(
        "frames decoded",
        match r.frames_decoded_pct {
            Some(p) => format!("{p:.1} % ({} of {})", r.frames_decoded, r.frames_sent),
            None => NONE.to_owned(),
        },
        "receiver decoded ÷ sender encoded",
    );
    row(
        "freezes",
        if r.freeze_count == 0 {
            "0".to_owned()
        } else {
            format!(
                "{} — total {:.0} ms, longest {:.0} ms{}",
                r.freeze_count,
                r.freeze_total_ms,
                r.freeze_longest_ms,
                suffix(r.frozen_pct, |p| format!(" ({p:.1} % of the time)"))
            )
        },
        "video.freeze: no new frame for > max(3 frame intervals, interval + 150 ms)",
    );
    row(
        "low-fps seconds",
        format!("{} s", r.low_fps_s),
        "seconds the receiver decoded < 1/3 of the sender's fps",
    );
    row(
        "glass-to-glass latency",
        match (num(summary, "g2g_p50_ms"), num(summary, "g2g_p95_ms")) {
            (Some(p50), Some(p95)) => format!("p50 {p50:.1} ms, p95 {p95:.1} ms"),
            _ => format!("{NONE} (no abs-capture-time)"),
        },
        "qoe: sender capture (abs-capture-time) → decoded, one wall clock",
    );
    row(
        "picture quality",
        match (num(summary, "psnr_mean_db"), num(summary, "ssim_mean")) {
            (Some(p), Some(q)) => format!(
                "PSNR {p:.2} dB, SSIM {q:.4} ({} frames scored)",
                num(summary, "scored_frames").unwrap_or(0.0)
            ),
            _ => format!("{NONE} (source unknown to the receiver)"),
        },
        "qoe: luma vs the regenerated testsrc2 frame, every 3rd frame",
    );
    row(
        "link utilisation",
        match r.link_utilisation_pct {
            Some(u) => format!("{u:.1} % over {:.0} s", r.capacity_limited_s),
            None => format!("{NONE} (capacity never limited)"),
        },
        "downlink bytes delivered ÷ capacity, over the limited seconds",
    );
    row(
        "queuing delay p50 / p95 / max",
        if r.queue_delay_p50_ms.is_some() || r.queue_delay_max_ms.is_some() {
            format!(
                "{} / {} / {} ms",
                opt(r.queue_delay_p50_ms, |v| format!("{v:.1}")),
                opt(r.queue_delay_p95_ms, |v| format!("{v:.1}")),
                opt(r.queue_delay_max_ms, |v| format!("{v:.1}")),
            )
        } else {
            format!("{NONE} (no impairment stats)")
        },
        "downlink; approximated from per-second percentiles",
    );
    row(
        "RTT mean / max",
        match (r.rtt_mean_ms, r.rtt_max_ms) {
            (Some(m), Some(x)) => format!("{m:.1} / {x:.1} ms"),
            _ => format!("{NONE} (not in bwe.estimate)"),
        },
        "bwe.estimate rtt_ms",
    );
    row(
        "reaction to capacity drops",
        if r.capacity_drops.is_empty() {
            format!("{NONE} (no drop)")
        } else {
            format!(
                "max {}, mean {} ({} drop(s), {} never reached)",
                opt(r.reaction_time_max_s, |v| format!("{v:.2} s")),
                opt(r.reaction_time_mean_s, |v| format!("{v:.2} s")),
                r.capacity_drops.len(),
                r.reactions_missed
            )
        },
        "drop → first target below the new capacity",
    );
    row(
        "recovery after capacity rises",
        if r.capacity_rises.is_empty() {
            format!("{NONE} (no rise)")
        } else {
            format!(
                "max {} ({} rise(s))",
                opt(r.recovery_time_max_s, |v| format!("{v:.2} s")),
                r.capacity_rises.len()
            )
        },
        "rise → target ≥ 90 % of min(new capacity, target before the drop)",
    );
    let bitrates = [
        ("target", "mean_target_bps"),
        ("encoder", "mean_encoder_bps"),
        ("sent", "mean_send_bps"),
        ("received", "mean_recv_bps"),
    ]
    .iter()
    .filter_map(|(name, key)| num(summary, key).map(|v| format!("{name} {}", fmt_bps(v))))
    .collect::<Vec<_>>();
    row(
        "mean bitrates",
        if bitrates.is_empty() {
            NONE.to_owned()
        } else {
            bitrates.join(", ")
        },
        "summary.json means of the per-second values",
    );
    row(
        "packets",
        format!(
            "sent {}, received {}, lost {}{}",
            opt(num(summary, "packets_sent"), |v| format!("{v:.0}")),
            opt(num(summary, "packets_received"), |v| format!("{v:.0}")),
            r.packets_lost,
            suffix(r.network_lost_packets, |n| format!(
                ", dropped by impairment {n}"
            )),
        ),
        "lost = never received after retransmission",
    );
    row(
        "NACK / PLI / FIR sent",
        format!(
            "{} ({} seqs) / {} / {}",
            r.nacks, r.nacked_packets, r.plis, r.firs
        ),
        "RTCP the receiver sent",
    );
    row(
        "retransmissions",
        format!(
            "{}{}",
            r.retransmissions,
            suffix(r.retransmissions_per_lost, |v| format!(
                " ({v:.2} per lost packet)"
            ))
        ),
        &format!("per lost packet: ÷ {}", r.retransmissions_per_lost_basis),
    );
    row(
        "keyframes / decode errors",
        format!(
            "{} / {}",
            opt(num(summary, "keyframes"), |v| format!("{v:.0}")),
            opt(num(summary, "decode_errors"), |v| format!("{v:.0}")),
        ),
        "encoder keyframes; frames the decoder refused",
    );
    rows
}

/// RTCP counts as (column headers "peer dir", rows of type + counts).
pub(crate) fn rtcp_pivot(r: &RunReport) -> (Vec<String>, Vec<Vec<String>>) {
    let cols: BTreeSet<(String, String)> = r
        .rtcp_counts
        .iter()
        .map(|c| (c.peer.clone(), c.direction.clone()))
        .collect();
    let types: BTreeSet<&str> = r.rtcp_counts.iter().map(|c| c.rtcp_type.as_str()).collect();
    let mut ordered: Vec<&str> = RTCP_ORDER
        .iter()
        .copied()
        .filter(|t| types.contains(t))
        .collect();
    ordered.extend(types.iter().filter(|t| !RTCP_ORDER.contains(t)));
    let rows = ordered
        .iter()
        .map(|t| {
            let mut row = vec![(*t).to_owned()];
            for (peer, dir) in &cols {
                let n = r
                    .rtcp_counts
                    .iter()
                    .find(|c| &c.peer == peer && &c.direction == dir && c.rtcp_type == *t)
                    .map_or(0, |c| c.count);
                row.push(n.to_string());
            }
            row
        })
        .collect();
    let headers = cols.iter().map(|(p, d)| format!("{p} {d}")).collect();
    (headers, rows)
}

/// Candidate rows: peer, side, type, protocol, address, related address, url.
pub(crate) fn candidate_rows(r: &RunReport) -> Vec<[String; 7]> {
    r.ice_candidates
        .iter()
        .map(|c| {
            [
                c.peer.clone(),
                c.side.clone(),
                c.candidate_type.clone(),
                c.protocol.clone(),
                c.address.clone(),
                c.related_address.clone().unwrap_or_else(|| NONE.to_owned()),
                c.url.clone().unwrap_or_else(|| NONE.to_owned()),
            ]
        })
        .collect()
}

/// Selected-pair rows: at, peer, local, remote.
pub(crate) fn pair_rows(r: &RunReport) -> Vec<[String; 4]> {
    r.ice_selected_pairs
        .iter()
        .map(|p| {
            [
                format!("{:.2} s", p.t_s),
                p.peer.clone(),
                format!(
                    "{} {} {}",
                    p.pair.local_type, p.pair.local_protocol, p.pair.local_address
                ),
                format!(
                    "{} {} {}",
                    p.pair.remote_type, p.pair.remote_protocol, p.pair.remote_address
                ),
            ]
        })
        .collect()
}

fn by_type(m: &std::collections::BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return NONE.to_owned();
    }
    m.iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cand(c: &Option<crate::path::PathCandidate>) -> String {
    c.as_ref().map_or_else(
        || NONE.to_owned(),
        |c| {
            format!(
                "{} {} {} (prio {})",
                c.candidate_type,
                c.protocol,
                c.address,
                c.priority.map_or_else(|| "?".to_owned(), |p| p.to_string())
            )
        },
    )
}

/// Path rows: peer, role in ICE, gathered, learned, pairs tried/succeeded, selected local,
/// selected remote, pair priority, time to connect.
pub(crate) fn path_rows(r: &RunReport) -> Vec<[String; 9]> {
    r.ice_path
        .peers
        .iter()
        .map(|p| {
            [
                p.peer.clone(),
                if p.controlling {
                    "controlling"
                } else {
                    "controlled"
                }
                .to_owned(),
                by_type(&p.gathered),
                by_type(&p.remote),
                match (p.pairs_tried, p.pairs_succeeded) {
                    (Some(t), Some(s)) => format!("{t} / {s}"),
                    _ => "n/a".to_owned(),
                },
                cand(&p.local),
                cand(&p.remote_selected),
                p.pair_priority
                    .map_or_else(|| NONE.to_owned(), |x| x.to_string()),
                p.connect_s
                    .map_or_else(|| NONE.to_owned(), |x| format!("{x:.2} s")),
            ]
        })
        .collect()
}

pub(crate) const PATH_HEADERS: [&str; 9] = [
    "peer",
    "ICE role",
    "gathered",
    "learned",
    "pairs tried / ok",
    "selected local",
    "selected remote",
    "pair priority",
    "checking → connected",
];

/// Lines under the path table: why each pair, the relay used, the TURN server's totals.
pub(crate) fn path_notes(r: &RunReport) -> Vec<String> {
    let mut out = Vec::new();
    for p in &r.ice_path.peers {
        out.push(format!("{}: {}", p.peer, p.why));
        if let Some(l) = p.local.as_ref().filter(|l| l.candidate_type == "relay") {
            out.push(format!(
                "{}: relay {} via {} over {}",
                p.peer,
                l.address,
                l.url.as_deref().unwrap_or("(server not logged)"),
                l.relay_protocol.as_deref().unwrap_or("?")
            ));
        }
    }
    if r.ice_path.peers.iter().any(|p| p.pairs_tried.is_none()) {
        out.push(
            "pairs tried: n/a for Rust peers (webrtc-rs 0.21 reports no candidate-pair checks)"
                .to_owned(),
        );
    }
    out.push(
        "pair priority (RFC 8445 §6.1.2.3) = 2^32·min(G,D) + 2·max(G,D) + (G>D), G = the \
         controlling agent's (offerer's) candidate priority"
            .to_owned(),
    );
    match &r.ice_path.turn {
        Some(t) => out.push(format!(
            "TURN server: {} allocation(s), {} permission(s), {} channel bind(s), {} refresh(es), \
             {} refused; relayed {} bytes to peers, {} from peers",
            t.allocations,
            t.permissions,
            t.channel_binds,
            t.refreshes,
            t.refusals,
            t.to_peer_bytes,
            t.from_peer_bytes
        )),
        None => out.push("TURN server: no turn.* events (none, or coturn)".to_owned()),
    }
    out
}

/// Impairment rows: direction, in, out, dropped by cause, limited seconds, max queue delay.
pub(crate) fn impair_rows(r: &RunReport) -> Vec<[String; 6]> {
    r.impairment
        .iter()
        .map(|i| {
            let causes = if i.dropped.is_empty() {
                "0".to_owned()
            } else {
                let by: Vec<String> = i.dropped.iter().map(|(c, n)| format!("{c} {n}")).collect();
                format!("{} ({})", i.dropped_total, by.join(", "))
            };
            [
                i.direction.clone(),
                format!("{} pkt / {} B", i.packets_in, i.bytes_in),
                format!("{} pkt / {} B", i.packets_out, i.bytes_out),
                causes,
                format!("{:.0} s", i.capacity_limited_s),
                opt(i.queue_delay_max_ms, |v| format!("{v:.1} ms")),
            ]
        })
        .collect()
}

pub(crate) const CANDIDATE_HEADERS: [&str; 7] = [
    "peer",
    "side",
    "type",
    "protocol",
    "address",
    "related address",
    "url",
];
pub(crate) const PAIR_HEADERS: [&str; 4] = ["selected at", "peer", "local", "remote"];
pub(crate) const IMPAIR_HEADERS: [&str; 6] = [
    "direction",
    "in",
    "delivered",
    "dropped (by cause)",
    "capacity limited",
    "max queue delay",
];

pub(crate) fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(headers.to_vec());
    t
}

pub(crate) fn right_align(t: &mut Table, from: usize) {
    for i in from..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Writes the terminal tables of `rtclab report DIR`: run, ICE, RTCP, figures, impairment.
pub fn print_tables(
    report: &RunReport,
    summary_json: &Value,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let name = report.scenario.as_deref().unwrap_or("(no scenario)");
    writeln!(w, "run        {name}")?;
    if let Some(d) = description(report, summary_json) {
        // The description is a paragraph; keep it on one line per sentence group.
        writeln!(
            w,
            "about      {}",
            d.split_whitespace().collect::<Vec<_>>().join(" ")
        )?;
    }
    if let Some(c) = codec(report, summary_json) {
        writeln!(w, "codec      {c}")?;
    }
    if let Some(s) = &report.session_id {
        writeln!(
            w,
            "session    {s}  started {}",
            report.started_at.as_deref().unwrap_or(NONE)
        )?;
    }

    if !report.what_happened.is_empty() {
        writeln!(w, "\nWhat happened")?;
        write_account(&report.what_happened, w)?;
    }
    if let Some(s) = &report.startup_delay {
        writeln!(w, "\n{}", s.summary_line())?;
    }

    // QoS and QoE side by side: the network's figures, then the viewer's.
    let sides = crate::qoe_qos::side_by_side(report, summary_json);
    for (title, side) in [
        ("The network (QoS)", &sides.network),
        ("The viewer (QoE)", &sides.viewer),
    ] {
        writeln!(w, "\n{title}")?;
        for f in side {
            writeln!(w, "  {:<19} {:<32} {}", f.name, f.value, f.meaning)?;
        }
    }

    writeln!(w, "\nICE candidates")?;
    let rows = candidate_rows(report);
    if rows.is_empty() {
        writeln!(w, "  none logged")?;
    } else {
        let mut t = table(&CANDIDATE_HEADERS);
        t.add_rows(rows.iter().map(|r| r.to_vec()));
        writeln!(w, "{t}")?;
    }
    writeln!(w, "\nSelected candidate pair")?;
    let rows = pair_rows(report);
    if rows.is_empty() {
        writeln!(w, "  none logged")?;
    } else {
        let mut t = table(&PAIR_HEADERS);
        t.add_rows(rows.iter().map(|r| r.to_vec()));
        writeln!(w, "{t}")?;
    }

    writeln!(w, "\nICE path")?;
    let rows = path_rows(report);
    if rows.is_empty() {
        writeln!(w, "  none logged")?;
    } else {
        let mut t = table(&PATH_HEADERS);
        t.add_rows(rows.iter().map(|r| r.to_vec()));
        writeln!(w, "{t}")?;
        for line in path_notes(report) {
            writeln!(w, "  {line}")?;
        }
    }

    writeln!(w, "\nRTCP packets per type and direction")?;
    let (cols, rows) = rtcp_pivot(report);
    if rows.is_empty() {
        writeln!(w, "  none logged")?;
    } else {
        let mut headers = vec!["type"];
        headers.extend(cols.iter().map(String::as_str));
        let mut t = table(&headers);
        t.add_rows(rows);
        right_align(&mut t, 1);
        writeln!(w, "{t}")?;
    }

    writeln!(w, "\nBitrate and quality of experience")?;
    // The "how it is measured" column is in report.html; it would make this table too wide.
    let mut t = table(&["figure", "value"]);
    t.add_rows(
        figure_rows(report, summary_json)
            .iter()
            .map(|[f, v, _]| vec![f.clone(), v.clone()]),
    );
    writeln!(w, "{t}")?;
    if !report.capacity_drops.is_empty() || !report.capacity_rises.is_empty() {
        let mut t = table(&["at", "capacity change", "controller"]);
        for d in &report.capacity_drops {
            t.add_row(vec![
                format!("{:.1} s", d.t_s),
                format!(
                    "drop {} → {}",
                    opt(d.from_bps, fmt_bps),
                    fmt_capacity(d.to_bps)
                ),
                opt(d.reaction_s, |v| format!("under it after {v:.2} s")),
            ]);
        }
        for r in &report.capacity_rises {
            t.add_row(vec![
                format!("{:.1} s", r.t_s),
                format!(
                    "rise {} → {}",
                    fmt_bps(r.from_bps),
                    r.to_bps.map_or_else(|| "unlimited".to_owned(), fmt_bps)
                ),
                match (r.goal_bps, r.recovery_s) {
                    (Some(g), Some(v)) => format!("≥ {} after {v:.2} s", fmt_bps(g)),
                    (Some(g), None) => format!("never ≥ {}", fmt_bps(g)),
                    _ => NONE.to_owned(),
                },
            ]);
        }
        writeln!(w, "{t}")?;
    }

    writeln!(w, "\nImpairment")?;
    let rows = impair_rows(report);
    if rows.is_empty() {
        writeln!(w, "  none (clean link: no impair.stats in the log)")?;
    } else {
        let mut t = table(&IMPAIR_HEADERS);
        t.add_rows(rows.iter().map(|r| r.to_vec()));
        right_align(&mut t, 1);
        writeln!(w, "{t}")?;
    }
    if !report.relay_streams.is_empty() {
        writeln!(w, "\nStreams seen at the relay")?;
        let mut t = table(&crate::relay::HEADERS);
        t.add_rows(crate::relay::rows(&report.relay_streams));
        right_align(&mut t, 3);
        writeln!(w, "{t}")?;
        writeln!(w, "  {}", crate::relay::EXPLAINED)?;
    }
    if !report.report_notes.is_empty() {
        writeln!(w, "\nNotes")?;
        for n in &report.report_notes {
            writeln!(w, "  - {n}")?;
        }
    }
    Ok(())
}

/// Width the account's sentences are wrapped to in a terminal.
const WRAP: usize = 100;

/// The account's sentences, one bullet each, wrapped and indented for a terminal.
fn write_account(
    sentences: &[crate::account::Sentence],
    w: &mut impl Write,
) -> std::io::Result<()> {
    for s in sentences {
        let mut line = String::from("  -");
        for word in s.text.split_whitespace() {
            let has_words = !matches!(line.trim(), "-" | "");
            if has_words && line.chars().count() + 1 + word.chars().count() > WRAP {
                writeln!(w, "{line}")?;
                line = String::from("   ");
            }
            line.push(' ');
            line.push_str(word);
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// A figure of one sweep row: flat key first, then under `report`, then a fallback computation.
pub(crate) fn sweep_value(v: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| {
        v.get(*k)
            .or_else(|| v.get("report").and_then(|r| r.get(*k)))
            .and_then(Value::as_f64)
    })
}

/// The slowest reaction to a capacity drop, and how many drops got none, as one table cell.
fn reaction_cell(v: &Value) -> String {
    let missed = sweep_value(v, &["reactions_missed"]).unwrap_or(0.0);
    match sweep_value(v, &["reaction_time_max_s"]) {
        Some(s) if missed > 0.0 => format!("{s:.2} s (+{missed:.0} missed)"),
        Some(s) => format!("{s:.2} s"),
        None if missed > 0.0 => format!("missed {missed:.0}"),
        None => NONE.to_owned(),
    }
}

/// Frames decoded, % of frames sent: the summary's figure, or from its two counts.
pub(crate) fn decoded_pct(v: &Value) -> Option<f64> {
    sweep_value(v, &["frames_decoded_pct"]).or_else(|| {
        let sent = sweep_value(v, &["frames_sent"])?;
        let dec = sweep_value(v, &["frames_decoded"])?;
        (sent > 0.0).then(|| 100.0 * dec / sent)
    })
}

/// Comparison table of a sweep: one row per variant (`summary.json` merged with the report's
/// figures), one column per headline figure.
pub fn sweep_table(rows: &[(String, Value)]) -> String {
    let mut t = table(&[
        "variant",
        "utilisation",
        "queue delay p95",
        "frames decoded",
        "freeze time",
        "NACKs",
        "rtx / lost",
        "reaction",
    ]);
    for (name, v) in rows {
        let decoded = decoded_pct(v);
        let reaction = reaction_cell(v);
        t.add_row(vec![
            name.clone(),
            opt(sweep_value(v, &["link_utilisation_pct"]), |x| {
                format!("{x:.1} %")
            }),
            opt(sweep_value(v, &["queue_delay_p95_ms"]), |x| {
                format!("{x:.1} ms")
            }),
            opt(decoded, |x| format!("{x:.1} %")),
            opt(sweep_value(v, &["freeze_total_ms", "freeze_ms"]), |x| {
                format!("{x:.0} ms")
            }),
            opt(sweep_value(v, &["nacks"]), |x| format!("{x:.0}")),
            opt(sweep_value(v, &["retransmissions_per_lost"]), |x| {
                format!("{x:.2}")
            }),
            reaction,
        ]);
    }
    right_align(&mut t, 1);
    t.to_string()
}

/// Downlink loss seen by the network: packets the impairment dropped ÷ packets it was given.
pub(crate) fn downlink_loss_pct(v: &Value) -> Option<f64> {
    let down = v
        .get("impairment")?
        .as_array()?
        .iter()
        .find(|d| d.get("direction").and_then(Value::as_str) == Some("downlink"))?;
    let total = down.get("packets_in")?.as_f64()?;
    let dropped = down.get("dropped_total")?.as_f64()?;
    (total > 0.0).then(|| 100.0 * dropped / total)
}

/// `rtclab bench cc`'s table: one row per (scenario, sender) from each run's `summary.json`.
pub fn bench_table(rows: &[(String, Value)]) -> String {
    let mut t = table(&[
        "scenario / sender",
        "utilisation",
        "queue p50",
        "queue p95",
        "loss",
        "reaction",
        "recovery",
        "freeze time",
        "g2g p50",
        "g2g p95",
        "PSNR",
    ]);
    let ms = |x: f64| format!("{x:.0} ms");
    for (name, v) in rows {
        let reaction = reaction_cell(v);
        t.add_row(vec![
            name.clone(),
            opt(sweep_value(v, &["link_utilisation_pct"]), |x| {
                format!("{x:.1} %")
            }),
            opt(sweep_value(v, &["queue_delay_p50_ms"]), ms),
            opt(sweep_value(v, &["queue_delay_p95_ms"]), ms),
            opt(downlink_loss_pct(v), |x| format!("{x:.1} %")),
            reaction,
            opt(sweep_value(v, &["recovery_time_max_s"]), |x| {
                format!("{x:.2} s")
            }),
            opt(sweep_value(v, &["freeze_total_ms", "freeze_ms"]), ms),
            opt(sweep_value(v, &["g2g_p50_ms"]), ms),
            opt(sweep_value(v, &["g2g_p95_ms"]), ms),
            opt(sweep_value(v, &["psnr_mean_db"]), |x| format!("{x:.1} dB")),
        ]);
    }
    right_align(&mut t, 1);
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bench_table_reads_loss_from_the_downlink_and_dashes_what_is_missing() {
        let rows = vec![(
            "bandwidth-drop / rtclab".to_owned(),
            json!({"link_utilisation_pct": 93.2, "queue_delay_p50_ms": 4.0,
                   "queue_delay_p95_ms": 61.0, "reaction_time_max_s": 0.42,
                   "impairment": [{"direction": "uplink", "packets_in": 10, "dropped_total": 5},
                                  {"direction": "downlink", "packets_in": 1000, "dropped_total": 20}]}),
        )];
        let t = bench_table(&rows);
        assert!(
            t.contains("93.2 %") && t.contains("61 ms") && t.contains("0.42 s"),
            "{t}"
        );
        assert!(t.contains("2.0 %"), "downlink loss 20/1000: {t}");
        assert!(
            !t.contains("50.0 %"),
            "the uplink is not the media loss: {t}"
        );
        assert!(t.contains(NONE), "g2g and PSNR missing: {t}");
    }

    #[test]
    fn sweep_table_has_one_row_per_variant_and_dashes_for_missing() {
        let rows = vec![
            (
                "loss-2%".to_owned(),
                json!({"link_utilisation_pct": 81.3, "queue_delay_p95_ms": 42.0,
                       "frames_decoded_pct": 97.5, "freeze_total_ms": 640.0, "nacks": 12,
                       "retransmissions_per_lost": 0.93, "reaction_time_max_s": 0.8}),
            ),
            (
                "clean".to_owned(),
                json!({"frames_sent": 300, "frames_decoded": 299, "freeze_ms": 0.0, "nacks": 0}),
            ),
        ];
        let out = sweep_table(&rows);
        let loss = out
            .lines()
            .find(|l| l.contains("loss-2%"))
            .expect("loss row");
        for want in [
            "81.3 %", "42.0 ms", "97.5 %", "640 ms", "12", "0.93", "0.80 s",
        ] {
            assert!(loss.contains(want), "{want} missing from {loss}");
        }
        let clean = out
            .lines()
            .find(|l| l.contains("clean"))
            .expect("clean row");
        assert!(clean.contains("99.7 %"), "{clean}");
        assert!(clean.contains(NONE), "{clean}");
        assert!(out.contains("reaction"));
    }

    /// A log cut after a few lines: the tables list the skipped line and the missing end,
    /// before any other note.
    #[test]
    fn print_tables_names_the_damage_of_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"t":0,"peer":"lab","kind":"session.start","schema":"rtclab.events/1","#,
                r#""session_id":"s","started_at":"2026-01-01T00:00:00Z"}"#,
                "\n",
                r#"{"t":0.5,"peer":"receiver","kind":"pc.state","state":"connected"}"#,
                "\n{garbage\n",
                r#"{"t":1,"peer":"receiver","kind":"pc.st"#,
            ),
        )
        .expect("write log");
        let (records, damage) = rtclab_events::read_log_lenient(&path).expect("readable");
        let mut rep = RunReport::from_records(&records);
        rep.report_notes.push("an earlier note".into());
        rep.note_damage(&damage);
        let mut out = Vec::new();
        print_tables(&rep, &Value::Null, &mut out).expect("writes to a Vec");
        let s = String::from_utf8(out).expect("utf-8");
        let notes = &s[s.find("\nNotes\n").expect("a Notes section")..];
        assert!(
            notes.contains("2 lines of the event log could not be read")
                && notes.contains("line 3 (not JSON), line 4 (cut off: the last line has no end)"),
            "{notes}"
        );
        assert!(notes.contains("no session.end"), "{notes}");
        assert!(
            notes.find("could not be read") < notes.find("an earlier note"),
            "damage first: {notes}"
        );
    }

    #[test]
    fn print_tables_on_an_empty_log_says_what_is_missing() {
        let rep = RunReport::from_records(&[]);
        let mut out = Vec::new();
        print_tables(&rep, &Value::Null, &mut out).expect("writes to a Vec");
        let s = String::from_utf8(out).expect("utf-8");
        assert!(s.contains("ICE candidates"));
        assert!(s.contains("none (clean link"));
        assert!(s.contains("link utilisation"));
    }
}

/// The run summary as `rtclab run` and `rtclab peer` print it: what happened, then one line
/// per aspect.
pub fn print_summary(s: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    let kbps = |b: f64| format!("{:.0} kbps", b / 1000.0);
    if !s.what_happened.is_empty() {
        writeln!(out, "what happened")?;
        write_account(&s.what_happened, out)?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "scenario        {}",
        s.scenario.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "codec           {}", s.codec)?;
    writeln!(out, "duration        {:.1} s", s.duration_s)?;
    writeln!(
        out,
        "frames          sent {}  decoded {} ({:.1} %)  decode errors {}  keyframes {}",
        s.frames_sent,
        s.frames_decoded,
        s.decoded_ratio() * 100.0,
        s.decode_errors,
        s.keyframes
    )?;
    writeln!(
        out,
        "packets         sent {}  received {}  lost {}  retransmitted {}",
        s.packets_sent, s.packets_received, s.packets_lost, s.retransmissions
    )?;
    if s.fec_packets_sent > 0 {
        writeln!(
            out,
            "FEC             repair packets sent {} ({:.1} % of the bytes)  media packets recovered {}",
            s.fec_packets_sent,
            s.fec_overhead * 100.0,
            s.fec_recovered
        )?;
    }
    writeln!(
        out,
        "feedback        NACK {} ({} seqs)  PLI {}  FIR {}",
        s.nacks, s.nacked_packets, s.plis, s.firs
    )?;
    writeln!(
        out,
        "bitrate         target {}  encoder {}  sent {}  received {}",
        kbps(s.mean_target_bps),
        kbps(s.mean_encoder_bps),
        kbps(s.mean_send_bps),
        kbps(s.mean_recv_bps)
    )?;
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0} ms"));
    writeln!(
        out,
        "quality         glass-to-glass p50 {}  p95 {}  PSNR {}  SSIM {}  freezes {} ({:.0} ms)",
        ms(s.g2g_p50_ms),
        ms(s.g2g_p95_ms),
        s.psnr_mean_db
            .map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1} dB")),
        s.ssim_mean
            .map_or_else(|| "n/a".to_owned(), |x| format!("{x:.3}")),
        s.freezes,
        s.freeze_ms
    )?;
    match &s.selected_pair {
        Some(p) => writeln!(
            out,
            "ICE path        {} {} {}  <->  {} {} {}",
            p.local_type,
            p.local_protocol,
            p.local_address,
            p.remote_type,
            p.remote_protocol,
            p.remote_address
        )?,
        None => writeln!(out, "ICE path        none selected")?,
    }
    if !s.rtcp.is_empty() {
        let rtcp: Vec<String> = s.rtcp.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "RTCP            {}", rtcp.join("  "))?;
    }
    Ok(())
}
