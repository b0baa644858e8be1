//! Shared by the TURN tests: a server on a free loopback port logging to a temp file, and a
//! `turn` crate client.
#![allow(dead_code)] // each test file uses a different part

use rtclab_events::{Event, EventSink, Record, SystemClock, read_log};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

/// The secret every test server uses.
pub const SECRET: &str = "rtclab-test-secret";

/// A server and its log.
pub struct Lab {
    pub server: TurnServer,
    pub sink: EventSink,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a server configured by `tweak` on a free loopback port.
pub async fn start(tweak: impl FnOnce(&mut TurnConfig)) -> Lab {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.jsonl");
    let sink = EventSink::create(&log, Arc::new(SystemClock), None, serde_json::Value::Null)
        .expect("event log");
    let mut config = TurnConfig::loopback_any_port(SECRET);
    tweak(&mut config);
    let server = TurnServer::start(config, Some(sink.clone()))
        .await
        .expect("TURN server starts");
    Lab {
        server,
        sink,
        log,
        _dir: dir,
    }
}

/// Seconds since the epoch now, as the server sees it.
pub fn now() -> u64 {
    SystemWallClock.unix_now_s()
}

/// A `turn` crate client of `server` with these credentials, listening.
pub async fn client(server: SocketAddr, username: &str, password: &str) -> Client {
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("client socket"));
    let c = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .expect("TURN client");
    c.listen().await.expect("client listens");
    c
}

/// Allocates with the given credentials; the error text if refused. Bounded so a server that
/// stops answering fails the test instead of hanging it (the client retransmits for ~40 s).
pub async fn try_allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> (Client, Result<impl Conn, String>) {
    let c = client(server, username, password).await;
    let r = tokio::time::timeout(Duration::from_secs(10), c.allocate()).await;
    let r = match r {
        Ok(Ok(relay)) => Ok(relay),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 10 s".to_owned()),
    };
    (c, r)
}

/// Relays one datagram client → peer and one back; panics unless both arrive.
pub async fn round_trip(relay: &impl Conn) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer socket");
    let peer_addr = peer.local_addr().expect("peer addr");
    relay
        .send_to(b"hello peer", peer_addr)
        .await
        .expect("relay to an allowed peer");
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .expect("peer got the relayed datagram in 5 s")
        .expect("peer recv");
    assert_eq!(&buf[..n], b"hello peer");
    let relay_addr = relay.local_addr().expect("relay addr");
    assert_eq!(
        from, relay_addr,
        "the datagram comes from the relayed address"
    );
    peer.send_to(b"hello client", relay_addr)
        .await
        .expect("peer sends back");
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), relay.recv_from(&mut buf))
        .await
        .expect("client got the peer's answer in 5 s")
        .expect("relay recv");
    assert_eq!(&buf[..n], b"hello client");
    assert_eq!(from, peer_addr);
}

/// The log so far.
pub fn events(lab: &Lab) -> Vec<Record> {
    read_log(&lab.log).expect("log reads")
}

/// The `turn.refused` events of the log.
pub fn refusals(lab: &Lab) -> Vec<(String, u16, String)> {
    events(lab)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TurnRefused {
                method,
                code,
                reason,
                ..
            } => Some((method, code, reason)),
            _ => None,
        })
        .collect()
}

/// Proves the server still serves: a fresh, valid allocation relays both ways.
pub async fn still_serves(lab: &Lab) {
    let creds = lab
        .server
        .credentials("after", now(), rtclab_turn::DEFAULT_TTL);
    let (c, relay) = try_allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    let relay = relay.expect("a valid allocation after the refusals");
    round_trip(&relay).await;
    relay.close().await.ok();
    c.close().await.ok();
}
