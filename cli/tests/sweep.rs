//! `rtclab sweep` writes sweep.html: the variants' plot, one row per variant, and each variant's
//! own report says which variant it is (issue 14 #3, #7).

use std::process::Command;

#[test]
fn a_two_variant_sweep_writes_its_page_and_honest_variant_reports() {
    let out = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/loss-5.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args([
            "sweep",
            scenario,
            "--set",
            "loss=1,20",
            "--duration",
            "4",
            "--out",
        ])
        .arg(out.path())
        .status()
        .expect("run rtclab");
    assert!(status.success());
    let page = std::fs::read_to_string(out.path().join("sweep.html")).expect("sweep.html");
    for variant in ["loss-5.loss-pct-1", "loss-5.loss-pct-20"] {
        assert!(
            page.contains(&format!("<a href=\"{variant}/report.html\">")),
            "no row for {variant}"
        );
        let report = std::fs::read_to_string(out.path().join(variant).join("report.html"))
            .expect("the variant's report");
        // Sweeps are in virtual time unless told (issue 15 #5).
        assert_eq!(clock_of(&out.path().join(variant)), "virtual");
        let value = variant.rsplit('-').next().unwrap_or_default();
        assert!(
            report.contains(&format!("Sweep variant: downlink.loss_pct = {value} ")),
            "{variant}'s report does not say which variant it is"
        );
    }
    assert!(page.contains("<svg"), "no overlaid plot");
}

fn rtclab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rtclab"))
        .args(args)
        .output()
        .expect("run rtclab")
}

/// `rtclab ARGS EXTRA...`, which must succeed; returns its stderr.
fn rtclab_ok(args: &[&str], extra: &[&str]) -> String {
    let all: Vec<&str> = args.iter().chain(extra).copied().collect();
    let o = rtclab(&all);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rtclab {all:?}: {stderr}");
    stderr
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `rtclab report merge DIRS... --out OUT`, which must succeed; returns its stderr.
fn merge(dirs: &[&str], out: &str) -> String {
    let mut args = vec!["report", "merge"];
    args.extend_from_slice(dirs);
    args.extend(["--out", out]);
    let o = rtclab(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rtclab {args:?}: {stderr}");
    stderr
}

/// The cells of each row of a `sweep.txt` table (box-drawing borders), header first.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .map(|l| {
            l.split(['│', '┆'])
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

/// The variant names of a `sweep.txt`, in row order.
fn row_names(table: &str) -> Vec<String> {
    rows(table)
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter(|c| c.starts_with("clean."))
        .collect()
}

/// clean.toml at 360p, written into `dir`; returns its path. Small frames keep two debug-build
/// sessions at once cheap on two cores.
fn small_clean(dir: &std::path::Path) -> String {
    let clean = read(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/clean.toml"
    )));
    let small = clean
        .replace("width = 1280", "width = 640")
        .replace("height = 720", "height = 360");
    assert_ne!(
        small, clean,
        "clean.toml is no longer 720p: update this test"
    );
    let path = dir.join("clean.toml");
    std::fs::write(&path, small).unwrap();
    path.to_string_lossy().into_owned()
}

