//! The ICE server list each peer gets in `joined`: STUN URLs as they are, TURN URLs with TURN REST
//! credentials issued for that peer from the shared secret the TURN server checks.

use crate::protocol::IceServerInfo;
use rtclab_turn::{SystemWallClock, WallClock, credentials};
use std::sync::Arc;
use std::time::Duration;

/// Issues STUN/TURN servers and credentials to joining peers.
#[derive(Clone)]
pub struct IceIssuer {
    secret: String,
    stun_urls: Vec<String>,
    turn_urls: Vec<String>,
    ttl: Duration,
    clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for IceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceIssuer")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl IceIssuer {
    /// Credentials from `secret` (the TURN server's `static-auth-secret`), valid one hour.
    pub fn new(secret: impl Into<String>, stun_urls: Vec<String>, turn_urls: Vec<String>) -> Self {
        IceIssuer {
            secret: secret.into(),
            stun_urls,
            turn_urls,
            ttl: credentials::DEFAULT_TTL,
            clock: Arc::new(SystemWallClock),
        }
    }

    /// Sets how long issued credentials stay valid.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the calendar clock expiries are computed from (tests).
    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// The servers for peer `user`: one entry for the STUN URLs, one for the TURN URLs with
    /// credentials (`expiry:user`) of its own.
    pub fn issue(&self, user: &str) -> Vec<IceServerInfo> {
        let mut out = Vec::new();
        if !self.stun_urls.is_empty() {
            out.push(IceServerInfo {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if !self.turn_urls.is_empty() {
            let c = credentials::issue(&self.secret, user, self.clock.unix_now_s(), self.ttl);
            out.push(IceServerInfo {
                urls: self.turn_urls.clone(),
                username: Some(c.username),
                credential: Some(c.password),
            });
        }
        out
    }
}
