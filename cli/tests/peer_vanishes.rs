//! Issue 17 #3: the remote peer is killed (SIGKILL: no bye, no closing handshake). The other
//! side sees it leave signaling (the server notices the closed socket) and ICE stop hearing it
//! (`disconnected` after webrtc-rs's 5 s without a packet, RFC 8445 §16 timers), and ends its
//! session with the reason instead of waiting ~25 s more for ICE `failed`. Before the fix it
//! logged "media continues" and ran on until `failed`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ICE `disconnected` comes 5 s after the last packet (webrtc-rs's default), checked every
/// 200 ms; the session then ends at once. 12 s leaves room for a loaded machine; the old
/// behaviour (ICE `failed`, 30 s) cannot pass it.
const END_BOUND: Duration = Duration::from_secs(12);

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rtclab")
}

fn wait_for_line(log: &std::path::Path, needle: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let found = std::fs::File::open(log).ok().is_some_and(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains(needle))
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle} in {} within {bound:?}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_peer_ends_the_other_sides_session_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = spawn(&["serve", "--addr", "127.0.0.1:0", "--web", "/nonexistent"]);
    let mut first = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("server prints its address");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("address in the first line")
        .to_owned();
    let signal = format!("ws://{addr}");
    let recv_log = dir.path().join("recv.jsonl");
    let send_log = dir.path().join("send.jsonl");
    let mut receiver = spawn(&[
        "peer",
        "--signal",
        &signal,
        "--room",
        "r1",
        "--role",
        "recv",
        "--log",
        recv_log.to_str().expect("utf-8"),
    ]);
    let mut sender = spawn(&[
        "peer",
        "--signal",
        &signal,
        "--room",
        "r1",
        "--role",
        "send",
        "--width",
        "640",
        "--height",
        "360",
        "--log",
        send_log.to_str().expect("utf-8"),
    ]);
    wait_for_line(&recv_log, "\"frame_decoded\"", Duration::from_secs(20));
    receiver.kill().expect("SIGKILL the receiver");
    let _ = receiver.wait();
    let killed = Instant::now();
    let exit = loop {
        if let Some(s) = sender.try_wait().expect("wait") {
            break s;
        }
        if killed.elapsed() > END_BOUND {
            let _ = sender.kill();
            let _ = server.kill();
            panic!(
                "the sender still runs {END_BOUND:?} after its peer was killed; see {}",
                send_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = killed.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    assert!(exit.success(), "a peer that left is a normal end: {exit:?}");
    let text = std::fs::read_to_string(&send_log).expect("sender log");
    let last = text.lines().last().expect("a last line");
    assert!(
        last.contains("\"kind\":\"session.end\"") && last.contains("peer left"),
        "last line: {last}"
    );
    assert!(
        text.contains("ICE lost the other peer after it left signaling")
            || text.contains("the other peer left signaling and ICE had already lost it"),
        "the log says why the session ended"
    );
    eprintln!("peer_vanishes: the sender ended {took:?} after its peer was killed");
}
