//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched) per run.

use crate::ReportError;
use crate::metrics::RunReport;
use crate::plots::render_plots;
use crate::tables::{
    CANDIDATE_HEADERS, IMPAIR_HEADERS, NONE, PAIR_HEADERS, PATH_HEADERS, candidate_rows, codec,
    description, figure_rows, fmt_bps, impair_rows, pair_rows, path_notes, path_rows, rtcp_pivot,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const CSS: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1060px; padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.desc { color: #333; max-width: 60em; }
.meta { color: #666; font-size: .9em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #d8d8d8; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.how { color: #666; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { color: #555; font-size: .9em; }
ul.notes li { color: #555; }
ul.account { max-width: 60em; padding-left: 1.2em; }
ul.account li { margin: .35em 0; }
table.sides td small { color: #666; }
";

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// An HTML table; cells that look numeric are right-aligned.
fn html_table<S: AsRef<str>>(
    headers: &[&str],
    rows: &[Vec<S>],
    class_of: &dyn Fn(usize) -> &'static str,
) -> String {
    let mut h = String::from("<table>\n<tr>");
    for c in headers {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for row in rows {
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let class = class_of(i);
            if class.is_empty() {
                let _ = write!(h, "<td>{}</td>", esc(c.as_ref()));
            } else {
                let _ = write!(h, "<td class=\"{class}\">{}</td>", esc(c.as_ref()));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

fn plain(_: usize) -> &'static str {
    ""
}

/// Why each plot is there, under it.
fn caption(name: &str) -> &'static str {
    match name {
        "bitrate" => {
            "The target should settle under the capacity soon after each drop; sent ≈ target, \
             received ≈ sent unless the link drops or queues."
        }
        "delay" => {
            "Queuing delay on the impaired downlink (per-second p50/p95) and the RTT the controller saw."
        }
        "loss" => {
            "Per second: packets the receiver never got, packets the impairment dropped, NACK and \
             PLI messages the receiver sent, retransmissions the sender sent."
        }
        _ => "Frames per second encoded and decoded; shaded spans are freezes (video.freeze).",
    }
}

/// Renders the page body; separated from the file writing so it is easy to test.
fn render(report: &RunReport, summary: &Value, plots: &[crate::plots::Plot]) -> String {
    let name = report
        .scenario
        .as_deref()
        .unwrap_or("session without scenario");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>rtclab run: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(name)
    );
    let _ = writeln!(h, "<h1>rtclab run: {}</h1>", esc(name));
    if let Some(d) = description(report, summary) {
        let _ = writeln!(h, "<p class=\"desc\">{}</p>", esc(d));
    }
    let mut meta = Vec::new();
    if let Some(c) = codec(report, summary) {
        meta.push(format!("codec {c}"));
    }
    let cfg = &report.config;
    if let (Some(w), Some(ht)) = (cfg.get("width"), cfg.get("height")) {
        meta.push(format!("{w}×{ht}"));
    }
    if let Some(f) = cfg.get("fps") {
        meta.push(format!("{f} fps"));
    }
    if let Some(s) = cfg.get("source").and_then(Value::as_str) {
        meta.push(format!("source {s}"));
    }
    if let Some(e) = cfg.get("estimator").and_then(Value::as_str) {
        meta.push(format!("estimator {e}"));
    }
    meta.push(format!("media {:.1} s", report.media_duration_s));
    if let Some(s) = &report.session_id {
        meta.push(format!("session {s}"));
    }
    if let Some(s) = &report.started_at {
        meta.push(format!("started {s}"));
    }
    let _ = writeln!(h, "<p class=\"meta\">{}</p>", esc(&meta.join(" · ")));

    // The account opens the page: a reader learns what happened before reading the figures.
    h.push_str("<h2>What happened</h2>\n");
    if report.what_happened.is_empty() {
        h.push_str("<p>The log holds too little to tell.</p>\n");
    } else {
        h.push_str("<ul class=\"account\">\n");
        for s in &report.what_happened {
            let _ = writeln!(h, "<li>{}</li>", esc(&s.text));
        }
        h.push_str("</ul>\n");
    }

    h.push_str(&qoe_qos_section(report, summary));
    h.push_str(&session_flow_section(report));

    h.push_str("<h2>Figures</h2>\n");
    let rows: Vec<Vec<String>> = figure_rows(report, summary)
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    h.push_str(&html_table(
        &["figure", "value", "how it is measured"],
        &rows,
        &|i| {
            if i == 2 { "how" } else { "" }
        },
    ));

    if !report.capacity_drops.is_empty() || !report.capacity_rises.is_empty() {
        h.push_str("<h2>Capacity changes</h2>\n");
        let mut rows: Vec<Vec<String>> = Vec::new();
        for d in &report.capacity_drops {
            rows.push(vec![
                format!("{:.1} s", d.t_s),
                "drop".into(),
                d.from_bps.map_or_else(|| "unlimited".into(), fmt_bps),
                crate::tables::fmt_capacity(d.to_bps),
                d.reaction_s.map_or_else(
                    || "target never got under it".into(),
                    |v| format!("target under it after {v:.2} s"),
                ),
            ]);
        }
        for r in &report.capacity_rises {
            rows.push(vec![
                format!("{:.1} s", r.t_s),
                "rise".into(),
                fmt_bps(r.from_bps),
                r.to_bps.map_or_else(|| "unlimited".into(), fmt_bps),
                match (r.goal_bps, r.recovery_s) {
                    (Some(g), Some(v)) => format!("target ≥ {} after {v:.2} s", fmt_bps(g)),
                    (Some(g), None) => format!("target never ≥ {}", fmt_bps(g)),
                    _ => NONE.into(),
                },
            ]);
        }
        rows.sort_by(|a, b| a[0].len().cmp(&b[0].len()).then(a[0].cmp(&b[0])));
        h.push_str(&html_table(
            &["at", "change", "from", "to", "controller"],
            &rows,
            &plain,
        ));
    }

    h.push_str("<h2>Plots</h2>\n");
    for p in plots {
        let _ = write!(
            h,
            "<figure id=\"plot-{name}\">\n{svg}\n<figcaption>{cap} (also <code>plots/{name}.svg</code>)</figcaption>\n</figure>\n",
            name = p.name,
            svg = strip_xml_prolog(&p.svg),
            cap = esc(caption(p.name)),
        );
    }

    h.push_str("<h2>ICE</h2>\n<h3>Candidates</h3>\n");
    let rows: Vec<Vec<String>> = candidate_rows(report)
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    if rows.is_empty() {
        h.push_str("<p>None logged.</p>\n");
    } else {
        h.push_str(&html_table(&CANDIDATE_HEADERS, &rows, &plain));
    }
    h.push_str("<h3>Selected pair</h3>\n");
    let rows: Vec<Vec<String>> = pair_rows(report).into_iter().map(|r| r.to_vec()).collect();
    if rows.is_empty() {
        h.push_str("<p>None logged.</p>\n");
    } else {
        h.push_str(&html_table(&PAIR_HEADERS, &rows, &plain));
    }

    h.push_str("<h3>Path</h3>\n");
    let rows: Vec<Vec<String>> = path_rows(report).into_iter().map(|r| r.to_vec()).collect();
    if rows.is_empty() {
        h.push_str("<p>None logged.</p>\n");
    } else {
        h.push_str(&html_table(&PATH_HEADERS, &rows, &plain));
        h.push_str("<ul class=\"notes\">\n");
        for line in path_notes(report) {
            h.push_str(&format!("<li>{}</li>\n", esc(&line)));
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2>RTCP packets per type and direction</h2>\n");
    let (cols, rows) = rtcp_pivot(report);
    if rows.is_empty() {
        h.push_str("<p>None logged.</p>\n");
    } else {
        let mut headers = vec!["type"];
        headers.extend(cols.iter().map(String::as_str));
        h.push_str(&html_table(&headers, &rows, &|i| {
            if i > 0 { "n" } else { "" }
        }));
    }

    h.push_str("<h2>Impairment</h2>\n");
    let rows: Vec<Vec<String>> = impair_rows(report)
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    if rows.is_empty() {
        h.push_str("<p>None: a clean link (no <code>impair.stats</code> in the log).</p>\n");
    } else {
        h.push_str(&html_table(&IMPAIR_HEADERS, &rows, &|i| {
            if i > 0 { "n" } else { "" }
        }));
    }

    if !report.relay_streams.is_empty() {
        h.push_str("<h2>Streams seen at the relay</h2>\n");
        let _ = writeln!(h, "<p>{}</p>", esc(crate::relay::EXPLAINED));
        h.push_str(&html_table(
            &crate::relay::HEADERS,
            &crate::relay::rows(&report.relay_streams),
            &|i| if i >= 3 { "n" } else { "" },
        ));
    }

    if let Some(m) = cfg.as_object().filter(|m| !m.is_empty()) {
        h.push_str("<h2>Configuration</h2>\n");
        let rows: Vec<Vec<String>> = m
            .iter()
            .filter(|(k, _)| k.as_str() != "description")
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                vec![k.clone(), v]
            })
            .collect();
        h.push_str(&html_table(&["setting", "value"], &rows, &plain));
    }
    if !report.report_notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul class=\"notes\">\n");
        for n in &report.report_notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// "The network and the viewer": QoS and QoE side by side, each figure explained in a line.
fn qoe_qos_section(report: &RunReport, summary: &Value) -> String {
    let sides = crate::qoe_qos::side_by_side(report, summary);
    let mut h = String::from(
        "<h2>The network and the viewer</h2>\n<p>Left, what the network did (QoS); right, \
         what the viewer got (QoE). Read across: loss and round trips become freezes and \
         latency, capacity becomes resolution and quality.</p>\n<table class=\"sides\"><tr>\
         <th colspan=\"2\">network (QoS)</th><th colspan=\"2\">viewer (QoE)</th></tr>\n",
    );
    let rows = sides.network.len().max(sides.viewer.len());
    let cells = |f: Option<&crate::qoe_qos::Figure>| match f {
        Some(f) => format!(
            "<td><b>{}</b><br><small>{}</small></td><td>{}</td>",
            esc(f.name),
            esc(f.meaning),
            esc(&f.value)
        ),
        None => "<td></td><td></td>".to_owned(),
    };
    for i in 0..rows {
        let _ = writeln!(
            h,
            "<tr>{}{}</tr>",
            cells(sides.network.get(i)),
            cells(sides.viewer.get(i))
        );
    }
    h.push_str("</table>\n");
    h
}

/// "Session flow": the startup delay and its phases, then the sequence diagram inline.
fn session_flow_section(report: &RunReport) -> String {
    let mut h = String::from("<h2>Session flow</h2>\n");
    match &report.startup_delay {
        Some(s) => {
            let _ = writeln!(
                h,
                "<p><strong>{}</strong>, from the first join to the first decoded frame.</p>",
                esc(&s.summary_line())
            );
            let rows: Vec<Vec<String>> = s
                .explained_phases()
                .iter()
                .map(|(name, ms, what)| {
                    vec![
                        (*name).to_owned(),
                        format!("{ms:.0} ms"),
                        (*what).to_owned(),
                    ]
                })
                .collect();
            let class = |i: usize| if i == 1 { "n" } else { "" };
            h.push_str(&html_table(
                &["phase", "time", "what happens"],
                &rows,
                &class,
            ));
        }
        None => h.push_str(
            "<p>No startup delay: the log lacks a join, the answer, ICE or DTLS connected, or a \
             decoded frame.</p>\n",
        ),
    }
    if report.session_flow.steps.is_empty() {
        h.push_str("<p>The log holds no signaling, ICE or media lines to draw.</p>\n");
    } else {
        let svg = crate::sequence::sequence_svg(&report.session_flow);
        let _ = write!(
            h,
            "<figure id=\"plot-sequence\">\n{}\n<figcaption>Who told whom what, and when. \
             Arrows through the signaling server carry SDP and candidates; ICE, DTLS and media \
             go between the peers (also <code>plots/sequence.svg</code>).</figcaption>\n</figure>\n",
            strip_xml_prolog(&svg)
        );
    }
    h
}

/// An XML declaration is not allowed inside HTML; the SVG element itself is.
fn strip_xml_prolog(svg: &str) -> &str {
    let s = svg.trim_start();
    if s.starts_with("<?xml") {
        s.find("?>").map_or(s, |i| s[i + 2..].trim_start())
    } else {
        s
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `out_dir/report.html`, `out_dir/plots/<name>.svg` and the session's flow as
/// `out_dir/plots/sequence.svg`; returns the HTML's path.
pub fn write_html(
    report: &RunReport,
    summary_json: &Value,
    out_dir: &Path,
) -> Result<PathBuf, ReportError> {
    let plot_dir = out_dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|source| ReportError::Io {
        path: plot_dir.clone(),
        source,
    })?;
    let plots = render_plots(report)?;
    for p in &plots {
        write_file(&plot_dir.join(format!("{}.svg", p.name)), &p.svg)?;
    }
    if !report.session_flow.steps.is_empty() {
        let svg = crate::sequence::sequence_svg(&report.session_flow);
        write_file(&plot_dir.join("sequence.svg"), &svg)?;
    }
    let path = out_dir.join("report.html");
    write_file(&path, &render(report, summary_json, &plots))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PLOT_NAMES;
    use rtclab_events::{Candidate, Direction, Event, MediaStats, PeerRole, Record, Rtcp, Side};

    fn records() -> Vec<Record> {
        let mut v = vec![Record {
            t: 0.0,
            peer: PeerRole::Lab,
            event: Event::SessionStart {
                schema: rtclab_events::SCHEMA.into(),
                session_id: "abc".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                scenario: Some("drop<3M>".into()),
                config: serde_json::json!({"codec": "vp8", "description": "Capacity drops & recovers."}),
            },
        }];
        let host = Candidate {
            typ: "host".into(),
            protocol: "udp".into(),
            address: "127.0.0.1".into(),
            port: 5000,
            ..Default::default()
        };
        v.push(Record {
            t: 0.1,
            peer: PeerRole::Sender,
            event: Event::IceCandidate {
                side: Side::Local,
                candidate: host.clone(),
            },
        });
        v.push(Record {
            t: 0.5,
            peer: PeerRole::Sender,
            event: Event::IceSelectedPair {
                local: host.clone(),
                remote: host,
                observed: None,
            },
        });
        for i in 1..8 {
            let t = f64::from(i);
            for (peer, dir) in [
                (PeerRole::Sender, rtclab_events::MediaDirection::Send),
                (PeerRole::Receiver, rtclab_events::MediaDirection::Recv),
            ] {
                v.push(Record {
                    t,
                    peer,
                    event: Event::MediaStats(MediaStats {
                        direction: dir,
                        frames: 30 * i as u64,
                        bitrate_bps: 1.2e6,
                        fps: 30.0,
                        ..Default::default()
                    }),
                });
            }
            v.push(Record {
                t: t + 0.5,
                peer: PeerRole::Receiver,
                event: Event::Rtcp {
                    direction: Direction::Out,
                    packet: Rtcp::ReceiverReport {
                        ssrc: 1,
                        reports: vec![],
                    },
                },
            });
        }
        v.push(Record {
            t: 4.0,
            peer: PeerRole::Receiver,
            event: Event::VideoFreeze { duration_ms: 300.0 },
        });
        v
    }

    /// 40 s: 3 Mbps, 500 kbps from t=20, 3 Mbps again from t=30; congestion, loss and
    /// freezes right after the drop.
    fn impaired_run() -> (Vec<Record>, crate::impair::ImpairData) {
        use crate::impair::test_records::{StatsLog, change};
        let mut v = records()[..3].to_vec();
        let target_at = |t: f64| {
            if t < 20.8 {
                (1e6 + t * 1e5).min(2.6e6)
            } else if t < 30.0 {
                4.5e5
            } else {
                (4.5e5 + (t - 30.0) * 4e5).min(2.8e6)
            }
        };
        let cap_at = |t: f64| if (20.0..30.0).contains(&t) { 5e5 } else { 3e6 };
        let mut t = 0.5;
        while t < 40.0 {
            let congested = (20.0..23.0).contains(&t);
            v.push(Record {
                t,
                peer: PeerRole::Sender,
                event: Event::BweEstimate {
                    estimator: "stock".into(),
                    target_bps: target_at(t),
                    delay_based_bps: None,
                    loss_based_bps: None,
                    loss_ratio: None,
                    rtt_ms: Some(if congested { 420.0 } else { 42.0 }),
                    detail: Default::default(),
                },
            });
            t = ((t + 0.1) * 10.0_f64).round() / 10.0;
        }
        let mut log = StatsLog::new("downlink");
        let (mut rtx, mut lost, mut frames_s, mut frames_r) = (0, 0, 0, 0);
        for i in 1..40 {
            let t = f64::from(i) + 0.02;
            let send = target_at(t) * 1.03;
            let recv = send.min(cap_at(t));
            let congested = (20..23).contains(&i);
            let fps_r = if congested { 9.0 } else { 30.0 };
            frames_s += 30;
            frames_r += fps_r as u64;
            if congested {
                rtx += 25;
                lost += 4;
                v.push(Record {
                    t: t - 0.5,
                    peer: PeerRole::Receiver,
                    event: Event::Rtcp {
                        direction: Direction::Out,
                        packet: Rtcp::Nack {
                            media_ssrc: 1,
                            seqs: (0..30).collect(),
                        },
                    },
                });
                v.push(Record {
                    t: t - 0.4,
                    peer: PeerRole::Receiver,
                    event: Event::Rtcp {
                        direction: Direction::Out,
                        packet: Rtcp::Pli { media_ssrc: 1 },
                    },
                });
            }
            for (peer, dir, bps, fps, frames) in [
                (
                    PeerRole::Sender,
                    rtclab_events::MediaDirection::Send,
                    send,
                    30.0,
                    frames_s,
                ),
                (
                    PeerRole::Receiver,
                    rtclab_events::MediaDirection::Recv,
                    recv,
                    fps_r,
                    frames_r,
                ),
            ] {
                v.push(Record {
                    t,
                    peer,
                    event: Event::MediaStats(MediaStats {
                        direction: dir,
                        frames,
                        lost,
                        retransmitted: rtx,
                        bitrate_bps: bps,
                        fps,
                        ..Default::default()
                    }),
                });
            }
            let (p50, p95, max) = if congested {
                (310.0, 590.0, 640.0)
            } else {
                (3.0, 9.0, 14.0)
            };
            v.push(log.second(
                f64::from(i),
                Some(cap_at(f64::from(i) - 0.5)),
                (recv / 9600.0) as u64,
                (recv / 8.0) as u64,
                0,
                if congested { 30 } else { 0 },
                Some((p50, p95, max)),
            ));
        }
        for (t, d) in [(21.4, 520.0), (22.3, 310.0)] {
            v.push(Record {
                t,
                peer: PeerRole::Receiver,
                event: Event::VideoFreeze { duration_ms: d },
            });
        }
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
        v.push(change(
            "downlink",
            20.0,
            None,
            serde_json::json!({"rate_kbps": 500.0}),
        ));
        v.push(change(
            "downlink",
            30.0,
            None,
            serde_json::json!({"rate_kbps": 3000.0}),
        ));
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
        let impair = crate::impair::extract(&v);
        (v, impair)
    }

    #[test]
    fn impaired_run_plots_show_capacity_drops_and_freezes() {
        let (records, impair) = impaired_run();
        let rep = RunReport::compute(&records, &impair);
        let tmp = tempfile::tempdir().expect("tempdir");
        // Set RTCLAB_REPORT_KEEP=DIR to look at the rendered page and plots of this run.
        let dir = std::env::var_os("RTCLAB_REPORT_KEEP")
            .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
        let path = write_html(&rep, &Value::Null, &dir).expect("written");
        let html = std::fs::read_to_string(path).expect("html readable");
        assert!(html.contains("Capacity changes"));
        assert!(
            html.contains("target under it after 0.80 s"),
            "reaction time in the page"
        );
        let bitrate = std::fs::read_to_string(dir.join("plots/bitrate.svg")).expect("svg");
        assert!(bitrate.contains("capacity (downlink)"));
        let fps = std::fs::read_to_string(dir.join("plots/fps.svg")).expect("svg");
        assert!(fps.contains("freeze (2)"));
        let loss = std::fs::read_to_string(dir.join("plots/loss.svg")).expect("svg");
        assert!(loss.contains("dropped by impairment (downlink)"));
    }

    #[test]
    fn the_page_opens_with_what_happened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rep = RunReport::from_records(&records());
        let path = write_html(&rep, &Value::Null, dir.path()).expect("written");
        let html = std::fs::read_to_string(&path).expect("html readable");
        let account = html
            .find("<h2>What happened</h2>")
            .expect("the account's heading");
        assert!(
            html.find("<h2>").is_some_and(|first| first == account),
            "the account comes first"
        );
        assert!(
            html.contains("<li>At 3.7 s the picture froze for 300 ms.</li>"),
            "{html}"
        );
    }

    #[test]
    fn the_page_names_the_damage_of_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rep = RunReport::from_records(&records());
        let damage = rtclab_events::LogDamage {
            bad_lines: vec![rtclab_events::BadLine {
                line: 151,
                reason: "not a valid \"<x>\" event".into(),
            }],
            bad_line_count: 1,
            missing_start: false,
            missing_end: true,
        };
        rep.note_damage(&damage);
        let path = write_html(&rep, &serde_json::Value::Null, dir.path()).expect("written");
        let html = std::fs::read_to_string(&path).expect("html readable");
        let notes = &html[html.find("<h2>Notes</h2>").expect("a Notes section")..];
        assert!(
            notes.contains(
                "<li>1 line of the event log could not be read and is left out of this report: \
                 line 151 (not a valid &quot;&lt;x&gt;&quot; event)</li>"
            ),
            "{notes}"
        );
        assert!(notes.contains("no session.end"), "{notes}");
    }

    #[test]
    fn writes_a_self_contained_page_and_the_svgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rep = RunReport::from_records(&records());
        let path =
            write_html(&rep, &serde_json::json!({"codec": "vp8"}), dir.path()).expect("written");
        let html = std::fs::read_to_string(&path).expect("html readable");
        assert!(html.contains("rtclab run: drop&lt;3M&gt;"));
        assert!(html.contains("Capacity drops &amp; recovers."));
        assert_eq!(
            html.matches("<svg").count(),
            PLOT_NAMES.len() + 1,
            "plots and the session's flow inline"
        );
        assert!(html.contains("<h2>Session flow</h2>"));
        assert!(html.contains("<h2>The network and the viewer</h2>"));
        assert!(dir.path().join("plots/sequence.svg").exists());
        assert!(!html.contains("<?xml"));
        // Self-contained: the only URLs are the SVG namespace declarations.
        let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !without_ns.contains("http"),
            "external reference in report.html"
        );
        assert!(!html.contains("<script src") && !html.contains("<link"));
        for (name, labels) in [
            (
                "bitrate",
                &[
                    "time since session start (s)",
                    "bitrate (Mbps)",
                    "capacity (unlimited)",
                    "received (receiver RTP)",
                ][..],
            ),
            (
                "delay",
                &[
                    "time since session start (s)",
                    "delay (ms)",
                    "queuing delay p95 (no impairment)",
                ][..],
            ),
            (
                "loss",
                &[
                    "time since session start (s)",
                    "packets or messages per second",
                    "NACK packets sent",
                ][..],
            ),
            (
                "fps",
                &[
                    "time since session start (s)",
                    "frames per second",
                    "freeze (1)",
                    "decoded (receiver)",
                ][..],
            ),
        ] {
            let svg_path = dir.path().join("plots").join(format!("{name}.svg"));
            let svg = std::fs::read_to_string(&svg_path).expect("svg written");
            for l in labels {
                assert!(svg.contains(l), "{name}.svg lacks {l:?}");
            }
        }
        for table in [
            "ICE",
            "Selected pair",
            "RTCP packets per type and direction",
            "Figures",
        ] {
            assert!(html.contains(table), "missing section {table}");
        }
    }
}
