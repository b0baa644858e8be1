//! Tests of the session's flow and the startup delay: hand-built logs (a clean call, a relayed
//! one, an older log without `observed`, a browser receiver, a lossy one with many keyframe
//! requests) and a recorded log from `tests/fixtures/`; and the diagram's SVG, checked to be
//! well-formed by balancing its tags.

use super::*;
use rtclab_events::{BweDetail, MediaStats};

fn rec(t: f64, peer: PeerRole, event: Event) -> Record {
    Record { t, peer, event }
}

fn sig(t: f64, peer: PeerRole, what: &str) -> Record {
    rec(t, peer, Event::Signaling { what: what.into() })
}

fn cand(typ: &str, port: u16) -> Candidate {
    Candidate {
        typ: typ.into(),
        protocol: "udp".into(),
        address: "127.0.0.1".into(),
        port,
        ..Default::default()
    }
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

fn dtls(t: f64, peer: PeerRole, observed: Option<Observed>) -> Record {
    rec(
        t,
        peer,
        Event::DtlsState {
            state: "connected".into(),
            observed,
        },
    )
}

fn pc(t: f64, peer: PeerRole) -> Record {
    rec(
        t,
        peer,
        Event::PcState {
            state: "connected".into(),
        },
    )
}

fn first(t: f64, peer: PeerRole, what: First) -> Record {
    rec(t, peer, Event::MediaFirst { what })
}

fn rtcp(t: f64, peer: PeerRole, direction: Direction, packet: Rtcp) -> Record {
    rec(t, peer, Event::Rtcp { direction, packet })
}

fn bwe(t: f64, target: f64) -> Record {
    rec(
        t,
        PeerRole::Sender,
        Event::BweEstimate {
            estimator: "rtclab".into(),
            target_bps: target,
            delay_based_bps: None,
            loss_based_bps: None,
            loss_ratio: None,
            rtt_ms: None,
            detail: BweDetail::default(),
        },
    )
}

fn recv_stats(t: f64, frames: u64) -> Record {
    rec(
        t,
        PeerRole::Receiver,
        Event::MediaStats(MediaStats {
            direction: MediaDirection::Recv,
            frames,
            ..Default::default()
        }),
    )
}

fn send_stats(t: f64) -> Record {
    rec(
        t,
        PeerRole::Sender,
        Event::MediaStats(MediaStats {
            direction: MediaDirection::Send,
            frames: 30,
            ..Default::default()
        }),
    )
}

fn end(t: f64) -> Record {
    rec(
        t,
        PeerRole::Lab,
        Event::SessionEnd {
            reason: "completed".into(),
            summary: serde_json::Value::Null,
        },
    )
}

/// A clean call between the Rust peers, as `rtclab run scenarios/clean.toml` logs it.
fn clean() -> Vec<Record> {
    use PeerRole::{Receiver as R, Sender as S};
    let pair = |t, peer, observed| {
        let (l, r) = if peer == S {
            (5000, 6000)
        } else {
            (6000, 5000)
        };
        rec(
            t,
            peer,
            Event::IceSelectedPair {
                local: cand("host", l),
                remote: cand("host", r),
                observed: Some(observed),
            },
        )
    };
    let candidate = |t, peer, side, port| {
        rec(
            t,
            peer,
            Event::IceCandidate {
                side,
                candidate: cand("host", port),
            },
        )
    };
    vec![
        sig(0.002, R, "joined room run (1 peer(s))"),
        sig(0.104, S, "joined room run (2 peer(s))"),
        sig(0.104, S, "offer sent"),
        candidate(0.104, S, Side::Local, 5000),
        sig(0.104, R, "peer joined"),
        sig(0.104, R, "offer received"),
        sig(0.105, R, "answer sent"),
        ice(0.105, R, "checking"),
        candidate(0.105, R, Side::Local, 6000),
        sig(0.107, S, "answer received"),
        ice(0.107, S, "checking"),
        candidate(0.107, R, Side::Remote, 5000),
        candidate(0.107, S, Side::Remote, 6000),
        ice(0.306, R, "connected"),
        ice(0.306, S, "connected"),
        pair(0.306, S, Observed::OnStateChange),
        dtls(0.508, S, Some(Observed::OnStateChange)),
        pc(0.508, S),
        dtls(0.509, R, Some(Observed::ImpliedByPcState)),
        pc(0.509, R),
        bwe(0.542, 1e6),
        first(0.542, S, First::RtpSent),
        first(0.543, R, First::RtpReceived),
        first(0.580, R, First::FrameDecoded),
        pair(0.603, R, Observed::Poll),
        rtcp(
            0.643,
            R,
            Direction::Out,
            Rtcp::Twcc {
                base_seq: 0,
                packet_count: 26,
                fb_count: 0,
                received: 26,
            },
        ),
        bwe(0.644, 2.24e6),
        bwe(0.745, 2.24e6),
        bwe(0.848, 3e6),
        send_stats(1.5),
        recv_stats(1.5, 28),
        rtcp(
            1.544,
            S,
            Direction::Out,
            Rtcp::SenderReport {
                ssrc: 1,
                packets: 293,
                octets: 315_352,
                reports: vec![],
            },
        ),
        sig(8.205, S, "bye sent"),
        sig(8.206, R, "peer left"),
        end(8.548),
    ]
}

fn kinds(flow: &SessionFlow) -> Vec<(StepKind, Participant, Participant)> {
    flow.steps.iter().map(|s| (s.what, s.from, s.to)).collect()
}

#[test]
fn a_clean_call_in_the_wires_order() {
    use Participant::{Receiver as R, Sender as S, Signaling as G};
    let flow = session_flow(&clean());
    assert_eq!(flow.participants, vec![S, G, R], "no STUN/TURN column");
    assert_eq!(flow.sender_name, "rtclab sender");
    assert_eq!(flow.receiver_name, "rtclab receiver");
    let want = vec![
        (StepKind::Join, R, G),
        (StepKind::Join, S, G),
        (StepKind::Join, G, R),
        (StepKind::Offer, S, G),
        (StepKind::Offer, G, R),
        (StepKind::Answer, R, G),
        (StepKind::IceChecking, S, R),
        (StepKind::Answer, G, S),
        (StepKind::Candidates, S, R),
        (StepKind::Candidates, R, S),
        (StepKind::IceConnected, S, R),
        (StepKind::DtlsConnected, S, R),
        (StepKind::FirstRtp, S, R),
        (StepKind::FirstFrame, R, R),
        (StepKind::FirstRtcp, R, S),
        (StepKind::BweChange, S, S),
        (StepKind::BweChange, S, S),
        (StepKind::FirstRtcp, S, R),
        (StepKind::Leave, S, G),
        (StepKind::Leave, G, R),
        (StepKind::End, S, R),
    ];
    assert_eq!(kinds(&flow), want, "{flow:#?}");
    let label = |k| {
        flow.steps
            .iter()
            .find(|s| s.what == k)
            .map(|s| s.label.as_str())
            .unwrap_or_default()
    };
    // The pair was read the moment ICE connected: one step, exact.
    assert_eq!(
        label(StepKind::IceConnected),
        "ICE connected: host ↔ host (udp)"
    );
    assert_eq!(label(StepKind::FirstRtp), "first RTP (SRTP), in at 0.543 s");
    assert_eq!(label(StepKind::FirstRtcp), "first RTCP: TWCC");
    assert_eq!(
        label(StepKind::Candidates),
        "1 candidate (host) via signaling"
    );
    let bwe: Vec<&str> = flow
        .steps
        .iter()
        .filter(|s| s.what == StepKind::BweChange)
        .map(|s| s.label.as_str())
        .collect();
    assert_eq!(
        bwe,
        [
            "target 1.00 Mbps → 2.24 Mbps",
            "target 2.24 Mbps → 3.00 Mbps"
        ]
    );
    // Every instant of this log is exact: DTLS from the sender's own state change.
    assert!(flow.steps.iter().all(|s| s.timing.is_exact()), "{flow:#?}");
    assert!(flow.left_out.is_empty());
    let times: Vec<f64> = flow.steps.iter().map(|s| s.t_s).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
}

#[test]
fn the_startup_phases_add_up_to_the_total() {
    let s = startup_delay(&clean()).expect("a startup delay");
    assert_eq!(s.joined.at_s, 0.002);
    assert_eq!(s.answer_received.at_s, 0.107);
    assert_eq!(s.ice_connected.at_s, 0.306);
    assert_eq!(s.dtls_connected.at_s, 0.508);
    assert_eq!(s.first_frame.at_s, 0.580);
    assert_eq!(s.first_frame_from, FirstFrameFrom::MediaFirst);
    assert_eq!(
        [s.signaling_ms, s.ice_ms, s.dtls_ms, s.first_frame_ms],
        [105.0, 199.0, 202.0, 72.0]
    );
    assert_eq!(s.total_ms, 578.0);
    let sum: f64 = s.phases().iter().map(|(_, ms)| ms).sum();
    assert!((sum - s.total_ms).abs() < 1e-9);
    assert_eq!(
        s.summary_line(),
        "startup delay 578 ms: signaling 105 ms, ICE 199 ms, DTLS 202 ms, first frame 72 ms"
    );
    // In summary.json: each phase in ms, each point with its timing.
    let v = serde_json::to_value(&s).expect("serialises");
    assert_eq!(v["dtls_ms"], 202.0);
    assert_eq!(v["dtls_connected"]["timing"], "exact");
    assert_eq!(v["first_frame_from"], "media_first");
}

#[test]
fn a_phase_logged_out_of_order_is_not_negative() {
    // The answerer reached ICE `connected` before the offerer logged the answer.
    let mut v = clean();
    for r in &mut v {
        if let Event::Signaling { what } = &r.event
            && what == "answer received"
        {
            r.t = 0.4;
        }
    }
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let s = startup_delay(&v).expect("a startup delay");
    assert_eq!(s.ice_connected.at_s, 0.4, "moved up to the answer");
    assert_eq!(s.ice_ms, 0.0);
    let sum: f64 = s.phases().iter().map(|(_, ms)| ms).sum();
    assert!((sum - s.total_ms).abs() < 1e-9 && s.total_ms == 578.0);
}

#[test]
fn polled_and_implied_instants_are_marked() {
    let mut v: Vec<Record> = clean()
        .into_iter()
        .filter(|r| !matches!(r.event, Event::DtlsState { .. } | Event::PcState { .. }))
        .filter(|r| !matches!(r.event, Event::IceSelectedPair { .. }))
        .collect();
    // DTLS found by the poll; the pair by the poll, after ICE `connected`.
    v.push(dtls(0.520, PeerRole::Sender, Some(Observed::Poll)));
    v.push(rec(
        0.450,
        PeerRole::Sender,
        Event::IceSelectedPair {
            local: cand("host", 5000),
            remote: cand("host", 6000),
            observed: Some(Observed::Poll),
        },
    ));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let flow = session_flow(&v);
    let dtls_step = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::DtlsConnected)
        .expect("DTLS step");
    assert_eq!(
        dtls_step.timing,
        Timing::Inferred {
            how: Inference::Poll,
            late_by_ms: Some(200.0)
        }
    );
    assert_eq!(
        dtls_step.timing.explain(),
        "seen by the 200 ms poll, up to 200 ms late"
    );
    // A pair seen apart from ICE `connected` is its own step, on the lifeline of its peer.
    let pair = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::SelectedPair)
        .expect("pair step");
    assert_eq!(
        (pair.t_s, pair.from, pair.to),
        (0.45, Participant::Sender, Participant::Sender)
    );
    assert_eq!(pair.label, "pair host ↔ host (udp)");
    assert!(!pair.timing.is_exact());
    let ice = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::IceConnected)
        .expect("ICE step");
    assert_eq!(ice.label, "ICE connected");
    let s = startup_delay(&v).expect("startup");
    assert!(!s.dtls_connected.timing.is_exact());
    assert!(
        s.summary_line().ends_with("(inferred: DTLS)"),
        "{}",
        s.summary_line()
    );
    let svg = sequence_svg(&flow);
    assert!(svg.contains("≈ 0.520 s"), "the time column marks it");
    assert!(svg.contains("stroke-dasharray=\"5 3\""), "a dashed arrow");
}

