//! Scenario files (`scenarios/*.toml`): what to run, for how long, and what to watch.
//!
//! Parsing is strict: an unknown key, a wrong type or an out-of-range value is an error that
//! names the file, the line and the field, so a typo never silently runs the default.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Codecs a scenario can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// H.264 Constrained Baseline through libx264.
    H264,
    /// VP8 through libvpx.
    Vp8,
}

impl CodecName {
    /// The lowercase name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecName::H264 => "h264",
            CodecName::Vp8 => "vp8",
        }
    }
}

/// Who receives the Rust sender's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// The Rust receiver in the same process.
    #[default]
    Rust,
    /// Headless Chromium.
    Browser,
}

impl std::str::FromStr for ReceiverKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rust" => Ok(ReceiverKind::Rust),
            "browser" => Ok(ReceiverKind::Browser),
            other => Err(format!("receiver {other:?}: expected rust or browser")),
        }
    }
}

/// Which candidates ICE may use (W3C `iceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicyName {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Relay candidates only.
    Relay,
}

/// Which TURN server a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TurnKind {
    /// No TURN server.
    #[default]
    None,
    /// rtclab's embedded server (UDP only).
    Embedded,
    /// A real coturn (`turnserver`), UDP and TCP.
    Coturn,
}

/// The transport between a client and its TURN server (RFC 7065 `transport=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TurnTransport {
    /// TURN over UDP.
    #[default]
    Udp,
    /// TURN over TCP (browser peers only: webrtc-rs 0.21 skips TCP TURN URLs).
    Tcp,
}

/// The `[ice]` table: which path the peers may take, which servers the run starts, and the Rust
/// peers' ICE timers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IceSpec {
    /// Rust peers' policy, and the browser's when a browser receives.
    pub policy: IcePolicyName,
    /// The TURN server the run starts and hands out (with per-peer credentials).
    pub turn: TurnKind,
    /// Also hand out the server's STUN URL (with `turn = "none"` the embedded server is started
    /// for STUN alone).
    pub stun: bool,
    /// Transport of the TURN URL handed to a browser peer (Rust peers always use UDP).
    pub transport: TurnTransport,
    /// Seconds without a packet on the selected pair before the Rust peers' ICE says
    /// `disconnected` (`ice.disconnected_s`; webrtc-rs's default is 5 s).
    pub disconnected_s: Option<f64>,
    /// Seconds after `disconnected` before ICE gives up and says `failed`, which ends the
    /// session (`ice.failed_s`; webrtc-rs's default is 25 s).
    pub failed_s: Option<f64>,
}

/// Longest ICE timer a scenario may set, in seconds: a session in the lab is at most an hour,
/// and a timer of minutes only hides an outage.
pub const MAX_ICE_TIMER_S: f64 = 300.0;

/// The raw `[ice]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIce {
    #[serde(default)]
    policy: Option<Spanned<IcePolicyName>>,
    #[serde(default)]
    turn: Option<Spanned<TurnKind>>,
    #[serde(default)]
    stun: bool,
    #[serde(default)]
    transport: Option<Spanned<TurnTransport>>,
    #[serde(default)]
    disconnected_s: Option<Spanned<f64>>,
    #[serde(default)]
    failed_s: Option<Spanned<f64>>,
}

/// Bitrate limits handed to the congestion controller, in kbps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitrateSpec {
    /// Where the estimate starts.
    pub initial_kbps: Spanned<u32>,
    /// Lowest target the controller may set.
    pub min_kbps: Spanned<u32>,
    /// Highest target the controller may set.
    pub max_kbps: Spanned<u32>,
}

/// The raw file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    description: String,
    duration_s: Spanned<f64>,
    #[serde(default = "default_codec")]
    codec: CodecName,
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_width")]
    width: Spanned<u32>,
    #[serde(default = "default_height")]
    height: Spanned<u32>,
    #[serde(default = "default_fps")]
    fps: Spanned<u32>,
    #[serde(default)]
    receiver: ReceiverKind,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    fec: bool,
    #[serde(default)]
    virtual_time: bool,
    bitrate: Option<BitrateSpec>,
    /// The media direction's impairment (sender → receiver); see rtclab-netem.
    #[serde(default)]
    downlink: Option<toml::Value>,
    /// The feedback direction's impairment (receiver → sender).
    #[serde(default)]
    uplink: Option<toml::Value>,
    /// STUN/TURN servers and the ICE policy.
    #[serde(default)]
    ice: Option<RawIce>,
}

