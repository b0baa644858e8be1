//! `rtclab run`: one process, a signaling server on an ephemeral loopback port, a Rust sender and
//! a Rust receiver, one event log, one summary.

use crate::error::RunError;
use rtclab_events::{Event, EventSink, PeerRole, read_log};
use rtclab_media::{Codec, Resolution, SourceSpec};
use rtclab_peer::clock::RuntimeClock;
use rtclab_peer::config::{PeerConfig, Role};
use rtclab_peer::interceptors::pcap::PcapSink;
use rtclab_peer::peer::{PeerExit, run_peer};
use rtclab_report::Summary;
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
    /// The page a browser peer opens (default: [`crate::demo::default_web_dir`]).
    pub web_dir: Option<PathBuf>,
    /// Congestion controller of the Rust sender (default: rtclab's).
    pub cc: Option<rtclab_peer::config::CcKind>,
    /// Headless Chromium sends (its fake camera, its own congestion control) to the Rust
    /// receiver, whose ingress then carries the downlink impairment (`rtclab bench cc`).
    pub browser_sender: bool,
    /// FlexFEC-03 between the Rust peers; `false` leaves it to the scenario's `fec` key.
    pub fec: bool,
    /// The Rust sender scales its resolution with the target (`false`: `--no-scaling`).
    pub resolution_scaling: bool,
    /// The Rust receiver's jitter buffer holds frames at least this long.
    pub min_playout_delay: Duration,
    /// Both Rust peers on one virtual clock ([`crate::virtual_run`]): the run takes as long as
    /// its CPU work, not its duration.
    pub virtual_time: bool,
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
            browser_sender: false,
            cc: None,
            fec: false,
            resolution_scaling: true,
            min_playout_delay: Duration::ZERO,
            virtual_time: false,
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
    /// A virtual-time run: what its loop did (virtual time, polls, the CPU time of the thread
    /// that ran both peers' network stacks), for benchmarks.
    pub virtual_loop: Option<rtclab_netem::SimStats>,
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
    cfg.cc = req.cc.unwrap_or_default();
    cfg.fec = req.fec || s.fec;
    cfg.resolution_scaling = req.resolution_scaling;
    cfg.min_playout_delay = req.min_playout_delay;
    cfg.ice_timers = rtclab_peer::config::IceTimers {
        disconnected: s.ice.disconnected_s.map(Duration::from_secs_f64),
        failed: s.ice.failed_s.map(Duration::from_secs_f64),
    };
    cfg.ice_policy = match s.ice.policy {
        rtclab_scenarios::IcePolicyName::All => rtclab_peer::config::IcePolicy::All,
        rtclab_scenarios::IcePolicyName::Relay => rtclab_peer::config::IcePolicy::Relay,
    };
    cfg
}

/// Why a run of `scenario` cannot be on a virtual clock (the end of a sentence that starts with
/// "--virtual-time"), or `None` when it can: only the Rust peers and rtclab's own network
/// keep virtual time.
pub fn virtual_time_refusal(
    scenario: &Scenario,
    receiver: ReceiverKind,
    browser_sends: bool,
) -> Option<&'static str> {
    if receiver == ReceiverKind::Browser || browser_sends {
        return Some(
            "runs the two Rust peers only: Chromium keeps real time; drop the browser \
             (receiver = \"rust\")",
        );
    }
    if scenario.ice.turn != rtclab_scenarios::TurnKind::None || scenario.ice.stun {
        return Some(
            "has no STUN/TURN server (they run in real time on real sockets): use a scenario \
             without [ice] turn or stun",
        );
    }
    None
}

