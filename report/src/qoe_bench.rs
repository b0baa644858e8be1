//! `rtclab bench qoe`'s table and heat map: the Rust receiver against headless Chromium on the
//! same seeded link, cell by cell over one-way delay × random loss (× a rate cap).

use crate::tables::{num, opt, right_align, table};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;

/// One cell of the grid: the link, and each receiver's `summary.json` (absent if not run).
#[derive(Debug, Clone, Serialize)]
pub struct QoeCell {
    /// One-way delay each way, ms.
    pub delay_ms: f64,
    /// Random loss each way, %.
    pub loss_pct: f64,
    /// Downlink rate cap, kbps (`None`: uncapped).
    pub cap_kbps: Option<f64>,
    /// The Rust receiver's run.
    pub rust: Option<Value>,
    /// Headless Chromium's run (same Rust sender, same link, same seed).
    pub chromium: Option<Value>,
}

impl QoeCell {
    /// Frames decoded / frames sent, % (of one receiver's run).
    pub fn decoded_pct(run: &Value) -> Option<f64> {
        let sent = run.get("frames_sent")?.as_f64()?;
        let decoded = run.get("frames_decoded")?.as_f64()?;
        (sent > 0.0).then(|| decoded * 100.0 / sent)
    }

    /// Total frozen time, ms.
    pub fn frozen_ms(run: &Value) -> Option<f64> {
        // `freeze_ms` is the receiving peer's own count (media.stats), for both receivers;
        // `freeze_total_ms` comes from `video.freeze` lines, which only the Rust receiver writes.
        ["freeze_ms", "freeze_total_ms"]
            .iter()
            .find_map(|k| run.get(*k).and_then(Value::as_f64))
    }

    /// The cell's name: `d100 l5` (and `cap2500`).
    pub fn label(&self) -> String {
        let mut s = format!("{:.0} ms / {} %", self.delay_ms, self.loss_pct);
        if let Some(c) = self.cap_kbps {
            let _ = write!(s, " / {c:.0} kbps");
        }
        s
    }
}

/// The comparison table: per cell and receiver, frames decoded, frozen time, PLIs, keyframes,
/// glass-to-glass p50/p95; then Rust/Chromium ratios of decoded frames and frozen time.
pub fn qoe_table(cells: &[QoeCell]) -> String {
    let mut t = table(&[
        "one-way delay / loss",
        "receiver",
        "decoded",
        "frozen",
        "PLIs",
        "keyframes",
        "g2g p50",
        "g2g p95",
        "Rust/Chromium decoded",
        "Rust−Chromium frozen",
    ]);
    let ms = |x: f64| format!("{x:.0} ms");
    for c in cells {
        for (name, run) in [("rust", &c.rust), ("chromium", &c.chromium)] {
            let Some(v) = run else { continue };
            let (ratio, diff) = if name == "rust" {
                let both = c.rust.as_ref().zip(c.chromium.as_ref());
                (
                    opt(
                        both.and_then(|(r, b)| {
                            Some(QoeCell::decoded_pct(r)? / QoeCell::decoded_pct(b)?.max(1e-9))
                        }),
                        |x| format!("{x:.2}"),
                    ),
                    opt(
                        both.and_then(|(r, b)| {
                            Some(QoeCell::frozen_ms(r)? - QoeCell::frozen_ms(b)?)
                        }),
                        |x| format!("{x:+.0} ms"),
                    ),
                )
            } else {
                (String::new(), String::new())
            };
            // A run that failed (the call never connected, say) is shown as such, not as 0 %.
            let name = match v.get("error").and_then(Value::as_str) {
                Some(e) => format!("{name}: FAILED ({e})"),
                None => name.to_owned(),
            };
            t.add_row(vec![
                c.label(),
                name,
                opt(QoeCell::decoded_pct(v), |x| format!("{x:.1} %")),
                opt(QoeCell::frozen_ms(v), ms),
                opt(num(v, "plis"), |x| format!("{x:.0}")),
                opt(num(v, "keyframes"), |x| format!("{x:.0}")),
                opt(num(v, "g2g_p50_ms"), ms),
                opt(num(v, "g2g_p95_ms"), ms),
                ratio,
                diff,
            ]);
        }
    }
    right_align(&mut t, 2);
    t.to_string()
}

