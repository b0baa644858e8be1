//! Live impairment of a demo session: what `POST /api/impair` asks for, checked and carried out
//! on the session's `ImpairedRuntime`, and the catalog of scenarios and presets it may play.
//!
//! A request is one JSON object (documented in the README):
//!
//! | `action` | fields | effect |
//! |---|---|---|
//! | `set` | `downlink`, `uplink` (either may be absent) | the given keys replace those keys; the others stay |
//! | `replace` | `downlink`, `uplink` | a given direction's settings become exactly these (absent key = off) |
//! | `outage` | `seconds` (0–600), `direction` (`both` by default) | 100 % loss for that long, then back |
//! | `play` | `scenario` (a name from `GET /api/scenarios`) | its base settings now, its steps at their times counted from now |
//! | `reset` | — | a clean link both ways; a playing scenario stops |
//!
//! plus an optional `source` (who asked: `page`, a test's name; `api` if absent) written into the
//! `impair.change` lines; a played entry's lines say `preset NAME` or `scenario NAME` instead. A direction's keys are the scenario file's, checked by the same rules,
//! so a bad value gets the scenario parser's message with its path (`downlink.loss_pct: 150 is
//! out of range: ...`).

use rtclab_events::EventSink;
use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Link};
use rtclab_scenarios::Scenario;
use rtclab_signaling::ControlError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest outage a request may ask for, in seconds: ten minutes is longer than any demo
/// session needs, and ICE's consent freshness (RFC 7675 §5.1, 30 s) ends the session long
/// before.
pub const MAX_OUTAGE_S: f64 = 600.0;

/// Longest `source` accepted, in characters; it is a label, not a message.
pub const MAX_SOURCE_LEN: usize = 64;

/// Whether a catalog entry is a full scenario (schedule and all) or a constant preset link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `scenarios/*.toml`.
    Scenario,
    /// `scenarios/presets/*.toml`: one constant link, from a public source.
    Preset,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Scenario => "scenario",
            Kind::Preset => "preset",
        }
    }
}

/// One scenario or preset a live session may play.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The scenario's name (its file stem for the shipped ones).
    pub name: String,
    /// Scenario or preset.
    pub kind: Kind,
    /// The file, as found.
    pub file: PathBuf,
    /// What it shows and what to watch.
    pub description: String,
    /// How long its schedule runs.
    pub duration_s: f64,
    /// Both directions, schedules included, with the scenario file's keys.
    pub impairment: Impairment,
    /// The scenario's seed (used when a session starts with it).
    pub seed: u64,
}

/// The scenarios and presets found at start-up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// Scenarios first, then presets, each sorted by file name.
    pub scenarios: Vec<Entry>,
}

impl Catalog {
    /// Reads `dir/*.toml` (scenarios) and `dir/presets/*.toml` (presets). A file that does not
    /// parse is left out with a warning (returned), so one bad file does not hide the others;
    /// `rtclab scenarios DIR` shows the same error.
    pub fn load(dir: &Path) -> (Catalog, Vec<String>) {
        let mut catalog = Catalog::default();
        let mut warnings = Vec::new();
        for (folder, kind) in [
            (dir.to_owned(), Kind::Scenario),
            (dir.join("presets"), Kind::Preset),
        ] {
            let Ok(files) = rtclab_scenarios::list(&folder) else {
                warnings.push(format!(
                    "cannot list {}; the page offers no {}s",
                    folder.display(),
                    kind.as_str()
                ));
                continue;
            };
            for (file, parsed) in files {
                match parsed {
                    Ok(s) => catalog.scenarios.push(Entry::new(s, kind, file)),
                    Err(e) => warnings.push(format!("left out of the page's list: {e}")),
                }
            }
        }
        (catalog, warnings)
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.scenarios.iter().find(|e| e.name == name)
    }

    /// The entry called `name`, or a refusal that lists the known names.
    pub fn lookup(&self, name: &str) -> Result<&Entry, ControlError> {
        self.find(name).ok_or_else(|| {
            let names: Vec<&str> = self.scenarios.iter().map(|e| e.name.as_str()).collect();
            invalid(format!(
                "scenario: no scenario or preset called {name:?}; known: {}",
                names.join(", ")
            ))
        })
    }

    /// `GET /api/scenarios`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Entry {
    /// An entry for a parsed scenario file.
    pub fn new(s: Scenario, kind: Kind, file: PathBuf) -> Entry {
        Entry {
            name: s.name,
            kind,
            file,
            description: s.description,
            duration_s: s.duration_s,
            impairment: s.impairment,
            seed: s.seed,
        }
    }

    /// Source of its `impair.change` lines: `preset NAME` or `scenario NAME`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.name)
    }
}

