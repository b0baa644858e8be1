//! Who may be relayed to, and how much one user may hold.
//!
//! A peer address is checked in this order (the guard answers the first failure with 403, or
//! drops a Send indication):
//! 1. **Denied ranges** ([`DENIED_RANGES`]): multicast, broadcast, "this network", IPv4 addresses
//!    wrapped in IPv6, … No allow rule opens them. (coturn's `denied-peer-ip` is weaker: there
//!    an `allowed-peer-ip` overrides it.)
//! 2. **The allow-list** ([`AllowedPeers`]): loopback only by default. Private (RFC 1918),
//!    CGNAT, link-local and unique-local addresses ([`LAB_RANGES`]) stay refused unless a rule
//!    *inside* that range names them (`--allow-peers 192.168.1.0/24`); a broad rule never opens
//!    them by accident.
//! 3. **The server's own listener** (checked in the guard): relaying there would loop.
//!
//! Other allocations' relay addresses on this server are ordinary peers (two relay-only clients
//! of one server talk relay to relay), so they are not refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Peer addresses an allocation may send to (CreatePermission, ChannelBind, Send).
///
/// Whatever the variant, [`DENIED_RANGES`] are refused first, and an address in one of the
/// [`LAB_RANGES`] is admitted only by a rule that lies inside that range.
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
    /// Whether relaying to `ip` is allowed (denied ranges and the allow-list; the server's own
    /// listener is refused by the guard, which knows it).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    /// Whether relaying to `ip` is allowed, and if not, why.
    pub fn check(&self, ip: IpAddr) -> Result<(), PeerRefusal> {
        if let Some(range) = denied_range(ip) {
            return Err(PeerRefusal::Denied { ip, range });
        }
        let lab = lab_range_of(ip);
        // A rule admits an address of a lab range only if the rule lies inside that range:
        // `Ranges([0.0.0.0/0])` built by hand would otherwise open every private network.
        let admits =
            |rule: Cidr| rule.contains(ip) && lab.is_none_or(|l| l.range.prefix <= rule.prefix);
        let allowed = match self {
            AllowedPeers::Loopback => ip.is_loopback(),
            AllowedPeers::List(list) => list.contains(&ip),
            AllowedPeers::Ranges(ranges) => ip.is_loopback() || ranges.iter().any(|r| admits(*r)),
        };
        match (allowed, lab) {
            (true, _) => Ok(()),
            (false, Some(range)) => Err(PeerRefusal::NotNamed { ip, range }),
            (false, None) => Err(PeerRefusal::NotAllowed { ip }),
        }
    }
}

/// Why a peer address is refused; its `Display` is the `reason` of `turn.refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// In a range no allow rule opens.
    Denied {
        /// The peer's IP.
        ip: IpAddr,
        /// The denied range it is in.
        range: &'static SpecialRange,
    },
    /// In a lab range (loopback, private, CGNAT, link-local, unique local) that no allow rule
    /// names.
    NotNamed {
        /// The peer's IP.
        ip: IpAddr,
        /// The lab range it is in.
        range: &'static SpecialRange,
    },
    /// Any other address off the allow-list (a public one).
    NotAllowed {
        /// The peer's IP.
        ip: IpAddr,
    },
}

impl std::fmt::Display for PeerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerRefusal::Denied { ip, range } => write!(
                f,
                "peer {ip} is {} ({}, {}), never relayed",
                range.what, range.range, range.source
            ),
            PeerRefusal::NotNamed { ip, range } => write!(
                f,
                "peer {ip} is {} ({}, {}) and not on the allow-list (--allow-peers)",
                range.what, range.range, range.source
            ),
            PeerRefusal::NotAllowed { ip } => write!(f, "peer {ip} is not on the allow-list"),
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

/// A named special-purpose range (IANA registries, RFC 6890), as the refusal names it.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecialRange {
    /// The range.
    pub range: Cidr,
    /// What it is, in a few words ("multicast").
    pub what: &'static str,
    /// The document that defines it.
    pub source: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr {
        net: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
    let [a, b, c, d, e, f, g, h] = segments;
    Cidr {
        net: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
    }
}

const fn special(range: Cidr, what: &'static str, source: &'static str) -> SpecialRange {
    SpecialRange {
        range,
        what,
        source,
    }
}