/// Runs a scenario to completion (or until `interrupt` resolves, e.g. on Ctrl-C).
///
/// Whatever happens, `events.jsonl` ends with `session.end` and `summary.json` is written.
pub async fn run_scenario(
    req: RunRequest,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, RunError> {
    std::fs::create_dir_all(&req.out).map_err(|source| RunError::Io {
        path: req.out.clone(),
        source,
    })?;
    // The source must exist before anything starts: failing after the call is up helps no one.
    if let Some(p) = &req.scenario.source {
        rtclab_media::check_video_file(p).map_err(RunError::Media)?;
    }
    let receiver_kind = req.receiver.unwrap_or(req.scenario.receiver);
    let browser_sends = req.browser_sender;
    if browser_sends && receiver_kind == ReceiverKind::Browser {
        return Err(RunError::Failed(
            "a run has one browser: with Chromium as the sender the receiver must be rust".into(),
        ));
    }
    if req.scenario.ice.transport == rtclab_scenarios::TurnTransport::Tcp
        && receiver_kind != ReceiverKind::Browser
    {
        return Err(RunError::Failed(
            "ice.transport = \"tcp\" needs a browser receiver (receiver = \"browser\"): \
             webrtc-rs 0.21's TURN client skips non-UDP TURN URLs, so Rust peers cannot relay \
             over TCP"
                .into(),
        ));
    }
    let web_dir = req
        .web_dir
        .clone()
        .unwrap_or_else(crate::demo::default_web_dir);
    if receiver_kind == ReceiverKind::Browser || browser_sends {
        crate::browser::find_chromium()?;
        if !crate::demo::is_web_dir(&web_dir) {
            return Err(RunError::Failed(format!(
                "a browser peer needs the web page, but {} has no index.html; run from the \
                 repository (or pass its web/ folder)",
                web_dir.display()
            )));
        }
    }
    let sim = if req.virtual_time || req.scenario.virtual_time {
        if let Some(why) = virtual_time_refusal(&req.scenario, receiver_kind, browser_sends) {
            return Err(RunError::Failed(format!("--virtual-time {why}")));
        }
        Some(Arc::new(rtclab_netem::SimRuntime::new()))
    } else {
        None
    };
    let runtime: Arc<dyn Runtime> = match &sim {
        Some(sim) => sim.clone(),
        None => webrtc::runtime::default_runtime()
            .ok_or_else(|| RunError::Failed("webrtc-rs was built without a runtime".into()))?,
    };
    let events = req.out.join("events.jsonl");
    let mut sender_cfg = peer_config(&req, Role::Sender);
    let mut receiver_cfg = peer_config(&req, Role::Receiver);
    if let Some(sim) = &sim {
        sender_cfg.work_gate = crate::virtual_run::work_gate(sim);
        sender_cfg.rtp_seed = Some(req.scenario.seed);
        receiver_cfg.work_gate = crate::virtual_run::work_gate(sim);
        let cost = Some(rtclab_peer::config::CodecCost::measured(sender_cfg.codec));
        sender_cfg.codec_cost = cost;
        receiver_cfg.codec_cost = cost;
        sender_cfg.virtual_epoch = Some(sim.epoch());
    }
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
    config["sender"] = if browser_sends { "browser" } else { "rust" }.into();
    config["clock"] = if sim.is_some() { "virtual" } else { "real" }.into();
    if browser_sends {
        config["estimator"] = "chromium".into();
    }
    let ice = &req.scenario.ice;
    config["ice"] = serde_json::json!({
        "policy": format!("{:?}", ice.policy).to_lowercase(),
        "turn": format!("{:?}", ice.turn).to_lowercase(),
        "stun": ice.stun,
        "transport": format!("{:?}", ice.transport).to_lowercase(),
    });
    let sink = EventSink::create(
        &events,
        Arc::new(RuntimeClock(runtime.clone())),
        Some(req.scenario.name.clone()),
        config,
    )?;
    if let Some(listener) = req.on_record.clone() {
        sink.set_listener(listener);
    }
    if let Some(message) = req.scenario.cut_short(duration) {
        sink.emit(
            PeerRole::Lab,
            Event::Note {
                level: rtclab_events::NoteLevel::Warn,
                message,
            },
        );
    }
    let run_ice = match crate::ice_servers::IceServers::for_run(&req.scenario.ice, &sink).await {
        Ok(i) => i,
        Err(e) => {
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: rtclab_events::NoteLevel::Error,
                    message: e.to_string(),
                },
            );
            let _ = finish(&sink, &req.out, format!("error: {e}"));
            return Err(e);
        }
    };
    if let Some(servers) = &run_ice.rust_servers {
        sender_cfg.ice_servers = servers.clone();
        receiver_cfg.ice_servers = servers.clone();
    }
    // The browser takes the scenario's policy only as the receiver; as the sender (`bench cc`)
    // it is Chromium's own call, as in a real browser.
    let browser_relay = run_ice.policy == rtclab_peer::config::IcePolicy::Relay;

    // One Rust peer's tap sees both directions of the one media path (the sender's, unless a
    // browser sends); a second would only duplicate it.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let pcap_path = req.out.join("rtp.pcap");
    let pcap = Some(
        PcapSink::create(&pcap_path, base).map_err(|source| RunError::Io {
            path: pcap_path.clone(),
            source,
        })?,
    );
    // The impairment sits on the Rust sender's sockets: egress is the media path (downlink),
    // ingress the feedback path (uplink). When Chromium sends, it sits on the Rust receiver's
    // sockets instead, ingress = downlink: the same link, seen from its other end.
    let impair_side = if browser_sends {
        rtclab_netem::Side::Receiver
    } else {
        rtclab_netem::Side::Sender
    };
    let impaired_runtime: Arc<dyn Runtime> = if impaired(&req.scenario) {
        rtclab_netem::ImpairedRuntime::builder(runtime.clone(), req.scenario.impairment.clone())
            .seed(req.scenario.seed)
            .sink(sink.clone())
            .side(impair_side)
            .label(format!("scenario {}", req.scenario.name))
            .build()
            .map_err(|e| RunError::Failed(format!("impairment: {e}")))?
    } else {
        runtime.clone()
    };
    let browser = |send: bool| PeerSide::Browser {
        web_dir: web_dir.clone(),
        codec: sender_cfg.codec,
        log: req.out.join("chromium.log"),
        send,
        relay: browser_relay && !send,
        camera: send.then(|| crate::browser::FakeCamera {
            source: sender_cfg.source.clone(),
            size: sender_cfg.size,
            fps: sender_cfg.fps,
        }),
    };
    let (sender, receiver) = if browser_sends {
        receiver_cfg.pcap = pcap;
        (
            browser(true),
            PeerSide::Rust(receiver_cfg, impaired_runtime),
        )
    } else {
        sender_cfg.pcap = pcap;
        let receiver = match receiver_kind {
            ReceiverKind::Rust => PeerSide::Rust(receiver_cfg, runtime.clone()),
            ReceiverKind::Browser => browser(false),
        };
        (PeerSide::Rust(sender_cfg, impaired_runtime), receiver)
    };
    let mut virtual_loop = None;
    let result = match (sim, sender, receiver) {
        (Some(sim), PeerSide::Rust(s_cfg, s_rt), PeerSide::Rust(r_cfg, r_rt)) => {
            crate::virtual_run::run_peers_virtual(
                sim,
                &sink,
                (s_cfg, s_rt),
                (r_cfg, r_rt),
                duration,
                interrupt,
            )
            .await
            .map(|(reason, stats)| {
                virtual_loop = Some(stats);
                reason
            })
        }
        (_, sender, receiver) => {
            run_peers(
                &sink,
                runtime.clone(),
                sender,
                receiver,
                run_ice.issuer.clone(),
                duration,
                interrupt,
            )
            .await
        }
    };
    run_ice.stop(&req.out, &sink).await;
    let reason = match &result {
        Ok(reason) => reason.clone(),
        Err(e) => {
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: rtclab_events::NoteLevel::Error,
                    message: e.to_string(),
                },
            );
            format!("error: {e}")
        }
    };
    let outcome = finish(&sink, &req.out, reason);
    match (result, outcome) {
        (Err(e), _) => Err(e),
        (Ok(_), outcome) => outcome.map(|o| RunOutcome { virtual_loop, ..o }),
    }
}

