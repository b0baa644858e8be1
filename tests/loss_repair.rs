//! `loss-5`: the impairment engine drops about 5 % of the media packets (seeded), the receiver
//! NACKs, the sender retransmits, and nearly every frame still decodes.

use rtclab_events::{Event, PeerRole};
use rtclab_tests::{last_impair, run_short, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_is_repaired_by_nack() {
    // Short enough for CI, long enough for ~700 media packets and several RTCP intervals.
    let run = run_short("loss-5", scenario("loss-5"), 10.0, |_| {}).await;
    let (s, records) = (&run.outcome.summary, &run.records);

    // What the engine did, from its own accounting (cumulative in the last downlink line).
    let last = last_impair(&records, "downlink").expect("impair.stats for the downlink");
    let n = last.packets_in as f64;
    let dropped = last.dropped_packets.random as f64;
    // Binomial(n, 0.05): allow 4 standard deviations (a seeded run, so this is really a check
    // that the configured rate is the rate applied).
    let sd = (n * 0.05 * 0.95).sqrt();
    assert!(n > 300.0, "only {n} packets went through the impairment");
    assert!(
        (dropped - 0.05 * n).abs() <= 4.0 * sd,
        "dropped {dropped} of {n}"
    );
    assert_eq!(
        last.dropped_packets.queue_overflow + last.dropped_packets.burst,
        0
    );

    // Repair happened, and it worked.
    assert!(s.nacks > 0, "no NACK sent");
    assert!(s.retransmissions > 0, "nothing retransmitted");
    assert!(
        (s.packets_lost as f64) < dropped / 2.0,
        "{} packets stayed lost of {dropped} dropped: NACK repair is not working",
        s.packets_lost
    );
    // The bound. Frames still lost are those whose repair came too late; 10 % is ample
    // at 5 % loss on a link with no capacity limit.
    assert!(
        s.decoded_ratio() >= 0.9,
        "decoded {} of {} frames",
        s.frames_decoded,
        s.frames_sent
    );
    let rtx_per_loss = s.retransmissions as f64 / dropped.max(1.0);
    println!(
        "loss-5: dropped {dropped} of {n}, NACKs {}, retransmissions {} ({rtx_per_loss:.2} per lost packet), decoded {:.1} %",
        s.nacks,
        s.retransmissions,
        s.decoded_ratio() * 100.0
    );
    assert!(records.iter().any(|r| r.peer == PeerRole::Sender
        && matches!(
            &r.event,
            Event::Rtcp {
                packet: rtclab_events::Rtcp::Nack { .. },
                ..
            }
        )));
    assert!(run.out.join("report.html").is_file() && run.out.join("rtp.pcap").is_file());
}
