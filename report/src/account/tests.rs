//! Tests of the account: hand-built logs (a capacity drop and its recovery, a loss period with
//! NACK repair, an outage, a clean run, a lone freeze, a browser's freezes, a long round trip,
//! loss without impairment statistics, an empty log), two recorded logs from
//! `tests/fixtures/`, and the terminal summary that opens with the account. They check the
//! account through [`RunReport::from_records`], as the report builds it.

use super::{Sentence, Topic, to_text};
use crate::impair::test_records::{StatsLog, change};
use crate::metrics::RunReport;
use rtclab_events::{
    BweDetail, Direction, Event, First, KeyframeReason, MediaDirection, MediaStats, PeerRole,
    PliReason, Qoe, Record, Rtcp,
};
use serde_json::json;

fn rec(t: f64, peer: PeerRole, event: Event) -> Record {
    Record { t, peer, event }
}

/// An estimate of rtclab's controller; `loss` = (loss-based estimate, loss ratio).
fn bwe(t: f64, target: f64, state: &str, loss: Option<(f64, f64)>) -> Record {
    rec(
        t,
        PeerRole::Sender,
        Event::BweEstimate {
            estimator: "rtclab".into(),
            target_bps: target,
            delay_based_bps: Some(loss.map_or(target, |_| 2.0 * target)),
            loss_based_bps: Some(loss.map_or(target, |(l, _)| l)),
            loss_ratio: Some(loss.map_or(0.0, |(_, r)| r)),
            rtt_ms: Some(40.0),
            detail: BweDetail {
                state: Some(state.into()),
                ..Default::default()
            },
        },
    )
}

fn stats(t: f64, peer: PeerRole, frames: u64, lost: u64, rtx: u64) -> Record {
    let direction = if peer == PeerRole::Sender {
        MediaDirection::Send
    } else {
        MediaDirection::Recv
    };
    rec(
        t,
        peer,
        Event::MediaStats(MediaStats {
            direction,
            frames,
            lost,
            retransmitted: rtx,
            bitrate_bps: 1e6,
            fps: 30.0,
            ..Default::default()
        }),
    )
}

fn rtcp_out(t: f64, packet: Rtcp) -> Record {
    rec(
        t,
        PeerRole::Receiver,
        Event::Rtcp {
            direction: Direction::Out,
            packet,
        },
    )
}

fn keyframe(t: f64, reason: KeyframeReason) -> Record {
    rec(
        t,
        PeerRole::Sender,
        Event::EncoderKeyframe {
            reason,
            frame_index: 0,
            after_request_ms: None,
        },
    )
}

fn adapt(t: f64, from: (u32, u32), to: (u32, u32), target: f64, reason: &str) -> Record {
    rec(
        t,
        PeerRole::Sender,
        Event::EncoderAdapt {
            from_width: from.0,
            from_height: from.1,
            to_width: to.0,
            to_height: to.1,
            target_bps: target,
            reason: reason.into(),
        },
    )
}

fn freeze(t: f64, duration_ms: f64) -> Record {
    rec(t, PeerRole::Receiver, Event::VideoFreeze { duration_ms })
}

fn ice(t: f64, peer: PeerRole, state: &str) -> Record {
    rec(
        t,
        peer,
        Event::IceState {
            state: state.into(),
        },
    )
}

/// Session start, signaling, ICE, the peer connection, the first keyframe, RTP packet and
/// decoded frame, as a clean loopback run logs them.
fn startup() -> Vec<Record> {
    let mut v = vec![rec(
        0.0,
        PeerRole::Lab,
        Event::SessionStart {
            schema: rtclab_events::SCHEMA.into(),
            session_id: "s".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            scenario: Some("test".into()),
            config: json!({"codec": "h264"}),
        },
    )];
    v.push(rec(
        0.1,
        PeerRole::Sender,
        Event::Signaling {
            what: "offer sent".into(),
        },
    ));
    for peer in [PeerRole::Sender, PeerRole::Receiver] {
        v.push(ice(0.3, peer, "connected"));
        v.push(rec(
            0.5,
            peer,
            Event::PcState {
                state: "connected".into(),
            },
        ));
    }
    v.push(keyframe(0.52, KeyframeReason::Start));
    for (t, what) in [(0.53, First::RtpReceived), (0.56, First::FrameDecoded)] {
        v.push(rec(t, PeerRole::Receiver, Event::MediaFirst { what }));
    }
    v
}