#[test]
fn an_older_log_takes_dtls_from_the_peer_connection() {
    // Before `observed`: DTLS polled at 0.606, the peer connection connected at 0.508.
    let mut v: Vec<Record> = clean()
        .into_iter()
        .filter(|r| !matches!(r.event, Event::DtlsState { .. } | Event::MediaFirst { .. }))
        .collect();
    v.push(dtls(0.606, PeerRole::Receiver, None));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let s = startup_delay(&v).expect("startup");
    assert_eq!(s.dtls_connected.at_s, 0.508);
    assert_eq!(
        s.dtls_connected.timing,
        Timing::Inferred {
            how: Inference::ImpliedByPcState,
            late_by_ms: Some(1.0)
        }
    );
    // Without `media.first`, the first frame comes from the statistics: up to a second late.
    assert_eq!(s.first_frame_from, FirstFrameFrom::Statistics);
    assert_eq!(s.first_frame.at_s, 1.5);
    assert_eq!(
        s.first_frame.timing,
        Timing::Inferred {
            how: Inference::Statistics,
            late_by_ms: Some(1000.0)
        }
    );
    assert!(s.summary_line().contains("coarser"), "{}", s.summary_line());
    let flow = session_flow(&v);
    let f = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::FirstFrame)
        .expect("first frame step");
    assert_eq!(f.label, "first frame decoded (by)");
    assert!(!flow.steps.iter().any(|s| s.what == StepKind::FirstRtp));
}

