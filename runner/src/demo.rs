//! `rtclab demo`: the signaling server serving the page, and a Rust sender that joins a room
//! whenever a browser joins it.
//!
//! Each browser session gets its own event log (`OUT/<room>-<unix time>/events.jsonl`). The Rust
//! sender logs into it, the browser's `getStats()` snapshots arrive over the signaling socket and
//! are written into it as `peer: "browser"` lines, and every line is pushed back to the page so
//! it can chart the sender's target and encoder bitrate next to what it receives.

use crate::bridge::BrowserBridge;
use crate::error::RunError;
use crate::ice_servers;
use crate::live::{Catalog, Entry, LiveSession};
use rtclab_events::{EventSink, Record, read_log};
use rtclab_netem::ImpairedRuntime;
use rtclab_peer::clock::RuntimeClock;
use rtclab_peer::config::PeerConfig;
use rtclab_peer::peer::{PeerExit, run_peer};
use rtclab_report::Summary;
use rtclab_signaling::{AppState, ControlError, ImpairControl, ServerMessage};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// What `rtclab demo` is asked to do.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Address to serve on (port 0 = any free port).
    pub addr: SocketAddr,
    /// The web page's folder.
    pub web_dir: PathBuf,
    /// Where session logs go.
    pub out: PathBuf,
    /// The room printed in the URL.
    pub room: String,
    /// Settings of the Rust sender started for each browser.
    pub sender: PeerConfig,
    /// The embedded STUN/TURN server (loopback); `None` runs without one (host candidates only).
    pub turn: Option<DemoTurn>,
    /// Where the scenarios and presets the page may play are (`scenarios/`, with `presets/`).
    pub scenarios_dir: PathBuf,
    /// A scenario whose network (impairment and schedule) every session plays from its start
    /// (`rtclab demo --scenario FILE`); the rest of the file (codec, size, duration) is not used.
    pub scenario: Option<Entry>,
    /// Origins allowed to use the server besides its own and loopback (`--allow-origin`).
    pub allowed_origins: Vec<String>,
}

/// Seed of the impairment when no scenario names one: fixed, so two sessions given the same
/// settings drop the same packets.
const DEFAULT_SEED: u64 = 1;

/// The demo's embedded STUN/TURN server.
#[derive(Clone)]
pub struct DemoTurn {
    /// UDP listener; if its port is taken, a free port is used instead (and printed).
    pub addr: SocketAddr,
    /// Secret of the TURN REST credentials handed to each peer on join (random if `None`).
    pub secret: Option<String>,
}

