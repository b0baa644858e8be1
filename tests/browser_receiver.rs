//! `rtclab run --receiver browser`: headless Chromium receives the Rust sender's video through
//! the impairment engine, and its `getStats()` reach the session log and the summary.

use rtclab_events::{Event, PeerRole, Rtcp};
use rtclab_scenarios::ReceiverKind;
use rtclab_tests::{of, root, run_short, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_receives_through_the_impairment() {
    assert!(
        root().join("web/node_modules/uplot").is_dir(),
        "web/node_modules is missing: run ./lab test (it installs the page's npm packages)"
    );
    // loss-5 so that the browser's NACKs prove the impairment sits on its path too. Chromium
    // takes ~1 s to start and join; 8 s leaves ~6 s of media.
    let run = run_short("browser-receiver", scenario("loss-5"), 8.0, |req| {
        req.receiver = Some(ReceiverKind::Browser);
        req.web_dir = Some(root().join("web"));
    })
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);

    assert!(
        !of(&records, PeerRole::Browser, "browser.stats").is_empty(),
        "no browser.stats in the log"
    );
    let browser_media = of(&records, PeerRole::Browser, "media.stats");
    assert!(
        browser_media.len() >= 3,
        "expected a media.stats line per second from the browser, got {}",
        browser_media.len()
    );
    assert!(
        of(&records, PeerRole::Receiver, "media.stats").is_empty(),
        "no Rust receiver should have run"
    );
    // The summary reads the browser as the receiver. Chromium drops frames it cannot repair in
    // time and the last second's stats may not have arrived yet, so allow 30 %.
    assert!(s.frames_sent > 100, "only {} frames sent", s.frames_sent);
    assert!(
        s.decoded_ratio() >= 0.7,
        "browser decoded {} of {} frames",
        s.frames_decoded,
        s.frames_sent
    );
    assert!(
        s.mean_recv_bps > 100_000.0,
        "received {} bps",
        s.mean_recv_bps
    );
    // The impairment applies to a browser too: it NACKs (seen at the sender's tap), and the
    // sender retransmits.
    let nacks_in = records
        .iter()
        .filter(|r| {
            r.peer == PeerRole::Sender
                && matches!(
                    &r.event,
                    Event::Rtcp {
                        packet: Rtcp::Nack { .. },
                        ..
                    }
                )
        })
        .count();
    assert!(nacks_in > 0, "no NACK from the browser reached the sender");
    assert_eq!(
        s.nacks as usize, nacks_in,
        "summary counts the browser's NACKs"
    );
    assert!(s.retransmissions > 0, "nothing retransmitted");
    println!(
        "browser receiver, loss-5: sent {} decoded {} ({:.1} %), NACKs {}, retransmissions {}, recv {} kbps",
        s.frames_sent,
        s.frames_decoded,
        s.decoded_ratio() * 100.0,
        s.nacks,
        s.retransmissions,
        s.mean_recv_bps / 1000.0
    );
    assert!(run.out.join("report.html").is_file() && run.out.join("chromium.log").is_file());
}
