//! Chromium as the sender (`rtclab bench cc`'s third leg): its fake camera, encoded and paced by
//! its own congestion control, reaches the Rust receiver through the same impairment, and the
//! log has its send rate and its estimate next to what the Rust receiver decoded, and its
//! glass-to-glass latency (abs-capture-time).

use rtclab_events::{Event, PeerRole, Rtcp};
use rtclab_tests::{of, root, run_short, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_through_the_impairment() {
    assert!(
        root().join("web/node_modules/uplot").is_dir(),
        "web/node_modules is missing: run ./lab test (it installs the page's npm packages)"
    );
    let run = run_short("browser-sender", scenario("loss-5"), 8.0, |req| {
        req.browser_sender = true;
        req.web_dir = Some(root().join("web"));
    })
    .await;
    let (s, records) = (&run.outcome.summary, &run.records);

    assert!(
        of(&records, PeerRole::Sender, "media.stats").is_empty(),
        "no Rust sender should have run"
    );
    let estimates: Vec<f64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::BweEstimate {
                estimator,
                target_bps,
                ..
            } if r.peer == PeerRole::Browser && estimator == "chromium" => Some(*target_bps),
            _ => None,
        })
        .collect();
    assert!(
        estimates.len() >= 3 && estimates.iter().all(|t| *t > 0.0),
        "Chromium's estimate once a second: {estimates:?}"
    );
    // Chromium starts its camera at 1280x720/30 in ~1 s; 8 s leaves ~6 s of video. Its encoder
    // may start below 30 fps, so ask for 60 frames (2 s worth), and most of them decoded.
    assert!(
        s.frames_sent >= 60,
        "Chromium encoded {} frames",
        s.frames_sent
    );
    assert!(
        s.decoded_ratio() >= 0.7,
        "Rust receiver decoded {} of {} frames",
        s.frames_decoded,
        s.frames_sent
    );
    assert!(s.mean_send_bps > 50_000.0, "send rate {}", s.mean_send_bps);
    // The page asks Chromium to offer abs-capture-time, so the Rust receiver measures its
    // glass-to-glass latency. Same machine, one-way delay 0 in loss-5: a median under a second
    // is generous (measured ~37 ms); none at all means the extension was not negotiated.
    let g2g = s
        .g2g_p50_ms
        .expect("no glass-to-glass sample from Chromium (abs-capture-time)");
    assert!(g2g > 0.0 && g2g < 1000.0, "glass-to-glass p50 {g2g} ms");
    // The downlink loss sits on the receiver's ingress: it NACKs.
    let nacks_out = records
        .iter()
        .filter(|r| {
            r.peer == PeerRole::Receiver
                && matches!(
                    &r.event,
                    Event::Rtcp {
                        packet: Rtcp::Nack { .. },
                        direction: rtclab_events::Direction::Out
                    }
                )
        })
        .count();
    assert!(
        nacks_out > 0,
        "the Rust receiver sent no NACK under 5 % loss"
    );
    println!(
        "chromium sender, loss-5: encoded {} decoded {} ({:.1} %), send {} kbps, estimate last {} kbps, NACKs {}, g2g p50 {g2g} ms",
        s.frames_sent,
        s.frames_decoded,
        s.decoded_ratio() * 100.0,
        s.mean_send_bps / 1000.0,
        estimates.last().copied().unwrap_or(0.0) / 1000.0,
        nacks_out
    );
}
