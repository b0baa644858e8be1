//! Relay-only Rust↔Rust sessions: through rtclab's embedded TURN server and through a real
//! coturn, over UDP. Video flows and decodes, the selected pair is relay on the relay-only sides,
//! the relay candidates name their server and transport, and the time to connect is logged.
//!
//! TURN over TCP is not tested: webrtc-rs 0.21 skips non-UDP TURN URLs (turn_relayer.rs, "Skipping
//! unsupported non-UDP TURN url"), and the embedded server serves UDP only.

// The media lock is a std mutex held for a whole session on purpose: it keeps real-time
// sessions of different test binaries' threads off the same cores (tests/support).
#![allow(clippy::await_holding_lock)]

use rtclab_events::{Candidate, Event, EventSink, PeerRole, Record, Side, read_log};
use rtclab_peer::clock::RuntimeClock;
use rtclab_peer::{IcePolicy, IceServer, PeerConfig, Role, run_peer};
use rtclab_report::Summary;
use rtclab_tests::{media_lock, out_dir};
use rtclab_turn::coturn::{Coturn, CoturnConfig};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// Media seconds after the sender is connected: ~120 frames at 30 fps.
const DURATION_S: f64 = 4.0;
/// A relay connect takes ~3–5 s with webrtc-rs 0.21 on loopback (ICE checks wait for the TURN
/// permissions, then DTLS retransmits its first flight); the peer itself gives up at 30 s. A
/// session not connected by then fails the frame checks below.
const CONNECT_BOUND: Duration = Duration::from_secs(20);
const SECRET: &str = "rtclab-relay-test";

/// How one peer reaches the other.
#[derive(Clone)]
struct Setup {
    policy: IcePolicy,
    servers: Vec<IceServer>,
}

fn relay_via(url: &str, user: &str) -> Setup {
    let c = rtclab_turn::credentials::issue(
        SECRET,
        user,
        SystemWallClock.unix_now_s(),
        rtclab_turn::DEFAULT_TTL,
    );
    Setup {
        policy: IcePolicy::Relay,
        servers: vec![IceServer::turn(url, c.username, c.password)],
    }
}

/// Runs a sender and a receiver through a signaling server on loopback for [`DURATION_S`],
/// logging into `sink`; returns the log.
async fn session(
    sink: &EventSink,
    runtime: Arc<dyn Runtime>,
    sender: Setup,
    receiver: Setup,
) -> Vec<Record> {
    session_with(
        sink,
        runtime,
        sender,
        receiver,
        rtclab_signaling::AppState::new(None),
    )
    .await
}