/// Media statistics once a second from 1 s to `end` s: 30 frames a second, all decoded;
/// `lost` and `rtx` give the receiver's lost count and the sender's retransmissions at `t`.
fn media(end: u32, lost: impl Fn(f64) -> u64, rtx: impl Fn(f64) -> u64) -> Vec<Record> {
    let mut v = Vec::new();
    for i in 1..=end {
        let t = f64::from(i);
        let frames = 30 * u64::from(i);
        v.push(stats(t, PeerRole::Sender, frames, 0, rtx(t)));
        v.push(stats(t, PeerRole::Receiver, frames, lost(t), 0));
        v.push(rec(
            t,
            PeerRole::Receiver,
            Event::Qoe(Qoe {
                frames_decoded: 30,
                fps: 30.0,
                g2g_ms: vec![40.0, 45.0, 50.0],
                g2g_p50_ms: Some(45.0),
                g2g_p95_ms: Some(50.0),
                ..Default::default()
            }),
        ));
    }
    v
}

fn account_of(mut records: Vec<Record>) -> Vec<Sentence> {
    records.sort_by(|a, b| a.t.total_cmp(&b.t));
    RunReport::from_records(&records).what_happened
}

fn topics(account: &[Sentence]) -> Vec<(f64, Topic)> {
    account.iter().map(|s| (s.t_s, s.topic)).collect()
}

fn text_of(account: &[Sentence], topic: Topic) -> &str {
    account
        .iter()
        .find(|s| s.topic == topic)
        .map_or("", |s| s.text.as_str())
}

/// 3 Mbps, 500 kbps from 20 s, 3 Mbps again from 30 s. The controller detects over-use from
/// 20.3 s and gets under the capacity at 20.8 s; the queue fills and drops for three
/// seconds; the encoder steps down to 540p and back up at 34 s; one freeze.
#[test]
fn a_capacity_drop_and_its_recovery() {
    let mut v = startup();
    v.extend(media(40, |_| 0, |_| 0));
    let mut t = 0.5;
    while t < 40.0 {
        let (target, state) = match t {
            t if t < 20.3 => (2.5e6, "normal"),
            t if t < 20.8 => (2.5e6, "overuse"),
            t if t < 30.0 => (4.5e5, "normal"),
            t if t < 33.0 => (1.5e6, "normal"),
            _ => (2.8e6, "normal"),
        };
        v.push(bwe(t, target, state, None));
        t = ((t + 0.1) * 10.0_f64).round() / 10.0;
    }
    let mut log = StatsLog::new("downlink");
    for i in 1..=40 {
        let congested = (21..=23).contains(&i);
        let cap = if (21..=30).contains(&i) { 5e5 } else { 3e6 };
        let queue = if congested {
            (310.0, 590.0, 640.0)
        } else {
            (3.0, 9.0, 14.0)
        };
        let overflow = if congested { 30 } else { 0 };
        v.push(log.second(
            f64::from(i),
            Some(cap),
            100,
            100_000,
            0,
            overflow,
            Some(queue),
        ));
    }
    v.push(change("downlink", 20.0, None, json!({"rate_kbps": 500.0})));
    v.push(change("downlink", 30.0, None, json!({"rate_kbps": 3000.0})));
    v.push(adapt(
        21.0,
        (1280, 720),
        (960, 540),
        4.5e5,
        "target_below_floor",
    ));
    v.push(adapt(
        34.0,
        (960, 540),
        (1280, 720),
        2.8e6,
        "target_recovered",
    ));
    v.push(freeze(21.4, 520.0));

    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (0.0, Topic::Link),
            (20.0, Topic::CapacityDrop),
            (30.0, Topic::CapacityRise),
            (40.0, Topic::Viewer),
        ]
    );
    assert!(
        text_of(&account, Topic::Link).contains("carried at most 3.00 Mbps"),
        "{account:#?}"
    );
    let drop = text_of(&account, Topic::CapacityDrop);
    assert_eq!(
        drop,
        "At 20.0 s the capacity fell from 3.00 Mbps to 500 kbps. The queue at the bottleneck \
         reached 640 ms and 90 packets were dropped when it was full. The target fell below \
         the new capacity in 0.80 s (delay-based over-use: the queuing delay was growing). \
         The encoder went 720p → 540p (the target fell below what the resolution needs). The \
         picture froze for 520 ms, until 21.4 s."
    );
    let rise = text_of(&account, Topic::CapacityRise);
    assert_eq!(
        rise,
        "At 30.0 s the capacity rose from 500 kbps to 3.00 Mbps. The target was back to \
         2.25 Mbps (90 % of its level before the drop) 3.00 s after the rise. The encoder \
         went 540p → 720p (the target recovered)."
    );
    let viewer = text_of(&account, Topic::Viewer);
    assert!(
        viewer.contains("1200 of the 1200 frames sent were decoded (100.0 %)")
            && viewer.contains("froze once, 520 ms in all (1.3 % of the time)")
            && viewer.contains("was 45 ms at the median")
            && viewer.contains("went as low as 540p"),
        "{viewer}"
    );
}

