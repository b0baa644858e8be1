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
}
