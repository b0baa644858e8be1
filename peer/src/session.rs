//! `rtclab run`: one process, a signaling server on an ephemeral loopback port, a Rust sender and
//! a Rust receiver, one event log, one summary.

use crate::clock::RuntimeClock;
use crate::config::{PeerConfig, Role};
use crate::error::PeerError;
use crate::pcap::PcapSink;
use crate::peer::{PeerExit, run_peer};
use crate::summary::Summary;
use rtclab_events::{Event, EventSink, PeerRole, read_log};
use rtclab_media::{Codec, Resolution, SourceSpec};
use rtclab_scenarios::{CodecName, ReceiverKind, Scenario};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// How long peers get to stop and write their last statistics.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A scenario run as asked for on the command line.
#[derive(Clone)]
pub struct RunRequest {
    /// The scenario.
    pub scenario: Scenario,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Overrides the scenario's duration.
    pub duration_s: Option<f64>,
    /// Overrides the scenario's codec.
    pub codec: Option<Codec>,
    /// Receiver sends a PLI this often (tests).
    pub pli_interval: Option<Duration>,
    /// Told about every event as it is logged (the CLI's progress bar).
    pub on_record: Option<rtclab_events::Listener>,
    /// Overrides the scenario's receiver (`rust` or `browser`).
    pub receiver: Option<ReceiverKind>,
    /// The page a browser receiver opens (default: [`crate::demo::default_web_dir`]).
    pub web_dir: Option<PathBuf>,
}

impl RunRequest {
    /// A run of `scenario` into `out` with the scenario's own settings.
    pub fn new(scenario: Scenario, out: PathBuf) -> Self {
        RunRequest {
            scenario,
            out,
            duration_s: None,
            codec: None,
            pli_interval: None,
            on_record: None,
            receiver: None,
            web_dir: None,
        }
    }
}

/// What a finished run leaves behind.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// `DIR/events.jsonl`.
    pub events: PathBuf,
    /// `DIR/summary.json`.
    pub summary_path: PathBuf,
    /// The summary.
    pub summary: Summary,
    /// `completed`, `interrupted` or `error: ...`.
    pub reason: String,
}

fn codec_of(name: CodecName) -> Codec {
    match name {
        CodecName::H264 => Codec::H264,
        CodecName::Vp8 => Codec::Vp8,
    }
}

fn peer_config(req: &RunRequest, role: Role) -> PeerConfig {
    let s = &req.scenario;
    let mut cfg = PeerConfig::new(role);
    cfg.codec = req.codec.unwrap_or_else(|| codec_of(s.codec));
    cfg.source = match &s.source {
        None => SourceSpec::TestPattern,
        Some(p) => SourceSpec::File(p.clone()),
    };
    cfg.size = Resolution {
        width: s.width,
        height: s.height,
    };
    cfg.fps = s.fps;
    cfg.initial_bps = s.initial_bps;
    cfg.min_bps = s.min_bps;
    cfg.max_bps = s.max_bps;
    if role == Role::Receiver {
        cfg.pli_interval = req.pli_interval;
    }
    cfg
}

