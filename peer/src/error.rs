//! Errors of the peer library; each message says what is wrong and what to do.

/// What can go wrong running a peer or a session.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// webrtc-rs refused an operation.
    #[error("webrtc: {0}")]
    Webrtc(#[from] webrtc::error::Error),
    /// The signaling server is unreachable or misbehaved.
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
    /// The session did not get where it needed to in time.
    #[error("{0}")]
    Timeout(String),
    /// The peer connection failed.
    #[error("{0}")]
    Failed(String),
}
