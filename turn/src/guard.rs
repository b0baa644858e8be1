//! The listener socket the `turn` server reads from, wrapped: it enforces the peer allow-list and
//! the per-user quota before a request reaches the server, and turns the server's responses into
//! `turn.*` events. The `turn` crate has no hooks for either, so rtclab reads the STUN messages
//! on the wire (both directions) instead.

use crate::auth::WallClock;
use crate::credentials;
use crate::policy::{Policy, user_of};
use async_trait::async_trait;
use rtclab_events::{Event, EventSink, PeerRole};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use stun::agent::TransactionId;
use stun::attributes::{
    ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_MESSAGE_INTEGRITY_SHA256, ATTR_NONCE,
    ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS,
};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND,
    Message, MessageType, Method, Setter,
};
use stun::textattrs::TextAttribute;
use turn::proto::channum::ChannelNumber;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;
use webrtc_util::Conn;

/// Requests whose response has not been seen yet are remembered up to this many; the `turn`
/// server sends no response at all for some failures (e.g. a CreatePermission without an
/// allocation), so the table must forget.
const MAX_PENDING: usize = 4096;

/// State shared by the guard, the close watcher and the byte ticker.
pub(crate) struct Shared {
    pub(crate) secret: String,
    pub(crate) realm: String,
    pub(crate) clock: Arc<dyn WallClock>,
    pub(crate) policy: Policy,
    pub(crate) sink: Option<EventSink>,
    /// Client-to-server transport label for events.
    pub(crate) transport: &'static str,
    pub(crate) state: Mutex<State>,
    /// The server's own listener, which no allocation may relay to.
    pub(crate) own: OwnAddresses,
}

/// The server's listening address. Relaying to it would loop traffic through the server itself
/// (what an allocation sends there is parsed as a client's request), so a peer address equal to
/// it is refused even where its IP is allowed (loopback in lab mode). Another allocation's relay
/// address is a legitimate peer: two relay-only clients of one server talk relay to relay.
#[derive(Default)]
pub(crate) struct OwnAddresses {
    pub(crate) listener: Option<SocketAddr>,
}

impl OwnAddresses {
    fn contains(&self, a: &SocketAddr) -> bool {
        // A listener on 0.0.0.0 or :: is reached on its port at every local address; loopback
        // is the one sure to be local.
        self.listener.is_some_and(|l| {
            l == *a || (l.ip().is_unspecified() && l.port() == a.port() && a.ip().is_loopback())
        })
    }
}

/// What the guard remembers between a request and its response.
#[derive(Default)]
pub(crate) struct State {
    pending: HashMap<TransactionId, Pending>,
    order: VecDeque<TransactionId>,
    /// Recently answered transactions: a retransmitted request is answered again by the server
    /// (RFC 8489 §6.3.1) but is not a new event.
    answered: HashSet<TransactionId>,
    answered_order: VecDeque<TransactionId>,
    /// Live allocations: client address → username.
    pub(crate) allocations: HashMap<SocketAddr, String>,
    /// Live allocations: relayed address → client address (to name the client of a relay).
    pub(crate) relays: HashMap<SocketAddr, SocketAddr>,
}

struct Pending {
    method: Method,
    username: Option<String>,
    peers: Vec<SocketAddr>,
    raw: Vec<u8>,
    /// Why the guard found the credentials invalid, when it did (the server's 401 says nothing).
    bad_credentials: Option<String>,
}

impl State {
    /// Takes the pending request `tid` and remembers that it was answered.
    fn answer(&mut self, tid: TransactionId) -> Option<Pending> {
        let p = self.pending.remove(&tid)?;
        if self.answered.insert(tid) {
            self.answered_order.push_back(tid);
            while self.answered_order.len() > MAX_PENDING {
                if let Some(old) = self.answered_order.pop_front() {
                    self.answered.remove(&old);
                }
            }
        }
        Some(p)
    }
}