/// 5 % random loss from 5 s to 15 s: 50 of 1000 packets dropped, NACKed and mostly
/// retransmitted; one frame lost for good brings a PLI, a keyframe and a short freeze.
#[test]
fn a_loss_period_with_nack_repair() {
    let mut v = startup();
    // The receiver counts gaps not yet filled: 3 while repairs are under way, 2 for good.
    let lost = |t: f64| match t {
        t if t <= 5.0 => 0,
        t if t <= 15.0 => 3,
        _ => 2,
    };
    let rtx = |t: f64| ((t - 5.0).max(0.0) as u64 * 5).min(48);
    v.extend(media(20, lost, rtx));
    let mut log = StatsLog::new("downlink");
    for i in 1..=20 {
        let random = if (6..=15).contains(&i) { 5 } else { 0 };
        v.push(log.second(f64::from(i), None, 100 - random, 100_000, random, 0, None));
    }
    v.push(change("downlink", 5.0, None, json!({"loss_pct": 5.0})));
    v.push(change("downlink", 15.0, None, json!({"loss_pct": null})));
    for k in 0..40 {
        let t = 5.2 + f64::from(k) * 0.25;
        v.push(rtcp_out(
            t,
            Rtcp::Nack {
                media_ssrc: 1,
                seqs: vec![k as u16, k as u16 + 1],
            },
        ));
    }
    v.push(rec(
        9.3,
        PeerRole::Receiver,
        Event::DecoderPli {
            reason: PliReason::FrameLost,
        },
    ));
    v.push(rtcp_out(9.3, Rtcp::Pli { media_ssrc: 1 }));
    v.push(keyframe(9.35, KeyframeReason::Pli));
    v.push(freeze(9.6, 400.0));

    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (5.0, Topic::Loss),
            (20.0, Topic::Viewer)
        ]
    );
    assert_eq!(
        text_of(&account, Topic::Loss),
        "From 5.0 s to 15.0 s the link lost 5.0 % of the packets on the downlink at random \
         (50 of 1000; the scenario set 5 %). The receiver sent 40 NACKs naming missing \
         packets 80 times (it asks again until a repair arrives); the sender retransmitted \
         48 (0.96 per lost packet); 2 stayed lost. The receiver asked for a keyframe with 1 \
         PLI (a frame was lost for good), and 1 keyframe answered. The picture froze for \
         400 ms, until 9.6 s."
    );
}

