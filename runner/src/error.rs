//! Errors of the lab's drivers; each message says what is wrong and what to do.

use rtclab_peer::PeerError;

/// What can go wrong running a scenario, a sweep, a bench or the demo.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A Rust peer failed (its message says why).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The signaling server could not be started.
    #[error("signaling: {0}")]
    Signaling(String),
    /// FFmpeg could not open the source or the codec.
    #[error("media: {0}")]
    Media(#[from] rtclab_media::MediaError),
    /// The event log could not be written.
    #[error(transparent)]
    Log(#[from] rtclab_events::SinkError),
    /// The event log could not be read back.
    #[error(transparent)]
    ReadLog(#[from] rtclab_events::ReadError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something did not get where it needed to in time.
    #[error("{0}")]
    Timeout(String),
    /// The run could not go on (the message says why and what to do).
    #[error("{0}")]
    Failed(String),
    /// A peer ended before it was told to, in an orderly way (e.g. the other peer left): the
    /// cause is usually the other peer's error, which a run reports first when it has one.
    #[error("the {role} stopped early: {exit}")]
    StoppedEarly {
        /// `Sender` or `Receiver`.
        role: String,
        /// How it ended (`PeerLeft`, ...).
        exit: String,
    },
}

impl RunError {
    /// Of two peers' ends, the one to report: an error that is only the echo of the other
    /// peer's end ([`RunError::StoppedEarly`]) gives way to the other's own error. (When ICE
    /// fails, the peer that fails first leaves, and the other sees it leave; which of the two
    /// ends a run notices first is a race.)
    pub fn cause(a: Result<(), RunError>, b: Result<(), RunError>) -> Result<(), RunError> {
        match (a, b) {
            (Err(RunError::StoppedEarly { .. }), Err(b)) => Err(b),
            (Err(a), _) => Err(a),
            (Ok(()), b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left() -> Result<(), RunError> {
        Err(RunError::StoppedEarly {
            role: "Sender".into(),
            exit: "PeerLeft".into(),
        })
    }

    fn failed(why: &str) -> Result<(), RunError> {
        Err(RunError::Failed(why.into()))
    }

    #[test]
    fn the_other_peers_error_is_the_cause_of_a_departure() {
        let cause = |a, b| RunError::cause(a, b).map_err(|e| e.to_string());
        assert_eq!(
            cause(left(), failed("ICE failed")),
            Err("ICE failed".into())
        );
        assert_eq!(
            cause(failed("ICE failed"), left()),
            Err("ICE failed".into())
        );
        assert_eq!(
            cause(left(), Ok(())),
            Err("the Sender stopped early: PeerLeft".into()),
            "a departure with nothing behind it is still reported"
        );
        assert_eq!(
            cause(failed("a"), failed("b")),
            Err("a".into()),
            "the first wins"
        );
        assert_eq!(cause(Ok(()), Ok(())), Ok(()));
    }
}