fn default_codec() -> CodecName {
    CodecName::H264
}
fn default_source() -> String {
    TEST_PATTERN.to_owned()
}
fn default_width() -> Spanned<u32> {
    Spanned::new(0..0, 1280)
}
fn default_height() -> Spanned<u32> {
    Spanned::new(0..0, 720)
}
fn default_fps() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}
fn default_seed() -> u64 {
    1
}

/// The `source` value that selects FFmpeg's `testsrc2` pattern.
pub const TEST_PATTERN: &str = "testsrc2";

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (also the default output folder name).
    pub name: String,
    /// What the scenario shows and what to watch in the results.
    pub description: String,
    /// How long the media session runs.
    pub duration_s: f64,
    /// Video codec.
    pub codec: CodecName,
    /// `None` for the test pattern, or a file FFmpeg can read (relative paths are resolved
    /// against the scenario file's folder).
    pub source: Option<PathBuf>,
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Who receives.
    pub receiver: ReceiverKind,
    /// Seed for everything random in the run.
    pub seed: u64,
    /// Protect the video with FlexFEC-03 (Rust sender and receiver).
    pub fec: bool,
    /// Run on a virtual clock (`rtclab run --virtual-time`; Rust peers only).
    pub virtual_time: bool,
    /// Initial target bitrate, bps.
    pub initial_bps: u32,
    /// Minimum target bitrate, bps.
    pub min_bps: u32,
    /// Maximum target bitrate, bps.
    pub max_bps: u32,
    /// Network impairment per direction (none by default).
    pub impairment: rtclab_netem::Impairment,
    /// ICE path: policy and servers (`[ice]`; host candidates only by default).
    pub ice: IceSpec,
}

/// A scenario file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown/mistyped key.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when TOML gave no position).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}:{line}: field `{field}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the field (0 when the field was defaulted).
        line: usize,
        /// The field, dotted (`bitrate.min_kbps`).
        field: String,
        /// Why the value is refused.
        reason: String,
    },
}

impl ScenarioError {
    /// The line the error points at (0 when unknown).
    pub fn line(&self) -> usize {
        match self {
            ScenarioError::Io { .. } => 0,
            ScenarioError::Syntax { line, .. } | ScenarioError::Invalid { line, .. } => *line,
        }
    }
}

impl Scenario {
    /// What a run of `duration_s` (shorter than the file's `duration_s`, say by `--duration`)
    /// leaves out of the schedule, as a sentence; `None` when every step still happens.
    pub fn cut_short(&self, duration_s: f64) -> Option<String> {
        let mut late: Vec<String> = [
            ("downlink", &self.impairment.downlink),
            ("uplink", &self.impairment.uplink),
        ]
        .iter()
        .flat_map(|(dir, sched)| {
            sched
                .steps
                .iter()
                .filter(|s| s.at_s >= duration_s)
                .map(move |s| format!("{dir} at {} s", s.at_s))
        })
        .collect();
        if late.is_empty() {
            return None;
        }
        let n = late.len();
        if n > 6 {
            late.truncate(5);
            late.push(format!("{} more", n - 5));
        }
        Some(format!(
            "the run lasts {duration_s} s, so {n} step(s) of the schedule of {} ({} s) will not \
             happen: {}. The schedule keeps its times; for all of it, run without --duration or \
             for at least {} s",
            self.name,
            self.duration_s,
            late.join(", "),
            self.last_step_s().map_or(0.0, |t| t + 1.0),
        ))
    }