impl Shared {
    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.sink {
            sink.emit(PeerRole::Lab, event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wrapped listener socket.
pub(crate) struct GuardedConn {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    pub(crate) shared: Arc<Shared>,
}

/// What to do with one datagram from a client.
enum Verdict {
    /// Hand it to the `turn` server.
    Pass,
    /// Hand the server this datagram instead (never longer than the one received).
    Rewrite(Vec<u8>),
    /// Answer it ourselves with this message and drop it.
    Reply(Vec<u8>),
    /// Drop it (an indication we refuse; indications get no response, RFC 8489 §6.3.2).
    Drop,
}

fn method_name(m: Method) -> &'static str {
    match m {
        METHOD_ALLOCATE => "allocate",
        METHOD_REFRESH => "refresh",
        METHOD_CREATE_PERMISSION => "create_permission",
        METHOD_CHANNEL_BIND => "channel_bind",
        METHOD_SEND => "send",
        _ => "other",
    }
}

/// Every XOR-PEER-ADDRESS of a message (CreatePermission may carry several, RFC 8656 §10.1);
/// `PeerAddress::get_from` only reads the first.
fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .filter_map(|a| {
            let mut one = Message {
                transaction_id: m.transaction_id,
                ..Default::default()
            };
            one.add(ATTR_XOR_PEER_ADDRESS, &a.value);
            let mut p = PeerAddress::default();
            p.get_from(&one).ok()?;
            Some(SocketAddr::new(p.ip, p.port))
        })
        .collect()
}

fn username_of(m: &Message) -> Option<String> {
    TextAttribute::get_from_as(m, ATTR_USERNAME)
        .ok()
        .map(|u| u.text)
}

/// Methods the `turn` server authenticates with the long-term credential mechanism (RFC 8656
/// §6.2, §7.2, §9.2, §11.2); Binding and Send are not authenticated.
fn authenticated(method: Method) -> bool {
    matches!(
        method,
        METHOD_ALLOCATE | METHOD_REFRESH | METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND
    )
}

/// `req` re-encoded without MESSAGE-INTEGRITY and what may follow it
/// (MESSAGE-INTEGRITY-SHA256, FINGERPRINT; RFC 8489 §14).
fn without_integrity(req: &Message) -> Vec<u8> {
    let mut out = Message::new();
    out.typ = req.typ;
    out.transaction_id = req.transaction_id;
    out.write_header();
    for a in req.attributes.0.iter().take_while(|a| {
        a.typ != ATTR_MESSAGE_INTEGRITY
            && a.typ != ATTR_MESSAGE_INTEGRITY_SHA256
            && a.typ != ATTR_FINGERPRINT
    }) {
        out.add(a.typ, &a.value);
    }
    out.raw
}

impl Shared {
    /// Looks at a datagram from a client before the server sees it.
    fn inspect_in(&self, buf: &[u8], from: SocketAddr) -> Verdict {
        if !stun::message::is_message(buf) {
            return Verdict::Pass; // ChannelData: its channel was bound (and checked) earlier
        }
        let mut m = Message {
            raw: buf.to_vec(),
            ..Default::default()
        };
        if m.decode().is_err() {
            return Verdict::Pass; // the server answers malformed input itself
        }
        let method = m.typ.method;
        if m.typ.class != CLASS_REQUEST && m.typ.class != CLASS_INDICATION {
            return Verdict::Pass;
        }
        let username = username_of(&m);
        let peers = peer_addresses(&m);

        // Credentials first, as RFC 8489 §9.2.4 orders the checks (before the peer and quota
        // checks of RFC 8656 §7.2 and §9.2). For an unknown username or a wrong password the
        // `turn` 0.17 server answers 400 without NONCE or REALM, where §9.2.4 requires 401 with
        // both. Handing it the request without its MESSAGE-INTEGRITY makes it answer the 401
        // challenge itself: REALM and a fresh NONCE that it records, so the client's next try
        // with the right password and that nonce is accepted.
        let bad_credentials = (m.typ.class == CLASS_REQUEST && authenticated(method))
            .then(|| self.bad_credentials(&m))
            .flatten();
        let verdict = if bad_credentials.is_some() {
            Verdict::Rewrite(without_integrity(&m))
        } else {
            Verdict::Pass
        };

        // Denied ranges first, then the allow-list (policy.rs), then the server's own address.
        let refused_peer = peers.iter().find_map(|p| {
            if let Err(refusal) = self.policy.allowed_peers.check(p.ip()) {
                Some((p, refusal.to_string()))
            } else if self.own.contains(p) {
                Some((
                    p,
                    format!("peer {p} is the server's own address (a relay loop)"),
                ))
            } else {
                None
            }
        });
        if bad_credentials.is_none()
            && let Some((bad, reason)) = refused_peer
        {
            self.emit(Event::TurnRefused {
                client: from.to_string(),
                method: method_name(method).to_owned(),
                code: if m.typ.class == CLASS_REQUEST { 403 } else { 0 },
                reason,
                username: username.clone(),
                peer_addr: Some(bad.to_string()),
            });
            if m.typ.class == CLASS_INDICATION {
                return Verdict::Drop;
            }
            return self.error_reply(&m, username.as_deref(), CODE_FORBIDDEN, "Forbidden");
        }

        if bad_credentials.is_none()
            && method == METHOD_ALLOCATE
            && m.typ.class == CLASS_REQUEST
            && let Some(name) = &username
            && m.contains(ATTR_MESSAGE_INTEGRITY)
        {
            let user = user_of(name).to_owned();
            let held = {
                let st = self.lock();
                if st.allocations.contains_key(&from) {
                    None // a retransmission or a mismatch: the server answers it
                } else {
                    Some(
                        st.allocations
                            .values()
                            .filter(|u| user_of(u) == user)
                            .count(),
                    )
                }
            };
            if let Some(held) = held
                && held >= self.policy.max_allocations_per_user
            {
                self.emit(Event::TurnRefused {
                    client: from.to_string(),
                    method: "allocate".to_owned(),
                    code: 486,
                    reason: format!(
                        "user {user:?} already holds {held} allocations (quota {})",
                        self.policy.max_allocations_per_user
                    ),
                    username: username.clone(),
                    peer_addr: None,
                });
                return self.error_reply(
                    &m,
                    username.as_deref(),
                    CODE_ALLOC_QUOTA_REACHED,
                    "Allocation Quota Reached",
                );
            }
        }

        if m.typ.class == CLASS_REQUEST {
            let mut st = self.lock();
            if st.answered.contains(&m.transaction_id) {
                return verdict;
            }
            st.pending.insert(
                m.transaction_id,
                Pending {
                    method,
                    username,
                    peers,
                    raw: buf.to_vec(),
                    bad_credentials,
                },
            );
            st.order.push_back(m.transaction_id);
            while st.order.len() > MAX_PENDING {
                if let Some(old) = st.order.pop_front() {
                    st.pending.remove(&old);
                }
            }
        }
        verdict
    }

