//! The one writer of the event log, and its reader.
//!
//! Each line is written and flushed as it is emitted, so a crash or a `kill -9` loses nothing that
//! was emitted before it; [`EventSink::end`] writes `session.end`, and dropping the last handle
//! without calling it still writes one (reason `dropped`), so the last line is always
//! `session.end` on every exit path that runs destructors.

use crate::schema::{Event, PeerRole, Record, SCHEMA};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where "now" comes from. The media path passes the webrtc-rs runtime's clock so a run can move
/// to virtual time; tools outside the media path may use [`SystemClock`].
pub trait Clock: Send + Sync {
    /// The current instant on this clock.
    fn now(&self) -> Instant;
}

/// The OS monotonic clock, for code outside the media path (tests, offline tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Failure to open or write the log.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The log file could not be created.
    #[error("cannot create event log {path}: {source}")]
    Create {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing a line failed.
    #[error("cannot write event log {path}: {source}")]
    Write {
        /// The log path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Failure to read a log back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read event log {path}: {source}")]
    Io {
        /// The log path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not a valid event.
    #[error("{path}:{line}: not a valid rtclab event: {source}")]
    Parse {
        /// The log path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The log was written under another schema version: its events may mean something else,
    /// so reading it leniently would report wrong figures rather than fewer.
    #[error("{path}:{line}: the log uses event schema {found:?}; this rtclab reads {expected:?}")]
    Schema {
        /// The log path.
        path: PathBuf,
        /// 1-based line of its `session.start`.
        line: usize,
        /// The schema the log names.
        found: String,
        /// The schema this build reads, [`SCHEMA`].
        expected: &'static str,
    },
    /// Not one line of the file is an event (a file that is not an event log at all).
    #[error("{path}: not an rtclab event log: none of its {bad_lines} lines is an event ({first})")]
    NoEvents {
        /// The log path.
        path: PathBuf,
        /// How many non-blank lines it has.
        bad_lines: usize,
        /// What is wrong with the first one, e.g. `line 1: not JSON`.
        first: String,
    },
}

struct State {
    file: Option<File>,
    ended: bool,
    lines: u64,
    first_error: Option<std::io::Error>,
}

/// Called with every record after it is written (the demo pushes them to the browser page).
pub type Listener = Arc<dyn Fn(&Record) + Send + Sync>;

struct Inner {
    path: PathBuf,
    start: Instant,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    listener: Mutex<Option<Listener>>,
}

/// Every log of this process, so that [`end_open_logs`] can close them from a panic hook. Held
/// weakly: a log that is dropped closes itself ([`Drop`] writes `session.end`).
static OPEN: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Writes `session.end` with `reason` (and no summary) to every log of this process that has not
/// ended yet, and syncs each to disk. Returns how many it closed.
///
/// This is for a panic hook at the binary's edge (`rtclab` installs one): a panic in any task,
/// including one that holds no [`EventSink`], still leaves each open log ending in `session.end`
/// that names the panic, even though the process then exits without running destructors. A log
/// whose lock is held at that moment (the panic came from inside a write) is skipped rather than
/// waited for, so the hook never deadlocks; its `Drop` or the reader's "no session.end" note
/// covers it.
pub fn end_open_logs(reason: &str) -> usize {
    let logs: Vec<Arc<Inner>> = {
        let open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.iter().filter_map(Weak::upgrade).collect()
    };
    let mut closed = 0;
    for inner in logs {
        let mut state = match inner.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => continue,
        };
        if inner.write_end(&mut state, reason) {
            closed += 1;
        }
    }
    closed
}

/// A cloneable handle to one session's log; every component emits through one of these.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl EventSink {
    /// Creates the log at `path` and writes its `session.start` line.
    pub fn create(
        path: &Path,
        clock: Arc<dyn Clock>,
        scenario: Option<String>,
        config: serde_json::Value,
    ) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SinkError::Create {
                path: path.to_owned(),
                source,
            })?;
        }
        let file = File::create(path).map_err(|source| SinkError::Create {
            path: path.to_owned(),
            source,
        })?;
        let start = clock.now();
        let sink = EventSink {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                start,
                clock,
                state: Mutex::new(State {
                    file: Some(file),
                    ended: false,
                    lines: 0,
                    first_error: None,
                }),
                listener: Mutex::new(None),
            }),
        };
        {
            let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|w| w.strong_count() > 0);
            open.push(Arc::downgrade(&sink.inner));
        }
        sink.emit(
            PeerRole::Lab,
            Event::SessionStart {
                schema: SCHEMA.to_owned(),
                session_id: format!("{:016x}", rand::random::<u64>()),
                started_at: rfc3339_now(),
                scenario,
                config,
            },
        );
        sink.check()?;
        Ok(sink)
    }

    /// Sets the listener told about every record written from now on.
    pub fn set_listener(&self, listener: Listener) {
        *self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Seconds since the session started, on the session clock.
    pub fn elapsed(&self) -> f64 {
        self.inner
            .clock
            .now()
            .saturating_duration_since(self.inner.start)
            .as_secs_f64()
    }

    /// The session clock's start instant.
    pub fn start(&self) -> Instant {
        self.inner.start
    }

    /// The session clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Appends one event, stamped with the current session time. After `end` it is ignored.
    ///
    /// Write errors are kept (see [`EventSink::check`]) rather than returned, so that a full disk
    /// never takes the media path down with it.
    pub fn emit(&self, peer: PeerRole, event: Event) {
        let record = Record {
            t: round_ms(self.elapsed()),
            peer,
            event,
        };
        self.write_record(&record);
    }

    /// Appends an already-stamped record (the browser bridge uses this for its own events).
    pub fn emit_record(&self, record: &Record) {
        self.write_record(record);
    }

    fn write_record(&self, record: &Record) {
        let mut line = match serde_json::to_string(record) {
            Ok(line) => line,
            // Every Event serialises; this guards a NaN slipping into a float field.
            Err(e) => format!(
                r#"{{"t":{},"peer":"lab","kind":"note","level":"error","message":"unserialisable {} event: {}"}}"#,
                record.t,
                record.event.kind(),
                e
            ),
        };
        line.push('\n');
        {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.ended {
                return;
            }
            if let Some(file) = state.file.as_mut() {
                // One write per line: a line is either whole in the file or absent.
                if let Err(e) = file.write_all(line.as_bytes()) {
                    state.first_error.get_or_insert(e);
                } else {
                    state.lines += 1;
                }
            }
        }
        // Outside the state lock: a listener may be slow or emit itself.
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(record);
        }
    }

    /// Number of lines written so far.
    pub fn lines(&self) -> u64 {
        self.lock().lines
    }

    /// Reports the first write error, if any happened.
    pub fn check(&self) -> Result<(), SinkError> {
        let mut state = self.lock();
        match state.first_error.take() {
            Some(source) => Err(SinkError::Write {
                path: self.inner.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Writes `session.end` (once; later calls do nothing), then syncs the file to disk.
    pub fn end(&self, reason: &str, summary: serde_json::Value) -> Result<(), SinkError> {
        {
            let state = self.lock();
            if state.ended {
                return Ok(());
            }
        }
        self.emit(
            PeerRole::Lab,
            Event::SessionEnd {
                reason: reason.to_owned(),
                summary,
            },
        );
        let mut state = self.lock();
        state.ended = true;
        if let Some(file) = state.file.take()
            && let Err(source) = file.sync_all()
        {
            return Err(SinkError::Write {
                path: self.inner.path.clone(),
                source,
            });
        }
        drop(state);
        self.check()
    }

    /// True once `session.end` has been written.
    pub fn ended(&self) -> bool {
        self.lock().ended
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Writes a `session.end` line with `reason` and no summary, syncs the file and marks the
    /// log ended, unless it already is. Returns whether it wrote the line.
    fn write_end(&self, state: &mut State, reason: &str) -> bool {
        if state.ended {
            return false;
        }
        let t = round_ms(
            self.clock
                .now()
                .saturating_duration_since(self.start)
                .as_secs_f64(),
        );
        let record = Record {
            t,
            peer: PeerRole::Lab,
            event: Event::SessionEnd {
                reason: reason.to_owned(),
                summary: serde_json::Value::Null,
            },
        };
        if let (Some(file), Ok(mut line)) = (state.file.as_mut(), serde_json::to_string(&record)) {
            line.push('\n');
            let _ = file.write_all(line.as_bytes());
            let _ = file.sync_all();
        }
        state.ended = true;
        true
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is going away without `end`: a panic or an early return. Still close
        // the log properly so its last line is `session.end`.
        let mut state = std::mem::replace(
            self.state.get_mut().unwrap_or_else(|p| p.into_inner()),
            State {
                file: None,
                ended: true,
                lines: 0,
                first_error: None,
            },
        );
        self.write_end(&mut state, "dropped");
    }
}

/// Reads a whole log back, failing on the first invalid line with its line number.
pub fn read_log(path: &Path) -> Result<Vec<Record>, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|source| ReadError::Parse {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Longest line [`read_log_lenient`] keeps in memory. The longest lines rtclab writes are
/// `session.start` (the configuration) and `session.end` (the summary), a few KiB each; 1 MiB is
/// far above that, and a damaged file with no newline for gigabytes is then read in constant
/// memory instead of into one string.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How many bad lines [`LogDamage`] lists one by one; the rest are only counted, so a file of
/// garbage does not make a note of millions of line numbers.
pub const MAX_LISTED_BAD_LINES: usize = 20;

/// One line [`read_log_lenient`] skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Why it was skipped, in a few words (`not JSON`, `cut off: ...`).
    pub reason: String,
}

/// What [`read_log_lenient`] found wrong with a log it could still read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDamage {
    /// The first [`MAX_LISTED_BAD_LINES`] skipped lines, in file order.
    pub bad_lines: Vec<BadLine>,
    /// How many lines were skipped in all (at least `bad_lines.len()`).
    pub bad_line_count: usize,
    /// No `session.start` was read: the scenario, session id and configuration are unknown.
    pub missing_start: bool,
    /// No `session.end` was read: the run was killed, crashed, is still running, or the end of
    /// the file is lost. Every normal exit path writes one (see [`EventSink`]).
    pub missing_end: bool,
}

impl LogDamage {
    /// True when the log was read whole: every line an event, a start and an end.
    pub fn is_empty(&self) -> bool {
        self.bad_line_count == 0 && !self.missing_start && !self.missing_end
    }

    fn skip(&mut self, line: usize, reason: String) {
        self.bad_line_count += 1;
        if self.bad_lines.len() < MAX_LISTED_BAD_LINES {
            self.bad_lines.push(BadLine { line, reason });
        }
    }

    /// The damage as plain sentences for a reader of the report, one per kind of damage;
    /// empty when there is none.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.bad_line_count > 0 {
            let listed: Vec<String> = self
                .bad_lines
                .iter()
                .map(|b| format!("line {} ({})", b.line, b.reason))
                .collect();
            let more = self.bad_line_count - self.bad_lines.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let (count, verb) = match self.bad_line_count {
                1 => ("1 line of the event log".to_owned(), "is"),
                n => (format!("{n} lines of the event log"), "are"),
            };
            notes.push(format!(
                "{count} could not be read and {verb} left out of this report: {}{tail}",
                listed.join(", ")
            ));
        }
        if self.missing_start {
            notes.push(
                "the event log has no session.start: the scenario, session id and configuration \
                 are unknown"
                    .to_owned(),
            );
        }
        if self.missing_end {
            notes.push(
                "the event log has no session.end: the run did not finish normally (killed, \
                 crashed or still running, or the end of the file is lost), so every figure \
                 stops at the last line read"
                    .to_owned(),
            );
        }
        notes
    }
}

impl std::fmt::Display for LogDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("no damage");
        }
        f.write_str(&self.notes().join("; "))
    }
}

