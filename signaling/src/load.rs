//! A load driver for the signaling server (issue 17, item 2): many WebSocket clients, two per
//! room, negotiating through the server as real peers do, while the server's memory is watched.
//!
//! Each room holds an **offerer** and an **answerer**. In every round the offerer sends an
//! `offer` (an SDP of [`LoadConfig::sdp_bytes`], a typical audio+video offer's size) and waits
//! for the `answer`; then it trickles [`LoadConfig::candidates_per_round`] `candidate`s and waits
//! for the answerer's reply to each. The answerer answers every offer and echoes every candidate.
//! The **round trip** is the time from the offerer's send to the reply's arrival: two relays
//! through the server (offerer → server → answerer → server → offerer). It is what a peer waits
//! for when it negotiates, so it is the figure that matters to users.
//!
//! The server's **memory** is read from `/proc/PID/status` (Linux): `VmRSS` (resident memory
//! now) and `VmHWM` (the most it ever was, the "high-water mark"), before any client connects,
//! once all are connected ("held"), during the exchange (sampled every 100 ms) and after every
//! client has left. With the server in its own process (`rtclab serve`, as the benchmark runs
//! it) the figures are the server's alone; with the server in the driver's process (the test)
//! they include the clients.
//!
//! Everything is bounded: loopback only (clients bind to 127.0.0.x source addresses, so the
//! server's per-address connection cap is kept at its default), each wait has a timeout and the
//! whole run a deadline. Optionally one extra room holds a **flooder**, which sends as fast as it
//! can while the other rooms negotiate: the run then reports whether the rate limit closed it and
//! whether everybody else still got every message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rtclab_signaling::load::LoadError> {
//! use rtclab_signaling::load::{LoadConfig, run};
//! let mut config = LoadConfig::new("127.0.0.1:8080".parse().expect("address"), 4242);
//! config.clients = 200;
//! let report = run(&config).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::limits::{MAX_CONNECTIONS_PER_IP, MESSAGE_BURST, MESSAGE_RATE_PER_SEC};
use crate::protocol::{ClientMessage, ErrorCode, IceCandidate, ServerMessage};

type Ws = WebSocketStream<TcpStream>;

/// How often the server's memory is sampled during the exchange.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Failures kept word for word in the report (the rest are only counted).
const FAILURES_KEPT: usize = 10;

/// What to run. [`LoadConfig::new`] gives the issue's figures: 1,000 clients in 500 rooms.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server's address (`ws://ADDR/ws?room=...`); loopback.
    pub server: SocketAddr,
    /// The server's process id, whose `/proc/PID/status` gives its memory
    /// ([`std::process::id`] when the server runs in this process).
    pub server_pid: u32,
    /// Clients, two per room; even.
    pub clients: usize,
    /// Negotiation rounds per room (offer/answer plus candidates).
    pub rounds: usize,
    /// Candidates the offerer trickles per round (the answerer echoes each).
    pub candidates_per_round: usize,
    /// Time between a room's rounds. Rooms start their rounds at evenly spread offsets within
    /// it, so the server sees a steady load rather than every room at the same instant.
    pub round_interval: Duration,
    /// Size of each offer and answer SDP in bytes.
    pub sdp_bytes: usize,
    /// Clients sharing one source address. Must stay within the server's per-address cap
    /// ([`MAX_CONNECTIONS_PER_IP`], 64), so that the server runs with its default limits.
    pub clients_per_source: usize,
    /// The first source address; the next ones follow it (127.0.0.2, 127.0.0.3, ...). All of
    /// 127.0.0.0/8 is loopback on Linux.
    pub first_source: Ipv4Addr,
    /// Connections opened at the same time while the clients join.
    pub connect_concurrency: usize,
    /// Each client's WebSocket read buffer, in bytes. tungstenite's default, 128 KiB, is
    /// allocated and zero-filled for every connection (its docs suggest e.g. 4 KiB for many
    /// connections), which would make the driver's own memory dominate when the server runs in
    /// the same process; messages larger than the buffer are still read whole.
    pub client_read_buffer: usize,
    /// Longest wait for any one message (added to `round_interval` where a client waits for the
    /// next round).
    pub message_timeout: Duration,
    /// Pause after the last client left before memory is read "after", so that the server has
    /// finished its sessions' close handshakes and freed them.
    pub settle: Duration,
    /// Bound on the whole run.
    pub deadline: Duration,
    /// If set, an extra room holds a flooder that writes this many candidates as fast as it can
    /// while the other rooms negotiate.
    pub flood: Option<usize>,
    /// Room names are `{room_prefix}{n}`; a different prefix per run keeps runs against one
    /// server apart.
    pub room_prefix: String,
}