/// [`session`] with a signaling server of the caller's making.
async fn session_with(
    sink: &EventSink,
    runtime: Arc<dyn Runtime>,
    sender: Setup,
    receiver: Setup,
    state: rtclab_signaling::AppState,
) -> Vec<Record> {
    let (listener, addr) = rtclab_signaling::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("signaling binds");
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(rtclab_signaling::serve_with_shutdown(
        listener,
        Arc::new(state),
        wait(server_stop_rx),
    ));
    let url = format!("ws://{addr}");
    let (connected_tx, mut connected_rx) = watch::channel(false);
    sink.set_listener(Arc::new(move |r: &Record| {
        if r.peer == PeerRole::Sender
            && matches!(&r.event, Event::PcState { state } if state == "connected")
        {
            connected_tx.send_replace(true);
        }
    }));
    let cfg = |role, s: Setup| {
        let mut c = PeerConfig::new(role);
        c.size = rtclab_media::Resolution {
            width: 640,
            height: 360,
        };
        c.ice_policy = s.policy;
        c.ice_servers = s.servers;
        c
    };
    let rx = tokio::spawn({
        let (url, sink, runtime, stop) =
            (url.clone(), sink.clone(), runtime.clone(), stop_rx.clone());
        let c = cfg(Role::Receiver, receiver);
        async move { run_peer(&url, "relay", c, sink, runtime, wait(stop)).await }
    });
    runtime.sleep(Duration::from_millis(100)).await;
    let tx = tokio::spawn({
        let (url, sink, runtime, stop) =
            (url.clone(), sink.clone(), runtime.clone(), stop_rx.clone());
        let c = cfg(Role::Sender, sender);
        async move { run_peer(&url, "relay", c, sink, runtime, wait(stop)).await }
    });
    // Media time counts from the connection: a relay connect takes seconds here (see the
    // module docs of the measurements), and the frame checks are about the relayed media.
    let connected = tokio::time::timeout(CONNECT_BOUND, async {
        while !*connected_rx.borrow() {
            if connected_rx.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if connected.is_ok() {
        runtime.sleep(Duration::from_secs_f64(DURATION_S)).await;
    }
    let _ = stop_tx.send(true);
    for (who, h) in [("sender", tx), ("receiver", rx)] {
        match tokio::time::timeout(Duration::from_secs(5), h).await {
            Ok(Ok(Ok(_))) => {}
            other => panic!(
                "{who} did not end cleanly: {other:?}; log {}",
                sink.path().display()
            ),
        }
    }
    // The signaling server goes last, so neither peer sees it vanish while stopping.
    let _ = server_stop_tx.send(true);
    let _ = server.await;
    let records = read_log(sink.path()).expect("log reads");
    let summary = Summary::from_records(&records);
    sink.end(
        "completed",
        serde_json::to_value(&summary).unwrap_or_default(),
    )
    .expect("log closes");
    read_log(sink.path()).expect("log reads")
}

async fn wait(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn new_sink(name: &str, runtime: &Arc<dyn Runtime>) -> EventSink {
    let out = out_dir(name);
    EventSink::create(
        &out.join("events.jsonl"),
        Arc::new(RuntimeClock(runtime.clone())),
        Some(name.to_owned()),
        serde_json::json!({ "test": name }),
    )
    .expect("event log")
}

/// Seconds from the sender's offer to its ICE `connected` and to its peer connection `connected`
/// (ICE + DTLS), as the log records them.
fn time_to_connect(records: &[Record]) -> (f64, f64) {
    let sender = |pred: &dyn Fn(&Event) -> bool| {
        records
            .iter()
            .find(|r| r.peer == PeerRole::Sender && pred(&r.event))
            .map(|r| r.t)
    };
    let offer = sender(&|e| matches!(e, Event::Signaling { what } if what == "offer sent"))
        .expect("offer sent");
    let ice = sender(&|e| matches!(e, Event::IceState { state } if state == "connected"))
        .expect("ice connected");
    let pc = sender(&|e| matches!(e, Event::PcState { state } if state == "connected"))
        .expect("pc connected");
    (ice - offer, pc - offer)
}

/// The last selected pair each peer logged.
fn selected(records: &[Record], peer: PeerRole) -> (Candidate, Candidate) {
    records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::IceSelectedPair { local, remote, .. } if r.peer == peer => {
                Some((local.clone(), remote.clone()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ice.selected_pair from the {peer}"))
}

/// Checks what every relay session promises; returns the summary.
fn check_relay(
    name: &str,
    records: &[Record],
    relay_sides: &[PeerRole],
    turn_url: &str,
) -> Summary {
    let s = Summary::from_records(records);
    assert!(
        s.frames_sent >= 90,
        "{name}: only {} frames sent",
        s.frames_sent
    );
    assert!(
        s.frames_decoded as f64 >= 0.9 * s.frames_sent as f64,
        "{name}: decoded {} of {} frames",
        s.frames_decoded,
        s.frames_sent
    );
    // The sender may send its first keyframe before the receiver has finished DTLS (webrtc-rs
    // does not wait for the peer's last flight); those packets are dropped, the decoder errors
    // once or twice and a PLI repairs it. That start-up race is excused for one second after the
    // sender connected, any later decode error is not.
    let connected_at = records
        .iter()
        .find(|r| {
            r.peer == PeerRole::Sender
                && matches!(&r.event, Event::PcState { state } if state == "connected")
        })
        .map(|r| r.t)
        .expect("sender connected");
    let late_errors: Vec<f64> = records
        .iter()
        .filter(|r| matches!(r.event, Event::DecoderError { .. }) && r.t > connected_at + 1.0)
        .map(|r| r.t)
        .collect();
    assert!(
        late_errors.is_empty(),
        "{name}: decode errors after start-up at {late_errors:?} s"
    );
    for peer in [PeerRole::Sender, PeerRole::Receiver] {
        let (local, remote) = selected(records, peer);
        let relay_here = relay_sides.contains(&peer);
        let relay_there = relay_sides.iter().any(|p| *p != peer);
        assert_eq!(
            local.typ == "relay",
            relay_here,
            "{name}: {peer}'s local candidate is {} ({local:?})",
            local.typ
        );
        if relay_there {
            // The other side's relay candidate, learned by signaling (or as prflx when a check
            // arrives before the candidate; both are the relay address).
            assert!(
                remote.typ == "relay" || remote.typ == "prflx",
                "{name}: {peer}'s remote candidate is {} ({remote:?})",
                remote.typ
            );
        } else {
            // The other side's host candidate. A connectivity check can arrive before the
            // trickled candidate does; the receiving agent then learns the same address as
            // peer-reflexive (RFC 8445 §7.3.1.3). That is still the host path, so a prflx remote
            // passes only if its address is one the other peer gathered as host.
            let other_hosts: Vec<(String, u16)> = records
                .iter()
                .filter_map(|r| match &r.event {
                    Event::IceCandidate {
                        side: Side::Local,
                        candidate,
                    } if r.peer != peer && candidate.typ == "host" => {
                        Some((candidate.address.clone(), candidate.port))
                    }
                    _ => None,
                })
                .collect();
            let is_host_path = remote.typ == "host"
                || (remote.typ == "prflx"
                    && other_hosts.contains(&(remote.address.clone(), remote.port)));
            assert!(
                is_host_path,
                "{name}: {peer}'s remote candidate is {} ({remote:?}), not one of the other \
                 peer's host candidates {other_hosts:?}",
                remote.typ
            );
        }
        if relay_here {
            let relay = records.iter().find_map(|r| match &r.event {
                Event::IceCandidate {
                    side: Side::Local,
                    candidate,
                } if r.peer == peer && candidate.typ == "relay" => Some(candidate.clone()),
                _ => None,
            });
            let relay =
                relay.unwrap_or_else(|| panic!("{name}: no local relay candidate from the {peer}"));
            assert_eq!(
                relay.url.as_deref(),
                Some(turn_url),
                "{name}: relay candidate's server"
            );
            assert_eq!(
                relay.relay_protocol.as_deref(),
                Some("udp"),
                "{name}: relay transport"
            );
            // A relay-only peer gathers nothing else (W3C iceTransportPolicy "relay").
            let others = records.iter().filter(|r| {
                r.peer == peer
                    && matches!(&r.event, Event::IceCandidate { side: Side::Local, candidate } if candidate.typ != "relay")
            });
            assert_eq!(
                others.count(),
                0,
                "{name}: {peer} gathered non-relay candidates"
            );
        }
    }
    let (ice, pc) = time_to_connect(records);
    println!(
        "{name}: time to connect: offer -> ICE connected {ice:.3} s, -> DTLS/pc connected {pc:.3} s"
    );
    s
}

fn runtime() -> Arc<dyn Runtime> {
    webrtc::runtime::default_runtime().expect("webrtc-rs runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_both_sides_through_the_embedded_server() {
    let _media = media_lock();
    let name = "relay-embedded-udp";
    let rt = runtime();
    let sink = new_sink(name, &rt);
    let turn = TurnServer::start(TurnConfig::loopback_any_port(SECRET), Some(sink.clone()))
        .await
        .expect("TURN server");
    let url = turn.turn_url();
    let records = session(
        &sink,
        rt,
        relay_via(&url, "sender"),
        relay_via(&url, "receiver"),
    )
    .await;
    turn.shutdown().await.expect("TURN shutdown");
    check_relay(
        name,
        &records,
        &[PeerRole::Sender, PeerRole::Receiver],
        &url,
    );

    // The server's side of the story is in the same log.
    let count = |kind: &str| records.iter().filter(|r| r.event.kind() == kind).count();
    assert!(
        count("turn.allocation_created") >= 2,
        "{name}: one allocation per peer at least"
    );
    assert!(
        count("turn.permission") >= 2,
        "{name}: permissions for each other's relay"
    );
    assert_eq!(count("turn.refused"), 0, "{name}: nothing refused");
    let relayed: u64 = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::TurnBytes { to_peer_bytes, .. } => Some(*to_peer_bytes),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(
        relayed > 100_000,
        "{name}: only {relayed} bytes relayed by the busiest allocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_sender_to_a_host_receiver_through_the_embedded_server() {
    let _media = media_lock();
    let name = "relay-embedded-udp-one-side";
    let rt = runtime();
    let sink = new_sink(name, &rt);
    let turn = TurnServer::start(TurnConfig::loopback_any_port(SECRET), Some(sink.clone()))
        .await
        .expect("TURN server");
    let url = turn.turn_url();
    let host = Setup {
        policy: IcePolicy::All,
        servers: vec![],
    };
    let records = session(&sink, rt, relay_via(&url, "sender"), host).await;
    turn.shutdown().await.expect("TURN shutdown");
    check_relay(name, &records, &[PeerRole::Sender], &url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_both_sides_through_coturn() {
    let _media = media_lock();
    let name = "relay-coturn-udp";
    let dir = tempfile::tempdir().expect("temp dir");
    let coturn = Coturn::start(CoturnConfig::loopback(SECRET, dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = coturn.turn_url("udp");
    let rt = runtime();
    let sink = new_sink(name, &rt);
    let records = session(
        &sink,
        rt,
        relay_via(&url, "sender"),
        relay_via(&url, "receiver"),
    )
    .await;
    check_relay(
        name,
        &records,
        &[PeerRole::Sender, PeerRole::Receiver],
        &url,
    );
}

/// With policy `all` and a TURN server configured, relay candidates are gathered too, but the
/// host pair wins on priority (RFC 8445 §5.1.2: host type preference 126, relay 0): the baseline
/// the relay times compare with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_all_with_turn_prefers_the_host_pair() {
    let _media = media_lock();
    let name = "relay-policy-all";
    let rt = runtime();
    let sink = new_sink(name, &rt);
    let turn = TurnServer::start(TurnConfig::loopback_any_port(SECRET), Some(sink.clone()))
        .await
        .expect("TURN server");
    let url = turn.turn_url();
    let mut both = relay_via(&url, "peer");
    both.policy = IcePolicy::All;
    let records = session(&sink, rt, both.clone(), both).await;
    turn.shutdown().await.expect("TURN shutdown");
    check_relay(name, &records, &[], &url);
    assert!(
        records.iter().any(|r| matches!(&r.event, Event::IceCandidate { side: Side::Local, candidate } if candidate.typ == "relay")),
        "{name}: relay candidates gathered under policy all"
    );
}

/// Peers with no servers of their own take the STUN/TURN servers and their per-peer credentials
/// from the signaling server's `joined`, and relay-only works with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_with_servers_handed_out_by_signaling() {
    let _media = media_lock();
    let name = "relay-from-signaling";
    let rt = runtime();
    let sink = new_sink(name, &rt);
    let turn = TurnServer::start(TurnConfig::loopback_any_port(SECRET), Some(sink.clone()))
        .await
        .expect("TURN server");
    let url = turn.turn_url();
    let state = rtclab_signaling::AppState::new(None).with_ice(rtclab_signaling::IceIssuer::new(
        SECRET,
        vec![turn.stun_url()],
        vec![url.clone()],
    ));
    let bare = Setup {
        policy: IcePolicy::Relay,
        servers: vec![],
    };
    let records = session_with(&sink, rt, bare.clone(), bare, state).await;
    turn.shutdown().await.expect("TURN shutdown");
    check_relay(
        name,
        &records,
        &[PeerRole::Sender, PeerRole::Receiver],
        &url,
    );
    // The two allocations belong to two users: the server issued each peer its own username.
    let users: std::collections::BTreeSet<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::TurnAllocationCreated { username, .. } => Some(username.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(users.len(), 2, "{name}: one TURN user per peer: {users:?}");
}
