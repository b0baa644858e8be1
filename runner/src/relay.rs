//! `rtclab relay`: the embedded TURN server as an impairing relay for any WebRTC app.
//!
//! Every allocation's relay socket passes through its own `ImpairedRuntime` (the same seeded
//! engine as `rtclab run`), on the receiving side of the scenario's naming: what the client
//! **receives** through the relay crosses the scenario's `downlink`, what it **sends** crosses
//! its `uplink`. So each client gets an access link of its own; in a call of two relay-only
//! clients, A's media to B crosses A's uplink and then B's downlink. `--impair USER` limits
//! the impairment to the clients whose TURN REST user is USER (the others pass unimpaired).
//! The schedule of each link starts when its allocation is created.
//!
//! Each allocation writes its own log, `OUT/allocation-<n>-<port>/events.jsonl`: its `turn.*`
//! lines, `impair.stats`/`impair.change`, and what the relay can read of the traffic
//! (`relay.rtp` per SSRC, `relay.packets`; see `rtp_watch.rs`). The same HTTP server serves
//! signaling (for `web/call.html`, a call between two browser tabs), the pages' `getStats()`
//! into `OUT/room-<room>/events.jsonl`, and the live control (`/api/impair`, as in the demo;
//! changes apply to every live allocation and to later ones).

use crate::error::RunError;
use crate::live::{Catalog, Entry, Request, carry_out};
use rtclab_events::{Event, EventSink, PeerRole, Record};
use rtclab_netem::{ImpairedRuntime, Impairment, Link, Side};
use rtclab_peer::clock::RuntimeClock;
use rtclab_signaling::{AppState, ControlError, IceIssuer, ImpairControl};
use rtclab_turn::policy::{AllowedPeers, user_of};
use rtclab_turn::relay::RelayHook;
use rtclab_turn::{TurnConfig, TurnServer};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webrtc::runtime::{AsyncUdpSocket, Runtime};

/// The one TURN REST user `rtclab relay` prints credentials for.
pub const APP_USER: &str = "app";

/// Period of `relay.rtp` and `relay.packets`, like `impair.stats`.
const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// What `rtclab relay` is asked to do.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// HTTP: signaling, the web page, `/api/impair`.
    pub http_addr: SocketAddr,
    /// The TURN server's UDP listener (also the relay sockets' address).
    pub turn_addr: SocketAddr,
    /// Where the logs go.
    pub out: PathBuf,
    /// The network every allocation starts with (none: a clean link until changed live).
    pub scenario: Option<Entry>,
    /// Impair only the clients of this TURN REST user (none: every client).
    pub impair_user: Option<String>,
    /// Peers the relay may send to.
    pub allowed_peers: AllowedPeers,
    /// TURN REST secret (random when `None`).
    pub secret: Option<String>,
    /// The web page folder (`web/`).
    pub web_dir: PathBuf,
    /// Scenarios and presets that `play` may name.
    pub scenarios_dir: PathBuf,
    /// Seed of the first allocation's impairment; allocation n uses `seed + n`.
    pub seed: u64,
    /// Origins allowed to use the server besides its own and loopback (`--allow-origin`).
    pub allowed_origins: Vec<String>,
    /// Cap on every allocation, kbit/s in each direction (`--max-allocation-kbps`,
    /// [`rtclab_turn::Policy::max_relay_kbps`]); `None`: no cap.
    pub max_relay_kbps: Option<u32>,
}

/// What `rtclab relay` prints once it listens.
#[derive(Debug, Clone)]
pub struct RelayReady {
    /// HTTP address.
    pub http: SocketAddr,
    /// TURN UDP address.
    pub turn: SocketAddr,
    /// `iceServers` JSON to paste into an app (credentials for [`APP_USER`], valid 1 h).
    pub ice_servers: String,
}

/// One allocation's link and log.
struct Allocation {
    name: String,
    relay: SocketAddr,
    runtime: Arc<ImpairedRuntime>,
    sink: EventSink,
    client: Mutex<Option<(String, String)>>,
    closed: AtomicBool,
}

/// State shared by the TURN hook, the server log listener and the control.
struct Relay {
    cfg: RelayConfig,
    runtime: Arc<dyn Runtime>,
    catalog: Catalog,
    /// What a new allocation starts from: the scenario, then live changes.
    base: Mutex<Impairment>,
    next: AtomicU64,
    allocations: Mutex<Vec<Arc<Allocation>>>,
    /// Logs of the pages' `getStats()`, by room.
    rooms: Mutex<HashMap<String, EventSink>>,
}