impl LoadConfig {
    /// 1,000 clients in 500 rooms, 10 rounds of an offer/answer (3 KB SDPs) and 10 candidates,
    /// one round a second; 50 clients per source address; no flood.
    pub fn new(server: SocketAddr, server_pid: u32) -> Self {
        Self {
            server,
            server_pid,
            clients: 1000,
            rounds: 10,
            candidates_per_round: 10,
            round_interval: Duration::from_secs(1),
            sdp_bytes: 3000,
            clients_per_source: 50,
            first_source: Ipv4Addr::new(127, 0, 0, 2),
            connect_concurrency: 100,
            client_read_buffer: 8 * 1024,
            message_timeout: Duration::from_secs(10),
            settle: Duration::from_secs(1),
            deadline: Duration::from_secs(120),
            flood: None,
            room_prefix: "load-".to_owned(),
        }
    }

    /// Rooms: half the clients.
    pub fn rooms(&self) -> usize {
        self.clients / 2
    }

    /// Relayed messages every client should receive, all clients together.
    pub fn messages_expected(&self) -> u64 {
        (self.clients * self.rounds * (1 + self.candidates_per_round)) as u64
    }

    fn check(&self) -> Result<(), LoadError> {
        let bad = |why: String| Err(LoadError::Config(why));
        if self.clients < 2 || !self.clients.is_multiple_of(2) {
            return bad(format!(
                "{} clients: use an even number of at least 2 (two per room)",
                self.clients
            ));
        }
        if !(1..=MAX_CONNECTIONS_PER_IP).contains(&self.clients_per_source) {
            return bad(format!(
                "{} clients per source address: use 1 to {MAX_CONNECTIONS_PER_IP}, the server's \
                 default cap per address",
                self.clients_per_source
            ));
        }
        if !self.first_source.is_loopback() {
            return bad(format!(
                "source {} is not loopback; the driver runs on 127.0.0.0/8 only",
                self.first_source
            ));
        }
        if !self.server.ip().is_loopback() {
            return bad(format!(
                "server {} is not loopback; the driver runs on loopback only",
                self.server
            ));
        }
        // Each client sends 1 + candidates per round; within the server's default rate limit,
        // so that ordinary negotiation is never limited (only the flooder should be).
        let per_round = 1 + self.candidates_per_round;
        let per_second = per_round as f64 / self.round_interval.as_secs_f64().max(1e-3);
        if per_round > MESSAGE_BURST as usize || per_second > f64::from(MESSAGE_RATE_PER_SEC) {
            return bad(format!(
                "{per_round} messages every {:?} is over the server's rate limit ({MESSAGE_BURST} \
                 at once, {MESSAGE_RATE_PER_SEC}/s); fewer candidates or a longer interval",
                self.round_interval
            ));
        }
        Ok(())
    }

    /// Source address of client `index`.
    fn source(&self, index: usize) -> Ipv4Addr {
        let step = u32::try_from(index / self.clients_per_source).unwrap_or(u32::MAX);
        Ipv4Addr::from(u32::from(self.first_source).saturating_add(step))
    }
}

/// Why a run (or one client of it) failed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The configuration cannot run (odd client count, not loopback, over the rate limit...).
    #[error("bad load configuration: {0}")]
    Config(String),
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The WebSocket library reported an error.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server closed a connection the driver still needed.
    #[error("the server closed the connection: {0}")]
    Closed(String),
    /// A message did not come in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The server sent something the protocol does not allow at that point.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// `/proc/PID/...` or `/health` could not be read.
    #[error("cannot read {what}: {reason}")]
    Probe {
        /// What was read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The whole run took longer than [`LoadConfig::deadline`].
    #[error("the run took longer than its bound of {0:?}")]
    Deadline(Duration),
}