    fn last_step_s(&self) -> Option<f64> {
        [&self.impairment.downlink, &self.impairment.uplink]
            .iter()
            .flat_map(|s| s.steps.iter().map(|st| st.until_s.unwrap_or(st.at_s)))
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text; `path` is used in messages and to resolve `source`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            path: path.to_owned(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let invalid =
            |field: &str, span: std::ops::Range<usize>, reason: String| ScenarioError::Invalid {
                path: path.to_owned(),
                line: if span.is_empty() {
                    0
                } else {
                    line_of(text, span.start)
                },
                field: field.to_owned(),
                reason,
            };

        let name = raw.name.get_ref().trim();
        if let Err(reason) = check_name(name) {
            return Err(invalid("name", raw.name.span(), reason));
        }
        let duration = *raw.duration_s.get_ref();
        if let Err(reason) = check_duration_s(duration) {
            return Err(invalid("duration_s", raw.duration_s.span(), reason));
        }
        for (field, v) in [("width", &raw.width), ("height", &raw.height)] {
            let x = *v.get_ref();
            if !(16..=3840).contains(&x) || x % 2 != 0 {
                return Err(invalid(
                    field,
                    v.span(),
                    format!("{x} must be an even number of pixels in 16..=3840"),
                ));
            }
        }
        let fps = *raw.fps.get_ref();
        if !(1..=60).contains(&fps) {
            return Err(invalid(
                "fps",
                raw.fps.span(),
                format!("{fps} must be in 1..=60"),
            ));
        }
        let (initial, min, max) = match &raw.bitrate {
            None => (1_000, 100, 3_000),
            Some(b) => {
                for (field, v) in [
                    ("bitrate.initial_kbps", &b.initial_kbps),
                    ("bitrate.min_kbps", &b.min_kbps),
                    ("bitrate.max_kbps", &b.max_kbps),
                ] {
                    if !(30..=50_000).contains(v.get_ref()) {
                        return Err(invalid(
                            field,
                            v.span(),
                            format!("{} kbps must be in 30..=50000", v.get_ref()),
                        ));
                    }
                }
                let (i, lo, hi) = (
                    *b.initial_kbps.get_ref(),
                    *b.min_kbps.get_ref(),
                    *b.max_kbps.get_ref(),
                );
                if lo > hi {
                    return Err(invalid(
                        "bitrate.min_kbps",
                        b.min_kbps.span(),
                        format!("min {lo} kbps is above max {hi} kbps"),
                    ));
                }
                if !(lo..=hi).contains(&i) {
                    return Err(invalid(
                        "bitrate.initial_kbps",
                        b.initial_kbps.span(),
                        format!("initial {i} kbps must lie between min {lo} and max {hi}"),
                    ));
                }
                (i, lo, hi)
            }
        };
        let impairment = impairment(text, path, raw.downlink, raw.uplink)?;
        let ice = match &raw.ice {
            None => IceSpec::default(),
            Some(r) => {
                let ice = IceSpec {
                    policy: r
                        .policy
                        .as_ref()
                        .map_or_else(Default::default, |v| *v.get_ref()),
                    turn: r
                        .turn
                        .as_ref()
                        .map_or_else(Default::default, |v| *v.get_ref()),
                    stun: r.stun,
                    transport: r
                        .transport
                        .as_ref()
                        .map_or_else(Default::default, |v| *v.get_ref()),
                    disconnected_s: r.disconnected_s.as_ref().map(|v| *v.get_ref()),
                    failed_s: r.failed_s.as_ref().map(|v| *v.get_ref()),
                };
                let header = locate(text, "ice");
                let line_or_header = |sp: std::ops::Range<usize>| {
                    if sp.is_empty() {
                        header
                    } else {
                        line_of(text, sp.start)
                    }
                };
                for (field, value) in [
                    ("ice.disconnected_s", &r.disconnected_s),
                    ("ice.failed_s", &r.failed_s),
                ] {
                    if let Some(v) = value
                        && !(*v.get_ref() >= 0.5 && *v.get_ref() <= MAX_ICE_TIMER_S)
                    {
                        return Err(ScenarioError::Invalid {
                            path: path.to_owned(),
                            line: line_of(text, v.span().start),
                            field: field.into(),
                            reason: format!(
                                "{:?} is out of range; give seconds from 0.5 to {MAX_ICE_TIMER_S}",
                                v.get_ref()
                            ),
                        });
                    }
                }
                if ice.policy == IcePolicyName::Relay && ice.turn == TurnKind::None {
                    return Err(ScenarioError::Invalid {
                        path: path.to_owned(),
                        line: line_or_header(span_of(&r.policy)),
                        field: "ice.policy".into(),
                        reason: "relay-only needs a TURN server: set ice.turn to \"embedded\" or \"coturn\"".into(),
                    });
                }
                if ice.transport == TurnTransport::Tcp && ice.turn != TurnKind::Coturn {
                    return Err(ScenarioError::Invalid {
                        path: path.to_owned(),
                        line: line_or_header(span_of(&r.transport)),
                        field: "ice.transport".into(),
                        reason: "TURN over TCP needs turn = \"coturn\": the embedded server serves UDP only".into(),
                    });
                }
                if ice.transport == TurnTransport::Tcp && raw.receiver != ReceiverKind::Browser {
                    return Err(ScenarioError::Invalid {
                        path: path.to_owned(),
                        line: line_or_header(span_of(&r.transport)),
                        field: "ice.transport".into(),
                        reason: "TURN over TCP needs receiver = \"browser\": webrtc-rs 0.21's TURN client skips non-UDP TURN URLs, so Rust peers cannot use it".into(),
                    });
                }
                ice
            }
        };
        let source = if raw.source == TEST_PATTERN {
            None
        } else {
            let p = PathBuf::from(&raw.source);
            Some(if p.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(p)
            } else {
                p
            })
        };
        Ok(Scenario {
            name: name.to_owned(),
            description: raw.description.trim().to_owned(),
            duration_s: duration,
            codec: raw.codec,
            source,
            width: *raw.width.get_ref(),
            height: *raw.height.get_ref(),
            fps,
            receiver: raw.receiver,
            seed: raw.seed,
            fec: raw.fec,
            virtual_time: raw.virtual_time,
            initial_bps: initial * 1000,
            min_bps: min * 1000,
            max_bps: max * 1000,
            impairment,
            ice,
        })
    }
}

