//! Starting and stopping the embedded STUN/TURN server.

use crate::auth::{RestAuthHandler, SystemWallClock, WallClock};
use crate::credentials::{self, RestCredentials};
use crate::error::TurnError;
use crate::guard::{GuardedConn, OwnAddresses, Shared, State};
use crate::policy::Policy;
use crate::relay::{CountingRelayGenerator, RelayCounters, RelayHook, RelayRegistry};
use rtclab_events::{Clock, Event, EventSink, SystemClock};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use turn::allocation::AllocationInfo;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};

/// Default STUN/TURN port (RFC 8489 §18.6).
pub const DEFAULT_PORT: u16 = 3478;

/// How often `turn.bytes` is written per allocation whose counters moved.
const BYTES_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of the embedded server.
#[derive(Clone)]
pub struct TurnConfig {
    /// UDP listener (STUN binding and TURN); port 0 picks a free one.
    pub udp_addr: SocketAddr,
    /// Address relay sockets bind to and advertise.
    pub relay_ip: IpAddr,
    /// Realm of the long-term credentials (RFC 8489 §9.2).
    pub realm: String,
    /// Shared secret of the TURN REST credentials.
    pub secret: String,
    /// Allow-list, quota and bandwidth cap.
    pub policy: Policy,
    /// Calendar clock the credential expiry is checked against.
    pub clock: Arc<dyn WallClock>,
    /// Monotonic clock the bandwidth cap's token buckets read (`rtclab relay`: the runtime's).
    pub monotonic: Arc<dyn Clock>,
    /// Wraps every allocation's relay socket (`rtclab relay`: impairment and observation).
    pub relay_hook: Option<Arc<dyn RelayHook>>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of debug output.
        f.debug_struct("TurnConfig")
            .field("udp_addr", &self.udp_addr)
            .field("relay_ip", &self.relay_ip)
            .field("realm", &self.realm)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TurnConfig {
    /// Lab mode: 127.0.0.1:3478, relays on 127.0.0.1, loopback peers only.
    pub fn loopback(secret: impl Into<String>) -> Self {
        TurnConfig {
            udp_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            relay_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            realm: "rtclab".to_owned(),
            secret: secret.into(),
            policy: Policy::default(),
            clock: Arc::new(SystemWallClock),
            monotonic: Arc::new(SystemClock),
            relay_hook: None,
        }
    }

    /// The same on a free port (tests, several servers at once).
    pub fn loopback_any_port(secret: impl Into<String>) -> Self {
        let mut c = Self::loopback(secret);
        c.udp_addr.set_port(0);
        c
    }
}

/// A running embedded STUN/TURN server.
pub struct TurnServer {
    server: Server,
    udp_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("udp_addr", &self.udp_addr)
            .finish_non_exhaustive()
    }
}

impl TurnServer {
    /// Binds the listener and starts serving; `turn.*` events go to `sink` when given.
    ///
    /// TURN over TCP is not served: the `turn` 0.17 server reads datagram sockets only (its
    /// 5-tuples are hard-wired to UDP), and webrtc-rs 0.21 skips non-UDP TURN URLs anyway; TCP
    /// runs go through coturn.
    pub async fn start(config: TurnConfig, sink: Option<EventSink>) -> Result<Self, TurnError> {
        let socket = UdpSocket::bind(config.udp_addr)
            .await
            .map_err(|source| TurnError::Bind {
                addr: config.udp_addr,
                source,
            })?;
        let udp_addr = socket.local_addr().map_err(|source| TurnError::Bind {
            addr: config.udp_addr,
            source,
        })?;
        let registry: RelayRegistry = Arc::new(Mutex::new(HashMap::new()));
        let shared = Arc::new(Shared {
            secret: config.secret.clone(),
            realm: config.realm.clone(),
            clock: config.clock.clone(),
            policy: config.policy.clone(),
            sink,
            transport: "udp",
            state: Mutex::new(State::default()),
            own: OwnAddresses {
                listener: Some(udp_addr),
            },
        });
        let (close_tx, close_rx) = mpsc::channel(64);
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(GuardedConn {
                    inner: Arc::new(socket),
                    shared: shared.clone(),
                }),
                relay_addr_generator: Box::new(CountingRelayGenerator {
                    ip: config.relay_ip,
                    registry: registry.clone(),
                    hook: config.relay_hook.clone(),
                    max_kbps: config.policy.max_relay_kbps,
                    clock: config.monotonic.clone(),
                }),
            }],
            realm: config.realm.clone(),
            auth_handler: Arc::new(RestAuthHandler::new(config.secret, config.clock)),
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: Some(close_tx),
        })
        .await?;
        let last: Arc<Mutex<HashMap<SocketAddr, Last>>> = Arc::default();
        let tasks = vec![
            tokio::spawn(watch_closes(
                close_rx,
                shared.clone(),
                registry.clone(),
                last.clone(),
            )),
            tokio::spawn(tick_bytes(shared.clone(), registry, last)),
        ];
        Ok(TurnServer {
            server,
            udp_addr,
            shared,
            tasks,
        })
    }

    /// The bound UDP listener.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// `stun:` URL of this server.
    pub fn stun_url(&self) -> String {
        format!("stun:{}", self.udp_addr)
    }

    /// `turn:` URL of this server over UDP.
    pub fn turn_url(&self) -> String {
        format!("turn:{}?transport=udp", self.udp_addr)
    }

    /// Credentials for `user` valid for `ttl` from `now_unix_s`, under this server's secret.
    pub fn credentials(&self, user: &str, now_unix_s: u64, ttl: Duration) -> RestCredentials {
        credentials::issue(&self.shared.secret, user, now_unix_s, ttl)
    }

    /// Number of live allocations.
    pub fn allocations(&self) -> usize {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocations
            .len()
    }

    /// Closes every allocation and the listener; `turn.allocation_closed` is written for each.
    pub async fn shutdown(mut self) -> Result<(), TurnError> {
        let result = self.server.close().await;
        // Let the close watcher write the allocations' last events before it stops.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for t in self.tasks.drain(..) {
            t.abort();
        }
        Ok(result?)
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What was last written for one allocation: its byte counters (`turn.bytes`) and its
/// bandwidth-cap drops (`turn.refused`).
#[derive(Default)]
struct Last {
    bytes: [u64; 4],
    dropped: [u64; 4],
}