/// Reads the next line of `reader` into `buf` (without its newline), keeping at most `max`
/// bytes. `None` at the end of the file; otherwise whether the line ended with a newline and
/// whether it was longer than `max` (then `buf` is empty and the rest of the line was skipped
/// without being stored).
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<(bool, bool)>> {
    buf.clear();
    let (mut seen, mut overlong) = (false, false);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(seen.then_some((false, overlong)));
        }
        seen = true;
        let (len, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !overlong {
            if buf.len() + len > max {
                overlong = true;
                buf.clear();
                buf.shrink_to(max);
            } else {
                buf.extend_from_slice(&chunk[..len]);
            }
        }
        reader.consume(len + usize::from(newline));
        if newline {
            return Ok(Some((true, overlong)));
        }
    }
}

/// Why a line that is not a [`Record`] was refused, in a few words.
fn bad_line_reason(bytes: &[u8], error: &serde_json::Error, ends_with_newline: bool) -> String {
    if !ends_with_newline && (error.is_eof() || error.is_syntax()) {
        // The sink writes each line with its newline in one write, so a last line without
        // one was cut: the disk filled up, or the file was copied or truncated mid-write.
        return "cut off: the last line has no end".to_owned();
    }
    if error.is_eof() || error.is_syntax() {
        return "not JSON".to_owned();
    }
    match serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .as_ref()
        .and_then(|v| v.get("kind"))
        .and_then(serde_json::Value::as_str)
    {
        // Keep a hostile kind from flooding the note.
        Some(kind) => format!(
            "not a valid {:?} event",
            kind.chars().take(40).collect::<String>()
        ),
        None => "JSON, but not an rtclab event".to_owned(),
    }
}

