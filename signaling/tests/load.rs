//! The signaling server under load, scaled down for `./lab test` (issue 17, item 2): 200 clients
//! in 100 rooms negotiate for about two seconds, twice, the second time while one more client
//! floods, against a server with its default limits. The full-size figures (1,000 clients, the server in its own process)
//! come from `cargo bench -p rtclab-signaling --bench load`; docs/results/signaling-load.md.
//!
//! The server runs in this process (through the crate's public API, as `rtclab serve` runs it),
//! so the memory figures include the clients; the test checks the server's own state (no room,
//! no peer left) and that memory does not grow from one run to the next.

use std::sync::Arc;
use std::time::Duration;

use rtclab_signaling::load::{self, LoadConfig};
use rtclab_signaling::{AppState, ErrorCode, bind, serve_with_shutdown};

/// Round trips must stay under this at the 99th percentile. Two relays on loopback take well
/// under a millisecond on an idle machine; a debug build on 2 cores shared with other builds
/// can stall a task for tens of milliseconds, so 1 s only catches a server that queues or stalls.
const P99_BOUND: Duration = Duration::from_secs(1);

/// How much more memory (VmHWM, the high-water mark) the second run may need than the first.
/// The same load twice needs the same memory: the allocator reuses what the first run freed. A
/// leak of every session's state (about 150 KiB each, mostly WebSocket buffers) would add some
/// 30 MiB here; 8 MiB leaves room for noise (task stacks, the flooder's room).
const SECOND_RUN_MARGIN_KIB: u64 = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_negotiate_while_one_floods() {
    let (listener, addr) = bind("127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("bind loopback");
    // Default limits: rate limit, per-address cap (the driver spreads clients over 127.0.0.x).
    let state = Arc::new(AppState::new(None));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(listener, Arc::clone(&state), async {
        let _ = stop_rx.await;
    }));

    let mut config = LoadConfig::new(addr, std::process::id());
    config.clients = 200;
    // 4 rounds of an offer/answer and 10 candidates, every 0.5 s: 22 messages/s per client,
    // under the 50/s limit.
    config.rounds = 4;
    config.round_interval = Duration::from_millis(500);
    config.deadline = Duration::from_secs(60);
    // Run 1: the load alone. Run 2: the same while one more client floods 20,000 candidates, a
    // hundred times the burst the rate limit allows.
    config.room_prefix = "load1-".to_owned();
    let first = load::run(&config).await.expect("load run 1");
    eprintln!("run 1\n{first}");
    config.room_prefix = "load2-".to_owned();
    config.flood = Some(20_000);
    let second = load::run(&config).await.expect("load run 2");
    eprintln!("run 2, with a flooder\n{second}");

    for report in [&first, &second] {
        // Every client joined, got every relayed message, and none failed.
        assert_eq!(report.connected, 200, "{report}");
        assert_eq!(report.failures, 0, "{report}");
        assert_eq!(
            report.messages_received, report.messages_expected,
            "{report}"
        );
        // 200 clients × 4 rounds × 11 messages, all measured by the offerers: 100 × 4 × 11.
        assert_eq!(report.round_trip.count, 100 * 4 * 11);
        assert!(report.round_trip.p99 < P99_BOUND, "{report}");
        // Everybody left, and the server forgot them all.
        assert_eq!((report.rooms_after, report.peers_after), (0, 0), "{report}");
    }

    // The flooder was limited and closed (1008), and its room-mate kept its connection; the
    // other rooms' figures above (every message, p99) were taken while it flooded.
    let flood = second.flood.as_ref().expect("flood report");
    assert_eq!(flood.error, Some(ErrorCode::RateLimited), "{second}");
    assert_eq!(flood.close_code, Some(1008), "{second}");
    assert!(flood.victim_kept, "{second}");
    assert!(flood.relayed < 20_000 / 2, "{second}");

    // Memory does not grow with use: the second run fits in what the first needed, within the
    // margin. (Whether the allocator hands freed memory back to the system, so that RSS falls
    // back to where it started, is its choice; docs/results/signaling-load.md shows both
    // cases. A stricter check, run 2's RSS after under run 1's high-water mark with no margin,
    // failed in CI by a few KiB: run 2 also carries the flooder's 11,000 messages.)
    assert!(
        second.memory.after.hwm_kib <= first.memory.after.hwm_kib + SECOND_RUN_MARGIN_KIB,
        "run 1\n{first}run 2\n{second}"
    );
    assert_eq!((state.room_count(), state.peer_count()), (0, 0));

    stop_tx.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server result");
}
