//! `rtclab run --virtual-time`: the two Rust peers of a run on one [`SimRuntime`] (issue 15).
//! Both peers, the impairment engine and the congestion controller see one virtual clock; the
//! encoder and decoder threads hold it while they work ([`WorkGate`]), so their CPU time takes
//! no virtual time (a fixed cost per frame is added back); the source and the quality scorer
//! work beside it. Signaling is an in-process room: there is no TCP in virtual time.

use crate::error::RunError;
use rtclab_events::{Event, EventSink, PeerRole};
use rtclab_netem::{SimRuntime, SimStats};
use rtclab_peer::config::{PeerConfig, WorkGate};
use rtclab_peer::peer::run_with_signal;
use rtclab_peer::signal_client::in_memory_room;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::runtime::Runtime;

/// How long after the end a peer gets to stop (virtual time: it costs no wall time).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Beyond the run's duration, how much virtual time set-up and stopping may take before the run
/// is called stuck.
const LIMIT_MARGIN: Duration = Duration::from_secs(120);

/// A gate that holds `sim`'s clock while a peer's thread works.
pub fn work_gate(sim: &Arc<SimRuntime>) -> WorkGate {
    let sim = sim.clone();
    WorkGate::new(move || Box::new(sim.busy()))
}

/// Runs the receiver (on `receiver.1`) and the sender (on `sender.1`, the impaired runtime
/// over `sim`) for `duration_s` of virtual time, or until `interrupt` (Ctrl-C), then stops the
/// sender and the receiver, as `run_peers` does in real time. Returns why the run ended, and
/// what the virtual-time loop did.
pub async fn run_peers_virtual(
    sim: Arc<SimRuntime>,
    sink: &EventSink,
    sender: (PeerConfig, Arc<dyn Runtime>),
    receiver: (PeerConfig, Arc<dyn Runtime>),
    duration_s: f64,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<(String, SimStats), RunError> {
    // Ctrl-C reaches the virtual-time thread as a message its session waits on; sending it
    // wakes that task on the runtime's own queue.
    let (interrupt_tx, mut interrupted) = futures::channel::oneshot::channel::<()>();
    let duration = Duration::from_secs_f64(duration_s);
    let sink = sink.clone();
    let runtime: Arc<dyn Runtime> = sim.clone();
    let outcome: Arc<Mutex<Option<Result<String, RunError>>>> = Arc::new(Mutex::new(None));
    let out = outcome.clone();
    let session = async move {
        let (first, second) = in_memory_room(&runtime, "run");
        let start = |signal, (cfg, rt): (PeerConfig, Arc<dyn Runtime>)| {
            let (stop_tx, mut stop_rx) = watch::channel(false);
            let (done_tx, done_rx) = futures::channel::oneshot::channel();
            let sink = sink.clone();
            runtime.spawn(Box::pin(async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                let _ = done_tx.send(run_with_signal(signal, cfg, sink, rt, stop).await);
            }));
            (stop_tx, done_rx)
        };
        // The receiver joins first and the sender, second in the room, offers: as in real time.
        let (receiver_stop, mut receiver_done) = start(first, receiver);
        let (sender_stop, mut sender_done) = start(second, sender);
        let mut sender_early = None;
        let mut receiver_early = None;
        let reason = tokio::select! {
            // In order, not at random: a virtual-time run must take the same branch every time.
            biased;
            _ = runtime.sleep(duration) => "completed".to_owned(),
            _ = &mut interrupted => "interrupted".to_owned(),
            r = &mut sender_done => { sender_early = Some(r); "sender stopped early".to_owned() }
            r = &mut receiver_done => { receiver_early = Some(r); "receiver stopped early".to_owned() }
        };
        // Stop the sender first so its last statistics precede the receiver's.
        let mut result = Ok(reason);
        for (role, stop, done, early) in [
            ("sender", sender_stop, sender_done, sender_early),
            ("receiver", receiver_stop, receiver_done, receiver_early),
        ] {
            let ended = match early {
                Some(ended) => Some(ended),
                None => {
                    let _ = stop.send(true);
                    webrtc::runtime::timeout(&*runtime, STOP_GRACE, done)
                        .await
                        .ok()
                }
            };
            let failed = match ended {
                None => {
                    sink.emit(
                        PeerRole::Lab,
                        Event::Note {
                            level: rtclab_events::NoteLevel::Warn,
                            message: format!("the {role} did not stop within {STOP_GRACE:?}"),
                        },
                    );
                    None
                }
                Some(Ok(Ok(_))) => None,
                Some(Ok(Err(e))) => Some(RunError::from(e)),
                Some(Err(_)) => Some(RunError::Failed(format!("the {role} task was dropped"))),
            };
            if let (Some(e), true) = (failed, result.is_ok()) {
                result = Err(e);
            }
        }
        *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };
    let limit = duration + LIMIT_MARGIN;
    // The virtual-time loop blocks its thread; tokio's blocking pool keeps a tokio context for
    // what in the peers still uses tokio's channels.
    let run = tokio::task::spawn_blocking(move || sim.run(session, limit));
    tokio::pin!(run, interrupt);
    let mut interrupt_tx = Some(interrupt_tx);
    let ran = loop {
        tokio::select! {
            ran = &mut run => break ran,
            _ = &mut interrupt, if interrupt_tx.is_some() => {
                if let Some(tx) = interrupt_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
    .map_err(|e| RunError::Failed(format!("the virtual-time run panicked: {e}")))?;
    let stats = ran.map_err(|e| RunError::Failed(format!("virtual time: {e}")))?;
    let reason = outcome
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| {
            Err(RunError::Failed(
                "the virtual-time run left no outcome".into(),
            ))
        })?;
    Ok((reason, stats))
}
