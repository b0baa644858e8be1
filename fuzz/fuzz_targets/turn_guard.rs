//! The TURN guard (`turn/src/guard.rs`), fed a *sequence* of STUN/TURN messages both ways.
//!
//! The input is records: an op byte, a two-byte big-endian length, then that many bytes. The
//! op's low 2 bits say what the record is:
//!
//! - 0: raw bytes a client sends (to the guard in front of the server);
//! - 1: raw bytes the server sends to a client (the guard reads the responses);
//! - 2: a request or indication built from the bytes (method, transaction, credentials signed
//!   with the right or a wrong password, peer address), so that sequences reach the checks
//!   behind MESSAGE-INTEGRITY, which random bytes never pass;
//! - 3: a server response built from the bytes (success or error, for one of the transactions
//!   the requests used), so that the guard's bookkeeping of pending requests is exercised.
//!
//! The op's high bits pick the client address (one of four). Checked: the guard never panics,
//! a rewritten request is never longer than what came in (the socket wrapper relies on it), its
//! replies are STUN error responses to the request, and its tables stay bounded.
#![no_main]

use rtclab_fuzz::fuzz_target;
use rtclab_turn::credentials;
use rtclab_turn::{FuzzGuard, FuzzVerdict, WallClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE,
    METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND,
    Message, MessageType, Setter,
};
use stun::textattrs::TextAttribute;
use turn::proto::channum::ChannelNumber;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;

const SECRET: &str = "fuzz-secret";
/// The calendar time the guard sees (credentials are checked against it).
const NOW_S: u64 = 1_700_000_000;
const LISTENER: &str = "127.0.0.1:3478";

struct FixedClock;
impl WallClock for FixedClock {
    fn unix_now_s(&self) -> u64 {
        NOW_S
    }
}

const METHODS: [stun::message::Method; 6] = [
    METHOD_ALLOCATE,
    METHOD_REFRESH,
    METHOD_CREATE_PERMISSION,
    METHOD_CHANNEL_BIND,
    METHOD_SEND,
    METHOD_BINDING,
];

/// Peers a request may name: allowed (loopback), denied (private, link-local, multicast,
/// public), the server's own listener, and IPv6.
const PEERS: [&str; 8] = [
    "127.0.0.1:5000",
    "10.0.0.1:9",
    "169.254.1.1:9",
    "224.0.0.1:9",
    "8.8.8.8:53",
    LISTENER,
    "[::1]:5000",
    "[fe80::1]:9",
];

/// A few transaction ids, so that responses meet the requests they answer.
fn tid(i: u8) -> TransactionId {
    let mut t = [0u8; 12];
    t[0] = i % 8;
    TransactionId(t)
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// A request (or indication) from the fields in `b`.
fn request(b: &[u8]) -> Option<Vec<u8>> {
    let method = METHODS[usize::from(byte(b, 0)) % METHODS.len()];
    let class = if byte(b, 1) & 1 == 0 {
        CLASS_REQUEST
    } else {
        CLASS_INDICATION
    };
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(tid(byte(b, 2))),
        Box::new(MessageType::new(method, class)),
    ];
    for i in 0..usize::from(byte(b, 3) % 3) {
        let peer: SocketAddr = PEERS[usize::from(byte(b, 4 + i)) % PEERS.len()]
            .parse()
            .ok()?;
        setters.push(Box::new(PeerAddress {
            ip: peer.ip(),
            port: peer.port(),
        }));
    }
    if method == METHOD_CHANNEL_BIND {
        setters.push(Box::new(ChannelNumber(0x4000 + u16::from(byte(b, 7)))));
    }
    // Credentials: none, a user's (valid, expired, or a name that is no REST username).
    let user = format!("u{}", byte(b, 8) % 3);
    let issued = credentials::issue(SECRET, &user, NOW_S, Duration::from_secs(3600));
    let (username, password) = match byte(b, 9) % 4 {
        0 => (None, String::new()),
        1 => (Some(issued.username), issued.password),
        2 => {
            let old = credentials::issue(SECRET, &user, NOW_S - 7200, Duration::from_secs(60));
            (Some(old.username), old.password)
        }
        _ => (
            Some(String::from_utf8_lossy(&b[b.len().min(12)..]).into_owned()),
            "x".to_owned(),
        ),
    };
    if let Some(name) = username {
        setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, name.clone())));
        if byte(b, 10) & 1 == 0 {
            setters.push(Box::new(TextAttribute::new(
                ATTR_REALM,
                "rtclab".to_owned(),
            )));
        }
        if byte(b, 10) & 2 == 0 {
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, "n".to_owned())));
        }
        match byte(b, 11) % 3 {
            0 => {}
            1 => setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
                name,
                "rtclab".to_owned(),
                password,
            ))),
            _ => setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
                name,
                "rtclab".to_owned(),
                "wrong".to_owned(),
            ))),
        }
    }
    if byte(b, 10) & 4 != 0 {
        setters.push(Box::new(stun::fingerprint::FINGERPRINT));
    }
    let mut m = Message::new();
    m.build(&setters).ok()?;
    Some(m.raw)
}