type LastLines = Mutex<HashMap<SocketAddr, Last>>;

/// Writes the cumulative counters of `relay` if they moved since the last line, and what the
/// bandwidth cap dropped since then (one `turn.refused` per direction, at most once a tick, so
/// a flood cannot flood the log).
fn emit_bytes(shared: &Shared, relay: SocketAddr, counters: &RelayCounters, last: &LastLines) {
    let (now, dropped) = (counters.snapshot(), counters.dropped());
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    let seen = last.entry(relay).or_default();
    if seen.bytes != now && now != [0; 4] {
        seen.bytes = now;
        shared.emit(Event::TurnBytes {
            relay: relay.to_string(),
            to_peer_bytes: now[0],
            to_peer_packets: now[1],
            from_peer_bytes: now[2],
            from_peer_packets: now[3],
        });
    }
    if seen.dropped == dropped {
        return;
    }
    let before = std::mem::replace(&mut seen.dropped, dropped);
    drop(last);
    let (client, username) = {
        let st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let client = st.relays.get(&relay).copied();
        let username = client.and_then(|c| st.allocations.get(&c).cloned());
        (client, username)
    };
    let kbps = shared.policy.max_relay_kbps.unwrap_or_default();
    // "send": what the client sent (Send indications, ChannelData); "data": what the server
    // would have relayed to the client (Data indications, ChannelData).
    for (i, method, way) in [(0, "send", "to peers"), (2, "data", "from peers")] {
        let (bytes, packets) = (dropped[i] - before[i], dropped[i + 1] - before[i + 1]);
        if packets == 0 {
            continue;
        }
        shared.emit(Event::TurnRefused {
            client: client.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            method: method.to_owned(),
            code: 0,
            reason: format!(
                "over the bandwidth cap of {kbps} kbit/s: {packets} datagrams ({bytes} bytes) \
                 {way} of relay {relay} dropped ({} in all)",
                dropped[i + 1]
            ),
            username: username.clone(),
            peer_addr: None,
        });
    }
}

/// `turn.allocation_closed` for every allocation the server ends, with its last byte counts.
async fn watch_closes(
    mut rx: mpsc::Receiver<AllocationInfo>,
    shared: Arc<Shared>,
    registry: RelayRegistry,
    last: Arc<LastLines>,
) {
    while let Some(info) = rx.recv().await {
        let counters = registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&info.relay_addr);
        if let Some(c) = counters {
            emit_bytes(&shared, info.relay_addr, &c, &last);
        }
        last.lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&info.relay_addr);
        {
            let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.allocations.remove(&info.five_tuple.src_addr);
            st.relays.remove(&info.relay_addr);
        }
        shared.emit(Event::TurnAllocationClosed {
            client: info.five_tuple.src_addr.to_string(),
            username: info.username,
            relay: info.relay_addr.to_string(),
        });
    }
}

/// `turn.bytes` once a second for each allocation whose counters moved (and `turn.refused` for
/// what its bandwidth cap dropped).
async fn tick_bytes(shared: Arc<Shared>, registry: RelayRegistry, last: Arc<LastLines>) {
    let mut every = tokio::time::interval(BYTES_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let live: Vec<(SocketAddr, Arc<RelayCounters>)> = registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, c)| (*a, c.clone()))
            .collect();
        for (relay, counters) in live {
            emit_bytes(&shared, relay, &counters, &last);
        }
    }
}