/// Runs a scenario to completion (or until `interrupt` resolves, e.g. on Ctrl-C).
///
/// Whatever happens, `events.jsonl` ends with `session.end` and `summary.json` is written.
pub async fn run_scenario(
    req: RunRequest,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, PeerError> {
    std::fs::create_dir_all(&req.out).map_err(|source| PeerError::Io {
        path: req.out.clone(),
        source,
    })?;
    // The source must exist before anything starts: failing after the call is up helps no one.
    if let Some(p) = &req.scenario.source
        && !p.is_file()
    {
        return Err(PeerError::Media(rtclab_media::MediaError::FileNotFound {
            path: p.clone(),
        }));
    }
    let receiver_kind = req.receiver.unwrap_or(req.scenario.receiver);
    let web_dir = req
        .web_dir
        .clone()
        .unwrap_or_else(crate::demo::default_web_dir);
    if receiver_kind == ReceiverKind::Browser {
        crate::browser::find_chromium()?;
        if !crate::demo::is_web_dir(&web_dir) {
            return Err(PeerError::Failed(format!(
                "a browser receiver needs the web page, but {} has no index.html; run from the \
                 repository (or pass its web/ folder)",
                web_dir.display()
            )));
        }
    }
    let runtime: Arc<dyn Runtime> = webrtc::runtime::default_runtime()
        .ok_or_else(|| PeerError::Failed("webrtc-rs was built without a runtime".into()))?;
    let events = req.out.join("events.jsonl");
    let mut sender_cfg = peer_config(&req, Role::Sender);
    let receiver_cfg = peer_config(&req, Role::Receiver);
    let duration = req.duration_s.unwrap_or(req.scenario.duration_s);
    let mut config = sender_cfg.describe();
    config["duration_s"] = duration.into();
    config["description"] = req.scenario.description.clone().into();
    config["seed"] = req.scenario.seed.into();
    config["receiver"] = match receiver_kind {
        ReceiverKind::Rust => "rust",
        ReceiverKind::Browser => "browser",
    }
    .into();
    let sink = EventSink::create(
        &events,
        Arc::new(RuntimeClock(runtime.clone())),
        Some(req.scenario.name.clone()),
        config,
    )?;
    if let Some(listener) = req.on_record.clone() {
        sink.set_listener(listener);
    }

    // The sender's tap sees both directions of the one media path; the receiver's would only
    // duplicate it.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let pcap_path = req.out.join("rtp.pcap");
    sender_cfg.pcap = Some(
        PcapSink::create(&pcap_path, base).map_err(|source| PeerError::Io {
            path: pcap_path.clone(),
            source,
        })?,
    );
    // The impairment sits on the sender's sockets: its egress is the media path (downlink), its
    // ingress the feedback path (uplink). The receiver's runtime stays clean.
    let sender_runtime: Arc<dyn Runtime> = if impaired(&req.scenario) {
        rtclab_netem::ImpairedRuntime::builder(runtime.clone(), req.scenario.impairment.clone())
            .seed(req.scenario.seed)
            .sink(sink.clone())
            .side(rtclab_netem::Side::Sender)
            .build()
            .map_err(|e| PeerError::Failed(format!("impairment: {e}")))?
    } else {
        runtime.clone()
    };
    let receiver = match receiver_kind {
        ReceiverKind::Rust => ReceiverSide::Rust(receiver_cfg),
        ReceiverKind::Browser => ReceiverSide::Browser {
            web_dir,
            codec: sender_cfg.codec,
            log: req.out.join("chromium.log"),
        },
    };
    let result = run_peers(
        &sink,
        runtime.clone(),
        sender_runtime,
        sender_cfg,
        receiver,
        duration,
        interrupt,
    )
    .await;
    let reason = match &result {
        Ok(reason) => reason.clone(),
        Err(e) => {
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: "error".into(),
                    message: e.to_string(),
                },
            );
            format!("error: {e}")
        }
    };
    let outcome = finish(&sink, &req.out, reason);
    match (result, outcome) {
        (Err(e), _) => Err(e),
        (Ok(_), outcome) => outcome,
    }
}

fn impaired(s: &Scenario) -> bool {
    let i = &s.impairment;
    !(i.downlink.base.is_empty()
        && i.downlink.steps.is_empty()
        && i.uplink.base.is_empty()
        && i.uplink.steps.is_empty())
}

/// Who receives in a run.
enum ReceiverSide {
    /// rtclab's Rust receiver, in this process.
    Rust(PeerConfig),
    /// Headless Chromium on the demo page; its stderr goes to `log`.
    Browser {
        web_dir: PathBuf,
        codec: Codec,
        log: PathBuf,
    },
}

/// A receiver that is running.
enum RunningReceiver {
    Rust {
        task: tokio::task::JoinHandle<Result<PeerExit, PeerError>>,
        stop: watch::Sender<bool>,
    },
    Browser(Box<crate::browser::Chromium>),
}

/// How long headless Chromium gets to open the page and join the room (it starts in ~1 s here).
const BROWSER_JOIN_TIMEOUT: Duration = Duration::from_secs(30);

impl RunningReceiver {
    /// Resolves if the receiver ends before it is told to.
    async fn ended(&mut self) -> PeerError {
        match self {
            RunningReceiver::Rust { task, .. } => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(exit)) => PeerError::Failed(format!("the receiver stopped early: {exit:?}")),
                Err(e) => PeerError::Failed(format!("the receiver task failed: {e}")),
            },
            RunningReceiver::Browser(chromium) => PeerError::Failed(format!(
                "the browser receiver stopped early: {}",
                chromium.exited().await
            )),
        }
    }

    /// Stops the receiver; an error it ended with, or a warning if it would not stop.
    async fn stop(self, sink: &EventSink) -> Result<(), PeerError> {
        match self {
            RunningReceiver::Rust { mut task, stop } => {
                let _ = stop.send(true);
                match tokio::time::timeout(STOP_GRACE, &mut task).await {
                    Ok(Ok(Ok(_))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e),
                    Ok(Err(e)) => Err(PeerError::Failed(format!("the receiver task failed: {e}"))),
                    Err(_) => {
                        sink.emit(
                            PeerRole::Lab,
                            Event::Note {
                                level: "warn".into(),
                                message: format!("the receiver did not stop within {STOP_GRACE:?}"),
                            },
                        );
                        Ok(())
                    }
                }
            }
            RunningReceiver::Browser(chromium) => {
                chromium.stop().await;
                Ok(())
            }
        }
    }
}

