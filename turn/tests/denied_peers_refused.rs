//! Each denied peer class is refused on each path a client can name a peer on: CreatePermission
//! and ChannelBind get 403, a Send indication is dropped; each refusal is logged with its class.
//! Private and link-local peers are refused by default and admitted only when named. The
//! server's own listener is refused; an allowed loopback peer, and another allocation's relay
//! address, still work.

mod common;

use common::*;
use rtclab_turn::AllowedPeers;
use rtclab_turn::policy::Cidr;
use std::net::SocketAddr;
use std::time::Duration;
use stun::message::{METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION};
use turn::proto::channum::ChannelNumber;
use webrtc_util::Conn;

/// One address per denied class, and the words its refusal uses. The relay is IPv4; the guard
/// refuses the IPv6 ones before the `turn` server would answer 443 (family mismatch).
const DENIED: [(&str, &str); 11] = [
    ("0.0.0.0:9", "\"this network\""),
    ("224.0.0.1:9", "multicast"),
    ("239.255.255.250:1900", "multicast"),
    ("255.255.255.255:9", "the limited broadcast address"),
    ("240.0.0.1:9", "reserved"),
    ("[::]:9", "the unspecified address"),
    ("[::ffff:127.0.0.1]:9", "an IPv4-mapped address"),
    ("[::127.0.0.1]:9", "an IPv4-compatible address"),
    ("[64:ff9b::7f00:1]:9", "a NAT64 address"),
    ("[2002:7f00:1::1]:9", "a 6to4 address"),
    ("[ff02::1]:9", "multicast"),
];