    /// Why the long-term credentials of `req` are not valid: a username that is not a valid,
    /// unexpired REST username (RFC 8489 §9.2.4 step 4) or a MESSAGE-INTEGRITY that does not
    /// match its password (step 6). `None` when they are valid, and when the request is not one
    /// to judge here: without MESSAGE-INTEGRITY the server challenges it with 401 itself (step
    /// 1); with MESSAGE-INTEGRITY but without USERNAME, REALM or NONCE, or with a malformed
    /// MESSAGE-INTEGRITY, the server's 400 is the right answer (step 2).
    fn bad_credentials(&self, req: &Message) -> Option<String> {
        let integrity = req.get(ATTR_MESSAGE_INTEGRITY).ok()?;
        // HMAC-SHA1 is 20 bytes (RFC 8489 §14.5); anything else is malformed, not wrong.
        if integrity.len() != 20 || !req.contains(ATTR_NONCE) {
            return None;
        }
        let name = username_of(req)?;
        // The key uses the realm the client sent, as the server's check does.
        let realm = TextAttribute::get_from_as(req, ATTR_REALM).ok()?.text;
        let password =
            match credentials::verify_username(&self.secret, &name, self.clock.unix_now_s()) {
                Ok(password) => password,
                Err(e) => return Some(e.to_string()),
            };
        let key = MessageIntegrity::new_long_term_integrity(name.clone(), realm, password);
        match key.check(&mut req.clone()) {
            Ok(()) => None,
            Err(_) => Some(format!("wrong password for {name:?}")),
        }
    }

