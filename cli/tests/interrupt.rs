//! Ctrl-C in the middle of a run still leaves a complete log (ending in `session.end`) and a
//! summary.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_closes_the_log_and_writes_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/clean.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args([
            "run",
            scenario,
            "--out",
            out.to_str().unwrap(),
            "--duration",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rtclab");
    // Wait until media flows (the sender has logged a second of statistics), at most 20 s.
    let log = out.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let flowing = std::fs::File::open(&log).ok().is_some_and(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains("\"kind\":\"encoder.rate\""))
        });
        if flowing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "media never started; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "rtclab did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "an interrupted run is not a failure: {exit:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "session.end");
    assert_eq!(last["reason"], "interrupted");
    assert!(last["summary"]["frames_sent"].as_u64().unwrap() > 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, last["summary"]);
}