/// Ranges no allow rule opens, checked before anything else, most specific first (the first
/// match names the refusal). Relaying there is never what a WebRTC peer needs, and each is a
/// known way to abuse a relay (RFC 8656 §21: a TURN server is a relay for anyone holding
/// credentials, so it must not reach what the client itself could not):
/// - `0.0.0.0/8` and `::`: not destinations at all, yet Linux delivers a datagram sent to them
///   to the local host, which bypassed coturn's loopback check (CVE-2020-26262);
/// - multicast, broadcast, reserved: one datagram reaches every host of a group or a segment
///   (coturn's `no-multicast-peers`: "224.0.0.0 and above, and FFXX:*");
/// - IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4): on a dual-stack
///   socket or through a translator they reach that IPv4 address, past every IPv4 rule.
pub const DENIED_RANGES: [SpecialRange; 11] = [
    special(v4(0, 0, 0, 0, 8), "\"this network\"", "RFC 6890 §2.2.2"),
    special(v4(224, 0, 0, 0, 4), "multicast", "RFC 5771"),
    special(
        v4(255, 255, 255, 255, 32),
        "the limited broadcast address",
        "RFC 919 §7",
    ),
    special(v4(240, 0, 0, 0, 4), "reserved", "RFC 1112 §4"),
    special(
        v6([0, 0, 0, 0, 0, 0, 0, 0], 128),
        "the unspecified address",
        "RFC 4291 §2.5.2",
    ),
    special(
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        "an IPv4-mapped address",
        "RFC 4291 §2.5.5.2",
    ),
    // ::1 lies inside ::/96; `denied_range` lets it through before this table.
    special(
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "an IPv4-compatible address",
        "RFC 4291 §2.5.5.1",
    ),
    special(
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
        "a NAT64 address",
        "RFC 6052 §2.1",
    ),
    special(
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "a local NAT64 address",
        "RFC 8215",
    ),
    special(
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        "a 6to4 address",
        "RFC 3056",
    ),
    special(
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        "multicast",
        "RFC 4291 §2.7",
    ),
];

/// The denied range `ip` is in, if any.
pub fn denied_range(ip: IpAddr) -> Option<&'static SpecialRange> {
    if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
        return None; // loopback, not an IPv4-compatible address
    }
    DENIED_RANGES.iter().find(|d| d.range.contains(ip))
}

/// Ranges a lab network lives in: loopback, private, shared address space for carrier-grade
/// NAT, link-local, unique local IPv6. An address in one is relayed to only when a rule inside
/// that range names it (loopback: every mode but an explicit list). `--allow-peers` takes a
/// range inside one of these; anything wider would make the lab's relay an open relay to the
/// Internet, the abuse RFC 8656 §21 warns about.
pub const LAB_RANGES: [SpecialRange; 9] = [
    special(v4(127, 0, 0, 0, 8), "loopback", "RFC 1122 §3.2.1.3"),
    special(
        v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        "loopback",
        "RFC 4291 §2.5.3",
    ),
    special(v4(10, 0, 0, 0, 8), "private", "RFC 1918"),
    special(v4(172, 16, 0, 0, 12), "private", "RFC 1918"),
    special(v4(192, 168, 0, 0, 16), "private", "RFC 1918"),
    special(v4(100, 64, 0, 0, 10), "shared (CGNAT)", "RFC 6598"),
    // Includes 169.254.169.254, the cloud metadata service of most providers.
    special(v4(169, 254, 0, 0, 16), "link-local", "RFC 3927"),
    special(
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local",
        "RFC 4193",
    ),
    special(
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "link-local",
        "RFC 4291 §2.5.6",
    ),
];