    /// An error response to `req`, signed with the user's key when the credentials are valid
    /// (RFC 8489 §9.2.4: responses to authenticated requests carry MESSAGE-INTEGRITY).
    fn error_reply(
        &self,
        req: &Message,
        username: Option<&str>,
        code: ErrorCode,
        reason: &str,
    ) -> Verdict {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(Message {
                transaction_id: req.transaction_id,
                ..Default::default()
            }),
            Box::new(MessageType::new(req.typ.method, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code,
                reason: reason.as_bytes().to_vec(),
            }),
        ];
        if let Some(name) = username
            && let Ok(password) =
                credentials::verify_username(&self.secret, name, self.clock.unix_now_s())
        {
            setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
                name.to_owned(),
                self.realm.clone(),
                password,
            )));
        }
        let mut out = Message::new();
        match out.build(&setters) {
            Ok(()) => Verdict::Reply(out.raw),
            Err(e) => {
                tracing::warn!("cannot build TURN error response: {e}");
                Verdict::Drop
            }
        }
    }

    /// Looks at a datagram the server sends to a client.
    fn inspect_out(&self, buf: &[u8], to: SocketAddr) {
        if !stun::message::is_message(buf) {
            return;
        }
        let mut m = Message {
            raw: buf.to_vec(),
            ..Default::default()
        };
        if m.decode().is_err() {
            return;
        }
        if m.typ.class != CLASS_SUCCESS_RESPONSE && m.typ.class != CLASS_ERROR_RESPONSE {
            return;
        }
        let Some(p) = self.lock().answer(m.transaction_id) else {
            return;
        };
        let client = to.to_string();
        if m.typ.class == CLASS_ERROR_RESPONSE {
            let mut ec = ErrorCodeAttribute::default();
            let _ = ec.get_from(&m);
            let code = ec.code.0;
            // 401 without credentials and 438 are the normal digest challenge that precedes every
            // authenticated request (RFC 8489 §9.2.3), not refusals.
            let challenge = (code == 401 && p.username.is_none()) || code == 438;
            if !challenge {
                let reason = self.explain(&p, &ec);
                self.emit(Event::TurnRefused {
                    client,
                    method: method_name(p.method).to_owned(),
                    code,
                    reason,
                    username: p.username,
                    peer_addr: p.peers.first().map(|a| a.to_string()),
                });
            }
            return;
        }
        match p.method {
            METHOD_ALLOCATE => {
                let mut relay = RelayedAddress::default();
                let mut life = Lifetime::default();
                let _ = relay.get_from(&m);
                let _ = life.get_from(&m);
                let username = p.username.unwrap_or_default();
                {
                    let mut st = self.lock();
                    st.allocations.insert(to, username.clone());
                    st.relays.insert(SocketAddr::new(relay.ip, relay.port), to);
                }
                self.emit(Event::TurnAllocationCreated {
                    client,
                    username,
                    relay: SocketAddr::new(relay.ip, relay.port).to_string(),
                    transport: self.transport.to_owned(),
                    lifetime_s: life.0.as_secs() as u32,
                });
            }
            METHOD_REFRESH => {
                let mut life = Lifetime::default();
                let _ = life.get_from(&m);
                self.emit(Event::TurnRefresh {
                    client,
                    lifetime_s: life.0.as_secs() as u32,
                });
            }
            METHOD_CREATE_PERMISSION => self.emit(Event::TurnPermission {
                client,
                peers: p.peers.iter().map(|a| a.ip().to_string()).collect(),
            }),
            METHOD_CHANNEL_BIND => {
                let mut req = Message {
                    raw: p.raw,
                    ..Default::default()
                };
                let mut ch = ChannelNumber::default();
                if req.decode().is_ok() {
                    let _ = ch.get_from(&req);
                }
                self.emit(Event::TurnChannelBind {
                    client,
                    peer_addr: p.peers.first().map(|a| a.to_string()).unwrap_or_default(),
                    channel: ch.0,
                });
            }
            _ => {}
        }
    }

    /// Why the server refused a request. Bad credentials were named when the request came in
    /// (the server's 401 says nothing); for a 400 on a request with a USERNAME (e.g. one missing
    /// its NONCE, which the guard leaves to the server) the credentials are checked again here,
    /// as the most likely cause.
    fn explain(&self, p: &Pending, ec: &ErrorCodeAttribute) -> String {
        if let Some(reason) = &p.bad_credentials {
            return reason.clone();
        }
        let text = String::from_utf8_lossy(&ec.reason).into_owned();
        if ec.code.0 != 400 {
            return if text.is_empty() {
                format!("error {}", ec.code.0)
            } else {
                text
            };
        }
        let Some(name) = &p.username else {
            return "bad request".to_owned();
        };
        match credentials::verify_username(&self.secret, name, self.clock.unix_now_s()) {
            Err(e) => e.to_string(),
            Ok(password) => {
                let mut req = Message {
                    raw: p.raw.clone(),
                    ..Default::default()
                };
                let mi = MessageIntegrity::new_long_term_integrity(
                    name.clone(),
                    self.realm.clone(),
                    password,
                );
                if req.decode().is_ok() && mi.check(&mut req).is_err() {
                    format!("wrong password for {name:?}")
                } else {
                    "bad request".to_owned()
                }
            }
        }
    }
}