/// The link dies from 10 s to 13 s: the picture freezes until a keyframe the receiver
/// asked for arrives; ICE loses contact for a moment; the controller backs off without
/// feedback and climbs back.
#[test]
fn an_outage_with_a_freeze_and_the_keyframe_after_it() {
    let mut v = startup();
    let lost = |t: f64| if t >= 14.0 { 50 } else { 0 };
    let rtx = |t: f64| if t >= 14.0 { 250 } else { 0 };
    v.extend(media(20, lost, rtx));
    let mut log = StatsLog::new("downlink");
    for i in 1..=20 {
        if (11..=13).contains(&i) {
            log.totals.packets_in += 100;
            log.totals.dropped_packets.outage += 100;
            v.push(log.second(f64::from(i), None, 0, 0, 0, 0, None));
        } else {
            v.push(log.second(f64::from(i), None, 100, 100_000, 0, 0, None));
        }
    }
    v.push(change(
        "downlink",
        10.0,
        Some(13.0),
        json!({"outage": true}),
    ));
    v.push(change("downlink", 13.0, None, json!({"outage": null})));
    // Without feedback the target falls by a fifth every half second; the first report
    // after the outage shows 98 % loss, then the target climbs back.
    let mut target = 2.5e6;
    let mut t = 0.5;
    while t < 10.01 {
        v.push(bwe(t, target, "normal", None));
        t += 0.5;
    }
    for k in 1..=5 {
        target *= 0.8;
        v.push(bwe(10.0 + 0.5 * f64::from(k), target, "normal", None));
    }
    v.push(bwe(13.05, 4e5, "normal", Some((4e5, 0.98))));
    for k in 0..=12 {
        v.push(bwe(
            13.5 + 0.5 * f64::from(k),
            6e5 + 2e5 * f64::from(k),
            "normal",
            None,
        ));
    }
    v.push(ice(13.2, PeerRole::Receiver, "disconnected"));
    v.push(ice(13.9, PeerRole::Receiver, "connected"));
    v.push(rtcp_out(
        13.2,
        Rtcp::Nack {
            media_ssrc: 1,
            seqs: (0..300).collect(),
        },
    ));
    v.push(rec(
        13.25,
        PeerRole::Receiver,
        Event::DecoderPli {
            reason: PliReason::FrameLost,
        },
    ));
    v.push(rtcp_out(13.25, Rtcp::Pli { media_ssrc: 1 }));
    v.push(keyframe(13.3, KeyframeReason::Pli));
    v.push(adapt(
        13.4,
        (1280, 720),
        (960, 540),
        6e5,
        "target_below_floor",
    ));
    v.push(freeze(13.6, 3500.0));

    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (10.0, Topic::Outage),
            (20.0, Topic::Viewer)
        ]
    );
    assert_eq!(
        text_of(&account, Topic::Outage),
        "At 10.0 s the link went dead for 3.0 s (an outage: every packet dropped, 300 in \
         all). The picture froze for 3.5 s, until 13.6 s. The receiver's ICE lost contact at \
         13.2 s (it had heard nothing from the other side for a while) and reconnected at \
         13.9 s. The receiver sent 1 NACK naming missing packets 300 times (it asks again \
         until a repair arrives); the sender retransmitted 250 (0.83 per lost packet); 50 \
         stayed lost. The receiver asked for a keyframe with 1 PLI (a frame was lost for \
         good), and 1 keyframe answered. The first keyframe after the link came back left \
         the encoder at 13.3 s (asked for by a PLI). The target fell from 2.50 Mbps to \
         400 kbps (loss-based: 98 % loss reported) and was back to 2.25 Mbps (90 % of its \
         level before the outage) 5.00 s after the link came back. The encoder went 720p → \
         540p (the target fell below what the resolution needs)."
    );
}

#[test]
fn a_clean_run_says_nothing_went_wrong() {
    let mut v = startup();
    v.extend(media(10, |_| 0, |_| 0));
    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (10.0, Topic::Clean),
            (10.0, Topic::Viewer)
        ]
    );
    assert_eq!(
        account[0].text,
        "Startup: the offer went out at 0.10 s, ICE connected at 0.30 s and the peer \
         connection (ICE and DTLS) at 0.50 s. The first keyframe left the encoder at 0.52 s, \
         the first RTP packet reached the receiver at 0.53 s and the first frame was decoded \
         at 0.56 s (the startup delay)."
    );
    assert_eq!(
        account[1].text,
        "Nothing went wrong: the link was not impaired, no packet was lost and the picture \
         never froze."
    );
    assert_eq!(
        account[2].text,
        "What the viewer saw: 300 of the 300 frames sent were decoded (100.0 %) and the \
         picture never froze. Glass-to-glass latency (capture to decoded picture) was 45 ms \
         at the median."
    );
}

/// A freeze no impairment explains is told on its own, with the receiver's reason.
#[test]
fn a_freeze_outside_every_period_is_told_with_its_reason() {
    let mut v = startup();
    v.extend(media(10, |_| 0, |_| 0));
    v.push(rec(
        4.1,
        PeerRole::Receiver,
        Event::DecoderPli {
            reason: PliReason::DecodeError,
        },
    ));
    v.push(freeze(4.3, 300.0));
    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (4.0, Topic::Picture),
            (10.0, Topic::Viewer)
        ]
    );
    assert_eq!(
        account[1].text,
        "At 4.0 s the picture froze for 300 ms (a frame could not be decoded; the receiver \
         asked for a keyframe)."
    );
}