/// The lab range `ip` is in, if any.
pub fn lab_range_of(ip: IpAddr) -> Option<&'static SpecialRange> {
    LAB_RANGES.iter().find(|l| l.range.contains(ip))
}

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
        LAB_RANGES
            .iter()
            .any(|l| self.prefix >= l.range.prefix && l.range.contains(self.net))
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.net) || other.contains(self.net)
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
        // Only a single host can get here in a denied range (a wider entry is refused above).
        if let Some(d) = DENIED_RANGES.iter().find(|d| d.range.overlaps(&c))
            && c.net != IpAddr::V6(Ipv6Addr::LOCALHOST)
        {
            return Err(format!(
                "--allow-peers {e}: {c} is in {} ({}, {}), which is never relayed",
                d.range, d.what, d.source
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
    /// Most each allocation relays, in kbit/s, in each direction separately (client → peers,
    /// peers → client); datagrams above it are dropped and counted. coturn's `max-bps` is the
    /// same cap in bytes per second (`max-bps` = kbit/s × 125). `None`: no cap.
    pub max_relay_kbps: Option<u32>,
}

impl Default for Policy {
    /// Lab mode: loopback peers only; 8 allocations per user (a peer gathers one per local
    /// address and TURN URL, and a renegotiation may briefly hold two sets); no bandwidth cap
    /// (as coturn's `max-bps=0`): on loopback the only traffic is the lab's own, the relay
    /// benchmark pushes 400 Mbit/s through it, and `rtclab relay` shapes the rate with the
    /// scenario's network instead. A cap is for a relay shared on a lab network.
    fn default() -> Self {
        Policy {
            allowed_peers: AllowedPeers::Loopback,
            max_allocations_per_user: 8,
            max_relay_kbps: None,
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn denied_ranges_are_refused_whatever_the_allow_list_says() {
        // Every denied class, and a rule that would admit it if the denied ranges were not
        // checked first.
        let cases = [
            ("0.0.0.0", "\"this network\""),
            ("0.1.2.3", "\"this network\""),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "the limited broadcast address"),
            ("240.0.0.1", "reserved"),
            ("::", "the unspecified address"),
            ("::ffff:127.0.0.1", "an IPv4-mapped address"),
            ("::ffff:10.0.0.1", "an IPv4-mapped address"),
            ("::127.0.0.1", "an IPv4-compatible address"),
            ("64:ff9b::a00:1", "a NAT64 address"),
            ("64:ff9b:1::1", "a local NAT64 address"),
            ("2002:a00:1::1", "a 6to4 address"),
            ("ff02::1", "multicast"),
        ];
        for (addr, what) in cases {
            let a = ip(addr);
            let open = [
                AllowedPeers::Loopback,
                AllowedPeers::List(vec![a]),
                AllowedPeers::Ranges(vec![Cidr { net: a, prefix: 0 }]),
            ];
            for allowed in open {
                match allowed.check(a) {
                    Err(PeerRefusal::Denied { range, .. }) => assert_eq!(range.what, what, "{a}"),
                    other => panic!("{a} under {allowed:?}: {other:?}"),
                }
            }
        }
        let reason = AllowedPeers::Loopback.check(ip("224.0.0.1")).unwrap_err();
        assert_eq!(
            reason.to_string(),
            "peer 224.0.0.1 is multicast (224.0.0.0/4, RFC 5771), never relayed"
        );
    }

    #[test]
    fn loopback_is_not_caught_by_the_denied_ranges() {
        assert_eq!(denied_range(ip("::1")), None);
        assert_eq!(denied_range(ip("127.0.0.1")), None);
        assert!(AllowedPeers::Loopback.allows(ip("::1")));
    }

    #[test]
    fn private_and_link_local_need_a_rule_inside_their_range() {
        for a in [
            "10.1.2.3",
            "192.168.1.7",
            "172.20.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
        ] {
            let a = ip(a);
            assert!(
                matches!(
                    AllowedPeers::Loopback.check(a),
                    Err(PeerRefusal::NotNamed { .. })
                ),
                "{a} refused by default"
            );
            // A rule covering everything of the family does not name them...
            let everything = Cidr {
                net: if a.is_ipv4() { ip("0.0.0.0") } else { ip("::") },
                prefix: 0,
            };
            assert!(!AllowedPeers::Ranges(vec![everything]).allows(a), "{a}");
            // ... a rule inside their range, or the address itself, does.
            let inside =
                Cidr::parse(&format!("{a}/{}", if a.is_ipv4() { 24 } else { 64 })).unwrap();
            assert!(AllowedPeers::Ranges(vec![inside]).allows(a), "{a}");
            assert!(AllowedPeers::List(vec![a]).allows(a), "{a}");
        }
        // The broad rule still admits a public address (a hand-built policy, not --allow-peers).
        let everything = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(AllowedPeers::Ranges(vec![everything]).allows(ip("198.51.100.1")));
        assert_eq!(
            AllowedPeers::Loopback
                .check(ip("169.254.169.254"))
                .unwrap_err()
                .to_string(),
            "peer 169.254.169.254 is link-local (169.254.0.0/16, RFC 3927) and not on the \
             allow-list (--allow-peers)"
        );
        assert_eq!(
            AllowedPeers::Loopback
                .check(ip("198.51.100.1"))
                .unwrap_err()
                .to_string(),
            "peer 198.51.100.1 is not on the allow-list"
        );
        // A loopback address off an explicit list is named as loopback.
        let list = AllowedPeers::List(vec![ip("127.0.0.1")]);
        assert!(matches!(
            list.check(ip("127.0.0.2")),
            Err(PeerRefusal::NotNamed { .. })
        ));
    }

    #[test]
    fn allow_peers_refuses_denied_addresses() {
        for e in [
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::ffff:10.0.0.1",
            "::",
            "ff02::1",
        ] {
            let err = lab_peers(&[e.into()]).unwrap_err();
            assert!(err.contains("never relayed"), "{e}: {err}");
        }
        assert!(lab_peers(&["::1".into()]).is_ok());
        assert!(lab_peers(&["169.254.0.0/16".into(), "fe80::/10".into()]).is_ok());
    }

    #[test]
    fn user_is_the_part_after_the_expiry() {
        assert_eq!(user_of("1700000000:alice"), "alice");
        assert_eq!(user_of("1700000000"), "1700000000");
    }
}