/// A relay-only call through the embedded TURN server.
fn relayed() -> Vec<Record> {
    let mut v = clean();
    let relay = |port| Candidate {
        related_address: Some("127.0.0.1".into()),
        related_port: Some(5000),
        ..cand("relay", port)
    };
    v.retain(|r| !matches!(r.event, Event::IceSelectedPair { .. }));
    v.push(rec(
        0.104,
        PeerRole::Sender,
        Event::IceCandidate {
            side: Side::Local,
            candidate: relay(40000),
        },
    ));
    v.push(rec(
        0.103,
        PeerRole::Lab,
        Event::TurnAllocationCreated {
            client: "127.0.0.1:5000".into(),
            username: "1:sender".into(),
            relay: "127.0.0.1:40000".into(),
            transport: "udp".into(),
            lifetime_s: 600,
        },
    ));
    v.push(rec(
        0.2,
        PeerRole::Lab,
        Event::TurnPermission {
            client: "127.0.0.1:5000".into(),
            peers: vec!["127.0.0.1".into()],
        },
    ));
    v.push(rec(
        0.306,
        PeerRole::Sender,
        Event::IceSelectedPair {
            local: relay(40000),
            remote: cand("host", 6000),
            observed: Some(Observed::OnStateChange),
        },
    ));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    v
}

