//! The labs' commands run, so the pages in `docs/labs/` never rot.
//!
//! The convention (also at the top of `docs/labs/README.md`): every fenced block whose info
//! string is exactly `sh lab` holds commands this test runs, in page order, from the repository
//! root, one command per line (no `\` continuations; `#` lines and blank lines are skipped):
//!
//! - `rtclab run SCENARIO ... --out runs/labs/NAME`: run as the binary with the page's
//!   `--out` replaced by a temporary folder and `--duration 4` (replacing the page's own
//!   `--duration`, if any). Exit 0, and the folder must hold `events.jsonl` ending in
//!   `session.end`, `summary.json` and `report.html`.
//! - `rtclab report runs/labs/NAME` and `rtclab scenarios`: run as written (quick).
//! - `jq ...`: run through `sh -c` when `jq` is installed; it must exit 0 and print something.
//! - Anywhere in a line, `runs/labs/NAME` means the folder of the earlier run on the same page
//!   that wrote `--out runs/labs/NAME`; naming one no earlier run made is an error.
//! - Any other line is an error: long or browser commands go in plain `sh` blocks, and the page
//!   names the test that covers them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What every `rtclab run` of a lab is shortened to.
const LAB_DURATION_S: &str = "4";
/// A command that takes longer than this has hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Where the pages put their runs; the test swaps it for a temporary folder.
const RUNS_PREFIX: &str = "runs/labs/";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn labs_dir() -> PathBuf {
    repo_root().join("docs/labs")
}

/// The pages, README first, then the rest by file name (their numbered order).
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(labs_dir())
        .expect("docs/labs exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort_by_key(|p| (!p.ends_with("README.md"), p.clone()));
    pages
}

/// One command line of a ```sh lab block: (line number, text).
fn lab_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if !inside {
            inside = trimmed == "```sh lab";
        } else if trimmed.starts_with("```") {
            inside = false;
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push((i + 1, trimmed.to_owned()));
        }
    }
    assert!(!inside, "a ```sh lab block is not closed");
    out
}