/// A browser receiver logs no `video.freeze`: its statistics' totals tell the freezes, each
/// counted once even where two periods overlap.
#[test]
fn a_browsers_freezes_come_from_its_statistics() {
    let mut v = startup();
    for i in 1..=10_u32 {
        let t = f64::from(i);
        v.push(stats(t, PeerRole::Sender, 30 * u64::from(i), 0, 0));
        let mut s = stats(t, PeerRole::Browser, 30 * u64::from(i), 0, 0);
        if let Event::MediaStats(m) = &mut s.event {
            (m.freezes, m.freeze_ms) = if i >= 7 { (2, 900.0) } else { (0, 0.0) };
        }
        v.push(s);
    }
    let mut log = StatsLog::new("downlink");
    for i in 1..=10 {
        let random = if i >= 6 { 4 } else { 0 };
        v.push(log.second(f64::from(i), None, 96, 96_000, random, 0, None));
    }
    v.push(change("downlink", 5.0, None, json!({"loss_pct": 4.0})));
    v.push(change("uplink", 5.0, None, json!({"loss_pct": 4.0})));
    let account = account_of(v);
    assert_eq!(
        topics(&account),
        vec![
            (0.0, Topic::Startup),
            (5.0, Topic::Loss),
            (5.0, Topic::Impairment),
            (10.0, Topic::Viewer)
        ]
    );
    assert!(
        text_of(&account, Topic::Loss).ends_with("The picture froze twice, 900 ms in all."),
        "{account:#?}"
    );
    assert!(
        !text_of(&account, Topic::Impairment).contains("froze"),
        "{account:#?}"
    );
    assert!(
        text_of(&account, Topic::Viewer).contains("froze twice, 900 ms in all"),
        "{account:#?}"
    );
}

/// A recorded log in `tests/fixtures/` (trimmed; see the README there).
fn recorded(name: &str) -> Vec<Sentence> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let records = rtclab_events::read_log(&path).expect("the fixture is a valid log");
    RunReport::from_records(&records).what_happened
}

fn assert_has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{p:?} missing from: {text}");
    }
}

/// A real run of the bandwidth drop on a short clock (3 Mbps → 500 kbps at 8 s → 3 Mbps at
/// 16 s), rtclab's controller, H.264.
#[test]
fn recorded_bandwidth_drop() {
    let account = recorded("bandwidth-drop-short.jsonl");
    let got: Vec<(String, Topic)> = account
        .iter()
        .map(|s| (format!("{:.1}", s.t_s), s.topic))
        .collect();
    let want: Vec<(String, Topic)> = [
        ("0.0", Topic::Startup),
        ("0.0", Topic::Link),
        ("8.0", Topic::CapacityDrop),
        ("16.0", Topic::CapacityRise),
        ("25.4", Topic::Picture),
        ("26.5", Topic::Viewer),
    ]
    .iter()
    .map(|(t, k)| ((*t).to_owned(), *k))
    .collect();
    assert_eq!(got, want, "{account:#?}");
    assert_has(
        text_of(&account, Topic::Startup),
        &["ICE connected at 0.11 s", "first frame by 1.33 s"],
    );
    assert_has(
        text_of(&account, Topic::CapacityDrop),
        &[
            "At 8.0 s the capacity fell from 3.00 Mbps to 500 kbps.",
            "reached 300 ms and 91 packets were dropped when it was full.",
            "below the new capacity in 0.21 s (delay-based over-use",
            "The encoder went 720p → 360p → 180p (first because too many frames went over \
             budget).",
            "The picture froze 3 times, 2.1 s in all (longest 1.3 s).",
            "1 PLI (a frame was lost for good), and 1 keyframe answered.",
        ],
    );
    assert_has(
        text_of(&account, Topic::CapacityRise),
        &[
            "At 16.0 s the capacity rose from 500 kbps to 3.00 Mbps.",
            "back to 2.23 Mbps (90 % of its level before the drop) 5.36 s after the rise.",
            "180p → 360p → 540p",
        ],
    );
    assert_has(
        text_of(&account, Topic::Picture),
        &["At 25.4 s the encoder went 540p → 720p"],
    );
    assert_has(
        text_of(&account, Topic::Viewer),
        &[
            "741 of the 761 frames sent were decoded (97.4 %)",
            "froze 5 times, 2.5 s",
        ],
    );
}

/// A real run of `outage-3s` (no packet from 10 s to 13 s), rtclab's controller, H.264.
#[test]
fn recorded_outage() {
    let account = recorded("outage-3s.jsonl");
    let topics: Vec<Topic> = account.iter().map(|s| s.topic).collect();
    assert_eq!(
        topics,
        vec![Topic::Startup, Topic::Outage, Topic::Viewer],
        "{account:#?}"
    );
    assert_has(
        text_of(&account, Topic::Outage),
        &[
            "At 10.0 s the link went dead for 3.0 s (an outage: every packet dropped, 646 in \
             all).",
            "The picture froze twice, 4.2 s in all (longest 4.0 s).",
            "The receiver's ICE lost contact at 13.2 s",
            "reconnected at 14.2 s.",
            "The receiver sent 24 NACKs",
            "the sender retransmitted 575 (0.89 per lost packet); 133 stayed lost.",
            "left the encoder at 13.0 s (sent as a bandwidth probe).",
            "The target fell from 3.00 Mbps to 398 kbps (loss-based: 99 % loss reported) and \
             was back to 2.70 Mbps (90 % of its level before the outage) 4.18 s after the \
             link came back.",
            "The encoder went 720p → 540p → 720p",
        ],
    );
    assert_has(
        text_of(&account, Topic::Viewer),
        &[
            "627 of the 738 frames sent were decoded (85.0 %)",
            "froze twice, 4.2 s in all",
        ],
    );
}

