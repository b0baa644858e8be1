//! `end_open_logs` closes every open log with the given reason, and only those: what `rtclab`'s
//! panic hook relies on. Alone in its own test binary, because it closes every log of the
//! process, including those of tests running beside it.

use rtclab_events::{Event, EventSink, NoteLevel, PeerRole, SystemClock, end_open_logs, read_log};
use std::sync::Arc;

#[test]
fn open_logs_end_with_the_reason_and_ended_ones_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        EventSink::create(
            &dir.path().join(name),
            Arc::new(SystemClock),
            None,
            serde_json::Value::Null,
        )
        .unwrap()
    };
    let (a, b, done) = (open("a.jsonl"), open("b.jsonl"), open("done.jsonl"));
    done.end("finished", serde_json::json!({})).unwrap();
    // A log whose every handle is gone ended itself ("dropped") and is not in the count.
    drop(open("dropped.jsonl"));
    a.emit(
        PeerRole::Lab,
        Event::Note {
            level: NoteLevel::Info,
            message: "before the panic".to_owned(),
        },
    );

    assert_eq!(end_open_logs("panic: boom at src/x.rs:1:1"), 2);
    assert!(a.ended() && b.ended());
    // Whatever is emitted after the hook ran is dropped: session.end stays the last line.
    a.emit(
        PeerRole::Lab,
        Event::Note {
            level: NoteLevel::Info,
            message: "after".to_owned(),
        },
    );
    for (name, reason) in [
        ("a.jsonl", "panic: boom at src/x.rs:1:1"),
        ("b.jsonl", "panic: boom at src/x.rs:1:1"),
        ("done.jsonl", "finished"),
        ("dropped.jsonl", "dropped"),
    ] {
        let records = read_log(&dir.path().join(name)).unwrap();
        match &records.last().unwrap().event {
            Event::SessionEnd { reason: r, .. } => assert_eq!(r, reason, "{name}"),
            other => panic!("{name} ends with {other:?}"),
        }
        let ends = records
            .iter()
            .filter(|r| matches!(r.event, Event::SessionEnd { .. }))
            .count();
        assert_eq!(ends, 1, "{name} has one session.end");
    }
    // A second call finds nothing left to close.
    assert_eq!(end_open_logs("again"), 0);
}