impl From<tokio_tungstenite::tungstenite::Error> for LoadError {
    fn from(err: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(err))
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> LoadError {
    let what = what.into();
    move |source| LoadError::Io { what, source }
}

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident memory now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest resident memory the process ever had.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of process `pid` (Linux).
pub fn read_memory(pid: u32) -> Result<Memory, LoadError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|err| LoadError::Probe {
        what: path.clone(),
        reason: err.to_string(),
    })?;
    // Lines such as "VmRSS:\t   12345 kB".
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| LoadError::Probe {
                what: path.clone(),
                reason: format!("no {name} line"),
            })
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// File descriptors process `pid` has open (entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Result<usize, LoadError> {
    let path = format!("/proc/{pid}/fd");
    std::fs::read_dir(&path)
        .map(Iterator::count)
        .map_err(|err| LoadError::Probe {
            what: path,
            reason: err.to_string(),
        })
}

/// Rooms and peers the server holds, from its `GET /health`.
pub async fn health(server: SocketAddr) -> Result<(usize, usize), LoadError> {
    let probe = |reason: String| LoadError::Probe {
        what: format!("http://{server}/health"),
        reason,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|err| probe(err.to_string()))?;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| probe(err.to_string()))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|err| probe(err.to_string()))?;
        Ok::<_, LoadError>(response)
    };
    let response = timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| probe("no answer within 5 s".to_owned()))??;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| probe("no HTTP body".to_owned()))?;
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|err| probe(format!("body is not JSON: {err}")))?;
    let count = |key: &str| {
        value[key]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| probe(format!("no {key} in {body}")))
    };
    Ok((count("rooms")?, count("peers")?))
}

/// Round-trip statistics over every measured exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundTrip {
    /// Measured round trips.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile: 1 in 100 round trips took longer.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