#[async_trait]
impl Conn for GuardedConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            match self.shared.inspect_in(&buf[..n], from) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Rewrite(bytes) if bytes.len() <= n => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok((bytes.len(), from));
                }
                // Cannot happen (attributes are only removed); never hand on a cut message.
                Verdict::Rewrite(_) => {}
                Verdict::Reply(bytes) => {
                    if let Err(e) = self.inner.send_to(&bytes, from).await {
                        tracing::debug!("TURN error response to {from} not sent: {e}");
                    }
                }
                Verdict::Drop => {}
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.shared.inspect_out(buf, target);
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // Every allocation "closes" the listener it came in on when it ends (turn 0.17
        // allocation/mod.rs); the socket lives until the server drops its last handle.
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// The guard without sockets, for the fuzz target `turn_guard` in `fuzz/`: datagrams from
/// clients go through [`FuzzGuard::from_client`] (what `recv_from` does), the server's through
/// [`FuzzGuard::to_client`] (what `send_to` does). Not part of the crate's API.
#[doc(hidden)]
pub struct FuzzGuard(Shared);

/// What the guard did with a client's datagram (see [`FuzzGuard::from_client`]).
#[doc(hidden)]
#[derive(Debug)]
pub enum FuzzVerdict {
    /// Handed to the server as it came.
    Pass,
    /// Handed to the server as these bytes instead.
    Rewrite(Vec<u8>),
    /// Answered by the guard with these bytes, and dropped.
    Reply(Vec<u8>),
    /// Dropped without an answer.
    Drop,
}

impl FuzzGuard {
    /// A guard as the embedded server sets it up in lab mode: REST credentials under `secret`,
    /// loopback peers only, one allocation per user, the listener at `listener`.
    pub fn new(secret: &str, clock: Arc<dyn WallClock>, listener: SocketAddr) -> Self {
        FuzzGuard(Shared {
            secret: secret.to_owned(),
            realm: "rtclab".to_owned(),
            clock,
            policy: Policy {
                max_allocations_per_user: 1,
                ..Policy::default()
            },
            sink: None,
            transport: "udp",
            state: Mutex::new(State::default()),
            own: OwnAddresses {
                listener: Some(listener),
            },
        })
    }

    /// A datagram from the client at `from`.
    pub fn from_client(&self, buf: &[u8], from: SocketAddr) -> FuzzVerdict {
        match self.0.inspect_in(buf, from) {
            Verdict::Pass => FuzzVerdict::Pass,
            Verdict::Rewrite(bytes) => FuzzVerdict::Rewrite(bytes),
            Verdict::Reply(bytes) => FuzzVerdict::Reply(bytes),
            Verdict::Drop => FuzzVerdict::Drop,
        }
    }

    /// A datagram the server sends to the client at `to`.
    pub fn to_client(&self, buf: &[u8], to: SocketAddr) {
        self.0.inspect_out(buf, to);
    }

    /// Sizes of the guard's tables: pending requests, answered transactions, allocations and
    /// relay addresses (the first two must stay bounded whatever clients send).
    pub fn table_sizes(&self) -> [usize; 4] {
        let st = self.0.lock();
        [
            st.pending.len().max(st.order.len()),
            st.answered.len().max(st.answered_order.len()),
            st.allocations.len(),
            st.relays.len(),
        ]
    }

    /// How many requests may be pending, and how many answered transactions are remembered.
    pub const MAX_PENDING: usize = MAX_PENDING;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SystemWallClock;
    use crate::policy::AllowedPeers;
    use stun::message::Setter;
    use turn::proto::data::Data;

    fn shared() -> Shared {
        Shared {
            secret: "s".into(),
            realm: "rtclab".into(),
            clock: Arc::new(SystemWallClock),
            policy: Policy {
                allowed_peers: AllowedPeers::Loopback,
                max_allocations_per_user: 1,
                max_relay_kbps: None,
            },
            sink: None,
            transport: "udp",
            state: Mutex::new(State::default()),
            own: OwnAddresses {
                listener: Some("127.0.0.1:3478".parse().unwrap()),
            },
        }
    }

    fn message(method: Method, class: stun::message::MessageClass, peer: &str) -> Vec<u8> {
        let peer: SocketAddr = peer.parse().unwrap();
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(method, class)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
        ];
        if method == METHOD_CHANNEL_BIND {
            setters.push(Box::new(ChannelNumber(0x4000)));
        }
        if method == METHOD_SEND {
            setters.push(Box::new(Data(b"x".to_vec())));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        m.raw
    }

