//! Issue 18 finding 7: the signaling server going away mid-session ended both peers ("the
//! signaling server closed the connection") and with them the media. Media does not pass
//! through signaling: an established session now keeps its media, logs
//! [`SIGNALING_LOST`], reconnects in the background and logs [`SIGNALING_BACK`] once the
//! server is back.

// The media lock is a std mutex held for a whole session on purpose: it keeps real-time
// sessions of different test binaries' threads off the same cores (tests/support).
#![allow(clippy::await_holding_lock)]

use rtclab_events::schema::MediaDirection;
use rtclab_events::{Event, EventSink, PeerRole, Record, read_log};
use rtclab_peer::clock::RuntimeClock;
use rtclab_peer::peer::{SIGNALING_BACK, SIGNALING_LOST};
use rtclab_peer::{PeerConfig, PeerExit, Role, run_peer};
use rtclab_tests::{media_lock, out_dir};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// A host-candidate connect on loopback takes well under a second; 20 s (the peer's own
/// connect timeout) only matters on a machine starved by other builds.
const CONNECT_BOUND: Duration = Duration::from_secs(20);
/// Media seconds checked without a signaling server: 30 fps gives ~120 frames.
const WITHOUT_SERVER: Duration = Duration::from_secs(4);
/// Frames the receiver must decode in [`WITHOUT_SERVER`]: half of what 30 fps gives, so a
/// loaded machine passes while stopped media (before the fix: 0 more frames) cannot.
const MIN_FRAMES_WITHOUT_SERVER: u64 = 60;
/// Both peers back on the restarted server: the server was down ~4 s, so their tries fall at
/// 0.5, 1.5, 3.5 and 7.5 s after the loss (backoff doubling from 0.5 s); 20 s is generous.
const REJOIN_BOUND: Duration = Duration::from_secs(20);

async fn wait(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts a signaling server on `addr`; returns its stop switch and task.
async fn start_server(
    addr: SocketAddr,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
    SocketAddr,
) {
    let (listener, addr) = rtclab_signaling::bind(addr).await.expect("signaling binds");
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(rtclab_signaling::serve_with_shutdown(
        listener,
        Arc::new(rtclab_signaling::AppState::new(None)),
        wait(stop_rx),
    ));
    (stop_tx, task, addr)
}

fn count(records: &[Record], peer: PeerRole, what: &str) -> usize {
    records
        .iter()
        .filter(|r| r.peer == peer && matches!(&r.event, Event::Signaling { what: w } if w == what))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_outlives_the_signaling_server_and_the_peers_rejoin_it() {
    let _media = media_lock();
    let runtime: Arc<dyn Runtime> = webrtc::runtime::default_runtime().expect("webrtc-rs runtime");
    let name = "signaling_lost";
    let sink = EventSink::create(
        &out_dir(name).join("events.jsonl"),
        Arc::new(RuntimeClock(runtime.clone())),
        Some(name.to_owned()),
        serde_json::json!({ "test": name }),
    )
    .expect("event log");

    // The receiver's decoded frames, from its media.stats lines; and the sender's connection.
    let frames = Arc::new(AtomicU64::new(0));
    let (connected_tx, mut connected_rx) = watch::channel(false);
    sink.set_listener(Arc::new({
        let frames = frames.clone();
        move |r: &Record| match &r.event {
            Event::MediaStats(m)
                if r.peer == PeerRole::Receiver && m.direction == MediaDirection::Recv =>
            {
                frames.store(m.frames, Ordering::SeqCst);
            }
            Event::PcState { state } if r.peer == PeerRole::Sender && state == "connected" => {
                connected_tx.send_replace(true);
            }
            _ => {}
        }
    }));

    let (server_stop, server, addr) = start_server(([127, 0, 0, 1], 0).into()).await;
    let url = format!("ws://{addr}");
    let (stop_tx, stop_rx) = watch::channel(false);
    let peer = |role| {
        let mut c = PeerConfig::new(role);
        c.size = rtclab_media::Resolution {
            width: 640,
            height: 360,
        };
        let (url, sink, runtime, stop) =
            (url.clone(), sink.clone(), runtime.clone(), stop_rx.clone());
        tokio::spawn(async move { run_peer(&url, "lost", c, sink, runtime, wait(stop)).await })
    };
    let rx = peer(Role::Receiver);
    runtime.sleep(Duration::from_millis(100)).await;
    let tx = peer(Role::Sender);

    let connected = tokio::time::timeout(CONNECT_BOUND, connected_rx.wait_for(|c| *c)).await;
    assert!(
        matches!(connected, Ok(Ok(_))),
        "not connected in {CONNECT_BOUND:?}; log {}",
        sink.path().display()
    );
    // Two seconds of media first, so the receiver's counters are running.
    runtime.sleep(Duration::from_secs(2)).await;

    // The server goes away (its shutdown closes every WebSocket).
    let _ = server_stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let before = frames.load(Ordering::SeqCst);
    runtime.sleep(WITHOUT_SERVER).await;
    let after = frames.load(Ordering::SeqCst);
    assert!(
        !rx.is_finished() && !tx.is_finished(),
        "a peer ended when the signaling server went away; log {}",
        sink.path().display()
    );
    assert!(
        after >= before + MIN_FRAMES_WITHOUT_SERVER,
        "media stopped with signaling: {before} frames decoded before, {after} {WITHOUT_SERVER:?} later; log {}",
        sink.path().display()
    );

    // The server comes back on the same address; both peers find it again.
    let (server_stop, server, _) = start_server(addr).await;
    let rejoined = tokio::time::timeout(REJOIN_BOUND, async {
        loop {
            let records = read_log(sink.path()).expect("log reads");
            if [PeerRole::Sender, PeerRole::Receiver]
                .iter()
                .all(|p| count(&records, *p, SIGNALING_BACK) > 0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    let _ = stop_tx.send(true);
    let mut exits = Vec::new();
    for (who, h) in [("sender", tx), ("receiver", rx)] {
        match tokio::time::timeout(Duration::from_secs(10), h).await {
            Ok(Ok(Ok(exit))) => exits.push(exit),
            other => panic!(
                "{who} did not end cleanly: {other:?}; log {}",
                sink.path().display()
            ),
        }
    }
    let _ = server_stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let records = read_log(sink.path()).expect("log reads");
    for p in [PeerRole::Sender, PeerRole::Receiver] {
        assert_eq!(
            count(&records, p, SIGNALING_LOST),
            1,
            "{p}: `{SIGNALING_LOST}` logged once; log {}",
            sink.path().display()
        );
    }
    assert!(
        rejoined.is_ok(),
        "both peers should log `{SIGNALING_BACK}` within {REJOIN_BOUND:?} of the restart; log {}",
        sink.path().display()
    );
    // Back on signaling, the session ends as usual: the sender by its shutdown, the receiver
    // by its shutdown or the sender's bye, whichever comes first.
    assert_eq!(exits[0], PeerExit::Shutdown);
    assert!(matches!(exits[1], PeerExit::Shutdown | PeerExit::PeerLeft));
}
