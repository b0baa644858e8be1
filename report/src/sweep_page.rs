//! `sweep.html`: the variants of one `rtclab sweep` side by side — their bitrates overlaid in
//! one plot, and one table with a row per variant of what loss did to the network and to the
//! viewer (issue 14 #3). Each variant's name links to its own `report.html`.

use crate::html::esc;
use crate::tables::{downlink_loss_pct, num, opt};
use serde_json::Value;
use std::fmt::Write;

/// The columns, each with the one-line explanation shown under the table.
const COLUMNS: &[(&str, &str)] = &[
    (
        "variant",
        "the swept setting's value; the name links to the variant's own report",
    ),
    (
        "loss",
        "downlink packets the impairment dropped, % of those it was given (QoS)",
    ),
    (
        "mean target",
        "what the congestion controller gave the encoder, on average",
    ),
    ("received", "mean rate arriving at the receiver"),
    (
        "NACKs",
        "NACK packets the receiver sent (RFC 4585), each naming missing packets",
    ),
    (
        "rtx / lost",
        "retransmissions per packet the network lost: ~1 when every loss was repaired once",
    ),
    (
        "FEC rebuilt",
        "packets rebuilt from FlexFEC repair packets (0 without FEC)",
    ),
    (
        "PLIs",
        "keyframe requests: a frame was lost for good or could not be decoded",
    ),
    (
        "freezes",
        "W3C freezeCount rule: a gap between frames > max(3 × average, average + 150 ms)",
    ),
    (
        "frozen",
        "total frozen time, and its share of the run (QoE)",
    ),
    ("fps", "frames decoded per second of media"),
    (
        "g2g p50 / p95",
        "glass-to-glass latency, capture to decode (QoE)",
    ),
    (
        "PSNR / SSIM",
        "picture quality of the scored frames against the source",
    ),
    (
        "lowest",
        "smallest picture height decoded (resolution scaling)",
    ),
];

/// One table row from a variant's `summary.json` (merged with the report's figures); the name
/// links to `report` (the variant's `report.html`, relative to the page).
fn row(name: &str, report: &str, v: &Value) -> Vec<String> {
    let kbps = |x: f64| format!("{:.0} kbps", x / 1000.0);
    let media_s = num(v, "media_duration_s").filter(|d| *d > 0.0);
    let fps = media_s.and_then(|d| Some(num(v, "frames_decoded")? / d));
    let frozen_ms = num(v, "freeze_total_ms").or_else(|| num(v, "freeze_ms"));
    let frozen = match (frozen_ms, num(v, "frozen_pct")) {
        (Some(ms), Some(p)) => format!("{:.1} s ({p:.1} %)", ms / 1000.0),
        (Some(ms), None) => format!("{:.1} s", ms / 1000.0),
        _ => "–".to_owned(),
    };
    let g2g = match (num(v, "g2g_p50_ms"), num(v, "g2g_p95_ms")) {
        (Some(a), Some(b)) => format!("{a:.0} / {b:.0} ms"),
        _ => "–".to_owned(),
    };
    let quality = match (num(v, "psnr_mean_db"), num(v, "ssim_mean")) {
        (Some(p), Some(s)) => format!("{p:.1} dB / {s:.3}"),
        (Some(p), None) => format!("{p:.1} dB"),
        _ => "–".to_owned(),
    };
    vec![
        format!("<a href=\"{}\">{}</a>", esc(report), esc(name)),
        opt(downlink_loss_pct(v), |x| format!("{x:.1} %")),
        opt(num(v, "mean_target_bps"), kbps),
        opt(num(v, "mean_recv_bps"), kbps),
        opt(num(v, "nacks"), |x| format!("{x:.0}")),
        opt(num(v, "retransmissions_per_lost"), |x| format!("{x:.2}")),
        opt(num(v, "fec_recovered"), |x| format!("{x:.0}")),
        opt(num(v, "plis"), |x| format!("{x:.0}")),
        opt(num(v, "freeze_count").or_else(|| num(v, "freezes")), |x| {
            format!("{x:.0}")
        }),
        frozen,
        opt(fps, |x| format!("{x:.1}")),
        g2g,
        quality,
        opt(num(v, "lowest_height"), |x| format!("{x:.0}p")),
    ]
}