fn impaired(s: &Scenario) -> bool {
    let i = &s.impairment;
    !(i.downlink.base.is_empty()
        && i.downlink.steps.is_empty()
        && i.uplink.base.is_empty()
        && i.uplink.steps.is_empty())
}

/// One end of a run's call.
enum PeerSide {
    /// An rtclab Rust peer in this process, on its (possibly impaired) runtime.
    Rust(PeerConfig, Arc<dyn Runtime>),
    /// Headless Chromium on the demo page; its stderr goes to `log`. `send`: the page sends its
    /// (fake) camera instead of receiving; `relay`: relay-only (`iceTransportPolicy: 'relay'`).
    Browser {
        web_dir: PathBuf,
        codec: Codec,
        log: PathBuf,
        send: bool,
        relay: bool,
        /// What the fake camera plays when the page sends.
        camera: Option<crate::browser::FakeCamera>,
    },
}

impl PeerSide {
    fn web_dir(&self) -> Option<&PathBuf> {
        match self {
            PeerSide::Browser { web_dir, .. } => Some(web_dir),
            PeerSide::Rust(..) => None,
        }
    }
}

/// One end of a call, running.
enum RunningPeer {
    Rust {
        role: Role,
        task: tokio::task::JoinHandle<Result<PeerExit, rtclab_peer::PeerError>>,
        stop: watch::Sender<bool>,
    },
    Browser(Box<crate::browser::Chromium>),
}

/// How long headless Chromium gets to open the page and join the room (it starts in ~1 s here).
const BROWSER_JOIN_TIMEOUT: Duration = Duration::from_secs(30);