/// A long round trip is told with the link: it bounds how fast NACK repair can be.
#[test]
fn a_long_round_trip_is_told_with_the_link() {
    let mut v = startup();
    v.extend(media(10, |_| 0, |_| 0));
    for (i, rtt) in [290.0, 310.0, 300.0, 305.0, 295.0].into_iter().enumerate() {
        let mut e = bwe(1.0 + i as f64, 1e6, "normal", None);
        if let Event::BweEstimate { rtt_ms, .. } = &mut e.event {
            *rtt_ms = Some(rtt);
        }
        v.push(e);
    }
    let account = account_of(v);
    assert_eq!(
        text_of(&account, Topic::Link),
        "A round trip took 300 ms (the median RTT): a lost packet cannot be retransmitted \
         sooner than that."
    );
    assert_eq!(
        to_text(&account).lines().count(),
        4,
        "startup, link, nothing went wrong, the viewer"
    );
}

/// Without impairment statistics (a real network), the receiver's NACKs and lost count
/// are the only sign of loss; the account says so instead of giving a loss rate.
#[test]
fn loss_without_impairment_statistics_is_told_from_the_receiver() {
    let mut v = startup();
    v.extend(media(
        10,
        |t| u64::from(t >= 4.0),
        |t| u64::from(t >= 4.0) * 2,
    ));
    for t in [3.2, 3.3] {
        v.push(rtcp_out(
            t,
            Rtcp::Nack {
                media_ssrc: 1,
                seqs: vec![7],
            },
        ));
    }
    let account = account_of(v);
    assert_eq!(
        text_of(&account, Topic::Loss),
        "From 3.2 s to the end (10.0 s) the receiver found packets missing, with no \
         impairment in this log (the network's own loss, or an impairment logged elsewhere, \
         such as by a relay). The receiver sent 2 NACKs naming \
         missing packets twice (it asks again until a repair arrives); the sender \
         retransmitted 2; 1 stayed lost. The picture did not freeze."
    );
}

#[test]
fn an_empty_log_tells_nothing() {
    assert!(account_of(Vec::new()).is_empty());
}

#[test]
fn the_terminal_summary_opens_with_the_account() {
    let mut v = startup();
    v.extend(media(10, |_| 0, |_| 0));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let summary = crate::Summary::from_records(&v);
    assert_eq!(summary.what_happened.len(), 3);
    let mut out = Vec::new();
    crate::print_summary(&summary, &mut out).expect("writes to a Vec");
    let out = String::from_utf8(out).expect("utf-8");
    assert!(out.starts_with("what happened\n  - Startup: "), "{out}");
    assert!(out.contains("\n  - Nothing went wrong"), "{out}");
    // Wrapped to the terminal, continued with an indent.
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    assert!(out.contains("\n    "), "{out}");
}

/// A relay allocation's log (`rtclab relay`): impairment lines and a capacity drop, but no
/// controller and no receiver of its own. The account tells the link and says nothing about a
/// target or a picture it cannot know.
#[test]
fn a_log_without_controller_or_receiver_claims_neither() {
    let mut v = Vec::new();
    let mut log = StatsLog::new("downlink");
    for i in 1..=20 {
        let cap = if i > 10 { 5e5 } else { 3e6 };
        let overflow = if (11..=12).contains(&i) { 20 } else { 0 };
        v.push(log.second(
            f64::from(i),
            Some(cap),
            100,
            100_000,
            0,
            overflow,
            Some((3.0, 9.0, 14.0)),
        ));
    }
    v.push(change("downlink", 10.0, None, json!({"rate_kbps": 500.0})));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let text = to_text(&account_of(v));
    assert!(text.contains("capacity"), "{text}");
    assert!(!text.contains("target"), "{text}");
    assert!(!text.contains("freeze"), "{text}");
}
