//! `rtclab run` on a relayed scenario: the run starts the embedded TURN server itself, its
//! signaling server hands both Rust peers their own TURN credentials in `joined`, and the media
//! flows relay <-> relay, with the server's `turn.*` events in the run's one log.

// The media lock is a std mutex held for a whole session on purpose: it keeps real-time
// sessions of different test binaries' threads off the same cores (tests/support).
#![allow(clippy::await_holding_lock)]

use rtclab_events::{Event, PeerRole, Side};
use rtclab_tests::{run_short, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_relay_udp_scenario_relays_both_rust_peers() {
    // A relay connect takes ~4–5 s with webrtc-rs 0.21 (turn/README.md); 10 s leaves ~5 s of
    // media, ~150 frames.
    let run = run_short(
        "run-turn-relay-udp",
        scenario("turn-relay-udp"),
        10.0,
        |_| {},
    )
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);

    // The run says what it asked for.
    let start = records.first().expect("a log");
    match &start.event {
        Event::SessionStart { config, .. } => {
            assert_eq!(config["ice"]["policy"], "relay", "{config}");
            assert_eq!(config["ice"]["turn"], "embedded", "{config}");
        }
        other => panic!("first line is {}", other.kind()),
    }
    // Both peers relay: their last selected pair has a relay local candidate, and they gathered
    // nothing else (policy relay), each with the run's TURN URL over UDP.
    for peer in [PeerRole::Sender, PeerRole::Receiver] {
        let (local, remote) = records
            .iter()
            .rev()
            .find_map(|r| match &r.event {
                Event::IceSelectedPair { local, remote, .. } if r.peer == peer => {
                    Some((local.clone(), remote.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no selected pair from the {peer}"));
        assert_eq!(local.typ, "relay", "{peer}: local {local:?}");
        assert!(
            remote.typ == "relay" || remote.typ == "prflx",
            "{peer}: remote {remote:?}"
        );
        let gathered: Vec<_> = records
            .iter()
            .filter_map(|r| match &r.event {
                Event::IceCandidate {
                    side: Side::Local,
                    candidate,
                } if r.peer == peer => Some(candidate.clone()),
                _ => None,
            })
            .collect();
        assert!(!gathered.is_empty(), "{peer} gathered nothing");
        for c in &gathered {
            assert_eq!(c.typ, "relay", "{peer} gathered {c:?}");
            assert!(
                c.url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("turn:127.0.0.1:")),
                "{peer}: relay candidate's server {c:?}"
            );
            assert_eq!(c.relay_protocol.as_deref(), Some("udp"), "{peer}: {c:?}");
        }
    }
    // The server's side, in the same log: one allocation per peer (two users), and the video
    // went through it.
    let users: std::collections::BTreeSet<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::TurnAllocationCreated { username, .. } => Some(username.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(users.len(), 2, "one TURN user per peer: {users:?}");
    let relayed = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::TurnBytes { to_peer_bytes, .. } => Some(*to_peer_bytes),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(relayed > 100_000, "only {relayed} bytes relayed");
    assert_eq!(
        records
            .iter()
            .filter(|r| r.event.kind() == "turn.refused")
            .count(),
        0,
        "a request was refused"
    );
    assert!(s.frames_sent >= 60, "only {} frames sent", s.frames_sent);
    assert!(
        s.decoded_ratio() >= 0.9,
        "decoded {} of {} frames",
        s.frames_decoded,
        s.frames_sent
    );
    println!(
        "turn-relay-udp: sent {} decoded {}, relayed {} bytes by the busiest allocation",
        s.frames_sent, s.frames_decoded, relayed
    );
}
