//! Relaying to a peer address off the allow-list is refused (CreatePermission 403), nothing
//! reaches that address, and the server goes on serving.

mod common;

use common::*;
use rtclab_turn::AllowedPeers;
use std::time::Duration;
use tokio::net::UdpSocket;
use webrtc_util::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_to_a_peer_off_the_allow_list_is_refused() {
    // Only 127.0.0.1 is allowed; 127.0.0.2 is still loopback, so nothing leaves the machine
    // even if the refusal failed.
    let lab = start(|c| {
        c.policy.allowed_peers = AllowedPeers::List(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    let creds = lab
        .server
        .credentials("bob", now(), rtclab_turn::DEFAULT_TTL);
    let (client, relay) =
        try_allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    let relay = relay.expect("allocation");

    let outsider = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let outsider_addr = outsider.local_addr().expect("addr");
    let sent = tokio::time::timeout(
        Duration::from_secs(10),
        relay.send_to(b"leak?", outsider_addr),
    )
    .await
    .expect("the refusal comes back in 10 s");
    assert!(
        sent.is_err(),
        "send to a non-allowed peer must fail: {sent:?}"
    );
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(500), outsider.recv_from(&mut buf)).await;
    assert!(got.is_err(), "nothing was relayed to the non-allowed peer");

    let refused = refusals(&lab);
    assert!(
        refused
            .iter()
            .any(|(m, code, reason)| m == "create_permission"
                && *code == 403
                && reason.contains("127.0.0.2")),
        "turn.refused for the CreatePermission: {refused:?}"
    );

    // The same allocation still relays to an allowed peer, and new clients are served.
    round_trip(&relay).await;
    relay.close().await.ok();
    client.close().await.ok();
    still_serves(&lab).await;
}
