//! Shared helpers for the integration tests.

use rtclab_events::{Event, PeerRole, Record, read_log};
use rtclab_runner::{RunOutcome, RunRequest, run_scenario};
use rtclab_scenarios::Scenario;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// Real-time media sessions must not share the machine's two cores with each other, or the
/// bounds the tests assert would measure CPU starvation instead of rtclab. Tests that run a
/// session hold this lock for its duration.
pub static MEDIA: Mutex<()> = Mutex::new(());

/// Takes the media lock (a panicking test must not block the others).
pub fn media_lock() -> std::sync::MutexGuard<'static, ()> {
    MEDIA.lock().unwrap_or_else(|e| e.into_inner())
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// A shipped scenario file, `scenarios/NAME.toml`.
pub fn scenario(name: &str) -> rtclab_scenarios::Scenario {
    let path = root().join("scenarios").join(format!("{name}.toml"));
    rtclab_scenarios::Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The set of (peer, kind) pairs present in a log.
pub fn kinds(records: &[Record]) -> BTreeSet<(PeerRole, &'static str)> {
    records.iter().map(|r| (r.peer, r.event.kind())).collect()
}

/// Records of one peer and kind.
pub fn of<'a>(records: &'a [Record], peer: PeerRole, kind: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.peer == peer && r.event.kind() == kind)
        .collect()
}

/// Where a test keeps its output: `target/test-runs/NAME` (kept for reading after a failure).
pub fn out_dir(name: &str) -> PathBuf {
    let dir = root().join("target").join("test-runs").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test output folder");
    dir
}

/// The impairment engine's last totals for `direction` (`downlink` or `uplink`) in a log.
pub fn last_impair(
    records: &[Record],
    direction: &str,
) -> Option<rtclab_events::schema::ImpairStats> {
    records.iter().rev().find_map(|r| match &r.event {
        Event::ImpairStats(st) if st.direction == direction => Some(st.clone()),
        _ => None,
    })
}

/// Shorthand to match an event variant in assertions.
pub fn is_session_end(e: &Event) -> bool {
    matches!(e, Event::SessionEnd { .. })
}

/// A test's finished run: where it wrote, what it returned, and its log.
pub struct TestRun {
    /// `target/test-runs/NAME`.
    pub out: PathBuf,
    /// What `run_scenario` returned.
    pub outcome: RunOutcome,
    /// The run's `events.jsonl`, parsed.
    pub records: Vec<Record>,
}

/// Runs `scenario` for `duration_s` seconds into `target/test-runs/NAME` with the media lock
/// held, after `tweak` has set anything else on the request (codec, receiver, ...). Panics with
/// the log's folder if the run fails or its log does not parse.
pub async fn run_short(
    name: &str,
    scenario: Scenario,
    duration_s: f64,
    tweak: impl FnOnce(&mut RunRequest),
) -> TestRun {
    let _media = media_lock();
    let out = out_dir(name);
    let mut req = RunRequest::new(scenario, out.clone());
    req.duration_s = Some(duration_s);
    tweak(&mut req);
    let outcome = run_scenario(req, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{name}: run failed: {e}; log in {}", out.display()));
    let records = read_log(&outcome.events)
        .unwrap_or_else(|e| panic!("{name}: log does not parse: {e}; see {}", out.display()));
    TestRun {
        out,
        outcome,
        records,
    }
}

/// One HTTP/1.1 request on loopback; returns the status and the body as JSON.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    // Small JSON bodies come with Content-Length; tolerate chunked ones anyway.
    let json = serde_json::from_str(rest.trim())
        .or_else(|_| {
            let start = rest.find('{').unwrap_or(0);
            let end = rest.rfind('}').map_or(rest.len(), |e| e + 1);
            serde_json::from_str(&rest[start..end])
        })
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}