/// Parses and validates the `[downlink]` / `[uplink]` tables, pointing errors at their line.
fn impairment(
    text: &str,
    path: &Path,
    downlink: Option<toml::Value>,
    uplink: Option<toml::Value>,
) -> Result<rtclab_netem::Impairment, ScenarioError> {
    let mut imp = rtclab_netem::Impairment::default();
    for (name, value, slot) in [
        ("downlink", downlink, &mut imp.downlink),
        ("uplink", uplink, &mut imp.uplink),
    ] {
        let Some(value) = value else { continue };
        *slot = value.try_into().map_err(|e: toml::de::Error| {
            let message = e.message().trim().to_owned();
            // The nested table's own positions are lost in the round trip; find the line of the
            // field serde names, if any, else the table's header.
            let field = message
                .split('`')
                .nth(1)
                .map(|f| format!("{name}.{f}"))
                .unwrap_or_else(|| name.to_owned());
            ScenarioError::Syntax {
                path: path.to_owned(),
                line: locate(text, &field),
                message: format!("in [{name}]: {message}"),
            }
        })?;
    }
    imp.validate().map_err(|e| ScenarioError::Invalid {
        path: path.to_owned(),
        line: locate(text, e.path()),
        field: e.path().to_owned(),
        reason: e
            .to_string()
            .trim_start_matches(e.path())
            .trim_start_matches(": ")
            .to_owned(),
    })?;
    Ok(imp)
}

/// 1-based line of a dotted field path such as `downlink.schedule[2].rate_kbps` or
/// `downlink.burst.p_pct` in scenario text (0 when it cannot be found). Good enough for the
/// shapes scenario files use: `[table]` / `[[array]]` headers followed by `key = value` lines.
pub fn locate(text: &str, field: &str) -> usize {
    // Split "downlink.schedule[2].rate_kbps" into the table path, the array index and the key.
    let (table_part, key) = match field.rsplit_once('.') {
        Some((t, k)) => (t.to_owned(), k.to_owned()),
        None => return header_line(text, field, 0).unwrap_or(0),
    };
    let (table, index) = match table_part.split_once('[') {
        Some((t, rest)) => (
            t.to_owned(),
            rest.trim_end_matches(']').parse().unwrap_or(0),
        ),
        None => (table_part.clone(), 0),
    };
    let key = key.split('[').next().unwrap_or(&key).to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let start = header_line(text, &table, index).or_else(|| header_line(text, &table_part, 0));
    match start {
        Some(h) => lines
            .iter()
            .enumerate()
            .skip(h)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| {
                l.trim_start().starts_with(&format!("{key} "))
                    || l.trim_start().starts_with(&format!("{key}="))
            })
            .map(|(i, _)| i + 1)
            .or_else(|| header_line(text, &format!("{table_part}.{key}"), 0))
            .unwrap_or(h),
        // A table such as [downlink.burst] refers to its own header.
        None => header_line(text, field, 0).unwrap_or(0),
    }
}

/// 1-based line of the `index`-th `[name]` or `[[name]]` header.
fn header_line(text: &str, name: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            t == format!("[{name}]") || t == format!("[[{name}]]")
        })
        .nth(index)
        .map(|(i, _)| i + 1)
}

/// Lists `*.toml` scenarios in a folder as (file, parsed scenario or error), sorted by file name.
pub fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<Scenario, ScenarioError>)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // The scenario folder is also this crate's folder.
        .filter(|p| p.file_name().is_some_and(|n| n != "Cargo.toml"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| {
            let s = Scenario::load(&p);
            (p, s)
        })
        .collect())
}

/// Short names `rtclab sweep --set` accepts for common keys.
pub const SWEEP_ALIASES: &[(&str, &str)] = &[
    ("loss", "downlink.loss_pct"),
    ("delay", "downlink.delay_ms"),
    ("jitter", "downlink.jitter_ms"),
    ("rate", "downlink.rate_kbps"),
    ("codec", "codec"),
];

