//! rtclab's signaling: the JSON protocol of two-peer WebSocket rooms ([`protocol`]) and, with the
//! `server` feature, the server for it: rooms at `/ws?room=NAME`, `/health`, `/api/log` and the
//! web page (static files of `web/`).
//!
//! # Features
//!
//! - `server` (default): the signaling server (`AppState`, `app`, `bind`, `serve`,
//!   `serve_with_shutdown`), the room registry (`rooms`), the STUN/TURN credential issuer
//!   (`IceIssuer`), the limits against careless or hostile clients (`limits`: message rate,
//!   pings and idle timeout, header read timeout, connections per address, shutdown deadline,
//!   the open-files limit) and the HTTP errors (`error`). Pulls in axum, tower-http, tokio,
//!   tracing, rustix and rtclab-turn.
//! - `load` (default): the load driver (`load`): many WebSocket clients in two-peer rooms,
//!   measuring relayed round trips and the server's memory, for `benches/load.rs` and
//!   `tests/load.rs`. Pulls in tokio-tungstenite and futures.
// Links only where the items exist, so that docs built without the feature have no broken links.
#![cfg_attr(
    feature = "server",
    doc = "\n  See [`AppState`], [`app`], [`bind`], [`serve`], [`serve_with_shutdown`], [`rooms`], \
           [`IceIssuer`], [`limits`] and [`error`]."
)]
//!
//! Without it (`default-features = false`, as the workspace declares the dependency; crates that
//! run the server ask for `features = ["server"]`) the crate is only the [`protocol`] —
//! [`ClientMessage`], [`ServerMessage`], [`IceCandidate`], [`ErrorCode`], [`IceServerInfo`] and
//! [`validate_room_name`] — and depends on serde, serde_json and thiserror alone. That is all a
//! peer (a client of the server) needs:
//!
//! ```
//! use rtclab_signaling::{ClientMessage, ServerMessage};
//! let reply: ServerMessage = serde_json::from_str(r#"{"type":"joined","room":"r1","peers":1}"#)?;
//! assert!(matches!(reply, ServerMessage::Joined { peers: 1, .. }));
//! let offer = serde_json::to_string(&ClientMessage::Offer { sdp: "v=0\r\n".into() })?;
//! assert_eq!(offer, r#"{"type":"offer","sdp":"v=0\r\n"}"#);
//! # Ok::<(), serde_json::Error>(())
//! ```

#[cfg(feature = "server")]
mod accept;
#[cfg(feature = "server")]
pub mod control;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod issuer;
#[cfg(feature = "server")]
pub mod limits;
#[cfg(feature = "load")]
pub mod load;
#[cfg(feature = "server")]
pub mod origin;
pub mod protocol;
#[cfg(feature = "server")]
pub mod rooms;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod ws;

pub use protocol::{
    ClientMessage, ErrorCode, IceCandidate, IceServerInfo, ServerMessage, validate_room_name,
};

#[cfg(feature = "server")]
pub use accept::{serve, serve_with_shutdown};
#[cfg(feature = "server")]
pub use control::{ControlError, ImpairControl};
#[cfg(feature = "server")]
pub use error::{AppError, ServerError};
#[cfg(feature = "server")]
pub use issuer::IceIssuer;
#[cfg(feature = "server")]
pub use rooms::Rooms;
#[cfg(feature = "server")]
pub use server::{AppState, EventHook, JoinHook, LogLookup, app, bind};
