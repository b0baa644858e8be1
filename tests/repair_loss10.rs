//! Issue 5's bound on loss repair between two webrtc-rs peers: at 10 % random loss, at most
//! 1.2 retransmissions per lost packet (a storm showed ~22), and the picture keeps moving.

use rtclab_tests::{last_impair, run_short, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_costs_at_most_1_2_retransmissions_per_lost_packet() {
    // ~100 packets/s for 10 s: about 100 drops, enough for the ratio to mean something.
    // Virtual time (issue 15 #6): loss_repair.rs keeps a real-time reference.
    let run = run_short("repair-loss-10", scenario("loss-10"), 10.0, |req| {
        req.virtual_time = true;
    })
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);
    let last = last_impair(&records, "downlink").expect("impair.stats for the downlink");
    let dropped = last.dropped_packets.random as f64;
    assert!(
        dropped >= 40.0,
        "only {dropped} packets dropped: too few to judge"
    );
    // Each drop needs one repair, and 10 % of repairs are dropped too: ~1.1 expected. The
    // issue's bound is 1.2.
    let ratio = s.retransmissions as f64 / dropped;
    println!(
        "loss-10: dropped {dropped}, retransmissions {} ({ratio:.2} per lost packet), decoded {:.1} %, frozen {} ms",
        s.retransmissions,
        s.decoded_ratio() * 100.0,
        s.freeze_ms
    );
    assert!(ratio <= 1.2, "{ratio:.2} retransmissions per lost packet");
    assert!(
        s.retransmissions as f64 >= 0.8 * dropped,
        "repairs missing: {ratio:.2}"
    );
    // Repairs arrive within a frame or two (measured: no freeze in 20 s); allow 5 % frozen for
    // a loaded CI machine.
    assert!(
        s.decoded_ratio() >= 0.95,
        "decoded {} of {}",
        s.frames_decoded,
        s.frames_sent
    );
    assert!(s.freeze_ms <= 500.0, "frozen {} ms of 10 s", s.freeze_ms);
}