/// A heat map (SVG, no fonts needed): rows = one-way delay, columns = loss; one panel per
/// receiver, each cell coloured by frames decoded (red 50 % or less → green 100 %) and labelled
/// with it and the frozen time.
pub fn qoe_heatmap_svg(cells: &[QoeCell]) -> String {
    let mut delays: Vec<f64> = cells.iter().map(|c| c.delay_ms).collect();
    let mut losses: Vec<f64> = cells.iter().map(|c| c.loss_pct).collect();
    for v in [&mut delays, &mut losses] {
        v.sort_by(f64::total_cmp);
        v.dedup();
    }
    let (cw, ch, left, top, gap) = (90.0, 44.0, 110.0, 60.0, 40.0);
    let panel_w = left + cw * losses.len() as f64;
    let width = panel_w * 2.0 + gap;
    let height = top + ch * delays.len() as f64 + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    for (p, (title, pick)) in [("Rust receiver", 0usize), ("Chromium receiver", 1usize)]
        .iter()
        .enumerate()
    {
        let x0 = p as f64 * (panel_w + gap);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"20\" font-weight=\"bold\">{title}: frames decoded, frozen time</text>",
            x0 + 4.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"44\">loss each way →</text>",
            x0 + left
        );
        for (j, l) in losses.iter().enumerate() {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{l} %</text>",
                x0 + left + cw * (j as f64 + 0.5),
                top - 4.0
            );
        }
        for (i, d) in delays.iter().enumerate() {
            let y = top + ch * i as f64;
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\">{d:.0} ms one way</text>",
                x0 + 4.0,
                y + ch / 2.0 + 4.0
            );
            for (j, l) in losses.iter().enumerate() {
                let run = cells
                    .iter()
                    .filter(|c| c.delay_ms == *d && c.loss_pct == *l)
                    .find_map(|c| {
                        if *pick == 0 {
                            c.rust.as_ref()
                        } else {
                            c.chromium.as_ref()
                        }
                    });
                let x = x0 + left + cw * j as f64;
                let (fill, label) = match run.and_then(|v| Some((QoeCell::decoded_pct(v)?, v))) {
                    Some((pct, v)) => (
                        colour(pct),
                        format!(
                            "{pct:.0} %, {:.1} s",
                            QoeCell::frozen_ms(v).unwrap_or(0.0) / 1000.0
                        ),
                    ),
                    None => ("#dddddd".to_owned(), "–".to_owned()),
                };
                let _ = writeln!(
                    s,
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" stroke=\"white\"/>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                    x + cw / 2.0,
                    y + ch / 2.0 + 4.0
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{}\">Same Rust sender, same seeded link (rtclab's impairment), cell by cell. \
         Cells: frames decoded / sent, total frozen time.</text>",
        height - 12.0
    );
    s.push_str("</svg>\n");
    s
}

/// Red at 50 % decoded or less, yellow at 75 %, green at 100 %.
fn colour(pct: f64) -> String {
    let x = ((pct - 50.0) / 50.0).clamp(0.0, 1.0);
    let (r, g) = if x < 0.5 {
        (230.0, 90.0 + 2.0 * x * 140.0)
    } else {
        (230.0 - (x - 0.5) * 2.0 * 150.0, 230.0)
    };
    format!("#{:02x}{:02x}66", r as u8, g as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells() -> Vec<QoeCell> {
        vec![
            QoeCell {
                delay_ms: 100.0,
                loss_pct: 5.0,
                cap_kbps: None,
                rust: Some(
                    json!({"frames_sent": 300, "frames_decoded": 291, "freeze_ms": 400.0,
                    "plis": 0, "keyframes": 2, "g2g_p50_ms": 380.0, "g2g_p95_ms": 520.0}),
                ),
                chromium: Some(
                    json!({"frames_sent": 300, "frames_decoded": 270, "freeze_ms": 900.0,
                    "plis": 1, "keyframes": 3}),
                ),
            },
            QoeCell {
                delay_ms: 0.0,
                loss_pct: 0.0,
                cap_kbps: None,
                rust: Some(json!({"frames_sent": 300, "frames_decoded": 299, "freeze_ms": 0.0})),
                chromium: None,
            },
        ]
    }

    #[test]
    fn the_table_gives_both_receivers_and_the_ratio() {
        let t = qoe_table(&cells());
        assert!(t.contains("97.0 %"), "{t}");
        assert!(t.contains("90.0 %"), "{t}");
        // 97 / 90 and 400 − 900 ms.
        assert!(t.contains("1.08"), "{t}");
        assert!(t.contains("-500 ms"), "{t}");
    }

    #[test]
    fn the_heat_map_has_a_cell_per_receiver_and_link() {
        let svg = qoe_heatmap_svg(&cells());
        assert_eq!(
            svg.matches("<rect").count(),
            2 * 2 * 2,
            "2 delays × 2 losses × 2 panels"
        );
        assert!(svg.contains("97 %, 0.4 s"), "{svg}");
        assert!(svg.contains("90 %, 0.9 s"), "{svg}");
        assert!(svg.contains('–'), "a cell not run is marked");
    }
}
