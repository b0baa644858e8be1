//! What one rtclab run did, for a reader: figures, per-second time series, plots and tables,
//! all computed from the session's `events.jsonl` alone.
//!
//! [`RunReport::from_records`] is the pure computation (with [`account`], the "what happened"
//! sentences that open every report); [`write_html`] renders `report.html` (with
//! the plots inline and as `plots/*.svg`), [`print_tables`] the terminal view of `rtclab report`,
//! and [`sweep_table`] compares several runs. [`sequence`] draws the session's flow and
//! measures the startup delay. [`Summary`] is `summary.json`'s backbone, and
//! [`summary::merged`] adds the report's figures to it.

pub mod account;
pub mod failures;
mod html;
pub mod ice;
mod impair;
mod markers;
pub mod merge;
mod metrics;
mod path;
mod plots;
pub mod qoe_bench;
pub mod qoe_qos;
pub mod relay;
pub mod sequence;
pub mod summary;
pub mod sweep_page;
mod tables;

pub use account::{Sentence, Topic};
pub use html::write_html;
pub use ice::{IceCandidateRow, PathSummary, SelectedPairRow};
pub use metrics::{
    CapacityDrop, CapacityRise, Freeze, ImpairTotals, RtcpCount, RunReport, SecondSample,
};
pub use path::{PathCandidate, PathReport, PeerPath, TurnTotals, pair_priority};
pub use plots::{PLOT_NAMES, Plot, comparison_plot, render_plots};
pub use sequence::{SessionFlow, StartupDelay, sequence_svg, session_flow, startup_delay};
pub use summary::Summary;
pub use tables::{bench_table, print_summary, print_tables, sweep_table};

use std::path::PathBuf;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A directory or file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The plotting library refused to draw a chart.
    #[error("cannot draw plot {name}: {message}")]
    Plot {
        /// Which plot.
        name: String,
        /// What plotters said.
        message: String,
    },
}