/// Replaces every `runs/labs/NAME` in `s` by the folder of the run that made it.
fn substitute(s: &str, runs: &HashMap<String, PathBuf>, at: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(RUNS_PREFIX) {
        out.push_str(&rest[..i]);
        let after = &rest[i + RUNS_PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .unwrap_or(after.len());
        let label = &after[..end];
        let dir = runs.get(label).unwrap_or_else(|| {
            panic!("{at}: {RUNS_PREFIX}{label} is not the --out of an earlier run on this page")
        });
        out.push_str(dir.to_str().expect("utf-8 temp path"));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Runs `cmd` with its output in `log_base.{out,err}`; panics with both on a non-zero exit or
/// a hang. Returns stdout.
fn run_logged(mut cmd: Command, log_base: &Path, at: &str, line: &str) -> String {
    let out_path = log_base.with_extension("out");
    let err_path = log_base.with_extension("err");
    let started = Instant::now();
    let mut child = cmd
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{at}: cannot start `{line}`: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{at}: `{line}` still running after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "{at}: `{line}` failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{at}: {:.1} s  {line}", started.elapsed().as_secs_f64());
    stdout
}

/// The folder a finished run must leave: a log closed with `session.end`, the summary and the
/// report.
fn assert_run_folder(dir: &Path, at: &str) {
    let log = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_else(|e| panic!("{at}: no events.jsonl in {}: {e}", dir.display()));
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("{at}: events.jsonl is empty"));
    let last: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{at}: last line not JSON: {e}"));
    assert_eq!(last["kind"], "session.end", "{at}: the log's last line");
    for f in ["summary.json", "report.html"] {
        assert!(dir.join(f).is_file(), "{at}: no {f} in {}", dir.display());
    }
}

/// `rtclab run ...` as the page wrote it → the arguments to run, and the label of its folder.
fn run_args(tokens: &[&str], at: &str) -> (Vec<String>, String) {
    let mut args = Vec::new();
    let mut label = None;
    let mut i = 1; // tokens[0] is "rtclab"
    while i < tokens.len() {
        match tokens[i] {
            "--out" => {
                let dir = tokens
                    .get(i + 1)
                    .unwrap_or_else(|| panic!("{at}: --out needs a folder"));
                let l = dir.strip_prefix(RUNS_PREFIX).unwrap_or_else(|| {
                    panic!("{at}: a lab run writes to {RUNS_PREFIX}NAME, not {dir}")
                });
                label = Some(l.trim_end_matches('/').to_owned());
                i += 2;
            }
            "--duration" => i += 2,
            t => {
                args.push(t.to_owned());
                i += 1;
            }
        }
    }
    let label = label.unwrap_or_else(|| panic!("{at}: a lab run needs --out {RUNS_PREFIX}NAME"));
    (args, label)
}

fn jq_available() -> bool {
    Command::new("jq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn every_lab_command_runs() {
    let total = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let jq = jq_available();
    if !jq {
        eprintln!("labs: jq is not installed; the pages' jq lines are not run");
    }
    let mut commands = 0;
    for page in pages() {
        let name = page.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&page).expect("read page");
        let mut runs: HashMap<String, PathBuf> = HashMap::new();
        for (n, line) in lab_lines(&text) {
            let at = format!("docs/labs/{name}.md:{n}");
            assert!(!line.ends_with('\\'), "{at}: one command per line, no `\\`");
            let log_base = tmp.path().join(format!("{name}-{n}"));
            if let Some(rest) = line.strip_prefix("jq ") {
                if jq {
                    let script = format!("jq {}", substitute(rest, &runs, &at));
                    let mut cmd = Command::new("sh");
                    cmd.args(["-c", &script]);
                    let out = run_logged(cmd, &log_base, &at, &line);
                    assert!(!out.trim().is_empty(), "{at}: `{line}` printed nothing");
                    commands += 1;
                }
                continue;
            }
            assert!(
                line.starts_with("rtclab "),
                "{at}: a ```sh lab line is `rtclab ...` or `jq ...`, not `{line}`"
            );
            assert!(
                !line.contains(['\'', '"', '#', '|', '>', '<', ';', '&', '$', '`']),
                "{at}: an rtclab line is plain words, no quoting or shell syntax: `{line}`"
            );
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtclab"));
            match tokens.get(1).copied() {
                Some("run") => {
                    let (args, label) = run_args(&tokens, &at);
                    assert!(
                        !runs.contains_key(&label),
                        "{at}: {RUNS_PREFIX}{label} is already another run's folder"
                    );
                    let dir = tmp.path().join(format!("{name}-{label}"));
                    cmd.args(&args)
                        .args(["--duration", LAB_DURATION_S, "--out"])
                        .arg(&dir);
                    run_logged(cmd, &log_base, &at, &line);
                    assert_run_folder(&dir, &at);
                    runs.insert(label, dir);
                }
                Some("report" | "scenarios") => {
                    for t in &tokens[1..] {
                        cmd.arg(substitute(t, &runs, &at));
                    }
                    run_logged(cmd, &log_base, &at, &line);
                }
                other => panic!(
                    "{at}: `rtclab {}` is not run by this test (only run, report, scenarios); \
                     put it in a plain ```sh block and name the test that covers it",
                    other.unwrap_or("")
                ),
            }
            commands += 1;
        }
    }
    assert!(commands > 0, "no ```sh lab block in docs/labs");
    eprintln!(
        "labs: {commands} commands in {:.1} s",
        total.elapsed().as_secs_f64()
    );
}

/// The README lists every page, and every page ends its lesson with a question to check
/// yourself (its answer folded in a `<details>` block).
#[test]
fn every_lab_page_is_listed_and_has_a_question() {
    let readme = std::fs::read_to_string(labs_dir().join("README.md")).expect("README");
    for page in pages().into_iter().filter(|p| !p.ends_with("README.md")) {
        let file = page.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("({file})")),
            "docs/labs/README.md does not link {file}"
        );
        let text = std::fs::read_to_string(&page).expect("read page");
        assert!(
            text.contains("<details>") && text.contains("</details>"),
            "{file} has no <details> answer"
        );
    }
}

/// The rules above, on a made-up page: only ```sh lab blocks count, comments are skipped, the
/// page's `--out` and `--duration` are replaced, and `runs/labs/NAME` names whole labels only.
#[test]
fn the_convention_reads_pages_as_documented() {
    let page = "text\n```sh\n./lab demo\n```\n```sh lab\n# a comment\n\nrtclab run a.toml --duration 60 --out runs/labs/x\n```\n";
    assert_eq!(
        lab_lines(page),
        vec![(
            8,
            "rtclab run a.toml --duration 60 --out runs/labs/x".to_owned()
        )]
    );
    let tokens = [
        "rtclab",
        "run",
        "a.toml",
        "--duration",
        "60",
        "--fec",
        "--out",
        "runs/labs/x",
    ];
    let (args, label) = run_args(&tokens, "t");
    assert_eq!(args, ["run", "a.toml", "--fec"]);
    assert_eq!(label, "x");
    let runs = HashMap::from([
        ("loss-5".to_owned(), PathBuf::from("/tmp/a")),
        ("loss-5-fec".to_owned(), PathBuf::from("/tmp/b")),
    ]);
    assert_eq!(
        substitute(
            "jq . runs/labs/loss-5/s.json runs/labs/loss-5-fec/s.json",
            &runs,
            "t"
        ),
        "jq . /tmp/a/s.json /tmp/b/s.json"
    );
}