    fn error_code(reply: &[u8]) -> u16 {
        let mut m = Message {
            raw: reply.to_vec(),
            ..Default::default()
        };
        m.decode().unwrap();
        assert_eq!(m.typ.class, CLASS_ERROR_RESPONSE);
        let mut ec = ErrorCodeAttribute::default();
        ec.get_from(&m).unwrap();
        ec.code.0
    }

    #[test]
    fn channel_bind_and_permission_to_a_non_allowed_peer_get_403() {
        let s = shared();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for method in [METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION] {
            match s.inspect_in(&message(method, CLASS_REQUEST, "10.0.0.1:9"), from) {
                Verdict::Reply(r) => assert_eq!(error_code(&r), 403),
                _ => panic!("{} to 10.0.0.1 was not refused", method_name(method)),
            }
            assert!(matches!(
                s.inspect_in(&message(method, CLASS_REQUEST, "127.0.0.1:9"), from),
                Verdict::Pass
            ));
        }
    }

    /// A signed Allocate: USERNAME, REALM, NONCE, MESSAGE-INTEGRITY under `password`, then
    /// FINGERPRINT, as the `turn` client sends it.
    fn signed_allocate(username: &str, password: &str) -> Message {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
            Box::new(TextAttribute::new(ATTR_REALM, "rtclab".to_owned())),
            Box::new(TextAttribute::new(ATTR_NONCE, "n".to_owned())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                username.to_owned(),
                "rtclab".to_owned(),
                password.to_owned(),
            )),
            Box::new(stun::fingerprint::FINGERPRINT),
        ])
        .unwrap();
        m
    }

    #[test]
    fn bad_credentials_reach_the_server_unsigned_so_it_answers_401() {
        let s = shared();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let good = credentials::issue("s", "u", s.clock.unix_now_s(), crate::DEFAULT_TTL);

        let wrong = signed_allocate(&good.username, "wrong");
        let Verdict::Rewrite(bytes) = s.inspect_in(&wrong.raw, from) else {
            panic!("a wrong password must not reach the server signed");
        };
        let mut m = Message {
            raw: bytes,
            ..Default::default()
        };
        m.decode().unwrap();
        assert_eq!(m.transaction_id, wrong.transaction_id);
        assert_eq!(m.typ, wrong.typ);
        assert!(!m.contains(ATTR_MESSAGE_INTEGRITY) && !m.contains(ATTR_FINGERPRINT));
        assert_eq!(username_of(&m), Some(good.username.clone()));
        let pending = s.lock().pending.remove(&wrong.transaction_id).unwrap();
        assert_eq!(
            pending.bad_credentials,
            Some(format!("wrong password for {:?}", good.username))
        );

        let right = signed_allocate(&good.username, &good.password);
        assert!(matches!(s.inspect_in(&right.raw, from), Verdict::Pass));
        let malformed = signed_allocate("nobody", "x");
        assert!(matches!(
            s.inspect_in(&malformed.raw, from),
            Verdict::Rewrite(_)
        ));
    }

    #[test]
    fn send_indication_to_a_non_allowed_peer_is_dropped() {
        let s = shared();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(matches!(
            s.inspect_in(&message(METHOD_SEND, CLASS_INDICATION, "10.0.0.1:9"), from),
            Verdict::Drop
        ));
        assert!(matches!(
            s.inspect_in(&message(METHOD_SEND, CLASS_INDICATION, "127.0.0.1:9"), from),
            Verdict::Pass
        ));
    }

    #[test]
    fn relaying_to_the_servers_own_address_is_refused_though_its_ip_is_allowed() {
        let s = shared();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        // The listener (127.0.0.1:3478 in `shared()`): a Send indication is dropped...
        assert!(matches!(
            s.inspect_in(
                &message(METHOD_SEND, CLASS_INDICATION, "127.0.0.1:3478"),
                from
            ),
            Verdict::Drop
        ));
        // ... and a ChannelBind answered 403; another port of the same IP still passes.
        match s.inspect_in(
            &message(METHOD_CHANNEL_BIND, CLASS_REQUEST, "127.0.0.1:3478"),
            from,
        ) {
            Verdict::Reply(r) => assert_eq!(error_code(&r), 403),
            _ => panic!("a ChannelBind to the listener was not refused"),
        }
        assert!(matches!(
            s.inspect_in(
                &message(METHOD_CHANNEL_BIND, CLASS_REQUEST, "127.0.0.1:3479"),
                from
            ),
            Verdict::Pass
        ));
    }
}