/// Most names in a `--set` key (`downlink.burst.p_pct` has three). Each name is a table the key
/// nests in, and the variant's text writes every table's full dotted name in its header, so a
/// key of thousands of dots made a text (and memory) that grew with the square of the key's
/// length: 1.4 GB for a key of 8,000 characters (found by the `scenario` fuzz target, issue 17).
pub const MAX_SET_KEY_NAMES: usize = 4;

/// Returns the scenario text with `key` (dotted, e.g. `downlink.loss_pct`, or an alias from
/// [`SWEEP_ALIASES`]) set to `value` (TOML syntax; bare words become strings) and `name`
/// suffixed with the variant, for `rtclab sweep`. The key is at most [`MAX_SET_KEY_NAMES`]
/// names of letters, digits, `_` and `-`.
pub fn with_override(
    text: &str,
    path: &Path,
    key: &str,
    value: &str,
) -> Result<String, ScenarioError> {
    let syntax = |message: String| ScenarioError::Syntax {
        path: path.to_owned(),
        line: 0,
        message,
    };
    let key = SWEEP_ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, full)| full);
    let good_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if key.split('.').count() > MAX_SET_KEY_NAMES || !key.split('.').all(good_name) {
        // At most 60 characters of the key: it may be anything.
        let shown: String = key.chars().take(60).collect();
        let more = if shown.len() < key.len() { "..." } else { "" };
        return Err(syntax(format!(
            "--set {shown}{more}: not a scenario key; give at most {MAX_SET_KEY_NAMES} names of \
             letters, digits, '_' or '-' joined by dots, such as downlink.loss_pct"
        )));
    }
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| syntax(e.message().to_owned()))?;
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts
        .split_last()
        .ok_or_else(|| syntax("empty --set key".into()))?;
    let mut table = &mut doc;
    for part in parents {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| syntax(format!("--set {key}: `{part}` is not a table")))?;
    }
    table.insert(last.to_string(), parsed);
    let name = doc
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("sweep")
        .to_owned();
    let suffix: String = format!("{}-{value}", last)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    doc.insert(
        "name".into(),
        toml::Value::String(format!("{name}.{suffix}")),
    );
    // The description is the base scenario's and may name the value this variant replaces
    // (a loss-20 variant of loss-5 said "5 %"): open it with what this variant is.
    let base = doc
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_owned();
    doc.insert(
        "description".into(),
        toml::Value::String(format!(
            "Sweep variant: {key} = {value} (the rest below is the base scenario `{name}`'s \
             description and may name the value this variant replaced).\n{base}"
        )),
    );
    toml::to_string(&doc).map_err(|e| syntax(e.to_string()))
}

/// Longest scenario `name` accepted, in characters. The name becomes a folder name
/// (`runs/<name>-<unix time>`, and `<name>.<variant>` in a sweep) and file systems refuse
/// names over 255 bytes; 100 leaves room for those suffixes, and fails at load time instead of
/// with "File name too long" once the run has started.
pub const MAX_NAME_LEN: usize = 100;

/// The rule for a scenario `name`; on failure, the reason (without the field, which the caller
/// names).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("use letters, digits, '-', '_' or '.' (it names the output folder)".into());
    }
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(format!(
            "{len} characters is too long; use at most {MAX_NAME_LEN} (it names the output folder)"
        ));
    }
    Ok(())
}

/// The rule for a session duration in seconds, shared by the scenario's `duration_s` and every
/// `--duration` on the command line so both refuse the same values with the same words: in
/// (0, 3600], which also refuses NaN and infinities. On failure, the reason.
pub fn check_duration_s(duration: f64) -> Result<(), String> {
    if duration > 0.0 && duration <= 3600.0 {
        Ok(())
    } else {
        // `{:?}` keeps 1e300 short (Display would print all 301 digits).
        Err(format!(
            "{duration:?} is out of range; give seconds in (0, 3600]"
        ))
    }
}