/// Starts the signaling server (with the page and the browser bridge for a browser receiver),
/// then the receiver, then the sender once the receiver is in the room; runs for `duration`.
async fn run_peers(
    sink: &EventSink,
    runtime: Arc<dyn Runtime>,
    sender_runtime: Arc<dyn Runtime>,
    sender_cfg: PeerConfig,
    receiver: ReceiverSide,
    duration: f64,
    interrupt: impl Future<Output = ()>,
) -> Result<String, PeerError> {
    let room = "run";
    let joined = Arc::new(tokio::sync::Notify::new());
    let state = match &receiver {
        ReceiverSide::Rust(_) => rtclab_signaling::AppState::new(None),
        ReceiverSide::Browser { web_dir, .. } => {
            let bridge = crate::bridge::BrowserBridge::new(sink.clone());
            let joined = joined.clone();
            rtclab_signaling::AppState::new(Some(web_dir.clone()))
                .with_event_hook(move |_room, event| {
                    if let Err(why) = bridge.accept(event) {
                        tracing::warn!("run: {why}");
                    }
                })
                // The page joins first, alone; the second join is our sender.
                .with_join_hook(move |_room, peers| {
                    if peers == 1 {
                        joined.notify_one();
                    }
                })
        }
    };
    let (listener, addr) = rtclab_signaling::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| PeerError::Signaling(format!("cannot start the signaling server: {e}")))?;
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let server = tokio::spawn(rtclab_signaling::serve_with_shutdown(
        listener,
        Arc::new(state),
        wait_true(server_stop_rx),
    ));
    sink.emit(
        PeerRole::Lab,
        Event::Signaling {
            what: format!("signaling server on ws://{addr}"),
        },
    );
    let url = format!("ws://{addr}");

    let started = start_receiver(sink, &runtime, &url, room, addr, receiver, &joined).await;
    let mut receiver = match started {
        Ok(r) => r,
        Err(e) => {
            let _ = server_stop_tx.send(true);
            let _ = tokio::time::timeout(STOP_GRACE, server).await;
            return Err(e);
        }
    };
    let (send_stop_tx, send_stop_rx) = watch::channel(false);
    let mut sender = tokio::spawn({
        let (url, sink, runtime) = (url.clone(), sink.clone(), sender_runtime);
        async move {
            run_peer(
                &url,
                room,
                sender_cfg,
                sink,
                runtime,
                wait_true(send_stop_rx),
            )
            .await
        }
    });

    tokio::pin!(interrupt);
    let mut sender_early = None;
    let mut receiver_early = None;
    let reason = tokio::select! {
        _ = runtime.sleep(Duration::from_secs_f64(duration)) => "completed".to_owned(),
        _ = &mut interrupt => "interrupted".to_owned(),
        r = &mut sender => { sender_early = Some(r); "sender stopped early".to_owned() }
        e = receiver.ended() => { receiver_early = Some(e); "receiver stopped early".to_owned() }
    };

    // Stop the sender first so its last statistics precede the receiver's.
    let _ = send_stop_tx.send(true);
    let sender_result = match sender_early {
        Some(r) => Err(match r {
            Ok(Err(e)) => e,
            Ok(Ok(exit)) => PeerError::Failed(format!("the sender stopped early: {exit:?}")),
            Err(e) => PeerError::Failed(format!("the sender task failed: {e}")),
        }),
        None => match tokio::time::timeout(STOP_GRACE, &mut sender).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(PeerError::Failed(format!("the sender task failed: {e}"))),
            Err(_) => {
                sink.emit(
                    PeerRole::Lab,
                    Event::Note {
                        level: "warn".into(),
                        message: format!("the sender did not stop within {STOP_GRACE:?}"),
                    },
                );
                Ok(())
            }
        },
    };
    let receiver_result = match receiver_early {
        Some(e) => Err(e),
        None => receiver.stop(sink).await,
    };
    let _ = server_stop_tx.send(true);
    let _ = tokio::time::timeout(STOP_GRACE, server).await;
    sender_result?;
    receiver_result?;
    Ok(reason)
}

