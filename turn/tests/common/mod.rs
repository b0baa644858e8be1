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
) -> (Client, Result<impl Conn + use<>, String>) {
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

/// The `turn.refused` events of the log, for tests that do not look at the peer address
/// ([`refusals_with_peer`] without it).
pub fn refusals(lab: &Lab) -> Vec<(String, u16, String)> {
    refusals_with_peer(lab)
        .into_iter()
        .map(|(method, code, reason, _peer)| (method, code, reason))
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

/// A TURN client written with the `stun` crate, for requests the `turn` crate's client never
/// sends on its own (a ChannelBind or Send indication to a peer it has no permission for):
/// one allocation on its own socket, every request signed with the long-term credentials.
pub struct RawClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub relay: SocketAddr,
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

/// A peer address attribute for `peer`.
pub fn peer_attr(peer: SocketAddr) -> turn::proto::peeraddr::PeerAddress {
    turn::proto::peeraddr::PeerAddress {
        ip: peer.ip(),
        port: peer.port(),
    }
}

impl RawClient {
    /// Allocates on `server` with these credentials (401 challenge, then the signed request).
    pub async fn allocate(server: SocketAddr, username: &str, password: &str) -> RawClient {
        use stun::message::{CLASS_REQUEST, METHOD_ALLOCATE, Message, MessageType, Setter};
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("raw socket");
        let transport = || turn::proto::reqtrans::RequestedTransport {
            protocol: turn::proto::PROTO_UDP,
        };
        let mut first = Message::new();
        first
            .build(&[
                Box::new(stun::agent::TransactionId::new()),
                Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
                Box::new(transport()) as Box<dyn Setter>,
            ])
            .expect("allocate");
        let challenge = exchange(&socket, server, &first).await;
        let text = |attr| {
            stun::textattrs::TextAttribute::get_from_as(&challenge, attr)
                .expect("401 carries REALM and NONCE")
                .text
        };
        let mut c = RawClient {
            socket,
            server,
            relay: server,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: text(stun::attributes::ATTR_REALM),
            nonce: text(stun::attributes::ATTR_NONCE),
        };
        let ok = c
            .request(METHOD_ALLOCATE, vec![Box::new(transport())])
            .await;
        assert_eq!(
            ok.typ.class,
            stun::message::CLASS_SUCCESS_RESPONSE,
            "signed allocate granted"
        );
        let mut relayed = turn::proto::relayaddr::RelayedAddress::default();
        stun::message::Getter::get_from(&mut relayed, &ok).expect("XOR-RELAYED-ADDRESS");
        c.relay = SocketAddr::new(relayed.ip, relayed.port);
        c
    }

    /// Sends a signed request of `method` with `attrs` and returns the response.
    pub async fn request(
        &self,
        method: stun::message::Method,
        attrs: Vec<Box<dyn stun::message::Setter>>,
    ) -> stun::message::Message {
        use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
        use stun::message::{CLASS_REQUEST, Message, MessageType, Setter};
        use stun::textattrs::TextAttribute;
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(stun::agent::TransactionId::new()),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        setters.extend(attrs);
        setters.push(Box::new(TextAttribute::new(
            ATTR_USERNAME,
            self.username.clone(),
        )));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
        setters.push(Box::new(
            stun::integrity::MessageIntegrity::new_long_term_integrity(
                self.username.clone(),
                self.realm.clone(),
                self.password.clone(),
            ),
        ));
        setters.push(Box::new(stun::fingerprint::FINGERPRINT));
        let mut m = Message::new();
        m.build(&setters).expect("request");
        exchange(&self.socket, self.server, &m).await
    }

    /// Sends a Send indication carrying `data` to `peer` (indications get no answer).
    pub async fn send_indication(&self, peer: SocketAddr, data: &[u8]) {
        use stun::message::{CLASS_INDICATION, METHOD_SEND, Message, MessageType};
        let mut m = Message::new();
        m.build(&[
            Box::new(stun::agent::TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(peer_attr(peer)),
            Box::new(turn::proto::data::Data(data.to_vec())),
            Box::new(stun::fingerprint::FINGERPRINT),
        ])
        .expect("send indication");
        self.socket
            .send_to(&m.raw, self.server)
            .await
            .expect("send indication sent");
    }
}

/// Sends `m` and waits up to 5 s for the response with its transaction ID (skipping anything
/// else, e.g. Data indications).
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    m: &stun::message::Message,
) -> stun::message::Message {
    socket.send_to(&m.raw, server).await.expect("request sent");
    let mut buf = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("a response in 5 s")
            .expect("recv");
        let mut r = stun::message::Message {
            raw: buf[..n].to_vec(),
            ..Default::default()
        };
        if r.decode().is_ok() && r.transaction_id == m.transaction_id {
            return r;
        }
    }
}

/// The error code of a response (0 for a success).
pub fn error_code(r: &stun::message::Message) -> u16 {
    let mut ec = stun::error_code::ErrorCodeAttribute::default();
    match stun::message::Getter::get_from(&mut ec, r) {
        Ok(()) => ec.code.0,
        Err(_) => 0,
    }
}

/// The `turn.refused` events of the log with their peer address.
pub fn refusals_with_peer(lab: &Lab) -> Vec<(String, u16, String, Option<String>)> {
    events(lab)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TurnRefused {
                method,
                code,
                reason,
                peer_addr,
                ..
            } => Some((method, code, reason, peer_addr)),
            _ => None,
        })
        .collect()
}
