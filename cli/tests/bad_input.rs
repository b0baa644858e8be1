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

/// A temporary folder holding one scenario file `name` with `body`; the folder lives as long as
/// the returned guard.
fn scenario_file(name: &str, body: impl AsRef<[u8]>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, body).unwrap();
    (dir, file)
}

#[test]
fn a_bad_scenario_names_file_line_and_field() {
    let (dir, file) = scenario_file(
        "bad.toml",
        "name = \"bad\"\ndescription = \"x\"\nduration_s = 5\n\n[bitrate]\ninitial_kbps = 500\nmin_kbps = 900\nmax_kbps = 800\n",
    );
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
    let (_dir, file) = scenario_file(
        "typo.toml",
        "name = \"typo\"\ndescription = \"x\"\nduration_s = 5\ncodek = \"vp8\"\n",
    );
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
    let (dir, file) = scenario_file(
        "nosrc.toml",
        "name = \"nosrc\"\ndescription = \"x\"\nduration_s = 5\nsource = \"missing.mp4\"\n",
    );
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
    let (dir, file) = scenario_file(
        "overlap.toml",
        "name = \"overlap\"\ndescription = \"x\"\nduration_s = 30\n\n[[downlink.schedule]]\nat_s = 10\nuntil_s = 15\noutage = true\n\n[[downlink.schedule]]\nat_s = 12\nuntil_s = 14\noutage = true\n",
    );
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
    let (_dir, file) = scenario_file(
        "neg.toml",
        "name = \"neg\"\ndescription = \"x\"\nduration_s = 30\n\n[downlink]\nrate_kbps = -5\n",
    );
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

/// Issue 18 #8: a log with a garbage line and a cut last line (what a full disk or a killed
/// run leaves) is reported, not refused: exit 0, the damage named on stderr, in the printed
/// notes and in report.html. Before, this was `events.jsonl:3: not a valid rtclab event`, rc 1.
#[test]
fn a_damaged_log_is_reported_with_a_note_naming_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    std::fs::write(
        &log,
        concat!(
            r#"{"t":0,"peer":"lab","kind":"session.start","schema":"rtclab.events/1","#,
            r#""session_id":"s","started_at":"2026-01-01T00:00:00Z","scenario":"cut"}"#,
            "\n",
            r#"{"t":0.5,"peer":"receiver","kind":"pc.state","state":"connected"}"#,
            "\n{garbage\n",
            r#"{"t":1,"peer":"lab","kind":"session.e"#,
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .arg("report")
        .arg(&log)
        .output()
        .expect("run rtclab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rc {:?}; stderr: {stderr}",
        out.status.code()
    );
    assert!(
        stderr.contains("warning") && stderr.contains(&log.display().to_string()),
        "stderr: {stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            text.contains("line 3 (not JSON), line 4 (cut off"),
            "{text}"
        );
        assert!(text.contains("no session.end"), "{text}");
    }
    assert!(stdout.contains("run        cut"), "stdout: {stdout}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("no session.end"),
        "report.html lacks the note"
    );
}

/// Runs rtclab in `cwd` and gives (exit code, stderr); killed after `BOUND` so a regression that
/// starts a run instead of refusing it fails here instead of hanging the suite. Every refusal
/// below comes from argument or scenario checks and takes well under a second; 60 s leaves room
/// for a machine busy with other builds.
fn rtclab_bounded(args: &[&str], cwd: &std::path::Path) -> (Option<i32>, String) {
    const BOUND: std::time::Duration = std::time::Duration::from_secs(60);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rtclab");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut s);
        s
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rtclab") {
            break status;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rtclab {args:?} still running after {BOUND:?}: it started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (status.code(), reader.join().unwrap_or_default())
}

fn shipped(name: &str) -> String {
    format!("{}/../scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Issue 18 #1: `--duration=-5` (and nan, inf, 1e300) panicked converting to a `Duration` after
/// the run had started, and `--duration 0` ran although a scenario file refuses it. Every
/// `--duration` now follows the scenario's `duration_s` rule: refused by the argument parser,
/// the value named, nothing started.
#[test]
fn a_bad_duration_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let clean = shipped("clean.toml");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let commands: [Vec<&str>; 4] = [
        vec!["run", &clean, "--out", out],
        vec!["sweep", &clean, "--set", "loss=0,1", "--out", out],
        vec!["bench", "cc", &clean, "--senders", "rtclab", "--out", out],
        vec!["bench", "qoe", "--receivers", "rust", "--out", out],
    ];
    for value in ["-5", "nan", "inf", "1e300", "0", "3601", "ten"] {
        for command in &commands {
            let flag = format!("--duration={value}");
            let mut args = command.clone();
            args.push(&flag);
            let (rc, stderr) = rtclab_bounded(&args, dir.path());
            assert!(
                rc.is_some_and(|c| c != 0 && c != 101),
                "{args:?}: rc {rc:?} (101 is a panic); stderr: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("'{value}'")) && stderr.contains("--duration"),
                "{args:?}: the message must name the value; stderr: {stderr}"
            );
            let reason = if value == "ten" {
                "not a number of seconds"
            } else {
                "is out of range; give seconds in (0, 3600]"
            };
            assert!(stderr.contains(reason), "{args:?}: stderr: {stderr}");
            assert!(
                !dir.path().join("out").exists(),
                "{args:?}: a refused duration must not start anything"
            );
        }
    }
}

/// Issue 18 #9: `/dev/zero` as the source was reported as "does not exist"; it exists, it is a
/// device. Checked before the run starts, for a scenario's `source` and for `demo --source`.
#[test]
fn a_device_source_is_named_for_what_it_is() {
    let (dir, file) = scenario_file(
        "dev.toml",
        "name = \"dev\"\ndescription = \"x\"\nduration_s = 5\nsource = \"/dev/zero\"\n",
    );
    let out = dir.path().join("out");
    let (rc, stderr) = rtclab_bounded(
        &[
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        rc.is_some_and(|c| c != 0 && c != 101),
        "rc {rc:?}: {stderr}"
    );
    assert!(
        stderr.contains("/dev/zero exists but is a character device, not a regular file"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("does not exist"), "stderr: {stderr}");
    assert!(
        !out.join("events.jsonl").exists(),
        "nothing should start with a device as the source"
    );

    // Port 0: if the check let the device through, the demo would serve (and be killed at the
    // bound) instead of failing.
    let (rc, stderr) = rtclab_bounded(
        &[
            "demo",
            "--source",
            "/dev/zero",
            "--addr",
            "127.0.0.1:0",
            "--no-turn",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        rc.is_some_and(|c| c != 0 && c != 101),
        "rc {rc:?}: {stderr}"
    );
    assert!(
        stderr.contains("--source: video source /dev/zero exists but is a character device"),
        "stderr: {stderr}"
    );
}

/// Issue 18 #9: a 300-character `name` without `--out` failed only once the run had started,
/// creating the default folder `runs/<name>-<unix time>` ("File name too long"). The parser now
/// caps the name, with the file, line and field, before anything is created.
#[test]
fn a_too_long_scenario_name_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.toml");
    let name = "n".repeat(300);
    std::fs::write(
        &file,
        format!("description = \"x\"\nname = \"{name}\"\nduration_s = 5\n"),
    )
    .unwrap();
    let (rc, stderr) = rtclab_bounded(&["run", file.to_str().unwrap()], dir.path());
    assert!(
        rc.is_some_and(|c| c != 0 && c != 101),
        "rc {rc:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:2: field `name`", file.display()))
            && stderr.contains("300 characters is too long; use at most 100"),
        "stderr: {stderr}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "the default output folder must not be created for a refused name"
    );
}

#[test]
fn scenarios_outside_the_checkout_are_found_and_a_missing_folder_is_named() {
    // From a directory with no scenarios/ in it, the binary lists the checkout's (issue 14 #7).
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .arg("scenarios")
        .current_dir(elsewhere.path())
        .output()
        .expect("run rtclab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rfc8867-5.1"), "stdout: {stdout}");
    // A folder that is not there: the message gives the absolute path it tried and the fix.
    let missing = elsewhere.path().join("nowhere");
    let (ok, stderr) = rtclab(&["scenarios", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&missing.display().to_string()),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("rtclab scenarios PATH/TO/scenarios"),
        "stderr: {stderr}"
    );
}

/// Issue 17 #5: a flag rtclab does not have is named, with the usage line, exit code 2 (clap's
/// usage error), before anything starts.
#[test]
fn an_unknown_flag_is_named_with_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = rtclab_bounded(&["run", &shipped("clean.toml"), "--bogus"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unexpected argument '--bogus'") && stderr.contains("Usage: rtclab run"),
        "{stderr}"
    );
}

/// A minimal 16-bit mono WAV file of `samples` silent samples: a real media file with no video.
fn wav(samples: usize) -> Vec<u8> {
    let data = (samples * 2) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + samples * 2, 0);
    w
}

/// Issue 17 #5: a source that is not video, as text or as a real audio-only file, is named for
/// what it is, with what to do, and the run exits 1 with its log closed.
#[test]
fn a_source_that_is_not_video_is_named_for_what_it_is() {
    for (file, body, expected) in [
        (
            "notes.txt",
            b"hello, not a video\n".to_vec(),
            "it must be a media file FFmpeg can read (check it with `ffprobe`)",
        ),
        (
            "tone.wav",
            wav(8000),
            "has no usable video stream: the file has no video stream; pass a file with a video track",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), body).unwrap();
        let scenario = format!(
            "name = \"notvideo\"\ndescription = \"x\"\nduration_s = 5\nsource = \"{file}\"\n"
        );
        std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
        let out = dir.path().join("out");
        let (code, stderr) = rtclab_bounded(
            &["run", "s.toml", "--out", out.to_str().unwrap()],
            dir.path(),
        );
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(expected),
            "{file}: {stderr}"
        );
        // Said once: a cause whose words are already in the message above is not repeated.
        assert_eq!(stderr.matches(expected).count(), 1, "{file}: {stderr}");
        // The log that was opened is closed, its last line saying why.
        let log = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["kind"], "session.end", "{file}");
        assert!(
            last["reason"].as_str().unwrap().contains(file),
            "{file}: {}",
            last["reason"]
        );
    }
}