#[test]
fn the_turn_column_appears_only_when_a_server_was_used() {
    use Participant::{Receiver as R, Sender as S, Signaling as G, StunTurn as T};
    let flow = session_flow(&relayed());
    assert_eq!(flow.participants, vec![S, G, T, R]);
    let turn: Vec<(f64, &str)> = flow
        .steps
        .iter()
        .filter(|s| s.to == T)
        .map(|s| (s.t_s, s.label.as_str()))
        .collect();
    assert_eq!(
        turn,
        [
            (0.103, "Allocate: relay 127.0.0.1:40000"),
            (0.2, "CreatePermission")
        ],
        "the allocation at the server's instant, matched to the sender by its relay address"
    );
    let ice = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::IceConnected)
        .expect("ICE step");
    assert_eq!(ice.label, "ICE connected: relay ↔ host (udp) via TURN");
    assert!(
        flow.steps
            .iter()
            .any(|s| s.what == StepKind::FirstRtp && s.label.contains("via TURN"))
    );
    let svg = sequence_svg(&flow);
    assert!(svg.contains("STUN/TURN server"));
    assert_well_formed(&svg);

    // A server-reflexive candidate alone brings the column too (a STUN Binding).
    let mut v = clean();
    v.push(rec(
        0.104,
        PeerRole::Receiver,
        Event::IceCandidate {
            side: Side::Local,
            candidate: cand("srflx", 6001),
        },
    ));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let flow = session_flow(&v);
    assert_eq!(flow.participants, vec![S, G, T, R]);
    assert!(
        flow.steps
            .iter()
            .any(|s| s.from == R && s.to == T && s.label == "STUN Binding: srflx 127.0.0.1:6001")
    );
    assert!(!sequence_svg(&session_flow(&clean())).contains("STUN/TURN"));
}

