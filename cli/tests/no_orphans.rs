//! Issue 18 finding 6: `kill -9` of `rtclab run` left turnserver and Chromium running,
//! reparented to PID 1. They now ask the kernel for SIGKILL when rtclab goes
//! (`PR_SET_PDEATHSIG`); this test kills a real run with a TURN/TCP scenario (coturn and a
//! headless Chromium receiver, both installed by `./lab test`) and looks for survivors.
//! Linux only: it reads /proc. Loopback only, like every run.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One line of /proc/PID/stat, the fields this test needs.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    comm: String,
    state: char,
    ppid: u32,
    /// Start time in clock ticks after boot: with the pid, names a process even if the pid is
    /// reused.
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` is in parentheses and may hold spaces or parentheses: split at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After comm: state(3) ppid(4) ... starttime(22), so rest[0] is field 3.
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
    })
}

/// Every process below `root` (children, grandchildren, ...), by pid.
fn descendants(root: u32) -> BTreeMap<u32, Stat> {
    let all: Vec<(u32, Stat)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect();
    let mut found = BTreeMap::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, s) in &all {
            if s.ppid == parent && !found.contains_key(pid) {
                found.insert(*pid, s.clone());
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Still running: the same process (pid and start time) exists and is not a zombie (a killed
/// orphan may stay a zombie until PID 1 reaps it; it runs nothing).
fn alive(pid: u32, then: &Stat) -> bool {
    stat(pid).is_some_and(|now| now.start == then.start && now.state != 'Z')
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[test]
fn kill_9_of_rtclab_takes_coturn_and_chromium_with_it() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut rtclab = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args([
            "run",
            &format!("{root}/scenarios/turn-relay-tcp.toml"),
            "--duration",
            "60",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rtclab");
    let pid = rtclab.id();

    // coturn starts first, then Chromium; both are up within a few seconds on an idle machine
    // (the run had both after 12 s). 60 s covers a machine busy with other builds.
    let deadline = Instant::now() + Duration::from_secs(60);
    let children = loop {
        let d = descendants(pid);
        let has = |name: &str| {
            d.values()
                .any(|s| s.ppid == pid && s.comm.starts_with(name))
        };
        if has("turnserver") && has("chromium") {
            // Let Chromium start its helpers (zygote, renderer, GPU) so they are checked too.
            std::thread::sleep(Duration::from_secs(2));
            break descendants(pid);
        }
        if let Ok(Some(status)) = rtclab.try_wait() {
            panic!(
                "rtclab ended ({status}) before coturn and Chromium were both up; is this \
                 machine set up by `./lab test` (turnserver, chromium)? seen: {d:?}"
            );
        }
        if Instant::now() > deadline {
            let _ = rtclab.kill();
            let _ = rtclab.wait();
            for p in d.keys() {
                kill9(*p);
            }
            panic!("coturn and Chromium not both children of rtclab after 60 s: {d:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    rtclab.kill().expect("kill -9 rtclab"); // Child::kill is SIGKILL
    rtclab.wait().expect("reap rtclab");

    // The kernel sends SIGKILL to the direct children at once; Chromium's own helpers notice
    // their browser's sockets close and exit within a second or so. 10 s is generous for a
    // loaded machine; before the fix the survivors were still there minutes later.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut survivors: Vec<(u32, Stat)>;
    loop {
        survivors = children
            .iter()
            .filter(|(p, s)| alive(**p, s))
            .map(|(p, s)| (*p, s.clone()))
            .collect();
        if survivors.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Clean up whatever the failure left, so a failing run does not leak processes either.
    for (p, _) in &survivors {
        kill9(*p);
    }
    assert!(
        survivors.is_empty(),
        "still running 10 s after rtclab was killed: {survivors:?} (of {children:?})"
    );
}
