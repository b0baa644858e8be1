//! RFC 8489 §9.2.4 (long-term credential mechanism): a request whose USERNAME is not valid or
//! whose MESSAGE-INTEGRITY does not match gets 401 (Unauthenticated) with REALM and a NONCE and
//! without MESSAGE-INTEGRITY; 400 is only for a request that carries MESSAGE-INTEGRITY but lacks
//! USERNAME, REALM or NONCE. The `turn` 0.17 server answered 400 to a wrong password
//! (issue 18 #9). Raw STUN messages, so the test sees the exact codes and attributes.

mod common;

use common::*;
use rtclab_events::Event;
use std::net::SocketAddr;
use std::time::Duration;
use stun::agent::TransactionId;
use stun::attributes::{
    ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_RELAYED_ADDRESS,
};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE, Message,
    MessageType, Setter,
};
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use turn::proto::PROTO_UDP;
use turn::proto::reqtrans::RequestedTransport;

/// Long-term credentials to sign a request with: username, realm, nonce, password.
struct Creds<'a> {
    username: &'a str,
    realm: &'a str,
    nonce: &'a str,
    password: &'a str,
}

/// What the server answered to one Allocate.
#[derive(Debug)]
struct Answer {
    /// Error code, `None` for a success response.
    code: Option<u16>,
    nonce: Option<String>,
    realm: Option<String>,
    integrity: bool,
    relayed: bool,
}

/// Sends one Allocate request (signed when `creds` is given) and reads the answer. Loopback
/// does not lose datagrams, so there is no retransmission; 5 s bounds a server that stays
/// silent (it answers in well under a millisecond).
async fn allocate(sock: &UdpSocket, server: SocketAddr, creds: Option<&Creds<'_>>) -> Answer {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
        Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        }),
    ];
    if let Some(c) = creds {
        setters.push(Box::new(TextAttribute::new(
            ATTR_USERNAME,
            c.username.to_owned(),
        )));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, c.realm.to_owned())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, c.nonce.to_owned())));
        setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
            c.username.to_owned(),
            c.realm.to_owned(),
            c.password.to_owned(),
        )));
    }
    let mut req = Message::new();
    req.build(&setters).expect("request builds");
    sock.send_to(&req.raw, server).await.expect("send");

    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the server answers within 5 s")
        .expect("recv");
    let mut m = Message {
        raw: buf[..n].to_vec(),
        ..Default::default()
    };
    m.decode().expect("a STUN answer");
    assert_eq!(
        m.transaction_id, req.transaction_id,
        "answer to our request"
    );
    assert_eq!(m.typ.method, METHOD_ALLOCATE);
    let code = match m.typ.class {
        CLASS_SUCCESS_RESPONSE => None,
        CLASS_ERROR_RESPONSE => {
            let mut ec = ErrorCodeAttribute::default();
            ec.get_from(&m).expect("an error response has ERROR-CODE");
            Some(ec.code.0)
        }
        other => panic!("unexpected class {other}"),
    };
    let text = |attr| TextAttribute::get_from_as(&m, attr).ok().map(|t| t.text);
    Answer {
        code,
        nonce: text(ATTR_NONCE),
        realm: text(ATTR_REALM),
        integrity: m.contains(ATTR_MESSAGE_INTEGRITY),
        relayed: m.contains(ATTR_XOR_RELAYED_ADDRESS),
    }
}

/// Asserts a 401 as RFC 8489 §9.2.4 describes it and returns its nonce.
fn unauthenticated(what: &str, a: &Answer) -> String {
    assert_eq!(a.code, Some(401), "{what}: {a:?}");
    assert_eq!(a.realm.as_deref(), Some("rtclab"), "{what}: REALM: {a:?}");
    assert!(!a.integrity, "{what}: no MESSAGE-INTEGRITY: {a:?}");
    let nonce = a.nonce.clone().unwrap_or_default();
    assert!(!nonce.is_empty(), "{what}: a NONCE: {a:?}");
    nonce
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_401_with_a_fresh_nonce_and_the_right_one_then_works() {
    let lab = start(|_| {}).await;
    let server = lab.server.udp_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let good = lab
        .server
        .credentials("alice", now(), rtclab_turn::DEFAULT_TTL);

    // No credentials at all: the challenge (§9.2.4 step 1).
    let challenge = allocate(&sock, server, None).await;
    let first = unauthenticated("missing credentials", &challenge);

    // A valid username and a valid nonce, but the wrong password (step 6).
    let wrong = allocate(
        &sock,
        server,
        Some(&Creds {
            username: &good.username,
            realm: "rtclab",
            nonce: &first,
            password: "not-the-password",
        }),
    )
    .await;
    let fresh = unauthenticated("wrong password", &wrong);
    assert_ne!(fresh, first, "a fresh nonce");

    // A username that is no longer valid, with its own right password (step 4).
    let old = lab
        .server
        .credentials("alice", now() - 7200, Duration::from_secs(3600));
    let expired = allocate(
        &sock,
        server,
        Some(&Creds {
            username: &old.username,
            realm: "rtclab",
            nonce: &fresh,
            password: &old.password,
        }),
    )
    .await;
    unauthenticated("expired username", &expired);
    assert_eq!(lab.server.allocations(), 0);

    // The right password with the nonce of the wrong-password answer: the server knows that
    // nonce, so the allocation succeeds at once.
    let ok = allocate(
        &sock,
        server,
        Some(&Creds {
            username: &good.username,
            realm: "rtclab",
            nonce: &fresh,
            password: &good.password,
        }),
    )
    .await;
    assert_eq!(ok.code, None, "the right password is accepted: {ok:?}");
    assert!(ok.relayed, "with a relayed address: {ok:?}");
    assert!(ok.integrity, "and signed: {ok:?}");

    // Each refusal is logged once, as a 401 naming its cause; the challenge is not a refusal.
    let refused: Vec<(u16, String)> = events(&lab)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TurnRefused { code, reason, .. } => Some((code, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, 401);
    assert_eq!(
        refused[0].1,
        format!("wrong password for {:?}", good.username)
    );
    assert_eq!(refused[1].0, 401);
    assert!(refused[1].1.contains("expired"), "{refused:?}");

    lab.server.shutdown().await.expect("shutdown");
}