impl RunningPeer {
    /// Resolves if the peer ends before it is told to.
    async fn ended(&mut self) -> RunError {
        match self {
            RunningPeer::Rust { role, task, .. } => match task.await {
                Ok(Err(e)) => e.into(),
                Ok(Ok(exit)) => RunError::StoppedEarly {
                    role: format!("{role:?}"),
                    exit: format!("{exit:?}"),
                },
                Err(e) => RunError::Failed(format!("the {role:?} task failed: {e}")),
            },
            RunningPeer::Browser(chromium) => RunError::Failed(format!(
                "the browser stopped early: {}",
                chromium.exited().await
            )),
        }
    }

    /// Stops the peer (a Rust peer says bye and writes its last statistics); the error it ended
    /// with, or a warning in the log if it would not stop.
    async fn stop(self, sink: &EventSink) -> Result<(), RunError> {
        match self {
            RunningPeer::Rust {
                role,
                mut task,
                stop,
            } => {
                let _ = stop.send(true);
                match tokio::time::timeout(STOP_GRACE, &mut task).await {
                    Ok(Ok(Ok(_))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.into()),
                    Ok(Err(e)) => Err(RunError::Failed(format!("the {role:?} task failed: {e}"))),
                    Err(_) => {
                        sink.emit(
                            PeerRole::Lab,
                            Event::Note {
                                level: rtclab_events::NoteLevel::Warn,
                                message: format!("the {role:?} did not stop within {STOP_GRACE:?}"),
                            },
                        );
                        Ok(())
                    }
                }
            }
            RunningPeer::Browser(chromium) => {
                chromium.stop().await;
                Ok(())
            }
        }
    }
}

/// Starts the signaling server (with the page and the browser bridge when a browser takes
/// part), then the receiver, then the sender once the receiver is in the room; runs for
/// `duration`.
async fn run_peers(
    sink: &EventSink,
    runtime: Arc<dyn Runtime>,
    sender: PeerSide,
    receiver: PeerSide,
    ice: Option<rtclab_signaling::IceIssuer>,
    duration: f64,
    interrupt: impl Future<Output = ()>,
) -> Result<String, RunError> {
    let room = "run";
    // How many peers are in the room, as the server last said.
    let (joins_tx, joins) = watch::channel(0usize);
    let state = match sender.web_dir().or(receiver.web_dir()) {
        None => rtclab_signaling::AppState::new(None),
        Some(web_dir) => {
            let bridge = crate::bridge::BrowserBridge::new(sink.clone());
            rtclab_signaling::AppState::new(Some(web_dir.clone()))
                .with_event_hook(move |_room, event| {
                    if let Err(why) = bridge.accept(event) {
                        tracing::warn!("run: {why}");
                    }
                })
                .with_join_hook(move |_room, peers| {
                    let _ = joins_tx.send(peers);
                })
        }
    };
    let state = match ice {
        Some(ice) => state.with_ice(ice),
        None => state,
    };
    let (listener, addr) = rtclab_signaling::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| RunError::Signaling(format!("cannot start the signaling server: {e}")))?;
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
    let starter = Starter {
        sink,
        runtime: &runtime,
        addr,
        room,
        joins,
    };
    let mut receiver = match starter.start(receiver, Role::Receiver, 1).await {
        Ok(r) => r,
        Err(e) => {
            let _ = server_stop_tx.send(true);
            let _ = tokio::time::timeout(STOP_GRACE, server).await;
            return Err(e);
        }
    };
    let mut sender = match starter.start(sender, Role::Sender, 2).await {
        Ok(s) => s,
        Err(e) => {
            let _ = receiver.stop(sink).await;
            let _ = server_stop_tx.send(true);
            let _ = tokio::time::timeout(STOP_GRACE, server).await;
            return Err(e);
        }
    };

    tokio::pin!(interrupt);
    let mut sender_early = None;
    let mut receiver_early = None;
    let reason = tokio::select! {
        _ = runtime.sleep(Duration::from_secs_f64(duration)) => "completed".to_owned(),
        _ = &mut interrupt => "interrupted".to_owned(),
        e = sender.ended() => { sender_early = Some(e); "sender stopped early".to_owned() }
        e = receiver.ended() => { receiver_early = Some(e); "receiver stopped early".to_owned() }
    };

    // Stop the sender first so its last statistics precede the receiver's.
    let sender_result = match sender_early {
        Some(e) => Err(e),
        None => sender.stop(sink).await,
    };
    let receiver_result = match receiver_early {
        Some(e) => Err(e),
        None => receiver.stop(sink).await,
    };
    let _ = server_stop_tx.send(true);
    let _ = tokio::time::timeout(STOP_GRACE, server).await;
    RunError::cause(sender_result, receiver_result)?;
    Ok(reason)
}

