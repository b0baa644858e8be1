//! Live control of one direction (what the demo page and `POST /api/impair` drive): apply,
//! replace, play a schedule from now, a timed outage and reset, in virtual time, without
//! sockets. Each test checks the settings in force, the packets' fate and the change records
//! the `impair.change` lines are made from.

use bytes::Bytes;
use rtclab_netem::{
    Change, DropCause, Impairer, ImpairmentConfig, Link, Packet, Schedule, Step, Verdict,
};
use std::time::{Duration, Instant};
use webrtc::runtime::{Runtime, TokioRuntime};

fn t0() -> Instant {
    TokioRuntime.now()
}

fn clean(start: Instant) -> Impairer<u64> {
    Impairer::new(Link::Downlink, &Schedule::default(), start, 7).expect("valid")
}

fn packet(seq: u64) -> Packet<u64> {
    Packet {
        payload: Bytes::from(vec![0u8; 1000]),
        meta: seq,
    }
}

fn s(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

/// The changes since the last call as (at_s, settings JSON, source).
fn changes(d: &mut Impairer<u64>) -> Vec<(f64, serde_json::Value, String)> {
    d.take_changes()
        .iter()
        .map(|c: &Change| (c.at_s, c.settings_json(), c.source.clone()))
        .collect()
}

#[test]
fn apply_changes_only_the_given_fields_and_names_its_source() {
    let start = t0();
    let mut d = clean(start);
    let loss = ImpairmentConfig {
        loss_pct: Some(10.0),
        delay_ms: Some(50.0),
        ..Default::default()
    };
    d.apply(start + s(2.0), &loss, "page").expect("valid");
    let delay = ImpairmentConfig {
        delay_ms: Some(20.0),
        ..Default::default()
    };
    d.apply(start + s(3.0), &delay, "api").expect("valid");
    assert_eq!(d.config().loss_pct, Some(10.0), "loss kept");
    assert_eq!(d.config().delay_ms, Some(20.0));
    let got = changes(&mut d);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, 2.0);
    assert_eq!(got[0].2, "page");
    assert_eq!(got[1].1, serde_json::json!({ "delay_ms": 20.0 }));
    assert_eq!(got[1].2, "api");
}

#[test]
fn replace_turns_off_what_it_does_not_set() {
    let start = t0();
    let mut d = clean(start);
    let lossy = ImpairmentConfig {
        loss_pct: Some(100.0),
        delay_ms: Some(50.0),
        ..Default::default()
    };
    d.replace(start + s(1.0), &lossy, "page").expect("valid");
    assert!(matches!(
        d.handle_packet(start + s(1.5), packet(1)),
        Verdict::Dropped(DropCause::Random)
    ));
    let delay_only = ImpairmentConfig {
        delay_ms: Some(20.0),
        ..Default::default()
    };
    d.replace(start + s(2.0), &delay_only, "page")
        .expect("valid");
    assert_eq!(d.config(), &delay_only);
    assert_eq!(
        d.handle_packet(start + s(2.5), packet(2)),
        Verdict::Accepted
    );
    let got = changes(&mut d);
    // The loss that went away is logged as null, so a reader of the log sees it end.
    assert_eq!(
        got[1].1,
        serde_json::json!({ "loss_pct": null, "delay_ms": 20.0 })
    );
}

#[test]
fn a_bad_value_is_refused_with_the_scenario_parsers_message_and_changes_nothing() {
    let start = t0();
    let mut d = clean(start);
    let bad = ImpairmentConfig {
        loss_pct: Some(150.0),
        ..Default::default()
    };
    let err = d.apply(start + s(1.0), &bad, "page").unwrap_err();
    assert_eq!(err.path(), "downlink.loss_pct");
    assert!(err.to_string().contains("150"), "{err}");
    let err = d.replace(start + s(1.0), &bad, "page").unwrap_err();
    assert_eq!(err.path(), "downlink.loss_pct");
    assert_eq!(d.config(), &ImpairmentConfig::default());
    assert!(d.take_changes().is_empty());
}

#[test]
fn play_runs_a_schedule_from_now_with_its_label() {
    let start = t0();
    let mut d = clean(start);
    let schedule = Schedule {
        base: ImpairmentConfig {
            delay_ms: Some(100.0),
            ..Default::default()
        },
        steps: vec![Step {
            at_s: 2.0,
            until_s: Some(3.0),
            set: ImpairmentConfig {
                outage: Some(true),
                ..Default::default()
            },
        }],
    };
    d.play(start + s(5.0), &schedule, "scenario outage-3s")
        .expect("valid");
    assert_eq!(d.config().delay_ms, Some(100.0), "base in force at once");
    // The step is due 2 s after the play, i.e. at 7 s of the session; the period ends at 8 s.
    assert_eq!(d.next_change_at(), Some(start + s(7.0)));
    assert_eq!(
        d.handle_packet(start + s(6.9), packet(1)),
        Verdict::Accepted
    );
    assert!(matches!(
        d.handle_packet(start + s(7.1), packet(2)),
        Verdict::Dropped(DropCause::Outage)
    ));
    assert_eq!(
        d.handle_packet(start + s(8.1), packet(3)),
        Verdict::Accepted
    );
    let got = changes(&mut d);
    let at: Vec<f64> = got.iter().map(|c| c.0).collect();
    assert_eq!(at, vec![5.0, 7.0, 8.0], "{got:?}");
    assert!(got.iter().all(|c| c.2 == "scenario outage-3s"), "{got:?}");
}

#[test]
fn an_outage_ends_on_time_and_restores_the_link() {
    let start = t0();
    let mut d = clean(start);
    let delay = ImpairmentConfig {
        delay_ms: Some(30.0),
        ..Default::default()
    };
    d.apply(start + s(1.0), &delay, "page").expect("valid");
    d.outage(start + s(3.0), s(2.0), "outage");
    assert!(matches!(
        d.handle_packet(start + s(4.9), packet(1)),
        Verdict::Dropped(DropCause::Outage)
    ));
    assert_eq!(
        d.handle_packet(start + s(5.01), packet(2)),
        Verdict::Accepted
    );
    assert_eq!(d.config().delay_ms, Some(30.0), "other settings untouched");
    assert_eq!(d.config().outage, None);
    let got = changes(&mut d);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[1].0, 3.0);
    assert_eq!(got[1].1, serde_json::json!({ "outage": true }));
    assert_eq!(got[2].0, 5.0);
    assert_eq!(got[2].1, serde_json::json!({ "outage": null }));
    assert_eq!(got[2].2, "outage");
    let until = d.take_changes();
    assert!(until.is_empty());
}

#[test]
fn reset_leaves_a_clean_link_and_drops_the_rest_of_the_schedule() {
    let start = t0();
    let mut d = clean(start);
    let schedule = Schedule {
        base: ImpairmentConfig {
            loss_pct: Some(5.0),
            ..Default::default()
        },
        steps: vec![Step {
            at_s: 10.0,
            until_s: None,
            set: ImpairmentConfig {
                rate_kbps: Some(300.0),
                ..Default::default()
            },
        }],
    };
    d.play(start + s(1.0), &schedule, "scenario x")
        .expect("valid");
    d.reset(start + s(2.0), "reset");
    assert_eq!(d.config(), &ImpairmentConfig::default());
    assert_eq!(d.next_change_at(), None, "no step left to play");
    d.handle_timeout(start + s(20.0));
    let got = changes(&mut d);
    assert_eq!(got.len(), 2, "the step at 11 s never came: {got:?}");
    assert_eq!(got[1].1, serde_json::json!({ "loss_pct": null }));
    assert_eq!(got[1].2, "reset");
}
