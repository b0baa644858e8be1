//! The sequence diagram as a standalone SVG, drawn by hand: participants as columns with
//! lifelines, one row per step (an arrow with its label, or a note on one lifeline), the time of
//! each step on the left. No script, no external font, no link: it reads the same inline in
//! `report.html` and alone as `plots/sequence.svg`.

use super::{Participant, SessionFlow, Step};
// XML's five special characters, escaped the same way as in `report.html`.
use crate::html::esc;
use std::fmt::Write as _;

/// Width of the time column on the left, px.
const TIME_W: f64 = 112.0;
/// Distance between two lifelines, px.
const COL_W: f64 = 230.0;
/// Height of one step's row, px.
const ROW_H: f64 = 30.0;
/// Where the participants' boxes end and the first row begins, px.
const HEAD_H: f64 = 64.0;
/// Height of one line of the legend under the rows, px.
const LEGEND_LINE_H: f64 = 16.0;
/// A character of the 11 px label font is about this wide: enough to size a note's box.
const CHAR_W: f64 = 6.2;
/// A note's box is at most this wide, so it stays near its lifeline; longer text is cut (the
/// full text is in the step's tooltip).
const NOTE_MAX_W: f64 = 300.0;

/// A white outline under an arrow's label, so a lifeline it crosses does not cross the text.
const HALO: &str = " stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\"";

const FONT: &str = "system-ui, -apple-system, 'Segoe UI', sans-serif";

/// `text` cut to what fits in `width` px, with an ellipsis.
fn fit(text: &str, width: f64) -> String {
    let max = ((width - 12.0) / CHAR_W).floor().max(4.0) as usize;
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// The step's time as the left column shows it: "≈" marks an inferred one.
fn time_text(s: &Step) -> String {
    if s.timing.is_exact() {
        format!("{:.3} s", s.t_s)
    } else {
        format!("≈ {:.3} s", s.t_s)
    }
}

/// The whole flow as one `<svg>` document (with its XML declaration).
pub fn sequence_svg(flow: &SessionFlow) -> String {
    let cols = flow.participants.len().max(1);
    let x_of = |p: Participant| {
        let i = flow.participants.iter().position(|q| *q == p).unwrap_or(0);
        TIME_W + COL_W * (i as f64 + 0.5)
    };
    let width = TIME_W + COL_W * cols as f64 + 10.0;
    let rows_end = HEAD_H + ROW_H * (flow.steps.len() as f64 + 0.5);
    let mut legend = vec![
        "s since the session started; ≈ and dashed: seen after it happened (hover: how late)"
            .to_owned(),
    ];
    let left_out = flow.left_out_text();
    if !left_out.is_empty() {
        legend.push(format!(
            "{} more steps are not drawn: {left_out}.",
            flow.left_out_count()
        ));
    }
    let height = rows_end + 12.0 + LEGEND_LINE_H * legend.len() as f64 + 8.0;

    let mut s = String::new();
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"{FONT}\" font-size=\"11\" \
         role=\"img\" aria-label=\"Sequence diagram of the session\">\n"
    );
    s.push_str("<title>The session's flow</title>\n");
    // One arrowhead for solid and dashed arrows; `auto-start-reverse` turns it round at the
    // start of a two-way arrow.
    s.push_str(
        "<defs><marker id=\"rtclab-seq-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker></defs>\n",
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>"
    );

    // Participants and their lifelines.
    for p in &flow.participants {
        let x = x_of(*p);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"44\" x2=\"{x:.1}\" y2=\"{rows_end:.1}\" stroke=\"#9a9a9a\" \
             stroke-dasharray=\"4 3\"/>"
        );
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"10\" width=\"180\" height=\"34\" rx=\"4\" fill=\"#eef3fb\" \
             stroke=\"#5a7bb5\"/><text x=\"{x:.1}\" y=\"31\" text-anchor=\"middle\" \
             font-size=\"12\" font-weight=\"bold\">{}</text>",
            x - 90.0,
            esc(flow.name(*p))
        );
    }

    for (i, step) in flow.steps.iter().enumerate() {
        let y = HEAD_H + ROW_H * (i as f64 + 0.5);
        let exact = step.timing.is_exact();
        let color = if exact { "#1a1a1a" } else { "#6b6b6b" };
        let dash = if exact {
            ""
        } else {
            " stroke-dasharray=\"5 3\""
        };
        let how = step.timing.explain();
        let tip = if how.is_empty() {
            format!("{:.3} s: {}", step.t_s, step.label)
        } else {
            format!("{:.3} s: {} ({how})", step.t_s, step.label)
        };
        let _ = writeln!(s, "<g><title>{}</title>", esc(&tip));
        let style = if exact { "" } else { " font-style=\"italic\"" };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{color}\"{style}>{}</text>",
            TIME_W - 10.0,
            y + 4.0,
            esc(&time_text(step))
        );
        if step.what == super::StepKind::End {
            // The end spans every lifeline.
            let x0 = x_of(flow.participants[0]) - 70.0;
            let x1 = x_of(flow.participants[cols - 1]) + 70.0;
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"20\" rx=\"3\" \
                 fill=\"#f0f0f0\" stroke=\"#9a9a9a\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                 text-anchor=\"middle\">{}</text>",
                y - 12.0,
                x1 - x0,
                (x0 + x1) / 2.0,
                y + 2.0,
                esc(&step.label)
            );
        } else if step.from == step.to {
            let text = fit(&step.label, NOTE_MAX_W);
            let w = (text.chars().count() as f64 * CHAR_W + 14.0).min(NOTE_MAX_W);
            // Centred on its lifeline, but moved inwards rather than over the time column or
            // past the right edge.
            let x = (x_of(step.from) - w / 2.0).max(TIME_W).min(width - 4.0 - w) + w / 2.0;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"20\" rx=\"3\" \
                 fill=\"#fff6d5\" stroke=\"#c9a227\"{dash}/><text x=\"{x:.1}\" y=\"{:.1}\" \
                 text-anchor=\"middle\" fill=\"{color}\">{}</text>",
                x - w / 2.0,
                y - 12.0,
                y + 2.0,
                esc(&text)
            );
        } else {
            let (x0, x1) = (x_of(step.from), x_of(step.to));
            let start = if step.is_exchange() {
                " marker-start=\"url(#rtclab-seq-arrow)\""
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "<line x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x1:.1}\" y2=\"{:.1}\" stroke=\"{color}\" \
                 stroke-width=\"1.3\"{dash}{start} marker-end=\"url(#rtclab-seq-arrow)\"/>",
                y + 4.0,
                y + 4.0
            );
            // A label may overhang its arrow a little.
            let text = fit(&step.label, (x1 - x0).abs().max(COL_W) + 30.0);
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\"{HALO}>{}</text>",
                (x0 + x1) / 2.0,
                y - 1.0,
                esc(&text)
            );
        }
        s.push_str("</g>\n");
    }

    for (i, line) in legend.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.1}\" fill=\"#555555\">{}</text>",
            rows_end + 12.0 + LEGEND_LINE_H * (i as f64 + 0.6),
            esc(line)
        );
    }
    s.push_str("</svg>\n");
    s
}
