//! `rtclab run` with headless Chromium as a relay-only receiver (`[ice] policy = "relay"`): the
//! page takes the TURN server and its credentials from `joined`, sets `iceTransportPolicy:
//! 'relay'` (`?relay=1`), decodes frames, and its selected pair (from its own `getStats()`) has a
//! relay local candidate with the run's TURN URL and transport. Through the embedded server over
//! UDP, and through coturn over TCP (Chromium has a TURN/TCP client; webrtc-rs 0.21 has none).

// The media lock is a std mutex held for a whole session on purpose: it keeps real-time
// sessions of different test binaries' threads off the same cores (tests/support).
#![allow(clippy::await_holding_lock)]

use rtclab_events::{Event, PeerRole, Record};
use rtclab_scenarios::ReceiverKind;
use rtclab_tests::{of, root, run_short, scenario};
use serde_json::Value;

/// The browser's selected pair in its last `browser.stats` snapshot: (local, remote) candidate.
fn browser_selected(records: &[Record]) -> Option<(Value, Value)> {
    records.iter().rev().find_map(|r| {
        let Event::BrowserStats { stats } = &r.event else {
            return None;
        };
        let id = stats["transport"]["selectedCandidatePairId"].as_str()?;
        let pair = stats["candidate-pair"]
            .as_array()?
            .iter()
            .find(|p| p["id"] == id)?;
        let find = |list: &str, key: &str| {
            stats[list]
                .as_array()?
                .iter()
                .find(|c| c["id"] == pair[key])
                .cloned()
        };
        Some((
            find("local-candidate", "localCandidateId")?,
            find("remote-candidate", "remoteCandidateId")?,
        ))
    })
}

async fn relay_only_browser(name: &str, file: &str, transport: &str) {
    assert!(
        root().join("web/node_modules/uplot").is_dir(),
        "web/node_modules is missing: run ./lab test (it installs the page's npm packages)"
    );
    // Chromium starts in ~1 s and connects through the relay in ~3 s more: 10 s leaves ~6 s of
    // media.
    let run = run_short(name, scenario(file), 10.0, |req| {
        req.receiver = Some(ReceiverKind::Browser);
        req.web_dir = Some(root().join("web"));
    })
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);

    // The page was asked for relay-only and configured itself so.
    let config = records
        .iter()
        .find_map(|r| match &r.event {
            Event::BrowserEvent { what, detail } if what == "ice config" => Some(detail.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name}: no `ice config` from the page"));
    assert_eq!(config["policy"], "relay", "{name}: {config}");
    let (local, remote) = browser_selected(&records)
        .unwrap_or_else(|| panic!("{name}: no selected pair in the browser's stats"));
    assert_eq!(local["candidateType"], "relay", "{name}: local {local}");
    assert_eq!(local["relayProtocol"], transport, "{name}: local {local}");
    assert!(
        local["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("?transport={transport}"))),
        "{name}: local {local}"
    );
    // The Rust sender relays too (policy relay), so the browser's remote is a relay candidate.
    assert_eq!(remote["candidateType"], "relay", "{name}: remote {remote}");
    // Frames reached the page: its getStats counted decoded frames.
    assert!(
        !of(&records, PeerRole::Browser, "media.stats").is_empty(),
        "{name}: no media.stats from the browser"
    );
    assert!(
        s.frames_decoded >= 60,
        "{name}: the browser decoded {} frames (sent {})",
        s.frames_decoded,
        s.frames_sent
    );
    println!(
        "{name}: browser decoded {} of {} frames through {}",
        s.frames_decoded, s.frames_sent, local["url"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_relay_only_through_the_embedded_server_udp() {
    relay_only_browser("run-relay-browser-udp", "turn-relay-udp", "udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_relay_only_through_coturn_tcp() {
    relay_only_browser("run-relay-browser-tcp", "turn-relay-tcp", "tcp").await;
}
