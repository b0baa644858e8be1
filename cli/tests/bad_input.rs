//! Bad input on the command line gets a message naming what is wrong and where, and a non-zero
//! exit; nothing starts.

use std::process::Command;

fn rtclab(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(args)
        .output()
        .expect("run rtclab");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\ndescription = \"x\"\nduration_s = 5\n\n[bitrate]\ninitial_kbps = 500\nmin_kbps = 900\nmax_kbps = 800\n",
    )
    .unwrap();
    let (ok, stderr) = rtclab(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(!ok);
    let expected = format!("{}:7: field `bitrate.min_kbps`", file.display());
    assert!(stderr.contains(&expected), "stderr: {stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "a refused scenario must not start a run"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "name = \"typo\"\ndescription = \"x\"\nduration_s = 5\ncodek = \"vp8\"\n",
    )
    .unwrap();
    let (ok, stderr) = rtclab(&["run", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{}:4:", file.display())),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("codek"), "stderr: {stderr}");
}

#[test]
fn a_missing_scenario_file_says_so() {
    let (ok, stderr) = rtclab(&["run", "/nonexistent/scenario.toml"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read scenario /nonexistent/scenario.toml"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_missing_source_file_is_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nosrc.toml");
    std::fs::write(
        &file,
        "name = \"nosrc\"\ndescription = \"x\"\nduration_s = 5\nsource = \"missing.mp4\"\n",
    )
    .unwrap();
    let (ok, stderr) = rtclab(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("missing.mp4"), "stderr: {stderr}");
}

#[test]
fn an_unreachable_signaling_server_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    // Port 9 (discard) on loopback: nothing listens there.
    let (ok, stderr) = rtclab(&[
        "peer",
        "--signal",
        "ws://127.0.0.1:9",
        "--room",
        "r",
        "--role",
        "recv",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach the signaling server"),
        "stderr: {stderr}"
    );
    // Even this failure leaves a closed log behind.
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("\"kind\":\"session.end\""),
        "last line: {last}"
    );
}

#[test]
fn an_overlapping_outage_names_the_step_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overlap.toml");
    std::fs::write(
        &file,
        "name = \"overlap\"\ndescription = \"x\"\nduration_s = 30\n\n[[downlink.schedule]]\nat_s = 10\nuntil_s = 15\noutage = true\n\n[[downlink.schedule]]\nat_s = 12\nuntil_s = 14\noutage = true\n",
    )
    .unwrap();
    let (ok, stderr) = rtclab(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{}:", file.display())),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("downlink.schedule[1]"), "stderr: {stderr}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_negative_rate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("neg.toml");
    std::fs::write(
        &file,
        "name = \"neg\"\ndescription = \"x\"\nduration_s = 30\n\n[downlink]\nrate_kbps = -5\n",
    )
    .unwrap();
    let (ok, stderr) = rtclab(&["run", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{}:6: field `downlink.rate_kbps`", file.display())),
        "stderr: {stderr}"
    );
}

#[test]
fn a_browser_receiver_without_chromium_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/clean.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(["run", scenario, "--receiver", "browser", "--out"])
        .arg(dir.path().join("out"))
        .env("RTCLAB_CHROMIUM", dir.path().join("no-such-chromium"))
        .output()
        .expect("run rtclab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("RTCLAB_CHROMIUM") && stderr.contains("no-such-chromium"),
        "stderr: {stderr}"
    );
    assert!(
        !dir.path().join("out/events.jsonl").exists(),
        "nothing should start"
    );
}
