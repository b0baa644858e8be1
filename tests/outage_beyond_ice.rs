//! Issue 17 #3: an outage longer than ICE's timers. Both directions go dead; ICE says
//! `disconnected`, then `failed`, and the session ends with a reason that says so, at the time
//! the timers give. The shipped scenario keeps webrtc-rs's timers (5 s + 25 s); the test sets
//! them to 2 s + 3 s so it ends in seconds, through the scenario's own `[ice]` keys.

use rtclab_events::{Event, read_log};
use rtclab_runner::{RunRequest, run_scenario};
use rtclab_tests::{media_lock, out_dir, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_ice_ends_the_session_with_ice_failed() {
    let _media = media_lock();
    let mut s = scenario("outage-beyond-ice");
    s.ice.disconnected_s = Some(2.0);
    s.ice.failed_s = Some(3.0);
    let out = out_dir("outage-beyond-ice");
    let mut req = RunRequest::new(s, out.clone());
    req.duration_s = Some(30.0);
    let err = run_scenario(req, std::future::pending())
        .await
        .expect_err("an outage longer than ICE's timers ends the run with an error");
    let message = err.to_string();
    assert!(
        message.contains("ICE failed: no packet from the other peer for 5.0 s"),
        "the error names ICE and its timers: {message}"
    );

    let records = read_log(&out.join("events.jsonl")).expect("a whole log");
    let end = records.last().expect("lines");
    let Event::SessionEnd { reason, .. } = &end.event else {
        panic!("the last line is {:?}", end.event);
    };
    assert!(reason.contains("ICE failed"), "{reason}");
    // The outage starts at 5 s; `failed` comes 2 + 3 s later, at ~10 s, and ICE checks its
    // timers every 200 ms. 9–16 s allows for a slow start and a busy machine; the run's own
    // length (30 s) or webrtc-rs's default timers (35 s) would both fail it.
    assert!(
        (9.0..16.0).contains(&end.t),
        "the session ended at {} s, not ~10 s",
        end.t
    );
    // Both ICE states were logged on the way.
    let states: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::PcState { state } => Some(state.clone()),
            _ => None,
        })
        .collect();
    assert!(
        states.iter().any(|s| s == "disconnected") && states.iter().any(|s| s == "failed"),
        "{states:?}"
    );
}