/// The `clock` a run's `session.start` states.
fn clock_of(run: &std::path::Path) -> String {
    let log = read(&run.join("events.jsonl"));
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a first line")).expect("JSON");
    first["config"]["clock"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Issue 15 #5 for `rtclab bench cc`: its Rust legs run in virtual time unless told otherwise,
/// `--jobs 2` runs them side by side, and two shards joined by `rtclab report merge` give the
/// table of the whole bench's folder.
#[test]
fn a_cc_bench_runs_its_rust_legs_in_virtual_time_in_parallel_and_in_shards() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    let path = |name: &str| dir(name).to_string_lossy().into_owned();
    let scenario = &small_clean(root.path());
    let bench = |extra: &[&str], out: &str| -> String {
        let args = [
            "bench",
            "cc",
            scenario,
            "--senders",
            "rtclab,stock",
            "--duration",
            "4",
            "--out",
            out,
        ];
        rtclab_ok(&args, extra)
    };
    let progress = bench(&["--jobs", "2"], &path("all"));
    let table = read(&dir("all").join("bench.txt"));
    // Two jobs: both legs started before either finished.
    let first_finished = progress.find("finished").unwrap_or(0);
    assert!(
        progress.matches("running clean /").count() == 2
            && progress[..first_finished].matches("running").count() == 2,
        "the legs did not run side by side:\n{progress}"
    );
    for leg in ["rtclab", "stock"] {
        assert!(
            table.contains(&format!("clean / {leg} (virtual)")),
            "{leg} is a virtual-time row: {table}"
        );
        assert_eq!(clock_of(&dir("all").join("clean").join(leg)), "virtual");
    }
    bench(&["--shard", "0/2"], &path("s0"));
    bench(&["--shard", "1/2"], &path("s1"));
    assert!(dir("s0").join("clean/rtclab/summary.json").is_file());
    assert!(!dir("s0").join("clean/stock").exists());
    assert!(dir("s1").join("clean/stock/summary.json").is_file());
    merge(&[&path("s0"), &path("s1")], &path("m"));
    merge(&[&path("all")], &path("whole"));
    let merged = read(&dir("m").join("sweep.txt"));
    assert_eq!(
        row_names(&merged),
        ["clean.rtclab", "clean.stock"],
        "{merged}"
    );
    assert_eq!(
        merged,
        read(&dir("whole").join("sweep.txt")),
        "two shards give the whole bench's table"
    );
    // --real-time wins over a file's `virtual_time = true`: every run in real time.
    let asks_virtual = read(std::path::Path::new(scenario)).replacen(
        "\n[bitrate]",
        "\nvirtual_time = true\n\n[bitrate]",
        1,
    );
    assert!(asks_virtual.contains("virtual_time = true"));
    std::fs::write(dir("virtual.toml"), asks_virtual).unwrap();
    rtclab_ok(
        &[
            "sweep",
            &path("virtual.toml"),
            "--set",
            "loss=1",
            "--duration",
            "2",
        ],
        &["--real-time", "--out", &path("rt")],
    );
    assert_eq!(clock_of(&dir("rt").join("clean.loss-pct-1")), "real");
    // A virtual clock for Chromium is refused before any leg runs.
    let o = rtclab(&[
        "bench",
        "cc",
        scenario,
        "--virtual-time",
        "--out",
        &path("x"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the chromium leg keeps real time"), "{err}");
    assert!(!dir("x").join("clean").exists(), "nothing ran");
}

/// Second of the day of a run's `session.start` `started_at` (RFC 3339, whole seconds).
fn started_second(run: &std::path::Path) -> i64 {
    let log = read(&run.join("events.jsonl"));
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a first line")).expect("JSON");
    let at = first["started_at"].as_str().expect("started_at");
    let time = at.split('T').nth(1).expect("a time").trim_end_matches('Z');
    let parts: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().expect("number"))
        .collect();
    parts[0] * 3600 + parts[1] * 60 + parts[2]
}

/// Issue 15 #5: a sweep run with `--jobs 2`, and the same sweep as two shards joined by
/// `rtclab report merge`, give the same table, byte for byte: the runs are in virtual time, so
/// two runs of one variant and seed agree. Merging a sweep's own folder gives its table too.
#[test]
fn jobs_and_shards_give_the_same_table() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    let path = |name: &str| dir(name).to_string_lossy().into_owned();
    let scenario = &small_clean(root.path());
    let sweep = |extra: &[&str], out: &str| {
        let args = [
            "sweep",
            scenario,
            "--set",
            "loss=0,2,4",
            "--duration",
            "4",
            "--virtual-time",
            "--out",
            out,
        ];
        rtclab_ok(&args, extra);
    };
    let variants = ["clean.loss-pct-0", "clean.loss-pct-2", "clean.loss-pct-4"];

    sweep(&["--jobs", "2"], &path("all"));
    let table = read(&dir("all").join("sweep.txt"));
    assert_eq!(row_names(&table), variants, "{table}");
    // Two jobs: the first two runs started together (the same wall-clock second, give or
    // take one: the log's start time has whole seconds).
    let gap = (started_second(&dir("all").join(variants[1]))
        - started_second(&dir("all").join(variants[0])))
    .rem_euclid(86_400);
    assert!(
        gap <= 1,
        "the second run started {gap} s after the first: not in parallel"
    );

    sweep(&["--shard", "0/2"], &path("s0"));
    sweep(&["--shard", "1/2"], &path("s1"));
    // Round robin: shard 0 has runs 0 and 2, shard 1 has run 1.
    assert!(dir("s0").join(variants[0]).join("variant.json").is_file());
    assert!(dir("s0").join(variants[2]).join("variant.json").is_file());
    assert!(!dir("s0").join(variants[1]).exists());
    assert!(dir("s1").join(variants[1]).join("summary.json").is_file());

    merge(&[&path("s0"), &path("s1")], &path("m"));
    let merged = read(&dir("m").join("sweep.txt"));
    assert_eq!(row_names(&merged), variants, "{merged}");
    assert_eq!(rows(&table)[0][0], "variant");
    assert_eq!(merged, table, "two jobs and two shards give one table");
    // The runs did see loss: the tables agree on something that happened.
    let nacks: Vec<String> = rows(&table)
        .iter()
        .skip(1)
        .filter_map(|r| r.get(5).cloned())
        .collect();
    assert!(
        nacks.iter().any(|n| n != "0"),
        "no NACKs in any variant: {table}"
    );
    let page = read(&dir("m").join("sweep.html"));
    assert!(
        page.contains(&format!("<a href=\"../s1/{}/report.html\">", variants[1])),
        "the merged page links each row to its shard's report"
    );
    assert!(dir("s1").join(variants[1]).join("report.html").is_file());

    // The sweep's own folder, merged again: the same runs give the same table.
    merge(&[&path("all")], &path("again"));
    assert_eq!(read(&dir("again").join("sweep.txt")), table);

    // A run that never finished is left out of the table, and named.
    std::fs::remove_file(dir("s0").join(variants[2]).join("summary.json")).unwrap();
    let err = merge(&[&path("s0"), &path("s1")], &path("m2"));
    assert!(
        err.contains("skipping") && err.contains(variants[2]),
        "{err}"
    );
    let partial = read(&dir("m2").join("sweep.txt"));
    assert_eq!(row_names(&partial), [variants[0], variants[1]], "{partial}");

    // A shard given twice is refused, with what to do.
    let o = rtclab(&[
        "report",
        "merge",
        &path("s0"),
        &path("s0"),
        "--out",
        &path("x"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("give each shard's folder once"), "{err}");
}