impl Relay {
    fn live(&self) -> Vec<Arc<Allocation>> {
        self.allocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|a| !a.closed.load(Ordering::Relaxed))
            .cloned()
            .collect()
    }

    fn label(&self) -> String {
        self.cfg
            .scenario
            .as_ref()
            .map_or_else(|| "relay".to_owned(), Entry::label)
    }

    /// Opens allocation `relay`'s log and its impaired socket.
    fn open(
        self: &Arc<Self>,
        socket: std::net::UdpSocket,
        relay: SocketAddr,
    ) -> std::io::Result<Arc<dyn rtclab_turn::webrtc_util::Conn + Send + Sync>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("allocation-{n}-{}", relay.port());
        let log = self.cfg.out.join(&name).join("events.jsonl");
        let sink = EventSink::create(
            &log,
            Arc::new(RuntimeClock(self.runtime.clone())),
            None,
            serde_json::json!({
                "mode": "relay",
                "allocation": name,
                "relay": relay.to_string(),
                "scenario": self.cfg.scenario.as_ref().map(|e| e.name.clone()),
                "downlink": "what the client receives through the relay",
                "uplink": "what the client sends through the relay",
            }),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let runtime = ImpairedRuntime::builder(self.runtime.clone(), base)
            .side(Side::Receiver)
            .seed(self.cfg.seed.wrapping_add(n))
            .sink(sink.clone())
            .start(sink.start())
            .label(self.label())
            .build()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let socket = runtime.wrap_udp_socket(socket)?;
        let alloc = Arc::new(Allocation {
            name,
            relay,
            runtime: runtime.clone(),
            sink: sink.clone(),
            client: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        self.allocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(alloc.clone());
        let watch = Arc::new(Mutex::new(Watches::default()));
        tokio::spawn(report_watch(
            alloc.clone(),
            watch.clone(),
            self.runtime.clone(),
        ));
        println!(
            "rtclab relay: allocation {relay} opened; log {}",
            log.display()
        );
        Ok(Arc::new(WatchedConn {
            socket,
            watch,
            alloc,
            rt: self.runtime.clone(),
        }))
    }

    /// Copies a `turn.*` line of the server's log into its allocation's log, and applies
    /// `--impair USER` when the allocation's user becomes known.
    fn route(&self, record: &Record) {
        let (client, relay) = match &record.event {
            Event::TurnAllocationCreated { client, relay, .. }
            | Event::TurnAllocationClosed { client, relay, .. } => (Some(client), Some(relay)),
            Event::TurnPermission { client, .. }
            | Event::TurnChannelBind { client, .. }
            | Event::TurnRefresh { client, .. } => (Some(client), None),
            Event::TurnBytes { relay, .. } => (None, Some(relay)),
            Event::TurnRefused { client, .. } => (Some(client), None),
            _ => return,
        };
        let all = self.allocations.lock().unwrap_or_else(|e| e.into_inner());
        let target = all.iter().rev().find(|a| {
            relay.is_some_and(|r| *r == a.relay.to_string())
                || client.is_some_and(|c| {
                    a.client
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .is_some_and(|(ac, _)| ac == c)
                })
        });
        let Some(alloc) = target.cloned() else {
            return;
        };
        drop(all);
        if let Event::TurnAllocationCreated {
            client, username, ..
        } = &record.event
        {
            *alloc.client.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((client.clone(), username.clone()));
            if let Some(only) = &self.cfg.impair_user
                && user_of(username) != only
            {
                // Before any data flows (the client needs a permission first): this client's
                // link stays clean.
                alloc.runtime.reset(&format!(
                    "--impair {only}: user {} passes unimpaired",
                    user_of(username)
                ));
            }
        }
        alloc.sink.emit(record.peer, record.event.clone());
    }

    /// A page's `browser.stats` or `browser.event` into its room's log. Two pages share a
    /// room, so the lines are kept as sent (the demo's bridge derives per-second rates from one
    /// page's snapshots, which two interleaved pages would corrupt).
    fn page_event(&self, room: &str, event: serde_json::Value) -> Result<(), String> {
        let event = match serde_json::from_value::<Event>(event) {
            Ok(e @ (Event::BrowserStats { .. } | Event::BrowserEvent { .. })) => e,
            Ok(other) => {
                return Err(format!(
                    "a page may send browser.stats or browser.event, not {}",
                    other.kind()
                ));
            }
            Err(e) => return Err(format!("not an event: {e}")),
        };
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if !rooms.contains_key(room) {
            let log = self
                .cfg
                .out
                .join(format!("room-{room}"))
                .join("events.jsonl");
            let sink = EventSink::create(
                &log,
                Arc::new(RuntimeClock(self.runtime.clone())),
                None,
                serde_json::json!({ "mode": "relay", "room": room, "what": "the pages' getStats()" }),
            )
            .map_err(|e| e.to_string())?;
            rooms.insert(room.to_owned(), sink);
        }
        if let Some(sink) = rooms.get(room) {
            sink.emit(PeerRole::Browser, event);
        }
        Ok(())
    }
}

/// The hook the TURN server calls for each new relay socket.
struct Hook(Arc<Relay>);

impl RelayHook for Hook {
    fn wrap(
        &self,
        socket: std::net::UdpSocket,
        relay: SocketAddr,
    ) -> std::io::Result<Arc<dyn rtclab_turn::webrtc_util::Conn + Send + Sync>> {
        self.0.open(socket, relay)
    }
}

/// Both directions' watches of one allocation.
struct Watches {
    from_client: crate::rtp_watch::RtpWatch,
    to_client: crate::rtp_watch::RtpWatch,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            from_client: crate::rtp_watch::RtpWatch::new("from_client"),
            to_client: crate::rtp_watch::RtpWatch::new("to_client"),
        }
    }
}

