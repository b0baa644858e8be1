//! A client with valid REST credentials gets an allocation that relays to an allowed peer, and the
//! log tells the allocation's story.

mod common;

use common::*;
use rtclab_events::Event;
use std::time::Duration;
use webrtc_util::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_credentials_allocate_and_relay_both_ways() {
    let lab = start(|_| {}).await;
    let creds = lab
        .server
        .credentials("alice", now(), rtclab_turn::DEFAULT_TTL);
    let (client, relay) =
        try_allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    let relay = relay.expect("allocation with valid credentials");
    let relay_addr = relay.local_addr().expect("relay addr");
    assert!(
        relay_addr.ip().is_loopback(),
        "relay on loopback: {relay_addr}"
    );
    assert_eq!(lab.server.allocations(), 1);

    round_trip(&relay).await;
    // turn.bytes is written once a second while counters move; wait for one tick.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    relay.close().await.ok();
    client.close().await.ok();
    lab.server.shutdown().await.expect("clean shutdown");

    let log = read(&lab.log);
    let created = log.iter().find_map(|e| match e {
        Event::TurnAllocationCreated {
            username,
            relay,
            transport,
            lifetime_s,
            ..
        } => Some((
            username.clone(),
            relay.clone(),
            transport.clone(),
            *lifetime_s,
        )),
        _ => None,
    });
    let (username, relay, transport, lifetime_s) = created.expect("turn.allocation_created");
    assert_eq!(username, creds.username);
    assert_eq!(relay, relay_addr.to_string());
    assert_eq!(transport, "udp");
    assert!(lifetime_s > 0);
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::TurnPermission { peers, .. } if peers == &["127.0.0.1"])),
        "turn.permission for the peer"
    );
    let bytes = log.iter().rev().find_map(|e| match e {
        Event::TurnBytes {
            relay,
            to_peer_bytes,
            from_peer_bytes,
            to_peer_packets,
            from_peer_packets,
        } => Some((
            relay.clone(),
            *to_peer_bytes,
            *from_peer_bytes,
            *to_peer_packets,
            *from_peer_packets,
        )),
        _ => None,
    });
    assert_eq!(
        bytes.expect("turn.bytes"),
        (relay_addr.to_string(), 10, 12, 1, 1),
        "10 bytes to the peer, 12 back, one datagram each"
    );
    assert!(
        log.iter().any(|e| matches!(e, Event::TurnAllocationClosed { relay, .. } if relay == &relay_addr.to_string())),
        "turn.allocation_closed"
    );
    assert!(
        !log.iter().any(|e| matches!(e, Event::TurnRefused { .. })),
        "nothing refused on the happy path (the 401 challenge is not a refusal)"
    );
}

fn read(path: &std::path::Path) -> Vec<Event> {
    rtclab_events::read_log(path)
        .expect("log")
        .into_iter()
        .map(|r| r.event)
        .collect()
}