/// The schema a `session.start` line names, if the line is one (read loosely, so a start line
/// of another schema version is recognised even when its other fields changed).
fn session_start_schema(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if value.get("kind")?.as_str()? != "session.start" {
        return None;
    }
    Some(value.get("schema")?.as_str()?.to_owned())
}

/// Reads what can be read of a log, for `rtclab report` on a log that may be damaged (a cut last
/// line, a garbage line, a run killed before `session.end`).
///
/// Unlike [`read_log`], which runs use on their own fresh logs and where any bad line is a bug,
/// a bad line is skipped and listed in the returned [`LogDamage`], as are a missing
/// `session.start` or `session.end`. Still errors: a file that cannot be opened or read, a log
/// of another schema version ([`ReadError::Schema`]), and a file in which no line at all is an
/// event ([`ReadError::NoEvents`]). The file is read line by line, each line capped at
/// [`MAX_LINE_BYTES`], so only the records are held in memory.
pub fn read_log_lenient(path: &Path) -> Result<(Vec<Record>, LogDamage), ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_log_lenient_from(BufReader::new(file), path)
}

/// [`read_log_lenient`] on a log that is already open; `path` only names it in errors.
///
/// Public so that the fuzz target in `fuzz/` can feed it bytes without a file; everything else
/// reads logs with [`read_log_lenient`].
#[doc(hidden)]
pub fn read_log_lenient_from(
    mut reader: impl BufRead,
    path: &Path,
) -> Result<(Vec<Record>, LogDamage), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut records = Vec::new();
    let mut damage = LogDamage::default();
    let mut buf = Vec::new();
    let mut number = 0;
    let (mut start, mut end) = (false, false);
    while let Some((newline, overlong)) =
        next_line(&mut reader, &mut buf, MAX_LINE_BYTES).map_err(io)?
    {
        number += 1;
        if overlong {
            damage.skip(number, format!("longer than {} MiB", MAX_LINE_BYTES >> 20));
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&buf) {
            Ok(record) => {
                match &record.event {
                    Event::SessionStart { schema, .. } if schema != SCHEMA => {
                        return Err(ReadError::Schema {
                            path: path.to_owned(),
                            line: number,
                            found: schema.clone(),
                            expected: SCHEMA,
                        });
                    }
                    Event::SessionStart { .. } => start = true,
                    Event::SessionEnd { .. } => end = true,
                    _ => {}
                }
                records.push(record);
            }
            Err(e) => {
                if let Some(found) = session_start_schema(&buf).filter(|s| s != SCHEMA) {
                    return Err(ReadError::Schema {
                        path: path.to_owned(),
                        line: number,
                        found,
                        expected: SCHEMA,
                    });
                }
                let reason = if std::str::from_utf8(&buf).is_err() {
                    "not UTF-8 text".to_owned()
                } else {
                    bad_line_reason(&buf, &e, newline)
                };
                damage.skip(number, reason);
            }
        }
    }
    if records.is_empty() && damage.bad_line_count > 0 {
        let first = damage
            .bad_lines
            .first()
            .map(|b| format!("line {}: {}", b.line, b.reason))
            .unwrap_or_default();
        return Err(ReadError::NoEvents {
            path: path.to_owned(),
            bad_lines: damage.bad_line_count,
            first,
        });
    }
    damage.missing_start = !start;
    damage.missing_end = !end;
    Ok((records, damage))
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// RFC 3339 UTC timestamp of the wall clock, for `session.start` only.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::*;

    fn sample_events() -> Vec<Event> {
        vec![
            Event::IceCandidate {
                side: Side::Local,
                candidate: Candidate {
                    typ: "host".into(),
                    protocol: "udp".into(),
                    address: "127.0.0.1".into(),
                    port: 5000,
                    priority: Some(2130706431),
                    ..Default::default()
                },
            },
            Event::IceSelectedPair {
                local: Candidate {
                    typ: "relay".into(),
                    protocol: "udp".into(),
                    address: "127.0.0.1".into(),
                    port: 50000,
                    related_address: Some("127.0.0.1".into()),
                    related_port: Some(40000),
                    url: Some("turn:127.0.0.1:3478".into()),
                    ..Default::default()
                },
                remote: Candidate::default(),
                observed: Some(crate::Observed::OnStateChange),
            },
            Event::DtlsState {
                state: "connected".into(),
                observed: Some(crate::Observed::Poll),
            },
            Event::MediaFirst {
                what: crate::First::FrameDecoded,
            },
            Event::Rtcp {
                direction: Direction::In,
                packet: Rtcp::ReceiverReport {
                    ssrc: 1,
                    reports: vec![ReportBlock {
                        media_ssrc: 2,
                        fraction_lost: 0.25,
                        cumulative_lost: 10,
                        highest_seq: 70000,
                        jitter: 90,
                        jitter_ms: 1.0,
                    }],
                },
            },
            Event::Rtcp {
                direction: Direction::Out,
                packet: Rtcp::Nack {
                    media_ssrc: 2,
                    seqs: vec![1, 2, 65535],
                },
            },
            Event::Rtcp {
                direction: Direction::Out,
                packet: Rtcp::Twcc {
                    base_seq: 7,
                    packet_count: 20,
                    fb_count: 3,
                    received: 19,
                },
            },
            Event::BweEstimate {
                estimator: "stock".into(),
                target_bps: 1e6,
                delay_based_bps: Some(1.2e6),
                loss_based_bps: None,
                loss_ratio: Some(0.01),
                rtt_ms: None,
                detail: crate::BweDetail {
                    state: Some("overuse".into()),
                    trend: Some(12.5),
                    alr: Some(false),
                    ..Default::default()
                },
            },
            Event::MediaStats(MediaStats {
                direction: crate::MediaDirection::Recv,
                packets: 10,
                bytes: 12000,
                frames: 3,
                lost: 1,
                retransmitted: 1,
                bitrate_bps: 96000.0,
                fps: 3.0,
                width: Some(640),
                height: Some(360),
                ..Default::default()
            }),
            Event::EncoderAdapt {
                from_width: 1280,
                from_height: 720,
                to_width: 640,
                to_height: 360,
                target_bps: 300_000.0,
                reason: "target_below_floor".into(),
            },
        ]
    }

    #[test]
    fn every_event_round_trips_through_json() {
        for event in sample_events() {
            let record = Record {
                t: 1.25,
                peer: PeerRole::Receiver,
                event,
            };
            let line = serde_json::to_string(&record).unwrap();
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["kind"], record.event.kind(), "{line}");
            assert_eq!(value["peer"], "receiver");
            let back: Record = serde_json::from_str(&line).unwrap();
            assert_eq!(back, record, "{line}");
        }
    }

    #[test]
    fn rtcp_lines_are_flat_for_readers() {
        let line = serde_json::to_string(&Record {
            t: 0.0,
            peer: PeerRole::Sender,
            event: Event::Rtcp {
                direction: Direction::In,
                packet: Rtcp::Pli { media_ssrc: 9 },
            },
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"t":0.0,"peer":"sender","kind":"rtcp","direction":"in","type":"PLI","media_ssrc":9}"#
        );
    }

    #[test]
    fn log_starts_with_session_start_and_ends_with_session_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = EventSink::create(
            &path,
            Arc::new(SystemClock),
            Some("clean".into()),
            serde_json::json!({"codec":"h264"}),
        )
        .unwrap();
        for e in sample_events() {
            sink.emit(PeerRole::Sender, e);
        }
        sink.end("completed", serde_json::json!({"frames_sent": 3}))
            .unwrap();
        sink.emit(
            PeerRole::Sender,
            Event::IceState {
                state: "late".into(),
            },
        );
        let records = read_log(&path).unwrap();
        assert_eq!(records.len(), sample_events().len() + 2);
        match &records[0].event {
            Event::SessionStart { schema, .. } => assert_eq!(schema, SCHEMA),
            other => panic!("first line is {other:?}"),
        }
        assert!(matches!(
            records.last().unwrap().event,
            Event::SessionEnd { .. }
        ));
        assert!(records.windows(2).all(|w| w[0].t <= w[1].t));
    }

    #[test]
    fn dropping_without_end_still_writes_session_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        {
            let sink =
                EventSink::create(&path, Arc::new(SystemClock), None, Default::default()).unwrap();
            sink.emit(
                PeerRole::Receiver,
                Event::PcState {
                    state: "connected".into(),
                },
            );
        }
        let records = read_log(&path).unwrap();
        match &records.last().unwrap().event {
            Event::SessionEnd { reason, .. } => assert_eq!(reason, "dropped"),
            other => panic!("last line is {other:?}"),
        }
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            "{\"t\":0,\"peer\":\"lab\",\"kind\":\"pc.state\",\"state\":\"new\"}\n{oops\n",
        )
        .unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }

    /// A complete log of a short session (start, a few events, end), as a run writes it.
    fn complete_log(dir: &Path) -> PathBuf {
        let path = dir.join("events.jsonl");
        let sink = EventSink::create(
            &path,
            Arc::new(SystemClock),
            Some("x".into()),
            Default::default(),
        )
        .unwrap();
        for e in sample_events() {
            sink.emit(PeerRole::Sender, e);
        }
        sink.end("completed", serde_json::Value::Null).unwrap();
        path
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = complete_log(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        // Cut the last line (session.end) in half, as a full disk or a truncated copy does.
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        assert!(read_log(&path).is_err(), "the strict reader refuses it");

        let (records, damage) = read_log_lenient(&path).unwrap();
        assert_eq!(records.len(), lines - 1);
        assert_eq!(
            damage.bad_lines,
            vec![BadLine {
                line: lines,
                reason: "cut off: the last line has no end".into(),
            }]
        );
        assert_eq!(damage.bad_line_count, 1);
        assert!(damage.missing_end && !damage.missing_start);
        let notes = damage.notes().join("\n");
        assert!(notes.contains(&format!("line {lines} (cut off")), "{notes}");
        assert!(notes.contains("no session.end"), "{notes}");
    }

    #[test]
    fn a_garbage_line_in_the_middle_is_skipped_and_the_rest_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = complete_log(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let total = lines.len();
        lines.insert(3, "{oops");
        lines.insert(5, r#"{"t":1,"peer":"lab","kind":"no.such.kind"}"#);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();

        let (records, damage) = read_log_lenient(&path).unwrap();
        assert_eq!(records.len(), total, "every real event is kept");
        let got: Vec<(usize, &str)> = damage
            .bad_lines
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(4, "not JSON"), (6, "not a valid \"no.such.kind\" event")]
        );
        assert!(!damage.missing_end && !damage.missing_start);
        assert!(
            damage.to_string().contains("line 4 (not JSON), line 6"),
            "{damage}"
        );
    }

    #[test]
    fn a_killed_run_reads_whole_but_says_session_end_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink =
            EventSink::create(&path, Arc::new(SystemClock), None, Default::default()).unwrap();
        sink.emit(
            PeerRole::Receiver,
            Event::PcState {
                state: "connected".into(),
            },
        );
        // What kill -9 leaves: every emitted line, and no destructor to write session.end.
        std::mem::forget(sink);

        let (records, damage) = read_log_lenient(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(damage.bad_line_count, 0);
        assert!(damage.missing_end && !damage.missing_start && !damage.is_empty());
        let notes = damage.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no session.end"), "{notes:?}");

        let whole = complete_log(dir.path());
        let (_, damage) = read_log_lenient(&whole).unwrap();
        assert!(damage.is_empty(), "{damage}");
        assert!(damage.notes().is_empty());
    }

    #[test]
    fn lenient_reading_still_refuses_another_schema_and_a_file_of_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"t":0,"peer":"lab","kind":"session.start","schema":"rtclab.events/2","#,
                r#""session_id":"a","started_at":"2026-01-01T00:00:00Z","config":null}"#,
                "\n"
            ),
        )
        .unwrap();
        let err = read_log_lenient(&path).unwrap_err();
        assert!(
            matches!(&err, ReadError::Schema { found, line: 1, .. } if found == "rtclab.events/2"),
            "{err}"
        );
        // Also when the newer start line no longer parses as this schema's session.start.
        std::fs::write(
            &path,
            r#"{"t":0,"peer":"lab","kind":"session.start","schema":"rtclab.events/9"}"#,
        )
        .unwrap();
        assert!(matches!(
            read_log_lenient(&path),
            Err(ReadError::Schema { .. })
        ));

        std::fs::write(&path, "garbage\n\u{0}\u{1}\nmore garbage").unwrap();
        let err = read_log_lenient(&path).unwrap_err();
        assert!(
            matches!(err, ReadError::NoEvents { bad_lines: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 1: not JSON"), "{err}");

        assert!(matches!(
            read_log_lenient(&dir.path().join("missing.jsonl")),
            Err(ReadError::Io { .. })
        ));
    }

    #[test]
    fn an_overlong_line_is_skipped_without_holding_it_and_many_bad_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = complete_log(dir.path());
        let mut text = std::fs::read_to_string(&path).unwrap();
        let good = text.lines().count();
        // 3 MiB without a newline, then enough garbage lines to pass the listing cap.
        text.push_str(&"x".repeat(3 * MAX_LINE_BYTES));
        text.push('\n');
        for _ in 0..MAX_LISTED_BAD_LINES + 5 {
            text.push_str("not an event\n");
        }
        std::fs::write(&path, text).unwrap();

        let (records, damage) = read_log_lenient(&path).unwrap();
        assert_eq!(records.len(), good);
        assert_eq!(damage.bad_lines[0].line, good + 1);
        assert_eq!(damage.bad_lines[0].reason, "longer than 1 MiB");
        assert_eq!(damage.bad_lines.len(), MAX_LISTED_BAD_LINES);
        assert_eq!(damage.bad_line_count, MAX_LISTED_BAD_LINES + 6);
        assert!(
            damage.notes()[0].contains("and 6 more"),
            "{:?}",
            damage.notes()
        );
    }

    #[test]
    fn lines_are_read_in_pieces_of_any_size() {
        // A one-byte buffer makes every line span many fill_buf calls.
        let mut reader = BufReader::with_capacity(1, &b"ab\n\ncdefgh\nij"[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some((newline, overlong)) = next_line(&mut reader, &mut buf, 4).unwrap() {
            got.push((String::from_utf8(buf.clone()).unwrap(), newline, overlong));
        }
        let want = [
            ("ab", true, false),
            ("", true, false),
            ("", true, true),
            ("ij", false, false),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(s, n, o)| (s.to_string(), *n, *o))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = rfc3339_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
