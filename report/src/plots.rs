//! The four plots of a run, drawn with plotters' SVG backend.
//!
//! The SVG backend writes labels as `<text>` elements that the viewer renders with its own
//! fonts, so no font file or system font library is needed to draw them.

use crate::ReportError;
use crate::markers::{Marker, MarkerKind};
use crate::metrics::RunReport;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// File stems of the plots, in the order [`render_plots`] returns them.
pub const PLOT_NAMES: [&str; 4] = ["bitrate", "delay", "loss", "fps"];

const SIZE: (u32, u32) = (1000, 420);
const FONT: &str = "sans-serif";
/// Points further apart than this are not joined: the series had no value in between.
const MAX_GAP_S: f64 = 2.5;

const BLACK_: RGBColor = RGBColor(20, 20, 20);
const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE_: RGBColor = RGBColor(230, 120, 0);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE_: RGBColor = RGBColor(148, 103, 189);
const BROWN_: RGBColor = RGBColor(140, 86, 75);
const GREY_: RGBColor = RGBColor(120, 120, 120);

/// One rendered plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// File stem, one of [`PLOT_NAMES`].
    pub name: &'static str,
    /// Human title (also the plot's caption).
    pub title: &'static str,
    /// The SVG document.
    pub svg: String,
}

/// A line to draw: contiguous segments sharing one legend entry.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    segments: Vec<Vec<(f64, f64)>>,
}

impl Line {
    fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.into(),
            color,
            width: 2,
            segments: split_at_gaps(points),
        }
    }

    fn is_empty(&self) -> bool {
        self.segments.iter().all(Vec::is_empty)
    }
}