impl RoundTrip {
    fn from_samples(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        // Nearest-rank percentile: the smallest sample with at least p % at or below it.
        let rank = |p: usize| {
            let index = (samples.len() * p).div_ceil(100).saturating_sub(1);
            samples.get(index).copied().unwrap_or_default()
        };
        Self {
            count: samples.len(),
            p50: rank(50),
            p99: rank(99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The server's memory through the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryReport {
    /// Before any client connected.
    pub before: Memory,
    /// Once every client had joined, before the exchange.
    pub held: Memory,
    /// During the exchange: `rss_kib` is the highest sample (every 100 ms), `hwm_kib` the
    /// high-water mark at its end.
    pub during: Memory,
    /// After every client had left and the server reported no peer.
    pub after: Memory,
}

/// What became of the flooder (see [`LoadConfig::flood`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FloodReport {
    /// Candidates the flooder wrote before the server closed its connection.
    pub written: usize,
    /// Of those, how many the server relayed to the other peer of the flooder's room.
    pub relayed: usize,
    /// The `error` code the flooder got (`rate-limited` expected).
    pub error: Option<ErrorCode>,
    /// The close code the flooder got (1008, policy violation, expected).
    pub close_code: Option<u16>,
    /// Whether the flooder's room-mate kept its connection (it should: it got `peer-left`, not
    /// a close).
    pub victim_kept: bool,
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    /// Clients asked for.
    pub clients: usize,
    /// Rooms (half the clients).
    pub rooms: usize,
    /// Clients that joined their room.
    pub connected: usize,
    /// Time for all clients to connect and join.
    pub connect_time: Duration,
    /// Time from the first round's start to the last client's end.
    pub exchange_time: Duration,
    /// Relayed messages (offers, answers, candidates) the clients should have received.
    pub messages_expected: u64,
    /// Relayed messages they did receive.
    pub messages_received: u64,
    /// Offerer → answerer → offerer round trips through the server.
    pub round_trip: RoundTrip,
    /// The server's memory.
    pub memory: MemoryReport,
    /// Most file descriptors the server process had open (sampled during the exchange).
    pub peak_fds: usize,
    /// File descriptors the server process had open after everybody left.
    pub fds_after: usize,
    /// Rooms and peers the server still held after everybody left (0 and 0 expected).
    pub rooms_after: usize,
    /// See `rooms_after`.
    pub peers_after: usize,
    /// The flooder's outcome, if there was one.
    pub flood: Option<FloodReport>,
    /// Clients that failed (could not join, lost a message, got an error).
    pub failures: usize,
    /// The first few failures, word for word.
    pub first_failures: Vec<String>,
}

impl LoadReport {
    /// Resident memory after the run minus before it, in KiB (negative if it shrank).
    pub fn rss_growth_kib(&self) -> i64 {
        self.memory.after.rss_kib as i64 - self.memory.before.rss_kib as i64
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.memory;
        writeln!(
            f,
            "clients held     {} of {} in {} rooms (joined in {:.2} s)",
            self.connected,
            self.clients,
            self.rooms,
            self.connect_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "relayed messages {} of {} received in {:.2} s, {} failed clients",
            self.messages_received,
            self.messages_expected,
            self.exchange_time.as_secs_f64(),
            self.failures
        )?;
        writeln!(
            f,
            "round trip       p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} exchanges",
            ms(self.round_trip.p50),
            ms(self.round_trip.p99),
            ms(self.round_trip.max),
            self.round_trip.count
        )?;
        writeln!(
            f,
            "server RSS       before {:.1} MiB, held {:.1} MiB, during (peak) {:.1} MiB, after {:.1} MiB ({:+.1} MiB from before); VmHWM {:.1} MiB",
            mib(m.before.rss_kib),
            mib(m.held.rss_kib),
            mib(m.during.rss_kib),
            mib(m.after.rss_kib),
            self.rss_growth_kib() as f64 / 1024.0,
            mib(m.after.hwm_kib)
        )?;
        writeln!(
            f,
            "server after     {} rooms, {} peers; open file descriptors: peak {}, after {}",
            self.rooms_after, self.peers_after, self.peak_fds, self.fds_after
        )?;
        if let Some(flood) = &self.flood {
            writeln!(
                f,
                "flood            {} candidates written, {} relayed, error {:?}, close {:?}, its room-mate kept: {}",
                flood.written, flood.relayed, flood.error, flood.close_code, flood.victim_kept
            )?;
        }
        for failure in &self.first_failures {
            writeln!(f, "failure          {failure}")?;
        }
        Ok(())
    }
}

/// Runs the load against `config.server` and reports; fails only if the run as a whole cannot
/// go on (bad configuration, memory unreadable, deadline). Failed clients are counted in the
/// report, so that a caller can decide what is acceptable.
pub async fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    config.check()?;
    match timeout(config.deadline, run_inner(config)).await {
        Ok(result) => result,
        Err(_) => Err(LoadError::Deadline(config.deadline)),
    }
}

/// One client's result.
#[derive(Debug, Default)]
struct Outcome {
    received: u64,
    round_trips: Vec<Duration>,
}

async fn run_inner(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    let pid = config.server_pid;
    let before = read_memory(pid)?;
    let mut failures = Vec::new();

    // Join: every client connects and reads its `joined`; all are held before the exchange
    // starts, so "held" is the memory of 1,000 idle sessions.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let mut joining = JoinSet::new();
    for index in 0..config.clients {
        let gate = Arc::clone(&gate);
        let room = format!("{}{}", config.room_prefix, index / 2);
        let (server, source) = (config.server, config.source(index));
        let (buffer, wait) = (config.client_read_buffer, config.message_timeout);
        joining.spawn(async move {
            let _permit = gate.acquire_owned().await;
            (index, join(server, source, &room, buffer, wait).await)
        });
    }
    let mut joined: Vec<Option<(Ws, usize)>> = (0..config.clients).map(|_| None).collect();
    while let Some(done) = joining.join_next().await {
        match done {
            Ok((index, Ok(client))) => joined[index] = Some(client),
            Ok((index, Err(err))) => failures.push(format!("client {index} joining: {err}")),
            Err(err) => failures.push(format!("joining task: {err}")),
        }
    }
    let connect_time = started.elapsed();
    let connected = joined.iter().filter(|c| c.is_some()).count();
    // Let the last sessions' `peer-joined` go out, so the reading is of a quiet server.
    sleep(Duration::from_millis(200)).await;
    let held = read_memory(pid)?;

    // The flooder's room, joined last so its burst lands on a server that holds everybody.
    let flood = match config.flood {
        Some(count) => Some(Flood::join(config, count).await?),
        None => None,
    };

    // Sample the server while the rooms negotiate.
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample(pid, stop_rx));

