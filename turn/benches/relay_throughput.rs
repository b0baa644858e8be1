//! Relayed throughput on loopback, through rtclab's embedded TURN server and through coturn.
//!
//! `cargo bench -p rtclab-turn --bench relay_throughput` allocates with the `turn` crate's
//! client, then for each direction offers 10, 50, 100, 200 and 400 Mbps of 1,200-byte datagrams
//! for one second each (paced per millisecond), and prints how many arrived and the goodput
//! between the first and the last arrival.
//! Client → peer goes through the `turn` client's ChannelData path (its own cost included);
//! peer → client is plain UDP into the relay port. coturn is skipped with a message when it is
//! not installed (this is a benchmark, not a test). Wall-clock time is what is measured here.

use rtclab_turn::coturn::{Coturn, CoturnConfig};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const SECRET: &str = "bench-secret";
const SIZE: usize = 1200;
/// Offered rates; each is offered for [`OFFER`].
const RATES_MBPS: [u64; 5] = [10, 50, 100, 200, 400];
const OFFER: Duration = Duration::from_secs(1);

/// Sends `mbps` worth of datagrams per millisecond tick for [`OFFER`]; returns how many.
async fn paced(
    from: &(dyn Conn + Send + Sync),
    to: SocketAddr,
    payload: &[u8],
    mbps: u64,
) -> usize {
    let per_ms = (mbps * 1_000_000 / 1000) as f64 / (SIZE * 8) as f64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let start = Instant::now();
    let (mut sent, mut owed) = (0usize, 0.0f64);
    while start.elapsed() < OFFER {
        tick.tick().await;
        owed += per_ms;
        while owed >= 1.0 {
            let _ = from.send_to(payload, to).await;
            sent += 1;
            owed -= 1.0;
        }
    }
    sent
}

/// Receives until nothing came for 500 ms; (count, first, last arrival).
async fn drain(conn: Arc<dyn Conn + Send + Sync>) -> (usize, Option<Instant>, Option<Instant>) {
    let mut buf = vec![0u8; 2048];
    let (mut n, mut first, mut last) = (0usize, None, None);
    loop {
        match tokio::time::timeout(Duration::from_millis(500), conn.recv_from(&mut buf)).await {
            Ok(Ok(_)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                n += 1;
            }
            _ => return (n, first, last),
        }
    }
}

fn report(
    name: &str,
    dir: &str,
    offered: u64,
    sent: usize,
    got: (usize, Option<Instant>, Option<Instant>),
) {
    let (n, first, last) = got;
    let secs = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let mbps = if secs > 0.0 {
        (n * SIZE * 8) as f64 / secs / 1e6
    } else {
        0.0
    };
    println!(
        "{name:9} {dir:15} offered {offered:4} Mbps  sent {sent:6}  arrived {n:6} ({:5.1} %)  goodput {mbps:7.1} Mbps  ({:.0} packets/s)",
        100.0 * n as f64 / sent as f64,
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    );
}

async fn run(name: &str, server: SocketAddr) {
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
    let relay_addr = relay.local_addr().expect("relay addr");
    let peer: Arc<dyn Conn + Send + Sync> =
        Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("peer"));
    let peer_addr = peer.local_addr().expect("peer addr");
    // Permission and channel binding first, so the timed part is steady state.
    relay.send_to(b"warm-up", peer_addr).await.expect("warm-up");
    let mut buf = [0u8; 64];
    peer.recv_from(&mut buf).await.expect("warm-up arrives");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let payload = vec![7u8; SIZE];
    for mbps in RATES_MBPS {
        let rx = tokio::spawn(drain(peer.clone()));
        let sent = paced(&*relay, peer_addr, &payload, mbps).await;
        report(
            name,
            "client -> peer",
            mbps,
            sent,
            rx.await.expect("receiver"),
        );
    }
    for mbps in RATES_MBPS {
        let rx = tokio::spawn(drain(relay.clone()));
        let sent = paced(&*peer, relay_addr, &payload, mbps).await;
        report(
            name,
            "peer -> client",
            mbps,
            sent,
            rx.await.expect("receiver"),
        );
    }
    let _ = relay.close().await;
    let _ = client.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = TurnServer::start(TurnConfig::loopback_any_port(SECRET), None)
        .await
        .expect("embedded TURN server");
    run("embedded", server.udp_addr()).await;
    let _ = server.shutdown().await;

    let dir = tempfile::tempdir().expect("temp dir");
    match Coturn::start(CoturnConfig::loopback(SECRET, dir.path())).await {
        Ok(coturn) => run("coturn", coturn.addr()).await,
        Err(e) => println!("coturn   skipped: {e}"),
    }
}