/// What `sweep.html` shows.
#[derive(Debug, Clone, Copy)]
pub struct SweepPage<'a> {
    /// The page's heading.
    pub title: &'a str,
    /// (variant name, merged `summary.json`; the median over seeds with `--repeat`), in sweep
    /// order.
    pub rows: &'a [(String, Value)],
    /// For each row, its `report.html` relative to the page (with `--repeat`, the first seed's).
    pub reports: &'a [String],
    /// The variants' bitrates overlaid, if the plot could be drawn.
    pub overlay_svg: Option<&'a str>,
    /// The spread over seeds (`merge::spread_table`), with `--repeat`.
    pub spread: Option<&'a str>,
}

/// The page: title, the overlaid plot (if it could be drawn), the table and what each column
/// means, and with several seeds per variant the spread between them.
pub fn sweep_html(page: &SweepPage<'_>) -> String {
    let SweepPage {
        title,
        rows,
        reports,
        overlay_svg,
        spread,
    } = *page;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body {{ font-family: sans-serif; margin: 2em; color: #222; }} \
         table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; \
         text-align: right; }} td:first-child, th:first-child {{ text-align: left; }} \
         svg {{ max-width: 100%; height: auto; }} dt {{ font-weight: bold; }} \
         dd {{ margin: 0 0 .4em 1em; color: #555; }}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );
    if let Some(svg) = overlay_svg {
        let _ = writeln!(
            h,
            "<h2>Bitrates, variant by variant</h2>\n<figure>{svg}<figcaption>Each variant's \
             target (thin) and sending rate (thick) against the first variant's capacity.\
             </figcaption></figure>"
        );
    }
    h.push_str("<h2>What each variant did</h2>\n<table>\n<tr>");
    for (name, _) in COLUMNS {
        let _ = write!(h, "<th>{}</th>", esc(name));
    }
    h.push_str("</tr>\n");
    for (i, (name, v)) in rows.iter().enumerate() {
        let report = reports
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("{name}/report.html"));
        h.push_str("<tr>");
        for c in row(name, &report, v) {
            // The first cell is already a link built from escaped text.
            let _ = write!(h, "<td>{c}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if let Some(spread) = spread {
        let _ = writeln!(
            h,
            "<h2>How much the seeds disagree</h2>\n<p>Each variant ran once per seed; the table \
             above shows the median of each figure. Below, the lowest and highest value over the \
             seeds: a wide range means one run of that variant says little on its own.</p>\n\
             <pre>{}</pre>",
            esc(spread)
        );
    }
    h.push_str("<h2>The columns</h2>\n<dl>\n");
    for (name, what) in COLUMNS {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(name), esc(what));
    }
    h.push_str("</dl>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_per_variant_with_the_loss_and_the_viewer_side() {
        let v = json!({
            "impairment": [{"direction": "downlink", "packets_in": 1000, "dropped_total": 200}],
            "mean_target_bps": 800_000.0, "mean_recv_bps": 650_000.0, "nacks": 120,
            "retransmissions_per_lost": 0.97, "fec_recovered": 0, "plis": 3,
            "freeze_count": 4, "freeze_total_ms": 2500.0, "frozen_pct": 12.5,
            "frames_decoded": 540, "media_duration_s": 20.0,
            "g2g_p50_ms": 180.0, "g2g_p95_ms": 420.0, "psnr_mean_db": 36.2, "ssim_mean": 0.951,
            "lowest_height": 360,
        });
        let rows = [
            ("loss-5.loss_pct-20".into(), v),
            ("loss-5.loss_pct-1".into(), json!({})),
        ];
        let page = sweep_html(&SweepPage {
            title: "loss-5: downlink.loss_pct",
            rows: &rows,
            reports: &["loss-5.loss_pct-20/report.html".into()],
            overlay_svg: Some("<svg></svg>"),
            spread: None,
        });
        for want in [
            "<a href=\"loss-5.loss_pct-20/report.html\">",
            "<td>20.0 %</td>",
            "<td>800 kbps</td>",
            "<td>0.97</td>",
            "<td>2.5 s (12.5 %)</td>",
            "<td>27.0</td>",
            "<td>180 / 420 ms</td>",
            "<td>36.2 dB / 0.951</td>",
            "<td>360p</td>",
            "<svg></svg>",
        ] {
            assert!(page.contains(want), "missing {want}");
        }
        // A variant with nothing measured shows dashes, not zeros.
        assert!(page.contains("<td>–</td>"));
        // A row without a given report path links to its name's folder.
        assert!(page.contains("<a href=\"loss-5.loss_pct-1/report.html\">"));
        assert!(!page.contains("seeds disagree"));
    }
}
