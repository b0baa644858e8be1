//! Who may be relayed to, and how much one user may hold.

use std::net::IpAddr;

/// Peer addresses an allocation may send to (CreatePermission, ChannelBind, Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedPeers {
    /// Loopback only (127.0.0.0/8, ::1): lab mode, where every peer is on this machine.
    Loopback,
    /// Exactly these IP addresses.
    List(Vec<IpAddr>),
    /// Loopback and these ranges (`rtclab relay --allow-peers`, a lab network).
    Ranges(Vec<Cidr>),
}

impl AllowedPeers {
    /// Whether relaying to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match self {
            AllowedPeers::Loopback => ip.is_loopback(),
            AllowedPeers::List(list) => list.contains(&ip),
            AllowedPeers::Ranges(ranges) => {
                ip.is_loopback() || ranges.iter().any(|r| r.contains(ip))
            }
        }
    }
}

/// An address range, `ADDR/PREFIX` (RFC 4632 §3.1; RFC 4291 §2.3 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub net: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

/// Ranges a lab network lives in: loopback, private (RFC 1918), shared address space for
/// carrier-grade NAT (RFC 6598), link-local (RFC 3927, RFC 4291), unique local IPv6 (RFC 4193).
/// `--allow-peers` takes a range inside one of these; anything wider would make the lab's relay
/// an open relay to the Internet, the abuse RFC 8656 §21.1 warns about.
const LAB_RANGES: [(&str, u8); 8] = [
    ("127.0.0.0", 8),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("100.64.0.0", 10),
    ("169.254.0.0", 16),
    ("fc00::", 7),
    ("fe80::", 10),
];

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr.trim().parse().map_err(|_| {
            format!("{text:?} is not an address range; write e.g. 192.168.1.0/24 or 10.0.0.7")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }

    /// True for one address (`/32`, `/128`).
    pub fn is_host(&self) -> bool {
        self.prefix == if self.net.is_ipv4() { 32 } else { 128 }
    }

    /// Whether the whole range lies in a lab range ([`LAB_RANGES`]).
    pub fn is_lab_range(&self) -> bool {
        LAB_RANGES.iter().any(|(net, prefix)| {
            let block = Cidr {
                net: net.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                prefix: *prefix,
            };
            self.prefix >= block.prefix && block.contains(self.net)
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The allow-list for `--allow-peers`: each entry a range inside a lab range, or a single
/// address named on purpose (a public host you mean to reach). A wider range that reaches
/// public addresses is refused with the reason.
pub fn lab_peers(entries: &[String]) -> Result<AllowedPeers, String> {
    let mut ranges = Vec::new();
    for e in entries {
        let c = Cidr::parse(e)?;
        if !c.is_lab_range() && !c.is_host() {
            return Err(format!(
                "--allow-peers {e}: {c} reaches public addresses, which would make the relay an \
                 open relay (RFC 8656 §21.1); allow a private range (10/8, 172.16/12, 192.168/16, \
                 100.64/10, fc00::/7, link-local) or name each public host as a single address"
            ));
        }
        ranges.push(c);
    }
    Ok(AllowedPeers::Ranges(ranges))
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
    fn lab_ranges_are_accepted_public_ranges_refused_unless_one_host() {
        let p = lab_peers(&["192.168.1.0/24".into(), "203.0.113.7".into()]).unwrap();
        assert!(p.allows("192.168.1.77".parse().unwrap()));
        assert!(p.allows("203.0.113.7".parse().unwrap()));
        assert!(p.allows("127.0.0.1".parse().unwrap()), "loopback always");
        assert!(!p.allows("192.168.2.1".parse().unwrap()));
        assert!(!p.allows("203.0.113.8".parse().unwrap()));
        let err = lab_peers(&["0.0.0.0/0".into()]).unwrap_err();
        assert!(err.contains("open relay"), "{err}");
        assert!(lab_peers(&["203.0.113.0/24".into()]).is_err());
        assert!(
            lab_peers(&["10.0.0.0/7".into()]).is_err(),
            "wider than 10/8"
        );
        assert!(lab_peers(&["fd00::/8".into()]).is_ok());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn user_is_the_part_after_the_expiry() {
        assert_eq!(user_of("1700000000:alice"), "alice");
        assert_eq!(user_of("1700000000"), "1700000000");
    }
}