fn split_at_gaps(points: Vec<(f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for p in points
        .into_iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
    {
        match out.last_mut() {
            Some(seg) if seg.last().is_some_and(|l| p.0 - l.0 <= MAX_GAP_S) => seg.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// What one chart shows.
struct ChartSpec<'a, 'm> {
    name: &'static str,
    title: &'a str,
    y_desc: &'a str,
    x_max: f64,
    lines: Vec<Line>,
    /// Shaded time intervals (freezes) and their legend label.
    bands: Option<(String, Vec<(f64, f64)>)>,
    /// Events drawn as vertical lines (see [`crate::markers`]).
    markers: &'m [Marker],
    /// Lowest top of the y axis, so flat zero series still get a readable scale.
    y_floor: f64,
    /// The y values are counts: integer tick labels.
    counts: bool,
    /// Said in the plot when every value is zero (e.g. no loss at all).
    all_zero_text: &'static str,
}

fn plot_err(name: &str, e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot {
        name: name.to_owned(),
        message: e.to_string(),
    }
}

fn draw(spec: &ChartSpec<'_, '_>) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw_on(&root, spec).map_err(|e| plot_err(spec.name, e))?;
        root.present().map_err(|e| plot_err(spec.name, e))?;
    }
    Ok(svg)
}

fn draw_on(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &ChartSpec<'_, '_>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let data_max = spec
        .lines
        .iter()
        .flat_map(|l| l.segments.iter().flatten())
        .map(|p| p.1)
        .fold(0.0_f64, f64::max);
    let entries = spec.lines.len() + usize::from(spec.bands.is_some());
    // Headroom above the data for the legend box in the upper right corner.
    let headroom = 1.12 + 0.09 * entries as f64;
    let y_max = (data_max.max(spec.y_floor) * headroom).max(1e-9);
    let x_max = spec.x_max.max(1.0);

    let mut chart = ChartBuilder::on(root)
        .caption(spec.title, (FONT, 22))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let decimals = if y_max < 10.0 && !spec.counts { 1 } else { 0 };
    // Counts get one label per integer at most, so no label repeats after rounding.
    let y_labels = if spec.counts {
        (y_max.floor() as usize + 1).clamp(2, 8)
    } else {
        8
    };
    chart
        .configure_mesh()
        .x_desc("time since session start (s)")
        .y_desc(spec.y_desc)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_labels(12)
        .y_labels(y_labels)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;

    if let Some((label, bands)) = &spec.bands {
        let fill = RED_.mix(0.22).filled();
        chart
            .draw_series(
                bands
                    .iter()
                    .map(|(a, b)| Rectangle::new([(*a, 0.0), (*b, y_max)], fill)),
            )?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 22, y + 6)], fill));
    }
    draw_markers(&mut chart, spec.markers, y_max)?;
    for line in &spec.lines {
        let style = line.color.stroke_width(line.width);
        // One legend entry per line: on its first segment, or on an empty series when it has
        // no data, so the legend still says why it is missing.
        let first: &[(f64, f64)] = line.segments.first().map_or(&[], Vec::as_slice);
        chart
            .draw_series(LineSeries::new(first.iter().copied(), style))?
            .label(line.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        for seg in line.segments.iter().skip(1) {
            chart.draw_series(LineSeries::new(seg.iter().copied(), style))?;
        }
    }
    let no_data = spec.lines.iter().all(Line::is_empty) && spec.bands.is_none();
    let all_zero = !spec.lines.iter().all(Line::is_empty) && data_max == 0.0;
    let message = if no_data {
        Some("no data in this log")
    } else if all_zero && !spec.all_zero_text.is_empty() {
        Some(spec.all_zero_text)
    } else {
        None
    };
    if let Some(message) = message {
        let style = TextStyle::from((FONT, 18).into_font()).color(&GREY_).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        chart.draw_series(std::iter::once(Text::new(
            message,
            (x_max / 2.0, y_max / 2.0),
            style,
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(10)
        .legend_area_size(30)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}

/// Colour of each marker kind.
fn marker_color(kind: MarkerKind) -> RGBAColor {
    match kind {
        MarkerKind::Impairment => BLACK_.mix(0.55),
        MarkerKind::Overuse => BROWN_.mix(0.45),
        MarkerKind::Keyframe => ORANGE_.mix(0.55),
        MarkerKind::Resolution => PURPLE_.mix(0.8),
    }
}

/// Vertical lines at the markers, one legend entry per kind present; resolution changes (few,
/// and what a viewer notices) also get their text at the top.
fn draw_markers<'c, DB: DrawingBackend>(
    chart: &mut ChartContext<'c, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    markers: &[Marker],
    y_max: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut kinds: Vec<MarkerKind> = markers.iter().map(|m| m.kind).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let color = marker_color(kind);
        let style = color.stroke_width(1);
        chart
            .draw_series(
                markers
                    .iter()
                    .filter(|m| m.kind == kind)
                    .map(|m| PathElement::new(vec![(m.t, 0.0), (m.t, y_max)], style)),
            )?
            .label(kind.label())
            .legend(move |(x, y)| {
                // Thicker than on the plot, or the legend's swatch is hard to see.
                PathElement::new(
                    vec![(x + 11, y - 7), (x + 11, y + 7)],
                    color.stroke_width(3),
                )
            });
    }
    let text = TextStyle::from((FONT, 12).into_font()).color(&PURPLE_);
    chart.draw_series(
        markers
            .iter()
            .filter(|m| m.kind == MarkerKind::Resolution)
            .map(|m| Text::new(m.text.clone(), (m.t, y_max * 0.97), text.clone())),
    )?;
    Ok(())
}

fn scale(points: &[(f64, f64)], k: f64) -> Vec<(f64, f64)> {
    points.iter().map(|(t, v)| (*t, v * k)).collect()
}

/// Per-second counts as a step line (flat over each second), over the seconds with media.
fn per_second(report: &RunReport, f: impl Fn(&crate::SecondSample) -> f64) -> Vec<(f64, f64)> {
    let first = report
        .raw
        .send
        .first()
        .or(report.raw.recv.first())
        .map_or(0.0, |p| (p.0 - 1.0).max(0.0).floor());
    report
        .timeseries
        .iter()
        .filter(|s| s.t_s >= first)
        .flat_map(|s| [(s.t_s, f(s)), (s.t_s + 1.0, f(s))])
        .collect()
}

/// Capacity as a step line: horizontal at each step's value until the next step.
fn capacity_line(report: &RunReport) -> Line {
    let steps = &report.raw.capacity_steps;
    let end = report.raw.end_t;
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map_or(end, |n| n.t);
        match s.capacity_bps {
            Some(c) => {
                current.push((s.t, c / 1e6));
                current.push((until, c / 1e6));
            }
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    let label = if segments.is_empty() {
        "capacity (unlimited)"
    } else {
        "capacity (downlink)"
    };
    Line {
        label: label.to_owned(),
        color: BLACK_,
        width: 3,
        segments,
    }
}

fn or_missing(label: &str, points: &[(f64, f64)], why: &str) -> String {
    if points.is_empty() {
        format!("{label} ({why})")
    } else {
        label.to_owned()
    }
}

/// Renders the four plots: bitrate, delay, loss/feedback, frame rate and freezes.
pub fn render_plots(report: &RunReport) -> Result<Vec<Plot>, ReportError> {
    let raw = &report.raw;
    let x_max = raw.end_t;
    let impaired = !report.impairment.is_empty();
    let mut plots = Vec::new();

    let bitrate = ChartSpec {
        name: PLOT_NAMES[0],
        title: "Bitrate: capacity, congestion-control target, sent and received",
        y_desc: "bitrate (Mbps)",
        x_max,
        lines: vec![
            capacity_line(report),
            Line::new(
                or_missing("target (bwe.estimate)", &raw.target, "not logged"),
                ORANGE_,
                scale(&raw.target, 1e-6),
            ),
            Line::new("sent (sender RTP)", BLUE_, scale(&raw.send, 1e-6)),
            Line::new("received (receiver RTP)", GREEN_, scale(&raw.recv, 1e-6)),
        ],
        bands: None,
        markers: &raw.markers,
        y_floor: 0.5,
        counts: false,
        all_zero_text: "",
    };
    let delay = ChartSpec {
        name: PLOT_NAMES[1],
        title: "Delay: downlink queuing delay and round-trip time",
        y_desc: "delay (ms)",
        x_max,
        lines: vec![
            Line::new(
                or_missing("queuing delay p50", &raw.queue_p50, "no impairment"),
                BLUE_,
                raw.queue_p50.clone(),
            ),
            Line::new(
                or_missing("queuing delay p95", &raw.queue_p95, "no impairment"),
                RED_,
                raw.queue_p95.clone(),
            ),
            Line::new(
                or_missing("RTT (bwe.estimate)", &raw.rtt, "not logged"),
                PURPLE_,
                raw.rtt.clone(),
            ),
        ],
        bands: None,
        markers: &raw.markers,
        y_floor: 10.0,
        counts: false,
        all_zero_text: "zero throughout",
    };
    let mut loss_lines = vec![Line::new(
        "lost (receiver, unrecovered)",
        RED_,
        per_second(report, |s| s.lost_packets as f64),
    )];
    if impaired {
        loss_lines.push(Line::new(
            "dropped by impairment (downlink)",
            BROWN_,
            per_second(report, |s| s.impair_dropped_packets as f64),
        ));
    }
    loss_lines.extend([
        Line::new(
            "NACK packets sent",
            BLUE_,
            per_second(report, |s| s.nacks as f64),
        ),
        Line::new("PLI sent", ORANGE_, per_second(report, |s| s.plis as f64)),
        Line::new(
            "retransmissions sent",
            GREEN_,
            per_second(report, |s| s.retransmissions as f64),
        ),
    ]);
    let loss = ChartSpec {
        name: PLOT_NAMES[2],
        title: "Loss and repair: lost packets, NACK, PLI, retransmissions",
        y_desc: "packets or messages per second",
        x_max,
        lines: loss_lines,
        bands: None,
        markers: &raw.markers,
        y_floor: 5.0,
        counts: true,
        all_zero_text: "none: no loss, NACK, PLI or retransmission",
    };
    let freezes: Vec<(f64, f64)> = report
        .freezes_list
        .iter()
        .map(|f| (f.start_s, f.end_s))
        .collect();
    let freeze_label = if freezes.is_empty() {
        "freeze (none)".to_owned()
    } else {
        format!("freeze ({})", freezes.len())
    };
    let fps = ChartSpec {
        name: PLOT_NAMES[3],
        title: "Frame rate and freezes",
        y_desc: "frames per second",
        x_max,
        lines: vec![
            Line::new("encoded (sender)", BLUE_, raw.send_fps.clone()),
            Line::new("decoded (receiver)", GREEN_, raw.recv_fps.clone()),
        ],
        bands: Some((freeze_label, freezes)),
        markers: &raw.markers,
        y_floor: 30.0,
        counts: false,
        all_zero_text: "",
    };
    for spec in [bitrate, delay, loss, fps] {
        plots.push(Plot {
            name: spec.name,
            title: spec.title,
            svg: draw(&spec)?,
        });
    }
    Ok(plots)
}

/// `rtclab bench cc`'s comparison: the capacity of the first run's downlink, and the target
/// (thin) and send rate (thick) of every run, one colour per run.
pub fn comparison_plot(title: &str, runs: &[(String, &RunReport)]) -> Result<String, ReportError> {
    const COLORS: [RGBColor; 6] = [ORANGE_, PURPLE_, BLUE_, GREEN_, RED_, BROWN_];
    let Some((_, first)) = runs.first() else {
        return Err(plot_err("comparison", "no runs to compare"));
    };
    let mut lines = vec![capacity_line(first)];
    for (i, (name, rep)) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut target = Line::new(
            format!("{name} target"),
            color,
            scale(&rep.raw.target, 1e-6),
        );
        target.width = 1;
        lines.push(target);
        let mut send = Line::new(format!("{name} sent"), color, scale(&rep.raw.send, 1e-6));
        send.width = 3;
        lines.push(send);
    }
    let x_max = runs.iter().map(|(_, r)| r.raw.end_t).fold(0.0, f64::max);
    draw(&ChartSpec {
        name: "comparison",
        title,
        y_desc: "bitrate (Mbps)",
        x_max,
        lines,
        bands: None,
        markers: &[],
        y_floor: 0.5,
        counts: false,
        all_zero_text: "",
    })
}
