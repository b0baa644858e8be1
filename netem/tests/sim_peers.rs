//! Two real webrtc-rs peer connections on one [`SimRuntime`] (virtual time), the offerer's
//! sockets wrapped by an `ImpairedRuntime` with loss and delay both ways: ICE, DTLS and SCTP
//! connect, a reliable data channel delivers everything, and a minute of session passes in a
//! fraction of a second of wall time (issue 15 #1). Two runs with one seed lose the same packets.

mod common;

use rtclab_netem::accounting::DirectionStats;
use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Schedule, SimRuntime};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webrtc::runtime::Runtime;

/// What one run saw, compared between runs.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    session: common::Session,
    virtual_s: f64,
    /// Per direction: packets in, out, dropped at random.
    down: (u64, u64, u64),
    up: (u64, u64, u64),
}

fn run(seed: u64) -> (Outcome, Duration) {
    let sim = Arc::new(SimRuntime::new());
    let inner: Arc<dyn Runtime> = sim.clone();
    let lossy = || {
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(40.0),
            ..Default::default()
        })
    };
    let imp = Impairment {
        downlink: lossy(),
        uplink: lossy(),
    };
    let impaired = ImpairedRuntime::new(inner.clone(), imp, seed, None).expect("valid");
    let result = Arc::new(Mutex::new(None));
    let out = result.clone();
    let wall = Instant::now();
    let stats = sim
        .run(
            async move {
                let session = common::data_channel_session(
                    inner,
                    impaired.clone(),
                    200,
                    Duration::from_secs(20),
                    // A minute of session: SCTP repairs its losses, ICE checks consent.
                    Duration::from_secs(60),
                )
                .await;
                let s = impaired.stats();
                let dir = |d: &DirectionStats| {
                    (d.input.packets, d.output.packets, d.dropped.random.packets)
                };
                *out.lock().expect("lock") = Some((session, dir(&s.downlink), dir(&s.uplink)));
            },
            Duration::from_secs(600),
        )
        .expect("the virtual-time run finishes");
    let wall = wall.elapsed();
    let (session, down, up) = result.lock().expect("lock").take().expect("an outcome");
    let outcome = Outcome {
        session,
        virtual_s: stats.elapsed.as_secs_f64(),
        down,
        up,
    };
    (outcome, wall)
}

#[test]
fn two_peers_connect_and_repair_loss_in_virtual_time() {
    let (first, wall) = run(11);
    println!("{first:?} in {wall:?} of wall time");
    assert_eq!(first.session.received, 200, "SCTP delivered every message");
    assert!(
        first.down.2 > 0 && first.up.2 > 0,
        "loss both ways: {first:?}"
    );
    assert!(first.virtual_s >= 60.0);
    // Generous: the minute of session took ~5 ms here; a loaded CI machine may be slower.
    assert!(
        wall < Duration::from_secs(20),
        "{wall:?} of wall time for a virtual minute"
    );
    // Deterministic: one thread, one clock, one seed. The same packets go each way and the
    // same ones are lost (ICE credentials and DTLS keys still differ, but not the sizes or
    // the timing of what the impairment sees).
    let (second, _) = run(11);
    assert_eq!(second, first, "two runs with one seed");
}