/// A server response from the fields in `b`.
fn response(b: &[u8]) -> Option<Vec<u8>> {
    let method = METHODS[usize::from(byte(b, 0)) % METHODS.len()];
    let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(tid(byte(b, 2)))];
    if byte(b, 1) & 1 == 0 {
        setters.push(Box::new(MessageType::new(method, CLASS_SUCCESS_RESPONSE)));
        setters.push(Box::new(RelayedAddress {
            ip: [127, 0, 0, 1].into(),
            port: u16::from_be_bytes([byte(b, 3), byte(b, 4)]),
        }));
        setters.push(Box::new(Lifetime(Duration::from_secs(
            u64::from(byte(b, 5)) * 60,
        ))));
    } else {
        setters.push(Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)));
        setters.push(Box::new(ErrorCodeAttribute {
            code: ErrorCode(300 + u16::from(byte(b, 3)) % 300),
            reason: b.get(4..).unwrap_or_default().to_vec(),
        }));
    }
    let mut m = Message::new();
    m.build(&setters).ok()?;
    Some(m.raw)
}

fuzz_target!(|data: &[u8]| {
    let listener: SocketAddr = LISTENER.parse().expect("an address");
    let guard = FuzzGuard::new(SECRET, Arc::new(FixedClock), listener);
    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let client = SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::from(op >> 6)));
        let built;
        let datagram = match op & 3 {
            0 | 1 => bytes,
            2 => match request(bytes) {
                Some(m) => {
                    built = m;
                    built.as_slice()
                }
                None => continue,
            },
            _ => match response(bytes) {
                Some(m) => {
                    built = m;
                    built.as_slice()
                }
                None => continue,
            },
        };
        if op & 1 == 0 {
            match guard.from_client(datagram, client) {
                FuzzVerdict::Rewrite(out) => {
                    assert!(out.len() <= datagram.len(), "a rewrite grew the request");
                }
                FuzzVerdict::Reply(out) => {
                    let mut reply = Message {
                        raw: out,
                        ..Default::default()
                    };
                    reply.decode().expect("the guard's reply is STUN");
                    assert_eq!(reply.typ.class, CLASS_ERROR_RESPONSE);
                    let mut request = Message {
                        raw: datagram.to_vec(),
                        ..Default::default()
                    };
                    request.decode().expect("the guard answers only STUN");
                    assert_eq!(reply.transaction_id, request.transaction_id);
                }
                FuzzVerdict::Pass | FuzzVerdict::Drop => {}
            }
        } else {
            guard.to_client(datagram, client);
        }
        let [pending, answered, ..] = guard.table_sizes();
        assert!(pending <= FuzzGuard::MAX_PENDING && answered <= FuzzGuard::MAX_PENDING);
    }
});