/// The span of an optional value (empty when it was not given).
fn span_of<T>(v: &Option<Spanned<T>>) -> std::ops::Range<usize> {
    v.as_ref().map_or(0..0, Spanned::span)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod cut_short_tests {
    use super::*;

    #[test]
    fn a_shortened_run_names_the_steps_it_leaves_out() {
        let s = Scenario::parse(
            "name = \"drop\"\ndescription = \"x\"\nduration_s = 60\n[downlink]\nrate_kbps = 3000\n\
             [[downlink.schedule]]\nat_s = 20\nrate_kbps = 500\n\
             [[downlink.schedule]]\nat_s = 40\nrate_kbps = 3000\n",
            Path::new("drop.toml"),
        )
        .expect("valid");
        assert_eq!(s.cut_short(60.0), None);
        assert_eq!(s.cut_short(45.0), None);
        let m = s.cut_short(30.0).expect("the 40 s step is cut");
        assert!(
            m.contains("1 step(s)") && m.contains("downlink at 40 s"),
            "{m}"
        );
        assert!(m.contains("at least 41 s"), "{m}");
        let m = s.cut_short(10.0).expect("both cut");
        assert!(m.contains("downlink at 20 s, downlink at 40 s"), "{m}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("scenarios/test.toml"))
    }

    const GOOD: &str = r#"
name = "clean"
description = "No impairment."
duration_s = 10
codec = "vp8"
width = 640
height = 360

[bitrate]
initial_kbps = 800
min_kbps = 100
max_kbps = 2500
"#;

    #[test]
    fn a_good_file_parses_with_defaults_filled_in() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "clean");
        assert_eq!(s.codec, CodecName::Vp8);
        assert_eq!((s.width, s.height, s.fps), (640, 360, 30));
        assert_eq!(s.source, None);
        assert_eq!(
            (s.initial_bps, s.min_bps, s.max_bps),
            (800_000, 100_000, 2_500_000)
        );
        assert_eq!(s.receiver, ReceiverKind::Rust);
        assert!(!s.fec, "FEC is off unless asked for");
        assert!(!s.virtual_time, "real time unless asked for");
    }

    #[test]
    fn virtual_time_is_a_boolean_key() {
        let text = GOOD.replace("codec = \"vp8\"", "codec = \"vp8\"\nvirtual_time = true");
        assert!(parse(&text).unwrap().virtual_time);
        let err =
            parse(&GOOD.replace("codec = \"vp8\"", "codec = \"vp8\"\nvirtual_time = \"yes\""))
                .unwrap_err();
        assert!(err.to_string().contains("bool"), "{err}");
    }

    #[test]
    fn fec_is_a_boolean_key_and_sweepable() {
        let text = GOOD.replace("codec = \"vp8\"", "codec = \"vp8\"\nfec = true");
        assert!(parse(&text).unwrap().fec);
        let err = parse(&GOOD.replace("codec = \"vp8\"", "codec = \"vp8\"\nfec = 1")).unwrap_err();
        assert!(err.to_string().contains("bool"), "{err}");
        let swept = with_override(GOOD, Path::new("t.toml"), "fec", "true").unwrap();
        assert!(parse(&swept).unwrap().fec);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("codec = \"vp8\"", "codek = \"vp8\"");
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.line(), 5, "{msg}");
        assert!(msg.starts_with("scenarios/test.toml:5:"), "{msg}");
        assert!(msg.contains("codek"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_line() {
        let err = parse(&GOOD.replace("duration_s = 10", "duration_s = \"ten\"")).unwrap_err();
        assert_eq!(err.line(), 4, "{err}");
    }

    #[test]
    fn an_unknown_codec_is_refused() {
        let err = parse(&GOOD.replace("\"vp8\"", "\"av1\"")).unwrap_err();
        assert_eq!(err.line(), 5, "{err}");
        assert!(err.to_string().contains("av1"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_field_and_line() {
        let cases = [
            ("duration_s = 10", "duration_s = -1", "duration_s", 4),
            ("width = 640", "width = 641", "width", 6),
            ("min_kbps = 100", "min_kbps = 3000", "bitrate.min_kbps", 11),
            (
                "initial_kbps = 800",
                "initial_kbps = 50",
                "bitrate.initial_kbps",
                10,
            ),
        ];
        for (from, to, field, line) in cases {
            let err = parse(&GOOD.replace(from, to)).unwrap_err();
            match &err {
                ScenarioError::Invalid {
                    field: f, line: l, ..
                } => {
                    assert_eq!((f.as_str(), *l), (field, line), "{err}");
                }
                other => panic!("{to}: expected Invalid, got {other}"),
            }
        }
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let err = parse(&GOOD.replace("duration_s = 10\n", "")).unwrap_err();
        assert!(err.to_string().contains("duration_s"), "{err}");
    }

    #[test]
    fn a_relative_source_resolves_against_the_scenario_folder() {
        let s = parse(&GOOD.replace("codec", "source = \"clip.mp4\"\ncodec")).unwrap();
        assert_eq!(s.source, Some(PathBuf::from("scenarios/clip.mp4")));
    }

    #[test]
    fn an_override_sets_a_dotted_key_and_renames_the_variant() {
        let text = with_override(GOOD, Path::new("x.toml"), "fps", "15").unwrap();
        let s = parse(&text).unwrap();
        assert_eq!((s.fps, s.name.as_str()), (15, "clean.fps-15"));
        let text = with_override(GOOD, Path::new("x.toml"), "codec", "h264").unwrap();
        assert_eq!(parse(&text).unwrap().codec, CodecName::H264);
        let text = with_override(GOOD, Path::new("x.toml"), "bitrate.max_kbps", "1200").unwrap();
        assert_eq!(parse(&text).unwrap().max_bps, 1_200_000);
        // The variant's description says what it is before the base scenario's words.
        let text = with_override(GOOD, Path::new("x.toml"), "loss", "20").unwrap();
        let d = parse(&text).unwrap().description;
        assert!(
            d.starts_with("Sweep variant: downlink.loss_pct = 20 "),
            "{d}"
        );
    }

    /// Issue 17 (fuzzing): a key of thousands of dots is refused at once, with a message, rather
    /// than nesting a table per dot.
    #[test]
    fn an_override_key_is_a_few_names() {
        let deep = format!("{}x", "a.".repeat(4000));
        for key in [
            deep.as_str(),
            "downlink..loss_pct",
            "a.b.c.d.e",
            "down link",
            "",
        ] {
            let err = with_override(GOOD, Path::new("x.toml"), key, "1").unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("not a scenario key"), "{msg}");
            assert!(msg.len() < 300, "{msg}");
        }
        let text = with_override(GOOD, Path::new("x.toml"), "downlink.burst.p_pct", "5").unwrap();
        assert!(text.contains("p_pct = 5"), "{text}");
    }

    const IMPAIRED: &str = r#"
name = "drop"
description = "x"
duration_s = 60

[downlink]
rate_kbps = 3000
queue_ms = 300

[[downlink.schedule]]
at_s = 20
rate_kbps = 500

[[downlink.schedule]]
at_s = 40
rate_kbps = 3000

[uplink]
loss_pct = 5.0
"#;

    #[test]
    fn impairment_tables_parse_into_both_directions() {
        let s = parse(IMPAIRED).unwrap();
        assert_eq!(s.impairment.downlink.base.rate_kbps, Some(3000.0));
        assert_eq!(s.impairment.downlink.steps.len(), 2);
        assert_eq!(s.impairment.downlink.steps[1].at_s, 40.0);
        assert_eq!(s.impairment.uplink.base.loss_pct, Some(5.0));
        assert!(parse(GOOD).unwrap().impairment.downlink.base.is_empty());
    }

    #[test]
    fn bad_impairment_values_name_file_line_and_field() {
        // A negative rate in the second step.
        let err =
            parse(&IMPAIRED.replace("rate_kbps = 3000\n\n[uplink]", "rate_kbps = -1\n\n[uplink]"))
                .unwrap_err();
        assert_eq!(err.line(), 16, "{err}");
        assert!(
            err.to_string().contains("downlink.schedule[1].rate_kbps"),
            "{err}"
        );
        // Steps out of order (the "overlapping schedule" case).
        let err = parse(&IMPAIRED.replace("at_s = 40", "at_s = 10")).unwrap_err();
        assert!(err.to_string().contains("downlink.schedule[1]"), "{err}");
        assert!(err.line() >= 15, "{err}");
        // An unknown key inside [downlink].
        let err = parse(&IMPAIRED.replace("queue_ms = 300", "queue_msec = 300")).unwrap_err();
        assert!(err.to_string().contains("queue_msec"), "{err}");
        assert_eq!(err.line(), 8, "{err}");
    }

    /// GOOD with a rate-limited downlink of `n` one-second loss steps.
    fn with_steps(n: usize) -> String {
        let mut text = format!("{GOOD}\n[downlink]\nrate_kbps = 1000\n");
        for i in 0..n {
            text.push_str(&format!(
                "\n[[downlink.schedule]]\nat_s = {i}\nloss_pct = 1\n"
            ));
        }
        text
    }

    /// Issue 18 #2: the number of schedule steps is capped, and a file over the cap is refused
    /// naming the file, the line of the schedule, the field and the cap.
    #[test]
    fn a_schedule_over_the_step_cap_is_refused_with_file_field_and_cap() {
        let cap = rtclab_netem::MAX_STEPS;
        let at_cap = parse(&with_steps(cap)).unwrap();
        assert_eq!(at_cap.impairment.downlink.steps.len(), cap);

        let text = with_steps(cap + 1);
        let err = parse(&text).unwrap_err();
        let first_step = text
            .lines()
            .position(|l| l == "[[downlink.schedule]]")
            .unwrap()
            + 1;
        assert!(
            matches!(&err, ScenarioError::Invalid { field, line, .. }
                if field == "downlink.schedule" && *line == first_step),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "scenarios/test.toml:{first_step}: field `downlink.schedule`: 10001 steps"
            )) && message.contains("the 10000 allowed per direction"),
            "{message}"
        );
    }

    #[test]
    fn the_ice_table_parses_and_defaults_to_host_only() {
        assert_eq!(parse(GOOD).unwrap().ice, IceSpec::default());
        let s = parse(&format!(
            "{GOOD}\n[ice]\npolicy = \"relay\"\nturn = \"embedded\"\nstun = true\n"
        ))
        .unwrap();
        assert_eq!(
            s.ice,
            IceSpec {
                policy: IcePolicyName::Relay,
                turn: TurnKind::Embedded,
                stun: true,
                transport: TurnTransport::Udp,
                disconnected_s: None,
                failed_s: None,
            }
        );
        let s = parse(&format!(
            "{GOOD}\n[ice]\ndisconnected_s = 2\nfailed_s = 3.5\n"
        ))
        .unwrap();
        assert_eq!(
            (s.ice.disconnected_s, s.ice.failed_s),
            (Some(2.0), Some(3.5))
        );
    }

    #[test]
    fn ice_timers_out_of_range_name_their_line() {
        // GOOD has 12 lines after its leading newline; [ice] is line 14.
        for (body, field, line) in [
            ("disconnected_s = 0\n", "ice.disconnected_s", 15),
            ("disconnected_s = 2\nfailed_s = 1e9\n", "ice.failed_s", 16),
            ("failed_s = -1\n", "ice.failed_s", 15),
        ] {
            let err = parse(&format!("{GOOD}\n[ice]\n{body}")).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
            assert!(err.to_string().contains("out of range"), "{err}");
            assert_eq!(err.line(), line, "{err}");
        }
    }

    #[test]
    fn bad_ice_settings_name_file_line_and_field() {
        // GOOD has 12 lines after its leading newline; [ice] is line 14.
        let ice = |body: &str| parse(&format!("{GOOD}\n[ice]\n{body}")).unwrap_err();
        let err = ice("policy = \"relay\"\n");
        assert!(err.to_string().contains("ice.policy"), "{err}");
        assert_eq!(err.line(), 15, "{err}");
        let err = ice("turn = \"embedded\"\ntransport = \"tcp\"\n");
        assert!(
            err.to_string().contains("embedded server serves UDP only"),
            "{err}"
        );
        assert_eq!(err.line(), 16, "{err}");
        let err = ice("turn = \"coturn\"\ntransport = \"tcp\"\n");
        assert!(err.to_string().contains("receiver = \"browser\""), "{err}");
        let err = ice("turn = \"coturm\"\n");
        assert!(err.to_string().contains("coturm"), "{err}");
        assert_eq!(err.line(), 15, "{err}");
        let err = ice("polcy = \"all\"\n");
        assert!(err.to_string().contains("polcy"), "{err}");
        assert_eq!(err.line(), 15, "{err}");
    }

    #[test]
    fn the_shipped_scenarios_all_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let all = list(dir).unwrap();
        assert!(!all.is_empty());
        for (path, s) in all {
            let s = s.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                path.file_stem().and_then(|x| x.to_str()),
                Some(s.name.as_str()),
                "file name and scenario name differ"
            );
        }
    }

    /// Issue 13 #2: `presets/` holds named constant links, each naming its public source. A
    /// preset is applied at once to a live session, so it has base settings and no schedule.
    #[test]
    fn the_shipped_presets_are_constant_links_that_name_their_source() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let all = list(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(
            all.len() >= 8,
            "expected the shipped presets in {}, found {}",
            dir.display(),
            all.len()
        );
        for (path, s) in all {
            let s = s.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let shown = path.display();
            assert_eq!(
                path.file_stem().and_then(|x| x.to_str()),
                Some(s.name.as_str()),
                "{shown}: file name and preset name differ"
            );
            for (direction, sched) in [
                ("downlink", &s.impairment.downlink),
                ("uplink", &s.impairment.uplink),
            ] {
                assert!(
                    sched.steps.is_empty(),
                    "{shown}: a preset is a constant link, but {direction} has {} schedule step(s)",
                    sched.steps.len()
                );
                assert!(
                    !sched.base.is_empty(),
                    "{shown}: {direction} sets nothing; a preset says what each direction of its \
                     link is"
                );
            }
            assert!(
                s.description.contains("http"),
                "{shown}: the description must name its public source with a link"
            );
        }
    }
}
