//! Errors: HTTP-level refusals ([`AppError`]) and server start-up failures ([`ServerError`]).

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// An HTTP request the server refuses before any WebSocket exists. Protocol-level problems on an
/// open socket are `error` messages instead (see [`crate::protocol::ErrorCode`]).
#[derive(Debug, Error)]
pub enum AppError {
    /// `/ws` was requested without a WebSocket upgrade (e.g. opened in a browser tab).
    #[error(
        "/ws is a WebSocket endpoint; connect with new WebSocket(\"ws://HOST/ws?room=NAME\"): {0}"
    )]
    NotWebSocket(#[from] WebSocketUpgradeRejection),
    /// The query string could not be parsed.
    #[error("bad query string; use /ws?room=NAME: {0}")]
    BadQuery(#[from] QueryRejection),
    /// No event log is known for the room.
    #[error("no event log for room {0:?}: start a session in that room first")]
    NoLog(String),
    /// A page from another origin tried to open a WebSocket ([`crate::origin`]).
    #[error("{0}")]
    Origin(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            // Keep axum's own status (400/405/426) so clients see the precise HTTP reason.
            AppError::NotWebSocket(rejection) => rejection.status(),
            AppError::BadQuery(rejection) => rejection.status(),
            AppError::NoLog(_) => axum::http::StatusCode::NOT_FOUND,
            AppError::Origin(_) => axum::http::StatusCode::FORBIDDEN,
        };
        tracing::debug!(%status, error = %self, "refused HTTP request");
        (status, self.to_string()).into_response()
    }
}

/// The server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Binding the listening socket failed (address in use, no permission, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound socket's local address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
}
