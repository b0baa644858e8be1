//! `rtp.pcap` holds the session's decrypted RTP and RTCP, and Wireshark's dissector (tshark,
//! Debian package) decodes it as RTP when told the port.

use rtclab_media::Codec;
use rtclab_tests::{TestRun, run_short, scenario};
use std::process::Command;

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark not found: `./lab test` installs it (Debian package tshark)");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_every_sent_rtp_packet_from_the_pcap() {
    let TestRun { out, outcome, .. } = run_short("pcap", scenario("clean"), 4.0, |req| {
        req.codec = Some(Codec::Vp8);
    })
    .await;
    let pcap = out.join("rtp.pcap");
    let pcap = pcap.to_str().unwrap();
    let port = tshark(&["-r", pcap, "-T", "fields", "-e", "udp.srcport", "-c", "1"]);
    let port = port.trim();
    assert!(
        port.parse::<u16>().is_ok_and(|p| p > 0),
        "no UDP port in the pcap: {port:?}"
    );
    let decode = format!("udp.port=={port},rtp");
    let rtp = tshark(&[
        "-r",
        pcap,
        "-d",
        &decode,
        "-Y",
        "rtp",
        "-T",
        "fields",
        "-e",
        "rtp.p_type",
    ]);
    let rtp: Vec<&str> = rtp.lines().collect();
    // Every RTP packet the sender put on the wire (first transmissions and retransmissions) is
    // in the capture, and tshark reads each as RTP with the negotiated VP8 payload type.
    let s = &outcome.summary;
    assert_eq!(rtp.len() as u64, s.packets_sent + s.retransmissions);
    assert!(
        rtp.iter().all(|pt| *pt == "96"),
        "payload types: {:?}",
        &rtp[..5.min(rtp.len())]
    );
    let rtcp = tshark(&[
        "-r",
        pcap,
        "-d",
        &decode,
        "-Y",
        "rtcp.pt == 201",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]);
    assert!(!rtcp.trim().is_empty(), "no receiver report in the pcap");
}