/// Which directions an outage cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Which {
    #[default]
    Both,
    Downlink,
    Uplink,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Set,
    Replace,
    Outage,
    Play,
    Reset,
}

/// The request as sent; each action's fields are checked in [`Request::parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    action: Action,
    #[serde(default)]
    downlink: Option<serde_json::Value>,
    #[serde(default)]
    uplink: Option<serde_json::Value>,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    direction: Option<Which>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Replace the given keys.
    Set {
        /// Media direction keys.
        downlink: Option<ImpairmentConfig>,
        /// Feedback direction keys.
        uplink: Option<ImpairmentConfig>,
    },
    /// Make these the whole settings of the given directions.
    Replace {
        /// Media direction settings.
        downlink: Option<ImpairmentConfig>,
        /// Feedback direction settings.
        uplink: Option<ImpairmentConfig>,
    },
    /// 100 % loss for a while.
    Outage {
        /// How long.
        length: Duration,
        /// Directions cut.
        links: Vec<Link>,
    },
    /// Play a catalog entry by name.
    Play {
        /// The entry's name.
        scenario: String,
    },
    /// A clean link.
    Reset,
}

const EXAMPLE: &str = r#"send e.g. {"action":"set","downlink":{"loss_pct":5}}, {"action":"outage","seconds":3}, {"action":"play","scenario":"bandwidth-drop"} or {"action":"reset"}"#;

fn invalid(msg: impl Into<String>) -> ControlError {
    ControlError::Invalid(msg.into())
}

/// One direction's keys, parsed and range-checked with the scenario file's rules.
fn direction(
    link: Link,
    value: Option<serde_json::Value>,
) -> Result<Option<ImpairmentConfig>, ControlError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let name = link.as_str();
    let config: ImpairmentConfig = serde_json::from_value(value).map_err(|e| {
        invalid(format!(
            "{name}: {e}; the keys are the scenario file's (loss_pct, burst, delay_ms, jitter_ms, rate_kbps, queue_ms, reorder, duplicate_pct, outage, ...; see scenarios/README.md)"
        ))
    })?;
    config.validate(name).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(config))
}

impl Request {
    /// Parses and checks a request body; also returns its `source` (`api` if absent).
    pub fn parse(body: serde_json::Value) -> Result<(Request, String), ControlError> {
        if !body.is_object() {
            return Err(invalid(format!("a request is a JSON object; {EXAMPLE}")));
        }
        let wire: Wire =
            serde_json::from_value(body).map_err(|e| invalid(format!("{e}; {EXAMPLE}")))?;
        let source = match wire.source {
            None => "api".to_owned(),
            Some(s) => {
                let ok = !s.is_empty()
                    && s.chars().count() <= MAX_SOURCE_LEN
                    && s.chars().all(|c| !c.is_control());
                if !ok {
                    return Err(invalid(format!(
                        "source: give a short label (1-{MAX_SOURCE_LEN} printable characters) such as \"page\""
                    )));
                }
                s
            }
        };
        let only = |allowed: &[&str]| -> Result<(), ControlError> {
            let given = [
                ("downlink", wire.downlink.is_some()),
                ("uplink", wire.uplink.is_some()),
                ("seconds", wire.seconds.is_some()),
                ("direction", wire.direction.is_some()),
                ("scenario", wire.scenario.is_some()),
            ];
            match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
                Some((k, _)) => Err(invalid(format!(
                    "{k}: not a field of action {:?}; it takes {}",
                    wire.action,
                    if allowed.is_empty() {
                        "no fields besides source".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ))),
                None => Ok(()),
            }
        };
        let request = match wire.action {
            Action::Set | Action::Replace => {
                only(&["downlink", "uplink"])?;
                let downlink = direction(Link::Downlink, wire.downlink.clone())?;
                let uplink = direction(Link::Uplink, wire.uplink.clone())?;
                if downlink.is_none() && uplink.is_none() {
                    return Err(invalid(
                        "give downlink and/or uplink settings, e.g. {\"action\":\"set\",\"downlink\":{\"loss_pct\":5}}",
                    ));
                }
                if wire.action == Action::Set {
                    Request::Set { downlink, uplink }
                } else {
                    Request::Replace { downlink, uplink }
                }
            }
            Action::Outage => {
                only(&["seconds", "direction"])?;
                let seconds = wire
                    .seconds
                    .ok_or_else(|| invalid("outage: give its length, e.g. \"seconds\": 3"))?;
                if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_OUTAGE_S) {
                    return Err(invalid(format!(
                        "seconds: {seconds} is out of range: seconds above 0 and at most {MAX_OUTAGE_S}"
                    )));
                }
                let links = match wire.direction.unwrap_or_default() {
                    Which::Both => vec![Link::Downlink, Link::Uplink],
                    Which::Downlink => vec![Link::Downlink],
                    Which::Uplink => vec![Link::Uplink],
                };
                Request::Outage {
                    length: Duration::from_secs_f64(seconds),
                    links,
                }
            }
            Action::Play => {
                only(&["scenario"])?;
                let scenario = wire.scenario.ok_or_else(|| {
                    invalid("play: name the scenario or preset, e.g. \"scenario\": \"bandwidth-drop\" (GET /api/scenarios lists them)")
                })?;
                Request::Play { scenario }
            }
            Action::Reset => {
                only(&[])?;
                Request::Reset
            }
        };
        Ok((request, source))
    }
}

