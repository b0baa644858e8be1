//! Two real webrtc-rs peer connections on 127.0.0.1, the offerer's sockets wrapped by an
//! `ImpairedRuntime`: ICE, DTLS and SCTP must work through it, and a reliable data channel must
//! deliver everything despite loss in both directions.

mod common;

use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Schedule};
use std::time::Duration;
use webrtc::runtime::default_runtime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_works_through_an_impaired_runtime() {
    let inner = default_runtime().expect("tokio runtime");
    let lossy = |delay| {
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(delay),
            ..Default::default()
        })
    };
    let imp = Impairment {
        downlink: lossy(30.0),
        uplink: lossy(20.0),
    };
    let impaired = ImpairedRuntime::new(inner.clone(), imp, 3, None).expect("valid");
    let session = common::data_channel_session(
        inner,
        impaired.clone(),
        200,
        Duration::from_secs(20),
        Duration::ZERO,
    )
    .await;
    let s = impaired.stats();
    println!(
        "connected in {:?}; downlink in {} out {} lost {}; uplink in {} out {} lost {}",
        session.connect,
        s.downlink.input.packets,
        s.downlink.output.packets,
        s.downlink.dropped.random.packets,
        s.uplink.input.packets,
        s.uplink.output.packets,
        s.uplink.dropped.random.packets
    );
    assert_eq!(session.received, 200);
    assert!(s.downlink.input.packets > 0 && s.uplink.input.packets > 0);
    assert_eq!(s.send_errors, 0);
}
