//! The TURN auth handler: accepts only valid, unexpired TURN REST credentials.

use crate::credentials;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use turn::auth::{AuthHandler, generate_auth_key};

/// Wall-clock seconds since the Unix epoch: REST usernames carry an absolute expiry, so the
/// server needs the calendar time, passed in so tests can move it.
pub trait WallClock: Send + Sync {
    /// Seconds since the Unix epoch now.
    fn unix_now_s(&self) -> u64;
}

/// The system's calendar clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn unix_now_s(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Hands the `turn` server the long-term key (RFC 8489 §9.2.2: MD5(username:realm:password)) of
/// a REST username, or an error for a malformed or expired one. The `turn` server would answer
/// either failure, and a wrong password, with 400; the guard in front of it checks the same
/// credentials first and makes the answer the 401 RFC 8489 §9.2.4 requires.
pub struct RestAuthHandler {
    secret: String,
    clock: Arc<dyn WallClock>,
}

impl RestAuthHandler {
    /// A handler for credentials made with `secret`, checking expiry against `clock`.
    pub fn new(secret: String, clock: Arc<dyn WallClock>) -> Self {
        RestAuthHandler { secret, clock }
    }
}

impl AuthHandler for RestAuthHandler {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let password =
            credentials::verify_username(&self.secret, username, self.clock.unix_now_s())
                .map_err(|e| turn::Error::Other(e.to_string()))?;
        Ok(generate_auth_key(username, realm, &password))
    }
}
