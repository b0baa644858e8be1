//! Issue 16: `rtclab relay` impairs what it relays, per allocation, and logs what it can read.
//! Two relay-only Rust peers call through it with `loss-5` (5 % random loss on what each client
//! receives); the browser test `tests/browser/impairing_relay.test.mjs` does the same with two
//! Chromium pages. Checked: each allocation has its own log; the receiving client's link drops
//! ~5 % and the relay reads the RTP stream's rate, clock, repeats and residual loss; a live
//! change over HTTP is logged in every allocation's log with its source and takes effect; an
//! Allocate without credentials gets no relay.

// The media lock is a std mutex held for a whole session on purpose (tests/support).
#![allow(clippy::await_holding_lock)]

use rtclab_events::{Event, EventSink, Record, RelayRtp, read_log};
use rtclab_media::Resolution;
use rtclab_netem::{ImpairmentConfig, Schedule, Step};
use rtclab_peer::clock::RuntimeClock;
use rtclab_peer::{IcePolicy, PeerConfig, Role, run_peer};
use rtclab_runner::live::{Entry, Kind};
use rtclab_runner::relay::{RelayConfig, run_relay};
use rtclab_tests::{http, media_lock, out_dir, root, scenario};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// When loss-5's loss starts on each allocation, in seconds after its creation: after ICE and
/// DTLS (~3-5 s through TURN here). webrtc-rs 0.21 does not resend its last DTLS flight, so a
/// loss during the handshake can stall the call for good (docs/notes/webrtc-rs-0.21.md); a
/// fresh-clone CI run hit exactly that with loss from the start.
const LOSS_FROM_S: f64 = 8.0;
/// Seconds from the peers' start to the live change, and media seconds after it.
const BEFORE: Duration = Duration::from_secs(14);
const AFTER: Duration = Duration::from_secs(4);

async fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    let (status, json) = http(addr, "POST", "/api/impair?room=relay", body).await;
    (status, json.to_string())
}

/// An Allocate with no credentials (RFC 8656 §7.1: REQUESTED-TRANSPORT UDP); returns the
/// response's message type and error code, if any.
async fn unauthenticated_allocate(turn: SocketAddr) -> (u16, Option<u16>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut req = Vec::new();
    req.extend_from_slice(&0x0003u16.to_be_bytes()); // Allocate request
    req.extend_from_slice(&8u16.to_be_bytes());
    req.extend_from_slice(&0x2112_A442u32.to_be_bytes()); // magic cookie
    req.extend_from_slice(&[7u8; 12]); // transaction id
    req.extend_from_slice(&0x0019u16.to_be_bytes()); // REQUESTED-TRANSPORT
    req.extend_from_slice(&4u16.to_be_bytes());
    req.extend_from_slice(&[17, 0, 0, 0]); // UDP
    sock.send_to(&req, turn).await.expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a response within 5 s")
        .expect("recv");
    let typ = u16::from_be_bytes([buf[0], buf[1]]);
    // Walk the attributes for ERROR-CODE (0x0009): class * 100 + number.
    let mut at = 20;
    let mut code = None;
    while at + 4 <= n {
        let t = u16::from_be_bytes([buf[at], buf[at + 1]]);
        let len = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        if t == 0x0009 && len >= 4 {
            code = Some(u16::from(buf[at + 6] & 0x07) * 100 + u16::from(buf[at + 7]));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    (typ, code)
}

fn allocation_logs(out: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("allocation-"))
        })
        .map(|p| p.join("events.jsonl"))
        .collect();
    logs.sort();
    logs
}

fn rtp<'a>(records: &'a [Record], direction: &str) -> Vec<&'a RelayRtp> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::RelayRtp(x) if x.direction == direction => Some(x),
            _ => None,
        })
        .collect()
}