/// A scenario being played, for the page's timeline.
#[derive(Debug, Clone, Serialize)]
struct Playing {
    name: String,
    kind: Kind,
    description: String,
    /// Session time (the log's `t`) at which it started.
    started_t: f64,
    duration_s: f64,
    steps: Vec<TimelineStep>,
}

/// One schedule step at its session time.
#[derive(Debug, Clone, Serialize)]
struct TimelineStep {
    direction: &'static str,
    at_t: f64,
    until_t: Option<f64>,
    settings: ImpairmentConfig,
}

impl Playing {
    fn new(entry: &Entry, started_t: f64) -> Playing {
        let mut steps = Vec::new();
        for (link, schedule) in [
            (Link::Downlink, &entry.impairment.downlink),
            (Link::Uplink, &entry.impairment.uplink),
        ] {
            steps.extend(schedule.steps.iter().map(|s| TimelineStep {
                direction: link.as_str(),
                at_t: started_t + s.at_s,
                until_t: s.until_s.map(|u| started_t + u),
                settings: s.set.clone(),
            }));
        }
        steps.sort_by(|a, b| a.at_t.total_cmp(&b.at_t));
        Playing {
            name: entry.name.clone(),
            kind: entry.kind,
            description: entry.description.clone(),
            started_t,
            duration_s: entry.duration_s,
            steps,
        }
    }
}

/// The live side of one session: its impaired runtime, the clock of its log, and what it plays.
pub struct LiveSession {
    runtime: Arc<ImpairedRuntime>,
    sink: EventSink,
    playing: Mutex<Option<Playing>>,
}

impl LiveSession {
    /// Live control of `runtime`, whose `impair.change` lines go to `sink`; `playing` is the
    /// scenario the session started with (`rtclab demo --scenario`), if any.
    pub fn new(runtime: Arc<ImpairedRuntime>, sink: EventSink, playing: Option<&Entry>) -> Self {
        Self {
            runtime,
            sink,
            playing: Mutex::new(playing.map(|e| Playing::new(e, 0.0))),
        }
    }

    /// `GET /api/impair`: session time, the settings in force, and the scenario playing.
    pub fn state(&self) -> serde_json::Value {
        let playing = self
            .playing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        serde_json::json!({
            "t": self.sink.elapsed(),
            "downlink": self.runtime.settings(Link::Downlink),
            "uplink": self.runtime.settings(Link::Uplink),
            "playing": playing,
        })
    }

    /// `POST /api/impair`: checks and carries out `body`; returns the new state.
    pub fn change(
        &self,
        body: serde_json::Value,
        catalog: &Catalog,
    ) -> Result<serde_json::Value, ControlError> {
        let (request, source) = Request::parse(body)?;
        let started_t = self.sink.elapsed();
        let played = carry_out(&self.runtime, &request, &source, catalog)?;
        let mut playing = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        match (&request, played) {
            (_, Some(entry)) => *playing = Some(Playing::new(entry, started_t)),
            (Request::Reset, _) => *playing = None,
            _ => {}
        }
        drop(playing);
        Ok(self.state())
    }
}

/// Carries out a checked request on one impaired runtime; returns the entry a `play` started.
pub fn carry_out<'c>(
    rt: &ImpairedRuntime,
    request: &Request,
    source: &str,
    catalog: &'c Catalog,
) -> Result<Option<&'c Entry>, ControlError> {
    let refused = |e: rtclab_netem::ConfigError| invalid(e.to_string());
    match request {
        Request::Set { downlink, uplink } => {
            for (link, config) in [(Link::Downlink, downlink), (Link::Uplink, uplink)] {
                if let Some(config) = config {
                    rt.apply(link, config, source).map_err(refused)?;
                }
            }
        }
        Request::Replace { downlink, uplink } => {
            for (link, config) in [(Link::Downlink, downlink), (Link::Uplink, uplink)] {
                if let Some(config) = config {
                    rt.replace(link, config, source).map_err(refused)?;
                }
            }
        }
        Request::Outage { length, links } => {
            for link in links {
                rt.outage(*link, *length, source);
            }
        }
        Request::Play { scenario } => {
            let entry = catalog.lookup(scenario)?;
            rt.play(&entry.impairment, &entry.label())
                .map_err(refused)?;
            return Ok(Some(entry));
        }
        Request::Reset => rt.reset(source),
    }
    Ok(None)
}