#[test]
fn a_browser_receiver_is_a_column_of_its_own() {
    use PeerRole::{Browser as B, Sender as S};
    let ev = |t, what: &str, detail| {
        rec(
            t,
            B,
            Event::BrowserEvent {
                what: what.into(),
                detail,
            },
        )
    };
    let state = |s: &str| serde_json::json!({ "state": s });
    let v = vec![
        sig(0.556, S, "joined room run (2 peer(s))"),
        sig(0.557, S, "offer sent"),
        ev(0.593, "start", serde_json::Value::Null),
        ev(0.612, "signaling state", state("have-remote-offer")),
        sig(0.625, S, "answer received"),
        ev(0.627, "answer sent", serde_json::Value::Null),
        ev(0.632, "ice state", state("checking")),
        ev(0.635, "ice state", state("connected")),
        ice(0.808, S, "connected"),
        dtls(1.012, S, Some(Observed::OnStateChange)),
        first(1.026, S, First::RtpSent),
        ev(
            1.059,
            "first frame",
            serde_json::json!({"how": "loadeddata"}),
        ),
        send_stats(1.5),
        rec(
            1.6,
            B,
            Event::MediaStats(MediaStats {
                direction: MediaDirection::Recv,
                frames: 20,
                ..Default::default()
            }),
        ),
    ];
    let flow = session_flow(&v);
    assert_eq!(flow.receiver_name, "browser (receiver)");
    let s = startup_delay(&v).expect("startup");
    assert_eq!(s.joined.at_s, 0.556, "the first join, whoever it was");
    // DTLS needs a path both ways: ICE counts once both ends are connected.
    assert_eq!(
        s.ice_connected.at_s, 0.808,
        "the Rust sender connected last"
    );
    assert!(s.ice_connected.timing.is_exact());
    let ice: Vec<(f64, Participant, Participant, bool)> = flow
        .steps
        .iter()
        .filter(|s| s.what == StepKind::IceConnected)
        .map(|s| (s.t_s, s.from, s.to, s.timing.is_exact()))
        .collect();
    assert_eq!(
        ice,
        [
            (0.635, Participant::Sender, Participant::Receiver, false),
            (0.808, Participant::Sender, Participant::Sender, true),
        ],
        "the browser's end first, then a note on the sender's lifeline"
    );
    assert_eq!(s.first_frame_from, FirstFrameFrom::BrowserEvent);
    assert_eq!(s.first_frame.at_s, 1.059);
    let answer = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::Answer && s.from == Participant::Receiver)
        .expect("the browser's answer");
    assert_eq!(
        answer.timing.explain(),
        "the browser's event, logged when it reached rtclab (a few ms late)"
    );
}

