//! What `rtclab relay`'s impairment costs a relayed packet: one-way latency (p50/p99/max) and
//! packets per CPU-second, against plain UDP and against the same TURN server without the
//! impairment hook. Loopback, release build; wall-clock time is what is measured here.
//!
//! `cargo bench -p rtclab-runner --bench relay_overhead`. Each path carries 1,200-byte datagrams
//! client → peer (the `turn` crate's client, ChannelData after the first packet), each stamped
//! with its send time: 20,000 at 10,000 packets/s for the latency, then 2 s offered at 40,000
//! packets/s for the throughput. "Impairment on" is a 0.5 % random loss on the client's uplink,
//! so every packet goes through the model, the delay line and the egress task. CPU time is the
//! whole process's (client, server and peer sockets together), from getrusage.

use rtclab_netem::{Impairment, ImpairmentConfig, Schedule};
use rtclab_runner::live::{Entry, Kind};
use rtclab_runner::relay::{RelayConfig, run_relay};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const SECRET: &str = "bench-secret";
const SIZE: usize = 1200;
const LATENCY_PACKETS: u64 = 20_000;
const LATENCY_PPS: u64 = 10_000;
const THROUGHPUT_PPS: u64 = 40_000;
const THROUGHPUT_FOR: Duration = Duration::from_secs(2);

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Sends `n` stamped datagrams at `pps` from `from` to `to`.
async fn send(from: &(dyn Conn + Send + Sync), to: SocketAddr, base: Instant, n: u64, pps: u64) {
    let per_ms = pps as f64 / 1000.0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut payload = vec![7u8; SIZE];
    let (mut sent, mut owed) = (0u64, 0.0f64);
    while sent < n {
        tick.tick().await;
        owed += per_ms;
        while owed >= 1.0 && sent < n {
            let ns = base.elapsed().as_nanos() as u64;
            payload[..8].copy_from_slice(&ns.to_be_bytes());
            payload[8..16].copy_from_slice(&sent.to_be_bytes());
            let _ = from.send_to(&payload, to).await;
            sent += 1;
            owed -= 1.0;
        }
    }
}

/// Receives until 500 ms of silence; the one-way delays in µs.
async fn receive(peer: Arc<dyn Conn + Send + Sync>, base: Instant) -> Vec<f64> {
    let mut buf = vec![0u8; 2048];
    let mut delays = Vec::new();
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), peer.recv_from(&mut buf)).await
    {
        if n >= 16 {
            let sent = u64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
            let now = base.elapsed().as_nanos() as u64;
            delays.push(now.saturating_sub(sent) as f64 / 1000.0);
        }
    }
    delays
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A `turn` client allocation on `server`; returns (relay conn, peer socket, peer address).
async fn allocate(
    server: SocketAddr,
) -> (
    Arc<dyn Conn + Send + Sync>,
    Arc<dyn Conn + Send + Sync>,
    SocketAddr,
    Client,
) {
    let c = rtclab_turn::credentials::issue(
        SECRET,
        "bench",
        SystemWallClock.unix_now_s(),
        rtclab_turn::DEFAULT_TTL,
    );
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("socket"));
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: c.username,
        password: c.password,
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .expect("client");
    client.listen().await.expect("listen");
    let relay: Arc<dyn Conn + Send + Sync> = Arc::new(client.allocate().await.expect("allocate"));
    let peer: Arc<dyn Conn + Send + Sync> =
        Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("peer"));
    let peer_addr = peer.local_addr().expect("peer addr");
    // Permission and channel binding first, so the measured part is steady state.
    relay.send_to(b"warm-up", peer_addr).await.expect("warm-up");
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .expect("warm-up arrives")
        .expect("recv");
    tokio::time::sleep(Duration::from_millis(300)).await;
    (relay, peer, peer_addr, client)
}

async fn measure(
    name: &str,
    from: Arc<dyn Conn + Send + Sync>,
    peer: Arc<dyn Conn + Send + Sync>,
    to: SocketAddr,
) {
    let base = Instant::now();
    let rx = tokio::spawn(receive(peer.clone(), base));
    send(&*from, to, base, LATENCY_PACKETS, LATENCY_PPS).await;
    let mut d = rx.await.expect("receiver");
    d.sort_by(f64::total_cmp);
    let n = (THROUGHPUT_PPS as f64 * THROUGHPUT_FOR.as_secs_f64()) as u64;
    let cpu0 = cpu_seconds();
    let rx = tokio::spawn(receive(peer.clone(), base));
    send(&*from, to, base, n, THROUGHPUT_PPS).await;
    let got = rx.await.expect("receiver").len();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{name:34} latency p50 {:7.1} µs  p99 {:7.1} µs  max {:8.1} µs  ({} of {LATENCY_PACKETS} arrived)  |  {THROUGHPUT_PPS} pps offered: {:5.1} % arrived, {:6.0} packets per CPU-second",
        pct(&d, 0.5),
        pct(&d, 0.99),
        d.last().copied().unwrap_or(f64::NAN),
        d.len(),
        100.0 * got as f64 / n as f64,
        got as f64 / cpu.max(1e-9),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "relay overhead, loopback, {SIZE}-byte datagrams client -> peer (release build; whole-process CPU)"
    );
    // Plain UDP, the floor.
    let a: Arc<dyn Conn + Send + Sync> = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("a"));
    let b: Arc<dyn Conn + Send + Sync> = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("b"));
    let b_addr = b.local_addr().expect("b");
    measure("direct UDP", a, b, b_addr).await;

    // The embedded TURN server, no hook.
    let server = TurnServer::start(TurnConfig::loopback_any_port(SECRET), None)
        .await
        .expect("TURN server");
    let (relay, peer, peer_addr, client) = allocate(server.udp_addr()).await;
    measure("TURN relay, no impairment", relay, peer, peer_addr).await;
    let _ = client.close().await;
    let _ = server.shutdown().await;

    // rtclab relay with the impairment on.
    let out = tempfile::tempdir().expect("temp dir");
    let impairment = Impairment {
        downlink: Schedule::default(),
        uplink: Schedule {
            base: ImpairmentConfig {
                loss_pct: Some(0.5),
                ..Default::default()
            },
            steps: Vec::new(),
        },
    };
    let entry = Entry {
        name: "bench".into(),
        kind: Kind::Scenario,
        file: PathBuf::from("bench"),
        description: String::new(),
        duration_s: 60.0,
        impairment,
        seed: 1,
    };
    let cfg = RelayConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        turn_addr: "127.0.0.1:0".parse().expect("addr"),
        out: out.path().to_owned(),
        scenario: Some(entry),
        impair_user: None,
        allowed_peers: rtclab_turn::AllowedPeers::Loopback,
        secret: Some(SECRET.into()),
        web_dir: PathBuf::from("/nonexistent"),
        scenarios_dir: PathBuf::from("/nonexistent"),
        seed: 1,
        allowed_origins: Vec::new(),
        max_relay_kbps: None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let runtime = rtclab_peer::default_runtime().expect("runtime");
    let relay_task = tokio::spawn(run_relay(
        cfg,
        runtime,
        async move {
            let _ = stop_rx.await;
        },
        move |r| {
            let _ = ready_tx.send(r.turn);
        },
    ));
    let turn = ready_rx.await.expect("relay ready");
    let (relay, peer, peer_addr, client) = allocate(turn).await;
    measure("rtclab relay, 0.5 % loss (uplink)", relay, peer, peer_addr).await;
    let _ = client.close().await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), relay_task).await;
}