    let start = Instant::now() + Duration::from_millis(50);
    let mut clients = JoinSet::new();
    for (index, client) in joined.into_iter().enumerate() {
        let Some((ws, peers)) = client else { continue };
        let pair = index / 2;
        // Rooms start at evenly spread offsets within one interval (100 slots).
        let offset = config.round_interval.mul_f64((pair % 100) as f64 / 100.0);
        let plan = Plan::new(config, start + offset);
        clients.spawn(async move {
            let result = if index % 2 == 0 {
                offerer(ws, peers, plan).await
            } else {
                answerer(ws, plan).await
            };
            (index, result)
        });
    }
    let flood_task = flood.map(|flood| tokio::spawn(flood.run(config.message_timeout)));

    let mut received = 0;
    let mut samples = Vec::new();
    while let Some(done) = clients.join_next().await {
        match done {
            Ok((_, Ok(outcome))) => {
                received += outcome.received;
                samples.extend(outcome.round_trips);
            }
            Ok((index, Err(err))) => failures.push(format!("client {index}: {err}")),
            Err(err) => failures.push(format!("client task: {err}")),
        }
    }
    let exchange_time = start.elapsed();
    let flood = match flood_task {
        Some(task) => Some(
            task.await
                .map_err(|err| LoadError::Unexpected(format!("flood task: {err}")))??,
        ),
        None => None,
    };
    stop_tx.send_replace(true);
    let (peak_rss, peak_fds) = sampler
        .await
        .map_err(|err| LoadError::Unexpected(format!("sampler task: {err}")))?;
    let end_of_exchange = read_memory(pid)?;
    let during = Memory {
        rss_kib: peak_rss.max(end_of_exchange.rss_kib),
        hwm_kib: end_of_exchange.hwm_kib,
    };

    // After: wait until the server has seen every client go, then give it `settle` to finish.
    let emptied = Instant::now() + config.message_timeout;
    let (rooms_after, peers_after) = loop {
        let (rooms, peers) = health(config.server).await?;
        if peers == 0 || Instant::now() >= emptied {
            break (rooms, peers);
        }
        sleep(Duration::from_millis(50)).await;
    };
    sleep(config.settle).await;
    let after = read_memory(pid)?;
    let fds_after = open_fds(pid)?;

    let failed = failures.len();
    failures.truncate(FAILURES_KEPT);
    Ok(LoadReport {
        clients: config.clients,
        rooms: config.rooms(),
        connected,
        connect_time,
        exchange_time,
        messages_expected: config.messages_expected(),
        messages_received: received,
        round_trip: RoundTrip::from_samples(samples),
        memory: MemoryReport {
            before,
            held,
            during,
            after,
        },
        peak_fds,
        fds_after,
        rooms_after,
        peers_after,
        flood,
        failures: failed,
        first_failures: failures,
    })
}

/// Peak RSS (KiB) and open descriptors of `pid` until `stop`.
async fn sample(pid: u32, mut stop: watch::Receiver<bool>) -> (u64, usize) {
    let (mut rss, mut fds) = (0, 0);
    loop {
        // A failed reading (the server gone) shows in the readings that follow the run.
        if let Ok(memory) = read_memory(pid) {
            rss = rss.max(memory.rss_kib);
        }
        if let Ok(open) = open_fds(pid) {
            fds = fds.max(open);
        }
        if timeout(SAMPLE_EVERY, stop.wait_for(|stop| *stop))
            .await
            .is_ok()
        {
            return (rss, fds);
        }
    }
}