impl Request {
    /// What a link created after this request should start from, given what it would have
    /// started from before: `set`, `replace`, `play` and `reset` carry over, an outage does not
    /// (it is a moment, not a setting).
    pub fn update_base(
        &self,
        base: &mut Impairment,
        catalog: &Catalog,
    ) -> Result<(), ControlError> {
        match self {
            Request::Set { downlink, uplink } => {
                for (schedule, config) in
                    [(&mut base.downlink, downlink), (&mut base.uplink, uplink)]
                {
                    if let Some(config) = config {
                        schedule.base.overlay(config);
                    }
                }
            }
            Request::Replace { downlink, uplink } => {
                for (schedule, config) in
                    [(&mut base.downlink, downlink), (&mut base.uplink, uplink)]
                {
                    if let Some(config) = config {
                        schedule.base = config.clone();
                    }
                }
            }
            Request::Play { scenario } => *base = catalog.lookup(scenario)?.impairment.clone(),
            Request::Reset => *base = Impairment::default(),
            Request::Outage { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: serde_json::Value) -> String {
        match Request::parse(body) {
            Err(ControlError::Invalid(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn set_and_replace_take_the_scenario_files_keys() {
        let (r, source) =
            Request::parse(json!({"action": "set", "downlink": {"loss_pct": 5}})).unwrap();
        assert_eq!(source, "api");
        let Request::Set { downlink, uplink } = r else {
            panic!("{r:?}")
        };
        assert_eq!(downlink.unwrap().loss_pct, Some(5.0));
        assert!(uplink.is_none());
        let (r, source) = Request::parse(json!({
            "action": "replace", "uplink": {"delay_ms": 40, "burst": {"p_pct": 1, "r_pct": 25}},
            "source": "page"
        }))
        .unwrap();
        assert_eq!(source, "page");
        assert!(matches!(
            r,
            Request::Replace {
                uplink: Some(_),
                downlink: None
            }
        ));
    }

    #[test]
    fn bad_requests_say_what_is_wrong_and_what_to_send() {
        let msg = refused(json!({"action": "set", "downlink": {"loss_pct": 150}}));
        assert!(
            msg.starts_with("downlink.loss_pct: 150 is out of range"),
            "{msg}"
        );
        let msg = refused(json!({"action": "set", "uplink": {"loss": 5}}));
        assert!(
            msg.contains("uplink") && msg.contains("unknown field"),
            "{msg}"
        );
        let msg = refused(json!({"action": "jump"}));
        assert!(
            msg.contains("unknown variant") && msg.contains("\"action\""),
            "{msg}"
        );
        let msg = refused(json!({"action": "set"}));
        assert!(msg.contains("downlink and/or uplink"), "{msg}");
        let msg = refused(json!({"action": "reset", "seconds": 3}));
        assert!(
            msg.starts_with("seconds: not a field of action Reset"),
            "{msg}"
        );
        let msg = refused(json!({"action": "outage", "seconds": 0}));
        assert!(msg.contains("out of range"), "{msg}");
        let msg = refused(json!({"action": "outage"}));
        assert!(msg.contains("\"seconds\": 3"), "{msg}");
        let msg = refused(json!({"action": "play"}));
        assert!(msg.contains("GET /api/scenarios"), "{msg}");
        let msg = refused(json!({"action": "reset", "source": ""}));
        assert!(msg.starts_with("source:"), "{msg}");
        let msg = refused(json!([1, 2]));
        assert!(msg.contains("JSON object"), "{msg}");
    }

    #[test]
    fn an_outage_cuts_both_directions_unless_told() {
        let (r, _) = Request::parse(json!({"action": "outage", "seconds": 2.5})).unwrap();
        assert_eq!(
            r,
            Request::Outage {
                length: Duration::from_millis(2500),
                links: vec![Link::Downlink, Link::Uplink]
            }
        );
        let (r, _) =
            Request::parse(json!({"action": "outage", "seconds": 1, "direction": "uplink"}))
                .unwrap();
        assert!(matches!(r, Request::Outage { links, .. } if links == vec![Link::Uplink]));
    }

    #[test]
    fn the_catalog_has_the_shipped_scenarios_and_presets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let (catalog, warnings) = Catalog::load(&dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        let outage = catalog.find("outage-3s").expect("outage-3s");
        assert_eq!(outage.kind, Kind::Scenario);
        assert_eq!(outage.label(), "scenario outage-3s");
        assert!(
            catalog.scenarios.iter().any(|e| e.kind == Kind::Preset),
            "no preset in scenarios/presets"
        );
    }
}
