//! The per-allocation bandwidth cap drops what exceeds it, in each direction: twice the cap
//! offered for 2 s over loopback relays about the cap (plus the bucket's burst), and the drops
//! are logged.
//!
//! The bound: a token bucket of depth D refilled at rate R passes at most D + R × t bytes in a
//! window of t seconds. The relay sees every datagram between the first send and the last
//! receive, so t is measured as that span (it covers any queueing in socket buffers), and one
//! datagram of slack covers a bucket that refilled just enough as the window closed. The lower
//! bound (90 % of D + R × send time) only says the cap does not drop more than it must;
//! loopback at 4 Mbit/s loses nothing on its own.

mod common;

use common::*;
use rtclab_events::Event;
use rtclab_turn::bandwidth::TokenBucket;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use webrtc_util::Conn;

/// The cap under test: 2 Mbit/s = 250 kB/s per direction.
const CAP_KBPS: u32 = 2_000;
/// Offered: twice the cap, as 1,000-byte datagrams, 5 every 10 ms, for 2 s.
const DATAGRAM: usize = 1_000;
const PER_TICK: usize = 5;
const TICK: Duration = Duration::from_millis(10);
const OFFER_FOR: Duration = Duration::from_secs(2);

/// Sends at twice the cap for [`OFFER_FOR`] with `send`; returns (bytes offered, send span).
async fn offer<F, Fut>(mut send: F) -> (u64, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    let mut every = tokio::time::interval(TICK);
    let mut offered = 0u64;
    while start.elapsed() < OFFER_FOR {
        every.tick().await;
        for _ in 0..PER_TICK {
            send().await;
            offered += DATAGRAM as u64;
        }
    }
    (offered, start.elapsed())
}

/// Counts, on its own task, the bytes of the flood's datagrams arriving on `socket` until none
/// has come for 500 ms; the task returns them and when the last one arrived (the end of the
/// relayed span). Only datagrams of [`DATAGRAM`] bytes count, so the permission's "hi" does
/// not. A task, so that receiving keeps up while [`offer`] sends.
fn count_received<S>(socket: Arc<S>) -> JoinHandle<(u64, Instant)>
where
    S: Conn + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut received = 0u64;
        let mut last = Instant::now();
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await
        {
            if n == DATAGRAM {
                received += n as u64;
                last = Instant::now();
            }
        }
        (received, last)
    })
}

/// Checks `received` against the bucket bound and returns it as a fraction of the bound.
fn check(direction: &str, offered: u64, received: u64, send_span: Duration, span: Duration) {
    let bucket = TokenBucket::from_kbps(CAP_KBPS);
    let (rate, depth) = (bucket.rate_bytes_per_s(), bucket.depth_bytes());
    let upper = depth + (rate as f64 * span.as_secs_f64()) as u64 + DATAGRAM as u64;
    let lower = ((depth as f64 + rate as f64 * send_span.as_secs_f64()) * 0.9) as u64;
    eprintln!(
        "{direction}: offered {offered} B in {:.3} s, relayed {received} B in {:.3} s; cap \
         {rate} B/s + depth {depth} B → bound {lower}..{upper} B; relayed {:.1} % of the cap \
         + depth over the send time",
        send_span.as_secs_f64(),
        span.as_secs_f64(),
        100.0 * received as f64 / (depth as f64 + rate as f64 * send_span.as_secs_f64())
    );
    assert!(
        received <= upper,
        "{direction}: relayed {received} B, above the cap's bound {upper} B"
    );
    assert!(
        received >= lower,
        "{direction}: relayed {received} B, far below the cap ({lower} B)"
    );
    assert!(received < offered, "{direction}: something was dropped");
}

/// The cap's `turn.refused` lines for `method` (logged once a second while it drops).
fn cap_drops(lab: &Lab, method: &str) -> Vec<String> {
    events(lab)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TurnRefused {
                method: m,
                code: 0,
                reason,
                ..
            } if m == method && reason.contains("bandwidth cap") => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_to_peer_traffic_above_the_cap_is_dropped() {
    let lab = start(|c| c.policy.max_relay_kbps = Some(CAP_KBPS)).await;
    let creds = lab
        .server
        .credentials("flood", now(), rtclab_turn::DEFAULT_TTL);
    let (client, relay) =
        try_allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    let relay = relay.expect("allocation");
    let peer = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("peer"));
    let peer_addr = peer.local_addr().expect("peer addr");
    // The permission first, so the flood measures relaying, not the CreatePermission round trip.
    relay.send_to(b"hi", peer_addr).await.expect("permission");

    let counter = count_received(peer.clone());
    let data = vec![7u8; DATAGRAM];
    let t0 = Instant::now();
    let (r, d) = (&relay, &data);
    let (offered, send_span) = offer(|| async move {
        r.send_to(d, peer_addr).await.expect("relay send");
    })
    .await;
    let (received, last) = counter.await.expect("counter");
    check(
        "client → peer",
        offered,
        received,
        send_span,
        last.saturating_duration_since(t0),
    );

    tokio::time::sleep(Duration::from_millis(1200)).await; // one turn.bytes tick
    let drops = cap_drops(&lab, "send");
    assert!(!drops.is_empty(), "the drops are logged");
    eprintln!("{}", drops[0]);
    relay.close().await.ok();
    client.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_to_client_traffic_above_the_cap_is_dropped() {
    let lab = start(|c| c.policy.max_relay_kbps = Some(CAP_KBPS)).await;
    let creds = lab
        .server
        .credentials("flooded", now(), rtclab_turn::DEFAULT_TTL);
    let (client, relay) =
        try_allocate(lab.server.udp_addr(), &creds.username, &creds.password).await;
    let relay = Arc::new(relay.expect("allocation"));
    let relay_addr = relay.local_addr().expect("relay addr");
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer");
    let peer_addr = peer.local_addr().expect("peer addr");
    relay.send_to(b"hi", peer_addr).await.expect("permission");

    let counter = count_received(relay.clone());
    let data = vec![7u8; DATAGRAM];
    let t0 = Instant::now();
    let (p, d) = (&peer, &data);
    let (offered, send_span) = offer(|| async move {
        p.send_to(d, relay_addr).await.expect("peer send");
    })
    .await;
    let (received, last) = counter.await.expect("counter");
    check(
        "peer → client",
        offered,
        received,
        send_span,
        last.saturating_duration_since(t0),
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let drops = cap_drops(&lab, "data");
    assert!(!drops.is_empty(), "the drops are logged");
    eprintln!("{}", drops[0]);
    // The other direction was never over the cap: nothing of it was dropped.
    assert!(cap_drops(&lab, "send").is_empty());
    relay.close().await.ok();
    client.close().await.ok();
}
