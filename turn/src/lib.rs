//! rtclab's embedded STUN/TURN server, built on the `turn` crate (webrtc-rs project).
//!
//! The `turn` server does the protocol; rtclab adds what a lab needs around it:
//! - [`credentials`]: TURN REST credentials (`expiry:user`, base64 HMAC-SHA1), issued and checked
//!   with time passed in;
//! - [`auth`]: the auth handler that accepts only valid, unexpired REST usernames;
//! - [`policy`]: denied peer ranges, the peer allow-list (loopback in lab mode), the per-user
//!   allocation quota and the bandwidth cap; the guard enforces the peer rules and the quota in
//!   front of the server and writes the `turn.*` events;
//! - [`relay`]: relay sockets that count the bytes they relay (`turn.bytes`, once a second) and
//!   drop what exceeds the per-allocation cap ([`bandwidth`]: a token bucket per direction);
//! - [`server`]: [`TurnServer::start`] / [`TurnServer::shutdown`];
//! - [`coturn`]: a real coturn started with the same secret, for interop tests.

pub mod auth;
pub mod bandwidth;
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
// For the fuzz target `turn_guard` (fuzz/); not part of the API.
#[doc(hidden)]
pub use guard::{FuzzGuard, FuzzVerdict};
pub use policy::{AllowedPeers, PeerRefusal, Policy};
pub use server::{DEFAULT_PORT, TurnConfig, TurnServer};
/// The `Conn` trait a [`relay::RelayHook`] returns, at the version the `turn` crate uses.
pub use webrtc_util;
