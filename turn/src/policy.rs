//! Who may be relayed to, and how much one user may hold.

use std::net::IpAddr;

/// Peer addresses an allocation may send to (CreatePermission, ChannelBind, Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedPeers {
    /// Loopback only (127.0.0.0/8, ::1): lab mode, where every peer is on this machine.
    Loopback,
    /// Exactly these IP addresses.
    List(Vec<IpAddr>),
}

impl AllowedPeers {
    /// Whether relaying to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match self {
            AllowedPeers::Loopback => ip.is_loopback(),
            AllowedPeers::List(list) => list.contains(&ip),
        }
    }
}

/// Limits enforced in front of the `turn` server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Peers that may be relayed to.
    pub allowed_peers: AllowedPeers,
    /// Most allocations one REST user (the part after `expiry:`) may hold at once; a further
    /// Allocate gets 486 Allocation Quota Reached (RFC 8656 §7.2).
    pub max_allocations_per_user: usize,
}

impl Default for Policy {
    /// Lab mode: loopback peers only; 8 allocations per user (a peer gathers one per local
    /// address and TURN URL, and a renegotiation may briefly hold two sets).
    fn default() -> Self {
        Policy {
            allowed_peers: AllowedPeers::Loopback,
            max_allocations_per_user: 8,
        }
    }
}

/// The user a REST username belongs to: the part after the first `:` (`expiry:user`), or the
/// whole username when it has none.
pub fn user_of(username: &str) -> &str {
    username.split_once(':').map_or(username, |(_, user)| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_mode_allows_only_loopback() {
        let p = AllowedPeers::Loopback;
        assert!(p.allows("127.0.0.1".parse().unwrap()));
        assert!(p.allows("127.3.2.1".parse().unwrap()));
        assert!(p.allows("::1".parse().unwrap()));
        assert!(!p.allows("192.0.2.2".parse().unwrap()));
        assert!(!p.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn user_is_the_part_after_the_expiry() {
        assert_eq!(user_of("1700000000:alice"), "alice");
        assert_eq!(user_of("1700000000"), "1700000000");
    }
}