/// Connects from `source` to `room` and reads `joined`; returns the socket and the room's peer
/// count at join.
async fn join(
    server: SocketAddr,
    source: Ipv4Addr,
    room: &str,
    read_buffer: usize,
    wait: Duration,
) -> Result<(Ws, usize), LoadError> {
    let socket = TcpSocket::new_v4().map_err(io_error("creating a socket"))?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(io_error(format!("binding to source address {source}")))?;
    let stream = timeout(wait, socket.connect(server))
        .await
        .map_err(|_| LoadError::Timeout(format!("TCP connect to {server}")))?
        .map_err(io_error(format!("connecting to {server} from {source}")))?;
    // As the server does: small latency-bound messages must not wait for Nagle's algorithm.
    stream
        .set_nodelay(true)
        .map_err(io_error("setting TCP_NODELAY"))?;
    let url = format!("ws://{server}/ws?room={room}");
    let ws_config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let connecting = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config));
    let (mut ws, _) = timeout(wait, connecting)
        .await
        .map_err(|_| LoadError::Timeout("the WebSocket upgrade".to_owned()))??;
    match recv(&mut ws, wait, "joined").await? {
        ServerMessage::Joined { peers, .. } => Ok((ws, peers)),
        other => Err(LoadError::Unexpected(format!(
            "{other:?} instead of joined"
        ))),
    }
}

/// The next server message (pings are answered by tungstenite and skipped).
async fn recv(ws: &mut Ws, wait: Duration, what: &str) -> Result<ServerMessage, LoadError> {
    let deadline = Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| LoadError::Timeout(what.to_owned()))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).map_err(|err| {
                    LoadError::Unexpected(format!("not a server message ({err}): {text}"))
                });
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(LoadError::Closed(
                    frame.map_or_else(|| "no close frame".to_owned(), |f| f.to_string()),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => return Err(LoadError::Closed("socket ended".to_owned())),
        }
    }
}

async fn send(ws: &mut Ws, msg: &ClientMessage, wait: Duration) -> Result<(), LoadError> {
    let text = serde_json::to_string(msg)
        .map_err(|err| LoadError::Unexpected(format!("cannot serialize {msg:?}: {err}")))?;
    timeout(wait, ws.send(Message::text(text)))
        .await
        .map_err(|_| LoadError::Timeout("a send".to_owned()))??;
    Ok(())
}

