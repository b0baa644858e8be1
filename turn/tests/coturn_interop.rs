//! rtclab's REST credentials work against a real coturn started with the same secret: an
//! allocation relays both ways, and coturn enforces the same allow-list. Fails (never skips) when
//! coturn is missing.

mod common;

use common::*;
use rtclab_turn::coturn::{Coturn, CoturnConfig};
use std::time::Duration;
use tokio::net::UdpSocket;
use webrtc_util::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_credentials_allocate_and_relay_through_coturn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let coturn = Coturn::start(CoturnConfig::loopback(SECRET, dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let creds = rtclab_turn::credentials::issue(SECRET, "alice", now(), rtclab_turn::DEFAULT_TTL);

    let (client, relay) = try_allocate(coturn.addr(), &creds.username, &creds.password).await;
    let relay = relay.unwrap_or_else(|e| {
        panic!(
            "allocation through coturn: {e}; log {}",
            coturn.log().display()
        )
    });
    round_trip(&relay).await;

    // coturn's allow-list: 127.0.0.2 is loopback but not 127.0.0.1.
    let outsider = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let sent = tokio::time::timeout(
        Duration::from_secs(10),
        relay.send_to(b"leak?", outsider.local_addr().expect("addr")),
    )
    .await
    .expect("coturn answers the CreatePermission in 10 s");
    assert!(
        sent.is_err(),
        "coturn must refuse a peer off its allow-list"
    );

    // Wrong password and expired usernames are refused by coturn too.
    let (_c, r) = try_allocate(coturn.addr(), &creds.username, "wrong").await;
    assert!(r.is_err(), "coturn must refuse a wrong password");
    let old =
        rtclab_turn::credentials::issue(SECRET, "alice", now() - 7200, Duration::from_secs(3600));
    let (_c, r) = try_allocate(coturn.addr(), &old.username, &old.password).await;
    assert!(r.is_err(), "coturn must refuse an expired username");

    relay.close().await.ok();
    client.close().await.ok();
}