#[test]
fn a_lossy_call_draws_the_first_keyframe_requests_and_stays_bounded() {
    let mut v = clean();
    v.retain(|r| !matches!(r.event, Event::SessionEnd { .. }));
    // A PLI every 100 ms for 10 s; the sender answers one per 300 ms.
    for i in 0..100_u32 {
        let t = 1.0 + f64::from(i) * 0.1;
        v.push(rec(
            t - 0.01,
            PeerRole::Receiver,
            Event::DecoderPli {
                reason: PliReason::FrameLost,
            },
        ));
        v.push(rtcp(
            t,
            PeerRole::Receiver,
            Direction::Out,
            Rtcp::Pli { media_ssrc: 1 },
        ));
        if i % 3 == 0 {
            v.push(rec(
                t + 0.02,
                PeerRole::Sender,
                Event::EncoderKeyframe {
                    reason: KeyframeReason::Pli,
                    frame_index: i as u64,
                    after_request_ms: Some(20.0),
                },
            ));
        }
        // The target swings by half every 100 ms.
        v.push(bwe(t + 0.05, if i % 2 == 0 { 1e6 } else { 2e6 }));
    }
    // And the signaling socket drops and comes back, over and over: details beyond the cap.
    for i in 0..30 {
        v.push(sig(
            11.0 + f64::from(i) * 0.01,
            PeerRole::Sender,
            "signaling connection lost",
        ));
    }
    v.push(end(12.0));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let flow = session_flow(&v);
    assert_eq!(flow.steps.len(), MAX_STEPS);
    let requests: Vec<&Step> = flow
        .steps
        .iter()
        .filter(|s| s.what == StepKind::KeyframeRequest)
        .collect();
    assert_eq!(requests.len(), MAX_KEYFRAME_REQUESTS);
    assert_eq!(requests[0].label, "PLI (frame lost)");
    assert_eq!(
        (requests[0].from, requests[0].to),
        (Participant::Receiver, Participant::Sender)
    );
    // The held-back request at 1.1 s shares the keyframe of 1.0 s: the next one drawn is 1.3 s.
    let times: Vec<String> = requests.iter().map(|s| format!("{:.1}", s.t_s)).collect();
    assert_eq!(times, ["1.0", "1.3", "1.6"]);
    let keyframe = flow
        .steps
        .iter()
        .find(|s| s.what == StepKind::Keyframe)
        .expect("keyframe step");
    assert_eq!(keyframe.label, "keyframe, 20 ms after the request");
    assert_eq!(
        flow.steps
            .iter()
            .filter(|s| s.what == StepKind::BweChange)
            .count(),
        MAX_BWE_CHANGES
    );
    assert_eq!(
        flow.steps.last().map(|s| s.what),
        Some(StepKind::End),
        "the end stays"
    );
    let left: BTreeMap<StepKind, usize> = flow.left_out.iter().copied().collect();
    assert_eq!(left.get(&StepKind::KeyframeRequest), Some(&97));
    assert!(left.get(&StepKind::BweChange).is_some_and(|n| *n > 50));
    assert!(
        left.get(&StepKind::Signaling).is_some_and(|n| *n > 0),
        "{left:?}"
    );
    let svg = sequence_svg(&flow);
    assert!(svg.contains(&format!(
        "{} more steps are not drawn",
        flow.left_out_count()
    )));
    assert_well_formed(&svg);
}

#[test]
fn an_empty_log_has_no_startup_and_an_empty_diagram() {
    assert_eq!(startup_delay(&[]), None);
    let flow = session_flow(&[]);
    assert!(flow.steps.is_empty());
    assert_well_formed(&sequence_svg(&flow));
}

#[test]
fn the_diagram_is_well_formed_and_names_every_participant() {
    let mut v = clean();
    // Text that needs escaping reaches the diagram escaped.
    v.push(sig(
        2.0,
        PeerRole::Sender,
        "signaling connection lost <ws> & regained",
    ));
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    let svg = sequence_svg(&session_flow(&v));
    assert!(svg.starts_with("<?xml"));
    assert_well_formed(&svg);
    for name in ["rtclab sender", "signaling server", "rtclab receiver"] {
        assert!(svg.contains(name), "{name} missing");
    }
    assert!(svg.contains("&lt;ws&gt; &amp; regained"));
    assert!(svg.contains("0.306 s"));
    // Self-contained: the only URL is the SVG namespace.
    let without_ns = svg.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http") && !without_ns.contains("<script"));
}

/// Well-formed enough for a browser's XML parser: every tag closed in order, attributes quoted,
/// no bare `&` or `<` in text.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert_text(text);
        let close = rest[open..].find('>').expect("a tag is closed") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack.pop().unwrap_or_default();
            assert_eq!(top, name.trim(), "closing tag out of order");
            continue;
        }
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "'<' inside <{tag}>");
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        assert!(!name.is_empty(), "empty tag");
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(svg.matches("<svg").count(), 1);
}

fn assert_text(text: &str) {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "bare & in {text:?}"
        );
    }
}