/// Writes `relay.rtp` and `relay.packets` once a second until the allocation closes.
async fn report_watch(alloc: Arc<Allocation>, watch: Arc<Mutex<Watches>>, rt: Arc<dyn Runtime>) {
    let mut last = rt.now();
    loop {
        rt.sleep(WATCH_PERIOD).await;
        let now = rt.now();
        let interval = now.saturating_duration_since(last).as_secs_f64();
        last = now;
        let events = {
            let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
            let mut e = w.from_client.take_interval(interval);
            e.extend(w.to_client.take_interval(interval));
            e
        };
        for e in events {
            alloc.sink.emit(PeerRole::Lab, e);
        }
        if alloc.closed.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// A relay socket seen through the impairment, with the datagrams it carries watched: sent
/// ones before the uplink impairment (what the client sent), received ones after the downlink
/// impairment (what the client gets).
struct WatchedConn {
    socket: Arc<dyn AsyncUdpSocket>,
    watch: Arc<Mutex<Watches>>,
    alloc: Arc<Allocation>,
    rt: Arc<dyn Runtime>,
}

impl WatchedConn {
    fn seconds(&self) -> f64 {
        self.rt
            .now()
            .saturating_duration_since(self.alloc.sink.start())
            .as_secs_f64()
    }
}

#[async_trait::async_trait]
impl rtclab_turn::webrtc_util::Conn for WatchedConn {
    async fn connect(&self, _addr: SocketAddr) -> rtclab_turn::webrtc_util::Result<()> {
        // The `turn` server never connects a relay socket: it serves many peers.
        Err(std::io::Error::other("relay sockets are not connected").into())
    }

    async fn recv(&self, buf: &mut [u8]) -> rtclab_turn::webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> rtclab_turn::webrtc_util::Result<(usize, SocketAddr)> {
        let (n, from) = self.socket.recv_from(buf).await?;
        let at = self.seconds();
        self.watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .to_client
            .on_datagram(at, &buf[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> rtclab_turn::webrtc_util::Result<usize> {
        Err(std::io::Error::other("relay sockets send to a peer address").into())
    }

    async fn send_to(
        &self,
        buf: &[u8],
        target: SocketAddr,
    ) -> rtclab_turn::webrtc_util::Result<usize> {
        let at = self.seconds();
        self.watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .from_client
            .on_datagram(at, buf);
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> rtclab_turn::webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> rtclab_turn::webrtc_util::Result<()> {
        if !self.alloc.closed.swap(true, Ordering::Relaxed) {
            // Let the last second's lines and the close line reach the log first.
            let sink = self.alloc.sink.clone();
            let name = self.alloc.name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(WATCH_PERIOD + Duration::from_millis(100)).await;
                if let Err(e) = sink.end("allocation closed", serde_json::Value::Null) {
                    tracing::warn!("relay: {name}: {e}");
                }
            });
            println!("rtclab relay: allocation {} closed", self.alloc.relay);
        }
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// `/api/impair` for the relay: `room` is not used (every allocation is one client's link).
struct Control(Arc<Relay>);

impl Control {
    fn state(&self) -> serde_json::Value {
        let allocations: Vec<serde_json::Value> = self
            .0
            .live()
            .iter()
            .map(|a| {
                let client = a.client.lock().unwrap_or_else(|e| e.into_inner()).clone();
                serde_json::json!({
                    "name": a.name,
                    "relay": a.relay.to_string(),
                    "client": client.as_ref().map(|c| c.0.clone()),
                    "username": client.as_ref().map(|c| c.1.clone()),
                    "t": a.sink.elapsed(),
                    "downlink": a.runtime.settings(Link::Downlink),
                    "uplink": a.runtime.settings(Link::Uplink),
                })
            })
            .collect();
        let base = self
            .0
            .base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        serde_json::json!({ "allocations": allocations, "new_allocations_start_with": base })
    }
}

impl ImpairControl for Control {
    fn catalog(&self) -> serde_json::Value {
        self.0.catalog.to_json()
    }

    fn state(&self, _room: &str) -> Result<serde_json::Value, ControlError> {
        Ok(Control::state(self))
    }

    fn change(
        &self,
        _room: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ControlError> {
        let (request, source) = Request::parse(body)?;
        // Checked against the base first: an unknown scenario changes nothing anywhere.
        let mut base = self.0.base.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = base.clone();
        request.update_base(&mut next, &self.0.catalog)?;
        for alloc in self.0.live() {
            carry_out(&alloc.runtime, &request, &source, &self.0.catalog)?;
        }
        *base = next;
        drop(base);
        Ok(Control::state(self))
    }
}

/// Runs the relay until `interrupt` resolves.
pub async fn run_relay(
    cfg: RelayConfig,
    runtime: Arc<dyn Runtime>,
    interrupt: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&RelayReady),
) -> Result<(), RunError> {
    let loopback_only = matches!(cfg.allowed_peers, AllowedPeers::Loopback);
    if loopback_only && !cfg.turn_addr.ip().is_loopback() {
        return Err(RunError::Failed(format!(
            "--turn {}: a relay for peers on this machine listens on loopback; to serve a lab \
             network, name its range with --allow-peers (e.g. 192.168.1.0/24)",
            cfg.turn_addr
        )));
    }
    let (catalog, warnings) = Catalog::load(&cfg.scenarios_dir);
    for w in warnings {
        println!("rtclab relay: {w}");
    }
    let secret = cfg
        .secret
        .clone()
        .unwrap_or_else(crate::ice_servers::random_secret);
    let relay = Arc::new(Relay {
        base: Mutex::new(
            cfg.scenario
                .as_ref()
                .map(|e| e.impairment.clone())
                .unwrap_or_default(),
        ),
        cfg: cfg.clone(),
        runtime: runtime.clone(),
        catalog,
        next: AtomicU64::new(0),
        allocations: Mutex::new(Vec::new()),
        rooms: Mutex::new(HashMap::new()),
    });
    let server_log = cfg.out.join("turn-server").join("events.jsonl");
    let server_sink = EventSink::create(
        &server_log,
        Arc::new(RuntimeClock(runtime.clone())),
        None,
        serde_json::json!({ "mode": "relay", "what": "the TURN server" }),
    )?;
    let router = relay.clone();
    server_sink.set_listener(Arc::new(move |r: &Record| router.route(r)));
    let mut turn_cfg = TurnConfig::loopback(secret.clone());
    turn_cfg.udp_addr = cfg.turn_addr;
    turn_cfg.relay_ip = cfg.turn_addr.ip();
    turn_cfg.policy.allowed_peers = cfg.allowed_peers.clone();
    turn_cfg.policy.max_relay_kbps = cfg.max_relay_kbps;
    turn_cfg.monotonic = Arc::new(RuntimeClock(runtime.clone()));
    turn_cfg.relay_hook = Some(Arc::new(Hook(relay.clone())));
    let turn = TurnServer::start(turn_cfg, Some(server_sink.clone()))
        .await
        .map_err(|e| RunError::Failed(format!("TURN server on {}: {e}", cfg.turn_addr)))?;
    let issuer = IceIssuer::new(secret, Vec::new(), vec![turn.turn_url()]);
    let ice_servers =
        serde_json::to_string(&issuer.issue(APP_USER)).unwrap_or_else(|_| "[]".to_owned());

    let (listener, http) = rtclab_signaling::bind(cfg.http_addr)
        .await
        .map_err(|e| RunError::Signaling(format!("{e}; pick another port with --addr")))?;
    let bridges = relay.clone();
    let web_dir = cfg.web_dir.is_dir().then(|| cfg.web_dir.clone());
    let state = Arc::new(
        AppState::new(web_dir)
            .with_allowed_origins(cfg.allowed_origins.clone())
            .with_ice(issuer)
            .with_control(Arc::new(Control(relay.clone())))
            .with_event_hook(move |room, event| {
                if let Err(why) = bridges.page_event(room, event) {
                    tracing::warn!("relay: room {room}: {why}");
                }
            }),
    );
    on_ready(&RelayReady {
        http,
        turn: turn.udp_addr(),
        ice_servers,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(rtclab_signaling::serve_with_shutdown(
        listener,
        state,
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    interrupt.await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    if let Err(e) = turn.shutdown().await {
        tracing::warn!("relay: TURN shutdown: {e}");
    }
    // Every log ends with session.end, whatever was still open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for alloc in relay
        .allocations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        alloc.closed.store(true, Ordering::Relaxed);
        let _ = alloc.sink.end("relay stopped", serde_json::Value::Null);
    }
    for sink in relay
        .rooms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        let _ = sink.end("relay stopped", serde_json::Value::Null);
    }
    server_sink.end("relay stopped", serde_json::Value::Null)?;
    Ok(())
}