/// Issue 17 #5: a port in use is named, with the way out (`--addr`), exit 1.
#[test]
fn a_port_in_use_is_named_with_the_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = rtclab_bounded(
        &["serve", "--addr", &addr, "--web", "/nonexistent"],
        dir.path(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("Address already in use")
            && stderr.contains("--addr 127.0.0.1:0"),
        "{stderr}"
    );
}

/// Issue 17 #5: a scenario that needs coturn on a machine without it says how to get it, exit 1,
/// and leaves no process behind (none was started).
#[test]
fn coturn_missing_says_how_to_get_it() {
    let (dir, file) = scenario_file(
        "coturn.toml",
        "name = \"ct\"\ndescription = \"x\"\nduration_s = 3\n[ice]\nturn = \"coturn\"\n",
    );
    let out = dir.path().join("out");
    // An empty PATH: no turnserver to find.
    let output = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("coturn's turnserver is not installed")
            && stderr.contains("apt-get install coturn"),
        "{stderr}"
    );
}

/// `rtclab sweep --shard` and `rtclab report merge` (issue 15 #5): a shard that does not exist,
/// `auto` with no scheduler variable, and folders that hold no sweep are refused before any run,
/// each saying what to give instead.
#[test]
fn bad_shards_and_merges_say_what_to_give() {
    let clean = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/clean.toml");
    let (ok, stderr) = rtclab(&["sweep", clean, "--set", "loss=0,1", "--shard", "2/2"]);
    assert!(!ok);
    assert!(
        stderr.contains("--shard 2/2: the index counts from 0 and must be below the count"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(["sweep", clean, "--set", "loss=0,1", "--shard", "auto/2"])
        .env_remove("RTCLAB_SHARD_INDEX")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .expect("run rtclab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("JOB_COMPLETION_INDEX") && stderr.contains("--shard I/2"),
        "{stderr}"
    );
    let empty = tempfile::tempdir().unwrap();
    let (ok, stderr) = rtclab(&["report", "merge", empty.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("no finished sweep runs in it"), "{stderr}");
    let (ok, stderr) = rtclab(&["report", "merge", "/no/such/folder"]);
    assert!(!ok);
    assert!(stderr.contains("not a folder"), "{stderr}");
}
