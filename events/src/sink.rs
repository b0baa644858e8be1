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
use std::sync::{Arc, Mutex};
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

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is going away without `end`: a panic or an early return. Still close
        // the log properly so its last line is `session.end`.
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if state.ended {
            return;
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
                reason: "dropped".to_owned(),
                summary: serde_json::Value::Null,
            },
        };
        if let (Some(file), Ok(mut line)) = (state.file.as_mut(), serde_json::to_string(&record)) {
            line.push('\n');
            let _ = file.write_all(line.as_bytes());
            let _ = file.sync_all();
        }
        state.ended = true;
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

    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = rfc3339_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