/// (t, packets_in, random drops) of each downlink `impair.stats` line.
fn downlink(records: &[Record]) -> Vec<(f64, u64, u64)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ImpairStats(s) if s.direction == "downlink" => {
                Some((r.t, s.packets_in, s.dropped_packets.random))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_impairs_each_clients_link_and_reads_the_rtp_it_carries() {
    let _media = media_lock();
    let out = out_dir("relay-impair");
    let rt: Arc<dyn Runtime> = rtclab_peer::default_runtime().expect("runtime");
    let file = root().join("scenarios/loss-5.toml");
    let mut loss5 = scenario("loss-5");
    loss5.impairment.downlink = Schedule {
        base: ImpairmentConfig::default(),
        steps: vec![Step {
            at_s: LOSS_FROM_S,
            until_s: None,
            set: loss5.impairment.downlink.base.clone(),
        }],
    };
    let entry = Entry::new(loss5, Kind::Scenario, file);
    let cfg = RelayConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        turn_addr: "127.0.0.1:0".parse().expect("addr"),
        out: out.clone(),
        scenario: Some(entry),
        impair_user: None,
        allowed_peers: rtclab_turn::AllowedPeers::Loopback,
        secret: Some("relay-test-secret".into()),
        web_dir: root().join("web"),
        scenarios_dir: root().join("scenarios"),
        seed: 1,
        allowed_origins: Vec::new(),
        max_relay_kbps: None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let relay = tokio::spawn(run_relay(
        cfg,
        rt.clone(),
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
        move |ready| {
            let _ = ready_tx.send((ready.http, ready.turn, ready.ice_servers.clone()));
        },
    ));
    let (http, turn, ice_servers) = ready_rx.await.expect("relay ready");
    assert!(
        ice_servers.contains(&format!("turn:{turn}")) && ice_servers.contains("credential"),
        "iceServers to give an app: {ice_servers}"
    );

    // Without credentials: a 401 challenge (RFC 8656 §7.2), never a relayed address.
    let (typ, code) = unauthenticated_allocate(turn).await;
    assert_eq!(typ, 0x0113, "an Allocate error response");
    assert_eq!(code, Some(401));

    // Two relay-only Rust peers; the servers come from the relay's signaling (`joined`).
    let ws = format!("ws://{http}");
    let mut peers = Vec::new();
    for role in [Role::Receiver, Role::Sender] {
        let mut cfg = PeerConfig::new(role);
        cfg.ice_policy = IcePolicy::Relay;
        cfg.size = Resolution {
            width: 640,
            height: 360,
        };
        let sink = EventSink::create(
            &out.join(format!("peer-{role:?}")).join("events.jsonl"),
            Arc::new(RuntimeClock(rt.clone())),
            None,
            serde_json::json!({ "test": "relay_impair" }),
        )
        .expect("peer log");
        let (ws, rt, mut stop) = (ws.clone(), rt.clone(), stop_tx.subscribe());
        peers.push(tokio::spawn(async move {
            let r = run_peer(&ws, "r1", cfg, sink.clone(), rt, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
            let _ = sink.end("test over", serde_json::Value::Null);
            r
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(BEFORE).await;
    let (status, body) = post(http, r#"{"action":"set","downlink":{"loss_pct":150}}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("downlink.loss_pct"), "{body}");
    let (status, body) = post(
        http,
        r#"{"action":"set","downlink":{"loss_pct":20},"source":"test"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"loss_pct\":20.0"), "{body}");
    tokio::time::sleep(AFTER).await;
    let _ = stop_tx.send(true);
    for p in peers {
        let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;

    let logs = allocation_logs(&out);
    assert!(logs.len() >= 2, "one log per allocation: {logs:?}");
    let all: Vec<Vec<Record>> = logs
        .iter()
        .map(|l| read_log(l).unwrap_or_else(|e| panic!("{}: {e}", l.display())))
        .collect();
    for (log, records) in logs.iter().zip(&all) {
        assert!(
            matches!(
                records.last().map(|r| &r.event),
                Some(Event::SessionEnd { .. })
            ),
            "{} ends with session.end",
            log.display()
        );
        let live = records.iter().any(|r| {
            matches!(&r.event, Event::ImpairChange { source: Some(s), settings, .. }
                if s == "test" && settings.get("loss_pct") == Some(&serde_json::json!(20.0)))
        });
        let carried = records
            .iter()
            .any(|r| matches!(r.event, Event::RelayRtp(_)));
        // Only allocations that carried media matter (a peer may gather a spare one).
        if carried {
            assert!(
                live,
                "{}: no impair.change from the live request",
                log.display()
            );
        }
    }
    // The receiver's allocation: the one whose client received the video.
    let receiving = all
        .iter()
        .find(|r| rtp(r, "to_client").iter().any(|x| x.bps > 100_000.0))
        .expect("an allocation that delivered video to its client");
    let dl = downlink(receiving);
    let change_t = receiving
        .iter()
        .find_map(|r| match &r.event {
            Event::ImpairChange {
                source: Some(s), ..
            } if s == "test" => Some(r.t),
            _ => None,
        })
        .expect("the live change in the receiver's allocation log");
    let before = dl
        .iter()
        .rev()
        .find(|x| x.0 <= change_t)
        .copied()
        .expect("stats before the change");
    let last = *dl.last().expect("stats");
    // The scenario's loss step, as this allocation logged it.
    let loss_t = receiving
        .iter()
        .find_map(|r| match &r.event {
            Event::ImpairChange { settings, .. }
                if settings.get("loss_pct") == Some(&serde_json::json!(5.0)) =>
            {
                Some(r.t)
            }
            _ => None,
        })
        .expect("loss-5's step in the receiver's allocation log");
    let from = dl
        .iter()
        .rev()
        .find(|x| x.0 <= loss_t)
        .copied()
        .unwrap_or((0.0, 0, 0));
    // From the step to the change: ~5 % of the packets that reached the downlink, drawn per
    // packet: within 4 standard deviations of a binomial over that many packets (~0.9 points
    // for ~600).
    let n = (before.1 - from.1).max(1) as f64;
    let pct_before = 100.0 * (before.2 - from.2) as f64 / n;
    let sd = 100.0 * (0.05 * 0.95 / n).sqrt();
    assert!(
        (pct_before - 5.0).abs() <= 4.0 * sd,
        "{pct_before:.2} % dropped on the receiver's downlink before the change ({} of {}; 4 sd = {:.2} points)",
        before.2 - from.2,
        before.1 - from.1,
        4.0 * sd
    );
    // After: 20 % of the packets of the last seconds (a few hundred packets; 12 % is far below).
    let pct_after = 100.0 * (last.2 - before.2) as f64 / (last.1 - before.1).max(1) as f64;
    assert!(
        pct_after >= 12.0,
        "{pct_after:.1} % dropped after the change to 20 %"
    );
    // What the relay read of the stream it delivered: the 90 kHz video clock, and little loss
    // left once NACK repaired it (a resend fills its gap: a first arrival on this side).
    let to_client = rtp(receiving, "to_client");
    let video = to_client
        .iter()
        .filter(|x| x.bps > 100_000.0)
        .last()
        .expect("a video stream");
    assert_eq!(video.clock_hz, Some(90_000), "{video:?}");
    assert!(
        (video.lost_total as f64) <= 0.01 * video.packets_total as f64,
        "{} of {} packets never reached the client",
        video.lost_total,
        video.packets_total
    );
    // On the sender's side the resends are repeats of sequence numbers the relay had already
    // carried (webrtc-rs resends on the media SSRC, without RFC 4588 RTX).
    let sent_repeats: u64 = all
        .iter()
        .flat_map(|r| rtp(r, "from_client"))
        .filter(|x| x.ssrc == video.ssrc)
        .map(|x| x.repeated)
        .sum();
    assert!(sent_repeats > 0, "no resend seen leaving the sender");
    eprintln!(
        "relay_impair: receiver downlink dropped {pct_before:.2} % of {} packets before, \
         {pct_after:.1} % after; the relay delivered {} video packets, {} never arrived; the \
         sender resent {sent_repeats}; jitter {:?} ms",
        before.1 - from.1,
        video.packets_total,
        video.lost_total,
        video.jitter_ms
    );
}
