//! Errors of the embedded TURN server.

use std::net::SocketAddr;

/// Failure to start or stop the TURN server.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The UDP listener could not be bound.
    #[error("cannot bind TURN UDP listener on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `turn` crate refused the configuration or failed.
    #[error("TURN server: {0}")]
    Turn(#[from] turn::Error),
}