/// What starting a peer of a run needs.
struct Starter<'a> {
    sink: &'a EventSink,
    runtime: &'a Arc<dyn Runtime>,
    addr: std::net::SocketAddr,
    room: &'static str,
    joins: watch::Receiver<usize>,
}

impl Starter<'_> {
    /// Starts one end and returns once it is in the room (the `nth` peer there), so that the
    /// sender, started second, finds the receiver and offers at once.
    async fn start(&self, side: PeerSide, role: Role, nth: usize) -> Result<RunningPeer, RunError> {
        match side {
            PeerSide::Rust(cfg, runtime) => {
                let (stop, stop_rx) = watch::channel(false);
                let room = self.room;
                let task = tokio::spawn({
                    let (url, sink) = (format!("ws://{}", self.addr), self.sink.clone());
                    async move { run_peer(&url, room, cfg, sink, runtime, wait_true(stop_rx)).await }
                });
                // A Rust peer joins within milliseconds; there is no hook without a browser.
                self.runtime.sleep(Duration::from_millis(100)).await;
                Ok(RunningPeer::Rust { role, task, stop })
            }
            PeerSide::Browser {
                codec,
                log,
                send,
                relay,
                camera,
                ..
            } => {
                let page = format!(
                    "http://{}/?room={}&autostart=1&codec={codec}{}{}",
                    self.addr,
                    self.room,
                    if send { "&send=camera" } else { "" },
                    if relay { "&relay=1" } else { "" }
                );
                self.sink.emit(
                    PeerRole::Lab,
                    Event::Note {
                        level: rtclab_events::NoteLevel::Info,
                        message: format!("headless Chromium opens {page}"),
                    },
                );
                let clip = match camera {
                    Some(cam) => Some(cam.write_clip().await?),
                    None => None,
                };
                let mut chromium = crate::browser::Chromium::launch(&page, &log, clip)?;
                let mut joins = self.joins.clone();
                tokio::select! {
                    _ = joins.wait_for(|n| *n >= nth) => Ok(RunningPeer::Browser(Box::new(chromium))),
                    why = chromium.exited() => Err(RunError::Failed(why)),
                    _ = self.runtime.sleep(BROWSER_JOIN_TIMEOUT) => Err(RunError::Timeout(format!(
                        "headless Chromium did not join the room within {BROWSER_JOIN_TIMEOUT:?}; \
                         see {}",
                        log.display()
                    ))),
                }
            }
        }
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Computes the summary from the log, writes `summary.json` and `report.html`, and closes the
/// log with the summary.
fn finish(sink: &EventSink, out: &Path, reason: String) -> Result<RunOutcome, RunError> {
    let records = read_log(sink.path())?;
    let summary = Summary::from_records(&records);
    let report = rtclab_report::RunReport::from_records(&records);
    let summary_value = rtclab_report::summary::merged(&summary, &report);
    if let Err(e) = rtclab_report::write_html(&report, &summary_value, out) {
        sink.emit(
            PeerRole::Lab,
            Event::Note {
                level: rtclab_events::NoteLevel::Warn,
                message: format!("report.html not written: {e}"),
            },
        );
    }
    let summary_path = out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary_value).unwrap_or_default();
    let write = std::fs::write(&summary_path, text + "\n").map_err(|source| RunError::Io {
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
        virtual_loop: None,
    })
}

/// One run of a comparison table (`sweep`, `bench cc`, `bench qoe`).
pub struct TableRun {
    /// What the run left behind.
    pub outcome: RunOutcome,
    /// Its `summary.json` (the summary with the report's figures), or the bare summary if the
    /// file could not be read back.
    pub summary: serde_json::Value,
    /// `interrupt` fired during the run: the table stops after it.
    pub interrupted: bool,
}

/// Runs `req` as one row of a table; `interrupt` is shared by all the rows, so it is borrowed.
pub async fn run_for_table<F: Future<Output = ()>>(
    req: RunRequest,
    interrupt: std::pin::Pin<&mut F>,
) -> Result<TableRun, RunError> {
    let mut interrupted = false;
    let outcome = run_scenario(req, async {
        interrupt.await;
        interrupted = true;
    })
    .await?;
    let summary = std::fs::read_to_string(&outcome.summary_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::to_value(&outcome.summary).unwrap_or_default());
    Ok(TableRun {
        outcome,
        summary,
        interrupted,
    })
}