/// Closes the WebSocket properly and reads until the server has closed too.
async fn close(mut ws: Ws, wait: Duration) {
    let _ = timeout(wait, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// What one client of a room does, and when.
#[derive(Debug, Clone)]
struct Plan {
    rounds: usize,
    candidates: usize,
    interval: Duration,
    sdp_bytes: usize,
    wait: Duration,
    first_round: Instant,
}

impl Plan {
    fn new(config: &LoadConfig, first_round: Instant) -> Self {
        Self {
            rounds: config.rounds,
            candidates: config.candidates_per_round,
            interval: config.round_interval,
            sdp_bytes: config.sdp_bytes,
            wait: config.message_timeout,
            first_round,
        }
    }
}

/// An SDP of about `bytes` bytes whose origin line carries `seq` (the session id field of
/// RFC 8866 §5.2), padded with attribute lines.
fn sdp(seq: usize, bytes: usize) -> String {
    const PAD: &str = "a=x-rtclab-load:0123456789abcdef0123456789abcdef\r\n";
    let mut sdp = format!("v=0\r\no=- {seq} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    while sdp.len() + PAD.len() <= bytes {
        sdp.push_str(PAD);
    }
    sdp
}

fn sdp_seq(sdp: &str) -> Option<usize> {
    let origin = sdp.lines().find_map(|line| line.strip_prefix("o=- "))?;
    origin.split(' ').next()?.parse().ok()
}

/// A host candidate whose foundation is `seq`.
fn candidate(seq: usize) -> IceCandidate {
    IceCandidate {
        candidate: format!(
            "candidate:{seq} 1 udp 2130706431 127.0.0.1 {} typ host",
            10_000 + seq % 50_000
        ),
        sdp_mid: Some("0".to_owned()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    }
}

fn candidate_seq(candidate: &IceCandidate) -> Option<usize> {
    let rest = candidate.candidate.strip_prefix("candidate:")?;
    rest.split(' ').next()?.parse().ok()
}

/// The offerer: waits for its peer, then runs the rounds, then says bye.
async fn offerer(mut ws: Ws, peers: usize, plan: Plan) -> Result<Outcome, LoadError> {
    // Alone at join: the answerer's arrival is announced (all clients joined before this runs).
    if peers < 2 {
        match recv(&mut ws, plan.wait, "peer-joined").await? {
            ServerMessage::PeerJoined => {}
            other => {
                return Err(LoadError::Unexpected(format!(
                    "{other:?} instead of peer-joined"
                )));
            }
        }
    }
    let per_round = 1 + plan.candidates;
    let mut outcome = Outcome {
        received: 0,
        round_trips: Vec::with_capacity(plan.rounds * per_round),
    };
    let mut sent_at = vec![Instant::now(); plan.candidates];
    for round in 0..plan.rounds {
        sleep_until(plan.first_round + plan.interval * round as u32).await;
        let base = round * per_round;
        let offered = Instant::now();
        let offer = ClientMessage::Offer {
            sdp: sdp(base, plan.sdp_bytes),
        };
        send(&mut ws, &offer, plan.wait).await?;
        match recv(&mut ws, plan.wait, "the answer").await? {
            ServerMessage::Answer { sdp } if sdp_seq(&sdp) == Some(base) => {
                outcome.round_trips.push(offered.elapsed());
                outcome.received += 1;
            }
            other => {
                return Err(LoadError::Unexpected(format!(
                    "{other:?} instead of answer {base}"
                )));
            }
        }
        // Trickled one by one, as an ICE agent finds them; the replies come back meanwhile.
        for (k, at) in sent_at.iter_mut().enumerate() {
            *at = Instant::now();
            let candidate = ClientMessage::Candidate {
                candidate: candidate(base + 1 + k),
            };
            send(&mut ws, &candidate, plan.wait).await?;
        }
        for _ in 0..plan.candidates {
            match recv(&mut ws, plan.wait, "a candidate reply").await? {
                ServerMessage::Candidate { candidate } => {
                    let at = candidate_seq(&candidate)
                        .and_then(|seq| seq.checked_sub(base + 1))
                        .and_then(|k| sent_at.get(k))
                        .ok_or_else(|| {
                            LoadError::Unexpected(format!(
                                "candidate {candidate:?} in round {round}"
                            ))
                        })?;
                    outcome.round_trips.push(at.elapsed());
                    outcome.received += 1;
                }
                other => {
                    return Err(LoadError::Unexpected(format!(
                        "{other:?} instead of a candidate"
                    )));
                }
            }
        }
    }
    send(&mut ws, &ClientMessage::Bye, plan.wait).await?;
    close(ws, plan.wait).await;
    Ok(outcome)
}

/// The answerer: answers offers, echoes candidates, until the offerer's bye.
async fn answerer(mut ws: Ws, plan: Plan) -> Result<Outcome, LoadError> {
    let mut outcome = Outcome::default();
    // Waits span a round interval (and the start offset) on top of the message's own trip.
    let wait = plan.wait + plan.interval * 2;
    loop {
        match recv(&mut ws, wait, "the offerer's next message").await? {
            ServerMessage::PeerJoined => {}
            ServerMessage::Offer { sdp: offer } => {
                outcome.received += 1;
                let seq = sdp_seq(&offer)
                    .ok_or_else(|| LoadError::Unexpected("offer without a sequence".to_owned()))?;
                let answer = ClientMessage::Answer {
                    sdp: sdp(seq, plan.sdp_bytes),
                };
                send(&mut ws, &answer, plan.wait).await?;
            }
            ServerMessage::Candidate { candidate } => {
                outcome.received += 1;
                send(&mut ws, &ClientMessage::Candidate { candidate }, plan.wait).await?;
            }
            ServerMessage::Bye | ServerMessage::PeerLeft => break,
            other => return Err(LoadError::Unexpected(format!("answerer got {other:?}"))),
        }
    }
    close(ws, plan.wait).await;
    Ok(outcome)
}

/// The flooder's room: a flooder and its room-mate (the "victim").
struct Flood {
    flooder: Ws,
    victim: Ws,
    count: usize,
}

impl Flood {
    async fn join(config: &LoadConfig, count: usize) -> Result<Self, LoadError> {
        let room = format!("{}flood", config.room_prefix);
        // 127.0.0.1: an address of its own, apart from the load's.
        let source = Ipv4Addr::LOCALHOST;
        let (buffer, wait) = (config.client_read_buffer, config.message_timeout);
        let (mut victim, _) = join(config.server, source, &room, buffer, wait).await?;
        let (flooder, _) = join(config.server, source, &room, buffer, wait).await?;
        match recv(&mut victim, config.message_timeout, "peer-joined").await? {
            ServerMessage::PeerJoined => Ok(Self {
                flooder,
                victim,
                count,
            }),
            other => Err(LoadError::Unexpected(format!(
                "{other:?} instead of peer-joined"
            ))),
        }
    }

    /// Floods, then reports what the flooder and its room-mate saw.
    async fn run(self, wait: Duration) -> Result<FloodReport, LoadError> {
        let Self {
            flooder,
            mut victim,
            count,
        } = self;
        let (mut sink, mut stream) = flooder.split();
        let writer = tokio::spawn(async move {
            let mut written = 0;
            for seq in 0..count {
                let Ok(text) = serde_json::to_string(&ClientMessage::Candidate {
                    candidate: candidate(seq),
                }) else {
                    break;
                };
                // `feed` only buffers (tungstenite writes when its buffer fills): as fast as the
                // socket takes it. It fails once the server has closed the connection.
                if sink.feed(Message::text(text)).await.is_err() {
                    break;
                }
                written += 1;
            }
            let _ = sink.flush().await;
            written
        });
        let mut report = FloodReport::default();
        // The room-mate reads what is relayed until `peer-left`; a close here would mean the
        // flood got the innocent peer thrown out.
        loop {
            match recv(&mut victim, wait, "the flood or peer-left").await {
                Ok(ServerMessage::Candidate { .. }) => report.relayed += 1,
                Ok(ServerMessage::PeerLeft) => {
                    report.victim_kept = true;
                    break;
                }
                Ok(other) => return Err(LoadError::Unexpected(format!("victim got {other:?}"))),
                Err(_) => break,
            }
        }
        // The flooder: its `error`, then the close frame.
        let _ = timeout(wait, async {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        if let Ok(ServerMessage::Error { code, .. }) =
                            serde_json::from_str(text.as_str())
                        {
                            report.error = Some(code);
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        report.close_code = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
        .await;
        let mut writer = writer;
        report.written = match timeout(wait, &mut writer).await {
            Ok(Ok(written)) => written,
            // Stuck on a socket the server no longer reads: stop it, so it ends with the run.
            _ => {
                writer.abort();
                0
            }
        };
        close(victim, wait).await;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = (1..=200).map(Duration::from_millis).collect();
        let rt = RoundTrip::from_samples(samples);
        assert_eq!(rt.count, 200);
        assert_eq!(rt.p50, Duration::from_millis(100));
        assert_eq!(rt.p99, Duration::from_millis(198));
        assert_eq!(rt.max, Duration::from_millis(200));
        assert_eq!(RoundTrip::from_samples(Vec::new()), RoundTrip::default());
    }

    #[test]
    fn sequence_numbers_survive_the_messages() {
        let offer = sdp(1234, 3000);
        assert!((2900..=3000).contains(&offer.len()), "{}", offer.len());
        assert_eq!(sdp_seq(&offer), Some(1234));
        assert_eq!(candidate_seq(&candidate(77)), Some(77));
    }

    #[test]
    fn clients_spread_over_source_addresses() {
        let config = LoadConfig::new("127.0.0.1:1".parse().expect("address"), 1);
        assert_eq!(config.source(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(config.source(49), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(config.source(50), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(config.source(999), Ipv4Addr::new(127, 0, 0, 21));
        assert!(config.check().is_ok());
        let mut odd = config.clone();
        odd.clients = 3;
        assert!(odd.check().is_err());
        let mut fast = config;
        fast.round_interval = Duration::from_millis(100);
        assert!(
            fast.check().is_err(),
            "11 messages per 100 ms is 110/s, over 50/s"
        );
    }

    #[test]
    fn own_memory_is_readable() {
        let memory = read_memory(std::process::id()).expect("/proc/self/status");
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
        assert!(open_fds(std::process::id()).expect("/proc/self/fd") >= 3);
    }
}
