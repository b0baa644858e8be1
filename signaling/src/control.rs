//! Live impairment control over HTTP: `GET /api/scenarios`, `GET /api/impair?room=NAME` and
//! `POST /api/impair?room=NAME`.
//!
//! The server only routes: what a request means (set, replace, outage, play, reset) and how it
//! is checked belongs to whoever owns the sessions (`rtclab demo`), through [`ImpairControl`].
//! So the demo page, a test harness or `curl` all reach the same code, and a refused value gets
//! the same message as in a scenario file.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use thiserror::Error;

use crate::protocol::MAX_MESSAGE_BYTES;
use crate::server::AppState;

/// Largest control request body accepted, in bytes: the signaling message cap, since a request
/// is a few fields and anything larger is a mistake or abuse.
pub const MAX_CONTROL_BYTES: usize = MAX_MESSAGE_BYTES;

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// No session runs (or ran) in the room.
    #[error("no session in room {0:?}: open the demo page with ?room={0} and press Start first")]
    NoSession(String),
    /// The room's session has ended (410 Gone: it existed, and its log is still there).
    #[error("the session in room {0:?} has ended; press Start on the page for a new one")]
    Ended(String),
    /// The request cannot be carried out; the message says what is wrong and what to send.
    #[error("{0}")]
    Invalid(String),
    /// A page from another origin tried to change the network ([`crate::origin`]).
    #[error("{0}")]
    Forbidden(String),
    /// The server has no live control (plain `rtclab serve`).
    #[error("this server has no live impairment control; it comes with `rtclab demo`")]
    Unavailable,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::NoSession(_) | ControlError::Unavailable => StatusCode::NOT_FOUND,
            ControlError::Ended(_) => StatusCode::GONE,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// What the owner of the sessions does with control requests; calls must not block for long
/// (they run on the server's tasks).
pub trait ImpairControl: Send + Sync {
    /// `GET /api/scenarios`: the scenarios and presets a request may play.
    fn catalog(&self) -> serde_json::Value;
    /// `GET /api/impair?room=NAME`: the settings in force in the room's session.
    fn state(&self, room: &str) -> Result<serde_json::Value, ControlError>;
    /// `POST /api/impair?room=NAME`: carries out `request`; returns the new state.
    fn change(
        &self,
        room: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, ControlError>;
}

/// Query of `/api/impair`.
#[derive(Debug, Deserialize)]
pub(crate) struct RoomQuery {
    room: String,
}

fn control(state: &AppState) -> Result<&Arc<dyn ImpairControl>, ControlError> {
    state.control.as_ref().ok_or(ControlError::Unavailable)
}

/// `GET /api/scenarios`.
pub(crate) async fn catalog(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ControlError> {
    Ok(Json(control(&state)?.catalog()))
}

/// `GET /api/impair?room=NAME`.
pub(crate) async fn get_state(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RoomQuery>,
) -> Result<Json<serde_json::Value>, ControlError> {
    Ok(Json(control(&state)?.state(&q.room)?))
}

/// `POST /api/impair?room=NAME` with a JSON body.
pub(crate) async fn post_change(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RoomQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ControlError> {
    state
        .check_origin(&headers)
        .map_err(ControlError::Forbidden)?;
    let control = control(&state)?;
    // Parsed here rather than by axum's `Json` so that a bad body gets a JSON error that says
    // what to send, like every other refusal of this route.
    let request: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ControlError::Invalid(format!(
            "the body is not JSON ({e}); send e.g. {{\"action\":\"set\",\"downlink\":{{\"loss_pct\":5}}}}"
        ))
    })?;
    let new_state = control.change(&q.room, request)?;
    tracing::debug!(room = %q.room, "impairment changed over HTTP");
    Ok(Json(new_state))
}
