//! rtclab's embedded STUN/TURN server, built on the `turn` crate (webrtc-rs project).
//!
//! The `turn` server does the protocol; rtclab adds what a lab needs around it:
//! - [`credentials`]: TURN REST credentials (`expiry:user`, base64 HMAC-SHA1), issued and checked
//!   with time passed in;
//! - [`auth`]: the auth handler that accepts only valid, unexpired REST usernames;
//! - [`policy`]: the peer allow-list (loopback in lab mode) and the per-user allocation quota,
//!   enforced by [`guard`] in front of the server, which also writes the `turn.*` events;
//! - [`relay`]: relay sockets that count the bytes they relay (`turn.bytes`, once a second);
//! - [`server`]: [`TurnServer::start`] / [`TurnServer::shutdown`];
//! - [`coturn`]: a real coturn started with the same secret, for interop tests.

pub mod auth;
pub mod child;
pub mod coturn;
pub mod credentials;
mod error;
mod guard;
pub mod policy;
pub mod relay;
mod server;

pub use auth::{RestAuthHandler, SystemWallClock, WallClock};
pub use credentials::{DEFAULT_TTL, RestCredentials};
pub use error::TurnError;
pub use policy::{AllowedPeers, Policy};
pub use server::{DEFAULT_PORT, TurnConfig, TurnServer};
/// The `Conn` trait a [`relay::RelayHook`] returns, at the version the `turn` crate uses.
pub use webrtc_util;