/// A real run (see `tests/fixtures/README.md`).
#[test]
fn recorded_clean_run() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clean-startup.jsonl");
    let records = rtclab_events::read_log(&path).expect("the fixture is a valid log");
    let flow = session_flow(&records);
    let order: Vec<StepKind> = flow.steps.iter().map(|s| s.what).collect();
    let pos = |k| order.iter().position(|o| *o == k).unwrap_or(usize::MAX);
    // The wire's order: signaling, ICE, DTLS, first RTP, first frame.
    let chain = [
        StepKind::Join,
        StepKind::Offer,
        StepKind::Answer,
        StepKind::IceConnected,
        StepKind::DtlsConnected,
        StepKind::FirstRtp,
        StepKind::FirstFrame,
        StepKind::End,
    ];
    for w in chain.windows(2) {
        assert!(
            pos(w[0]) < pos(w[1]),
            "{:?} before {:?}: {order:?}",
            w[0],
            w[1]
        );
    }
    assert!(order.contains(&StepKind::FirstRtcp) && order.contains(&StepKind::Candidates));
    let s = startup_delay(&records).expect("startup");
    assert_eq!(s.first_frame_from, FirstFrameFrom::MediaFirst);
    let sum: f64 = s.phases().iter().map(|(_, ms)| ms).sum();
    assert!((sum - s.total_ms).abs() < 1e-9);
    assert!(s.total_ms > 100.0 && s.total_ms < 5000.0, "{s:?}");
    let svg = sequence_svg(&flow);
    assert_well_formed(&svg);
    // Set RTCLAB_SEQUENCE_KEEP=FILE to look at the diagram of this run.
    if let Some(p) = std::env::var_os("RTCLAB_SEQUENCE_KEEP") {
        std::fs::write(p, &svg).expect("written");
    }
}

/// Draws any log: `RTCLAB_SEQUENCE_LOG=events.jsonl RTCLAB_SEQUENCE_KEEP=out.svg cargo test -p
/// rtclab-report draw_a_log -- --ignored --nocapture` prints its steps and startup delay.
#[test]
#[ignore = "needs a log named by RTCLAB_SEQUENCE_LOG"]
fn draw_a_log() {
    let Some(path) = std::env::var_os("RTCLAB_SEQUENCE_LOG") else {
        return;
    };
    let records = rtclab_events::read_log_lenient(std::path::Path::new(&path))
        .expect("a readable log")
        .0;
    let flow = session_flow(&records);
    for s in &flow.steps {
        println!(
            "{:>8.3} {:?} -> {:?}: {} {}",
            s.t_s,
            s.from,
            s.to,
            s.label,
            s.timing.explain()
        );
    }
    println!("{}", flow.left_out_text());
    if let Some(s) = startup_delay(&records) {
        println!("{}", s.summary_line());
    }
    if let Some(out) = std::env::var_os("RTCLAB_SEQUENCE_KEEP") {
        std::fs::write(out, sequence_svg(&flow)).expect("written");
    }
}

/// The hooks: `summary.json` (through `merged`), `rtclab report`'s terminal view and
/// `report.html` with `plots/sequence.svg`.
#[test]
fn the_report_carries_the_startup_delay_and_the_diagram() {
    let report = crate::RunReport::from_records(&clean());
    let merged = crate::summary::merged(&crate::Summary::from_records(&clean()), &report);
    assert_eq!(merged["startup_delay"]["total_ms"], 578.0);
    assert_eq!(merged["startup_delay"]["ice_ms"], 199.0);
    assert!(
        merged.get("session_flow").is_none(),
        "a diagram, not a figure"
    );
    let mut out = Vec::new();
    crate::print_tables(&report, &merged, &mut out).expect("printed");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.contains(
            "startup delay 578 ms: signaling 105 ms, ICE 199 ms, DTLS 202 ms, first frame 72 ms"
        ),
        "{text}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crate::write_html(&report, &merged, dir.path()).expect("written");
    let html = std::fs::read_to_string(path).expect("html");
    let section = &html[html.find("<h2>Session flow</h2>").expect("the section")..];
    for part in [
        "startup delay 578 ms",
        "RFC 8445",
        "RFC 5764",
        "<svg",
        "plots/sequence.svg",
    ] {
        assert!(section.contains(part), "{part} missing");
    }
    let svg = std::fs::read_to_string(dir.path().join("plots/sequence.svg")).expect("svg");
    assert_well_formed(&svg);
}