impl std::fmt::Debug for DemoTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of debug output.
        f.debug_struct("DemoTurn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the demo's TURN server: on `turn.addr`, or on a free loopback port when that one is
/// taken (a second demo, another STUN server on 3478). Its `turn.*` events go to `sink`, a log of
/// its own: the server serves every room, and its events do not name the room.
async fn start_turn(
    turn: &DemoTurn,
    sink: EventSink,
) -> Result<(rtclab_turn::TurnServer, rtclab_signaling::IceIssuer), RunError> {
    let secret = turn
        .secret
        .clone()
        .unwrap_or_else(ice_servers::random_secret);
    let at = ice_servers::Embedded {
        addr: turn.addr,
        fallback_to_free_port: true,
    };
    let server = ice_servers::start_embedded(&at, &secret, Some(sink)).await?;
    let issuer =
        rtclab_signaling::IceIssuer::new(secret, vec![server.stun_url()], vec![server.turn_url()]);
    Ok((server, issuer))
}

/// The live session of one room.
struct RoomSession {
    sink: EventSink,
    /// Live impairment control of the Rust sender's sockets (`/api/impair`).
    live: Arc<LiveSession>,
    bridge: Arc<BrowserBridge>,
    log: PathBuf,
}

/// Shared between the server hooks and the sessions they start.
struct Demo {
    cfg: DemoConfig,
    url: String,
    runtime: Arc<dyn Runtime>,
    /// The latest session per room (kept after it ends, so its log can still be downloaded).
    rooms: Mutex<HashMap<String, RoomSession>>,
    /// Set once the server state exists (the hooks need it to push events to the page).
    state: Mutex<Weak<AppState>>,
    /// What the page may play (`GET /api/scenarios`).
    catalog: Catalog,
    shutdown: watch::Receiver<bool>,
    /// Sessions started so far: session n's impairment uses seed `base + n`, so two rooms with
    /// the same settings do not drop the same packets (as `rtclab relay`'s allocations).
    sessions: std::sync::atomic::AtomicU64,
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Demo {
    /// A browser joined `room` alone: start a session and a Rust sender for it.
    fn start_session(self: &Arc<Self>, room: &str) {
        let log = self
            .cfg
            .out
            .join(format!("{room}-{}", unix_time()))
            .join("events.jsonl");
        let n = self
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = self.cfg.scenario_seed().wrapping_add(n);
        let mut config = self.cfg.sender.describe();
        config["mode"] = "demo".into();
        config["room"] = room.into();
        // The impairment's seed, to replay this room's link with `rtclab run --seed`.
        config["seed"] = seed.into();
        let sink = match EventSink::create(
            &log,
            Arc::new(RuntimeClock(self.runtime.clone())),
            None,
            config,
        ) {
            Ok(sink) => sink,
            Err(e) => {
                tracing::error!("demo: {e}");
                return;
            }
        };
        // Every line goes to the page too.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let room_name = room.to_owned();
        sink.set_listener(Arc::new(move |record: &Record| {
            if let (Some(state), Ok(event)) = (state.upgrade(), serde_json::to_value(record)) {
                state.broadcast(&room_name, &ServerMessage::Event { event });
            }
        }));
        // The Rust sender's sockets pass through the impairment engine, one per room: egress is
        // the media path (downlink), ingress the feedback path (uplink). Its schedule clock is
        // the log's, so an `impair.change` line's `at_s` equals its `t`.
        let played = self.cfg.scenario.as_ref();
        let impairment = played.map(|e| e.impairment.clone()).unwrap_or_default();
        let mut builder = ImpairedRuntime::builder(self.runtime.clone(), impairment)
            .seed(seed)
            .sink(sink.clone())
            .start(sink.start());
        if let Some(entry) = played {
            builder = builder.label(entry.label());
        }
        let impaired = match builder.build() {
            Ok(rt) => rt,
            Err(e) => {
                // Checked when the scenario was loaded; reaching this is a bug, not bad input.
                tracing::error!("demo: impairment: {e}");
                close(&sink, &format!("error: impairment: {e}"));
                return;
            }
        };
        let live = Arc::new(LiveSession::new(impaired.clone(), sink.clone(), played));
        println!(
            "rtclab demo: browser joined room {room}; session log {}",
            log.display()
        );
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).insert(
            room.to_owned(),
            RoomSession {
                live,
                sink: sink.clone(),
                bridge: Arc::new(BrowserBridge::new(sink.clone())),
                log: log.clone(),
            },
        );
        let demo = self.clone();
        let room = room.to_owned();
        tokio::spawn(async move {
            let mut stop = demo.shutdown.clone();
            let result = run_peer(
                &demo.url,
                &room,
                demo.cfg.sender.clone(),
                sink.clone(),
                impaired,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await;
            let reason = match &result {
                Ok(PeerExit::PeerLeft) => "browser left".to_owned(),
                Ok(PeerExit::Shutdown) => "interrupted".to_owned(),
                Err(e) => format!("error: {e}"),
            };
            close(&sink, &reason);
            println!("rtclab demo: session in room {room} ended ({reason})");
        });
    }

    /// A browser event for `room`'s log.
    fn browser_event(&self, room: &str, event: serde_json::Value) {
        let bridge = match self
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
        {
            Some(s) => s.bridge.clone(),
            None => return,
        };
        if let Err(why) = bridge.accept(event) {
            tracing::warn!("demo: {why}");
        }
    }
}

impl DemoConfig {
    fn scenario_seed(&self) -> u64 {
        self.scenario.as_ref().map_or(DEFAULT_SEED, |e| e.seed)
    }
}

/// `/api/impair` and `/api/scenarios` for the demo's rooms.
struct DemoControl(Arc<Demo>);

impl DemoControl {
    fn session(&self, room: &str) -> Result<Arc<LiveSession>, ControlError> {
        let rooms = self.0.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let session = rooms
            .get(room)
            .ok_or_else(|| ControlError::NoSession(room.to_owned()))?;
        if session.sink.ended() {
            return Err(ControlError::Ended(room.to_owned()));
        }
        Ok(session.live.clone())
    }
}

impl ImpairControl for DemoControl {
    fn catalog(&self) -> serde_json::Value {
        self.0.catalog.to_json()
    }

    fn state(&self, room: &str) -> Result<serde_json::Value, ControlError> {
        Ok(self.session(room)?.state())
    }

    fn change(
        &self,
        room: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, ControlError> {
        self.session(room)?.change(request, &self.0.catalog)
    }
}

/// Prints each kind of TURN refusal once, in words. webrtc-rs logs a refused permission as a
/// red "TURN permission request failed ... 403" (silenced in the CLI's log filter); in the demo
/// it is expected: the lab's TURN server relays only to loopback addresses, and the browser
/// also offers its LAN addresses, so the Rust sender's pairs from its relay candidate to those
/// are refused on purpose while the loopback pairs carry the media.
fn explain_refusals() -> impl Fn(&Record) + Send + Sync + 'static {
    let seen = Mutex::new(std::collections::HashSet::new());
    move |record: &Record| {
        let rtclab_events::Event::TurnRefused {
            method,
            code,
            reason,
            peer_addr,
            ..
        } = &record.event
        else {
            return;
        };
        if !seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((method.clone(), *code))
        {
            return;
        }
        let peer = peer_addr.as_deref().unwrap_or("a peer");
        if method == "create_permission" && *code == 403 {
            println!(
                "rtclab demo: the TURN server refused a permission for {peer} (403 Forbidden), as \
                 it should: it relays only to loopback addresses (a lab server must not be an open \
                 relay). Pairs from the relay to the browser's other addresses fail; the loopback \
                 pairs carry the media. Shown once; every refusal is a turn.refused line in the \
                 TURN server's log."
            );
        } else {
            println!("rtclab demo: the TURN server refused a {method} request ({code}): {reason}");
        }
    }
}

/// Ends a session's log with its summary.
fn close(sink: &EventSink, reason: &str) {
    let summary = read_log(sink.path())
        .map(|r| serde_json::to_value(Summary::from_records(&r)).unwrap_or_default())
        .unwrap_or_default();
    if let Err(e) = sink.end(reason, summary) {
        tracing::error!("demo: {e}");
    }
}

/// Runs the demo until `interrupt` resolves. `on_ready` gets the page URL once listening.
pub async fn run_demo(
    cfg: DemoConfig,
    runtime: Arc<dyn Runtime>,
    interrupt: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&str),
) -> Result<(), RunError> {
    let (listener, addr) = rtclab_signaling::bind(cfg.addr)
        .await
        .map_err(|e| RunError::Signaling(format!("{e}; pick another port with --addr")))?;
    // `turn-server/` never clashes with a session folder, which is always `<room>-<time>`.
    let turn_log = cfg
        .out
        .join("turn-server")
        .join(unix_time().to_string())
        .join("events.jsonl");
    let (turn, turn_sink) = match &cfg.turn {
        Some(t) => {
            let sink = EventSink::create(
                &turn_log,
                Arc::new(RuntimeClock(runtime.clone())),
                None,
                serde_json::json!({ "mode": "demo", "what": "the embedded STUN/TURN server" }),
            )?;
            sink.set_listener(Arc::new(explain_refusals()));
            (Some(start_turn(t, sink.clone()).await?), Some(sink))
        }
        None => (None, None),
    };
    let (catalog, warnings) = Catalog::load(&cfg.scenarios_dir);
    for w in warnings {
        println!("rtclab demo: {w}");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let demo = Arc::new(Demo {
        catalog,
        url: format!("ws://{addr}"),
        cfg: cfg.clone(),
        runtime,
        rooms: Mutex::new(HashMap::new()),
        state: Mutex::new(Weak::new()),
        shutdown: stop_rx,
        sessions: std::sync::atomic::AtomicU64::new(0),
    });
    let web_dir = cfg.web_dir.is_dir().then(|| cfg.web_dir.clone());
    let (join_demo, event_demo, log_demo) = (demo.clone(), demo.clone(), demo.clone());
    let mut state = AppState::new(web_dir).with_allowed_origins(cfg.allowed_origins.clone());
    if let Some((server, issuer)) = &turn {
        println!(
            "rtclab demo: STUN/TURN server on udp {} (each page and sender gets its own TURN credentials on join; turn.* events in {})",
            server.udp_addr(),
            turn_log.display()
        );
        state = state.with_ice(issuer.clone());
    }
    state = state.with_control(Arc::new(DemoControl(demo.clone())));
    let state = Arc::new(
        state
            .with_join_hook(move |room, peers| {
                // Alone in the room means a browser just arrived; the second join is our own
                // sender answering the call.
                if peers == 1 {
                    join_demo.start_session(room);
                }
            })
            .with_event_hook(move |room, event| event_demo.browser_event(room, event))
            .with_log_lookup(move |room| {
                log_demo
                    .rooms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(room)
                    .map(|s| s.log.clone())
            }),
    );
    *demo.state.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&state);
    on_ready(&format!("http://{addr}/?room={}", cfg.room));

    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let server = tokio::spawn(rtclab_signaling::serve_with_shutdown(
        listener,
        state.clone(),
        async move {
            let mut rx = server_stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    interrupt.await;
    // Sessions first (they say bye and write their last statistics), then the server.
    let _ = stop_tx.send(true);
    let sessions: Vec<EventSink> = demo
        .rooms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|s| s.sink.clone())
        .collect();
    for _ in 0..50 {
        if sessions.iter().all(EventSink::ended) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for sink in &sessions {
        close(sink, "interrupted");
    }
    let _ = server_stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), server).await;
    if let Some((turn, _)) = turn
        && let Err(e) = turn.shutdown().await
    {
        tracing::warn!("demo: TURN server shutdown: {e}");
    }
    if let Some(sink) = turn_sink
        && let Err(e) = sink.end("interrupted", serde_json::Value::Null)
    {
        tracing::warn!("demo: TURN log: {e}");
    }
    Ok(())
}

/// The folder of the web page: `web/` in the current directory, or next to a binary run from
/// the repository (`target/*/rtclab`).
pub fn default_web_dir() -> PathBuf {
    crate::paths::repo_folder("web", "index.html")
}

/// True if `dir` looks like rtclab's web folder.
pub fn is_web_dir(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}