/// Starts the receiver and returns once it is in the room, so the sender finds it and offers.
async fn start_receiver(
    sink: &EventSink,
    runtime: &Arc<dyn Runtime>,
    url: &str,
    room: &'static str,
    addr: std::net::SocketAddr,
    receiver: ReceiverSide,
    joined: &tokio::sync::Notify,
) -> Result<RunningReceiver, PeerError> {
    match receiver {
        ReceiverSide::Rust(cfg) => {
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn({
                let (url, sink, runtime) = (url.to_owned(), sink.clone(), runtime.clone());
                async move { run_peer(&url, room, cfg, sink, runtime, wait_true(stop_rx)).await }
            });
            // Let the receiver join first so the sender finds it and offers at once.
            runtime.sleep(Duration::from_millis(100)).await;
            Ok(RunningReceiver::Rust { task, stop })
        }
        ReceiverSide::Browser { codec, log, .. } => {
            let page = format!("http://{addr}/?room={room}&autostart=1&codec={}", codec);
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: "info".into(),
                    message: format!("headless Chromium opens {page}"),
                },
            );
            let mut chromium = crate::browser::Chromium::launch(&page, &log)?;
            tokio::select! {
                _ = joined.notified() => Ok(RunningReceiver::Browser(Box::new(chromium))),
                why = chromium.exited() => Err(PeerError::Failed(why)),
                _ = runtime.sleep(BROWSER_JOIN_TIMEOUT) => Err(PeerError::Timeout(format!(
                    "headless Chromium did not join the room within {BROWSER_JOIN_TIMEOUT:?}; \
                     see {}",
                    log.display()
                ))),
            }
        }
    }
}

/// `summary.json`: the backbone's summary plus the report's figures (utilisation, queuing delay,
/// freezes, reaction and recovery times, impairment totals); the summary's fields win on a clash.
pub fn merged_summary(summary: &Summary, report: &rtclab_report::RunReport) -> serde_json::Value {
    let mut value = serde_json::to_value(summary).unwrap_or_default();
    if let (Some(obj), serde_json::Value::Object(figures)) =
        (value.as_object_mut(), report.figures_json())
    {
        for (k, v) in figures {
            obj.entry(k).or_insert(v);
        }
    }
    value
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Computes the summary from the log, writes `summary.json` and `report.html`, and closes the
/// log with the summary.
fn finish(sink: &EventSink, out: &Path, reason: String) -> Result<RunOutcome, PeerError> {
    let records = read_log(sink.path())?;
    let summary = Summary::from_records(&records);
    let report = rtclab_report::RunReport::from_records(&records);
    let summary_value = merged_summary(&summary, &report);
    if let Err(e) = rtclab_report::write_html(&report, &summary_value, out) {
        sink.emit(
            PeerRole::Lab,
            Event::Note {
                level: "warn".into(),
                message: format!("report.html not written: {e}"),
            },
        );
    }
    let summary_path = out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary_value).unwrap_or_default();
    let write = std::fs::write(&summary_path, text + "\n").map_err(|source| PeerError::Io {
        path: summary_path.clone(),
        source,
    });
    sink.end(&reason, summary_value)?;
    write?;
    Ok(RunOutcome {
        events: sink.path().to_owned(),
        summary_path,
        summary,
        reason,
    })
}

/// One variant of a sweep: its name and its `summary.json`.
pub type SweepRow = (String, serde_json::Value);

/// `rtclab sweep`: runs `file` once per value of `key` (see
/// [`rtclab_scenarios::with_override`]), each into `out/<variant>`, and writes `out/sweep.txt`
/// (the comparison table) and `out/sweep.json`. Stops early, keeping what ran, on `interrupt`.
pub async fn run_sweep(
    file: &Path,
    key: &str,
    values: &[String],
    out: &Path,
    duration_s: Option<f64>,
    interrupt: impl Future<Output = ()>,
) -> Result<(Vec<SweepRow>, String), PeerError> {
    let text = std::fs::read_to_string(file).map_err(|source| PeerError::Io {
        path: file.to_owned(),
        source,
    })?;
    // Parse every variant before running any, so a bad value fails in a second, not an hour.
    let mut variants = Vec::new();
    for value in values {
        let variant = rtclab_scenarios::with_override(&text, file, key, value)
            .and_then(|t| Scenario::parse(&t, file))
            .map_err(|e| PeerError::Failed(format!("--set {key}={value}: {e}")))?;
        variants.push(variant);
    }
    tokio::pin!(interrupt);
    let mut rows = Vec::new();
    for scenario in variants {
        let name = scenario.name.clone();
        let mut req = RunRequest::new(scenario, out.join(&name));
        req.duration_s = duration_s;
        let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = interrupted.clone();
        let outcome = run_scenario(req, async {
            (&mut interrupt).await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        })
        .await?;
        let value = std::fs::read_to_string(&outcome.summary_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::to_value(&outcome.summary).unwrap_or_default());
        rows.push((name, value));
        if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    let table = rtclab_report::sweep_table(&rows);
    let write = |name: &str, body: String| {
        let path = out.join(name);
        std::fs::write(&path, body).map_err(|source| PeerError::Io { path, source })
    };
    write("sweep.txt", table.clone() + "\n")?;
    write(
        "sweep.json",
        serde_json::to_string_pretty(
            &rows
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap_or_default(),
    )?;
    Ok((rows, table))
}