/// Refused by default (no rule names them), admitted by a rule inside their range.
const NOT_NAMED: [(&str, &str); 5] = [
    ("10.0.0.1:9", "private"),
    ("192.168.1.1:9", "private"),
    ("100.64.0.1:9", "shared (CGNAT)"),
    ("169.254.169.254:80", "link-local"),
    ("[fe80::1]:9", "link-local"),
];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// CreatePermission, ChannelBind (403) and Send (dropped, logged with code 0) to `peer`; the
/// log names `what` for each.
async fn assert_refused_everywhere(lab: &Lab, c: &RawClient, peer: SocketAddr, what: &str) {
    let r = c
        .request(METHOD_CREATE_PERMISSION, vec![Box::new(peer_attr(peer))])
        .await;
    assert_eq!(error_code(&r), 403, "CreatePermission to {peer}");
    let r = c
        .request(
            METHOD_CHANNEL_BIND,
            vec![Box::new(peer_attr(peer)), Box::new(ChannelNumber(0x4000))],
        )
        .await;
    assert_eq!(error_code(&r), 403, "ChannelBind to {peer}");
    c.send_indication(peer, b"leak?").await;
    // The Send refusal is logged as it is dropped; give the guard a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logged: Vec<_> = refusals_with_peer(lab)
        .into_iter()
        .filter(|(_, _, _, p)| p.as_deref() == Some(&peer.to_string()))
        .collect();
    for (method, code) in [
        ("create_permission", 403),
        ("channel_bind", 403),
        ("send", 0),
    ] {
        assert!(
            logged.iter().any(|(m, c, reason, _)| m == method
                && *c == code
                && reason.contains(&peer.ip().to_string())
                && reason.contains(what)),
            "turn.refused {method} {code} for {peer} naming {what:?}: {logged:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_denied_class_is_refused_even_where_a_rule_would_admit_it() {
    // A hand-built policy that admits every IPv4 and IPv6 address: the denied ranges must win.
    let lab = start(|c| {
        c.policy.allowed_peers = AllowedPeers::Ranges(vec![
            Cidr::parse("0.0.0.0/0").expect("cidr"),
            Cidr::parse("::/0").expect("cidr"),
        ]);
    })
    .await;
    let creds = lab
        .server
        .credentials("mallory", now(), rtclab_turn::DEFAULT_TTL);
    let c = RawClient::allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    for (peer, what) in DENIED {
        assert_refused_everywhere(&lab, &c, addr(peer), what).await;
    }
    // Nothing was permitted, bound or relayed.
    let log = events(&lab);
    assert!(
        !log.iter().any(|r| matches!(
            r.event,
            rtclab_events::Event::TurnPermission { .. }
                | rtclab_events::Event::TurnChannelBind { .. }
        )),
        "no permission or channel granted"
    );
    still_serves(&lab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_link_local_peers_are_refused_unless_named() {
    let lab = start(|_| {}).await; // default: loopback only
    let creds = lab
        .server
        .credentials("eve", now(), rtclab_turn::DEFAULT_TTL);
    let c = RawClient::allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    for (peer, what) in NOT_NAMED {
        assert_refused_everywhere(&lab, &c, addr(peer), what).await;
    }
    // The server's own listener: loopback, so allowed by IP, but a relay loop.
    let own = lab.server.udp_addr();
    assert_refused_everywhere(&lab, &c, own, "the server's own address").await;
    // A loopback peer still gets its permission.
    let r = c
        .request(
            METHOD_CREATE_PERMISSION,
            vec![Box::new(peer_attr(addr("127.0.0.1:9")))],
        )
        .await;
    assert_eq!(error_code(&r), 0, "CreatePermission to 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_inside_the_range_admits_link_local_and_private_peers() {
    // As `rtclab relay --allow-peers 169.254.0.0/16,10.0.0.0/8` would build it.
    let lab = start(|c| {
        c.policy.allowed_peers =
            rtclab_turn::policy::lab_peers(&["169.254.0.0/16".to_owned(), "10.0.0.0/8".to_owned()])
                .expect("lab ranges");
    })
    .await;
    let creds = lab
        .server
        .credentials("lab", now(), rtclab_turn::DEFAULT_TTL);
    let c = RawClient::allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    // Permissions only: no datagram is sent to these addresses.
    for peer in ["169.254.1.1:9", "10.0.0.1:9"] {
        let r = c
            .request(
                METHOD_CREATE_PERMISSION,
                vec![Box::new(peer_attr(addr(peer)))],
            )
            .await;
        assert_eq!(error_code(&r), 0, "CreatePermission to {peer} once named");
    }
    // Still refused: a private range that was not named, and a denied class.
    assert_refused_everywhere(&lab, &c, addr("192.168.1.1:9"), "private").await;
    assert_refused_everywhere(&lab, &c, addr("224.0.0.1:9"), "multicast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_loopback_peer_and_another_allocations_relay_still_work() {
    let lab = start(|_| {}).await;
    let addr = lab.server.udp_addr();
    let a = lab
        .server
        .credentials("alice", now(), rtclab_turn::DEFAULT_TTL);
    let b = lab
        .server
        .credentials("bob", now(), rtclab_turn::DEFAULT_TTL);
    let (ca, ra) = try_allocate(addr, &a.username, &a.password).await;
    let (cb, rb) = try_allocate(addr, &b.username, &b.password).await;
    let (ra, rb) = (ra.expect("alice allocates"), rb.expect("bob allocates"));
    round_trip(&ra).await;

    // Relay to relay on one server (two relay-only clients): B must permit A first, as a
    // TURN client does for its ICE peer.
    let (a_relay, b_relay) = (ra.local_addr().expect("a"), rb.local_addr().expect("b"));
    // (The datagram itself is dropped at A's relay: A has no permission for B yet.)
    rb.send_to(b"hello a", a_relay).await.expect("b permits a");
    let mut buf = [0u8; 64];
    ra.send_to(b"relay to relay", b_relay)
        .await
        .expect("a sends to b's relay address");
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), rb.recv_from(&mut buf))
        .await
        .expect("b hears a in 5 s")
        .expect("recv");
    assert_eq!(&buf[..n], b"relay to relay");
    assert_eq!(from, a_relay);
    assert!(
        refusals(&lab).is_empty(),
        "nothing refused: {:?}",
        refusals(&lab)
    );
    for r in [ra, rb] {
        r.close().await.ok();
    }
    ca.close().await.ok();
    cb.close().await.ok();
}
