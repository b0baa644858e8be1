//! The "path" section: which ICE path each peer took and why, from the log alone.
//!
//! Rust peers log their candidates (`ice.candidate`), ICE states and the selected pair; webrtc-rs
//! 0.21 reports no candidate-pair checks, so for them "pairs tried" is unknown. A browser's path
//! comes from its last `browser.stats` snapshot (W3C candidate and candidate-pair stats) and its
//! `browser.event` ICE states. TURN totals come from the embedded server's `turn.*` lines.

use rtclab_events::{Candidate, Event, PeerRole, Record, Side};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One end of the chosen pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PathCandidate {
    /// host, srflx, prflx or relay.
    pub candidate_type: String,
    /// udp or tcp (between the peers, or between a relay and the other peer).
    pub protocol: String,
    /// address:port.
    pub address: String,
    /// RFC 8445 §5.1.2.1 priority.
    pub priority: Option<u32>,
    /// STUN/TURN server it came from.
    pub url: Option<String>,
    /// Client-to-TURN-server transport of a relay candidate.
    pub relay_protocol: Option<String>,
}

/// What one peer did on the ICE path.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerPath {
    /// sender, receiver or browser.
    pub peer: String,
    /// Local candidates gathered, by type.
    pub gathered: BTreeMap<String, usize>,
    /// Remote candidates learned, by type.
    pub remote: BTreeMap<String, usize>,
    /// Candidate pairs checked (`None`: the peer does not report pairs — webrtc-rs 0.21).
    pub pairs_tried: Option<usize>,
    /// Of those, the ones that succeeded.
    pub pairs_succeeded: Option<usize>,
    /// Whether this peer was the controlling agent (the offerer, RFC 8445 §6.1.1).
    pub controlling: bool,
    /// The last selected pair's local candidate.
    pub local: Option<PathCandidate>,
    /// The last selected pair's remote candidate.
    pub remote_selected: Option<PathCandidate>,
    /// The selected pair's priority, RFC 8445 §6.1.2.3.
    pub pair_priority: Option<u64>,
    /// Why this pair, in words.
    pub why: String,
    /// Seconds from the first ICE `checking` to the first `connected`.
    pub connect_s: Option<f64>,
}

/// Totals of the embedded TURN server's `turn.*` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TurnTotals {
    /// Allocations granted.
    pub allocations: usize,
    /// Permissions created.
    pub permissions: usize,
    /// Channels bound.
    pub channel_binds: usize,
    /// Refreshes.
    pub refreshes: usize,
    /// Requests refused.
    pub refusals: usize,
    /// Bytes relayed to peers, over all allocations.
    pub to_peer_bytes: u64,
    /// Bytes received from peers, over all allocations.
    pub from_peer_bytes: u64,
}

/// The path section of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PathReport {
    /// One entry per peer that logged ICE.
    pub peers: Vec<PeerPath>,
    /// `None` when the log has no `turn.*` line (no embedded server, or coturn).
    pub turn: Option<TurnTotals>,
}

/// RFC 8445 §6.1.2.3: pair priority = 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D ? 1 : 0), G the
/// controlling agent's candidate priority, D the controlled agent's.
pub fn pair_priority(g: u32, d: u32) -> u64 {
    let (g, d) = (u64::from(g), u64::from(d));
    (1u64 << 32) * g.min(d) + 2 * g.max(d) + u64::from(g > d)
}

/// RFC 8445 §5.1.2.1: the type preference is the top 8 bits of a candidate's priority.
fn type_preference(priority: u32) -> u32 {
    priority >> 24
}

fn from_event(c: &Candidate) -> PathCandidate {
    PathCandidate {
        candidate_type: c.typ.clone(),
        protocol: c.protocol.clone(),
        address: crate::ice::endpoint(c),
        priority: c.priority,
        url: c.url.clone(),
        relay_protocol: c.relay_protocol.clone(),
    }
}

fn from_stats(c: &Value) -> PathCandidate {
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    PathCandidate {
        candidate_type: s("candidateType").unwrap_or_default(),
        protocol: s("protocol").unwrap_or_default(),
        address: format!(
            "{}:{}",
            s("address").or_else(|| s("ip")).unwrap_or_default(),
            c.get("port").and_then(Value::as_u64).unwrap_or(0)
        ),
        priority: c
            .get("priority")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok()),
        url: s("url"),
        relay_protocol: s("relayProtocol"),
    }
}

/// Why the pair was chosen: the policy, or the priorities that made it win.
fn why(p: &PeerPath) -> String {
    let (Some(l), Some(r)) = (&p.local, &p.remote_selected) else {
        return "no pair selected".into();
    };
    let only_relay = p.gathered.keys().all(|t| t == "relay") && !p.gathered.is_empty();
    let prefs = match (l.priority, r.priority) {
        (Some(lp), Some(rp)) => format!(
            "type preferences local {} / remote {} (host 126, prflx 110, srflx 100, relay 0)",
            type_preference(lp),
            type_preference(rp)
        ),
        _ => "priorities not logged".into(),
    };
    if only_relay {
        format!("policy relay: only relay candidates were gathered; {prefs}")
    } else {
        format!("highest-priority pair that passed its checks; {prefs}")
    }
}

/// Computes the path section from a log.
pub fn extract(records: &[Record]) -> PathReport {
    // The offerer controls (RFC 8445 §6.1.1 with JSEP): the Rust sender, unless a browser sends.
    let browser_sends = records.iter().any(|r| match &r.event {
        Event::SessionStart { config, .. } => config["sender"] == "browser",
        _ => false,
    });
    let mut peers: BTreeMap<String, PeerPath> = BTreeMap::new();
    let mut checking: HashMap<String, f64> = HashMap::new();
    let mut relay_locals: HashMap<(String, String), PathCandidate> = HashMap::new();
    let mut last_stats: Option<&Value> = None;
    let mut turn = TurnTotals::default();
    let mut any_turn = false;
    let mut bytes: HashMap<String, (u64, u64)> = HashMap::new();
    let entry = |peers: &mut BTreeMap<String, PeerPath>, peer: PeerRole| -> String {
        let name = peer.to_string();
        peers.entry(name.clone()).or_insert_with(|| PeerPath {
            peer: name.clone(),
            controlling: match peer {
                PeerRole::Sender => !browser_sends,
                PeerRole::Browser => browser_sends,
                _ => false,
            },
            ..Default::default()
        });
        name
    };
    let mut ice_state =
        |peers: &mut BTreeMap<String, PeerPath>, name: &str, state: &str, t: f64| match state {
            "checking" => {
                checking.entry(name.to_owned()).or_insert(t);
            }
            "connected" | "completed" => {
                if let (Some(p), Some(start)) = (peers.get_mut(name), checking.get(name))
                    && p.connect_s.is_none()
                {
                    p.connect_s = Some(t - start);
                }
            }
            _ => {}
        };
    for r in records {
        match &r.event {
            Event::IceCandidate { side, candidate } => {
                let name = entry(&mut peers, r.peer);
                let p = peers.get_mut(&name).expect("inserted");
                let map = match side {
                    Side::Local => &mut p.gathered,
                    Side::Remote => &mut p.remote,
                };
                *map.entry(candidate.typ.clone()).or_default() += 1;
                if *side == Side::Local && candidate.typ == "relay" {
                    relay_locals.insert(
                        (name, format!("{}:{}", candidate.address, candidate.port)),
                        from_event(candidate),
                    );
                }
            }
            Event::IceSelectedPair { local, remote, .. } => {
                let name = entry(&mut peers, r.peer);
                let p = peers.get_mut(&name).expect("inserted");
                let mut l = from_event(local);
                // The polled pair carries no server URL; the gathered candidate does.
                if let Some(g) = relay_locals.get(&(name.clone(), l.address.clone())) {
                    l.url = g.url.clone();
                    l.relay_protocol = g.relay_protocol.clone();
                }
                p.local = Some(l);
                p.remote_selected = Some(from_event(remote));
            }
            Event::IceState { state } => {
                let name = entry(&mut peers, r.peer);
                ice_state(&mut peers, &name, state, r.t);
            }
            Event::BrowserEvent { what, detail } if what == "ice state" => {
                let name = entry(&mut peers, r.peer);
                if let Some(state) = detail.get("state").and_then(Value::as_str) {
                    ice_state(&mut peers, &name, state, r.t);
                }
            }
            Event::BrowserStats { stats } => last_stats = Some(stats),
            Event::TurnAllocationCreated { .. } => {
                any_turn = true;
                turn.allocations += 1;
            }
            Event::TurnPermission { .. } => {
                any_turn = true;
                turn.permissions += 1;
            }
            Event::TurnChannelBind { .. } => {
                any_turn = true;
                turn.channel_binds += 1;
            }
            Event::TurnRefresh { .. } => {
                any_turn = true;
                turn.refreshes += 1;
            }
            Event::TurnRefused { .. } => {
                any_turn = true;
                turn.refusals += 1;
            }
            Event::TurnBytes {
                relay,
                to_peer_bytes,
                from_peer_bytes,
                ..
            } => {
                any_turn = true;
                // Cumulative per allocation: the last line of each counts.
                bytes.insert(relay.clone(), (*to_peer_bytes, *from_peer_bytes));
            }
            _ => {}
        }
    }
    if let Some(stats) = last_stats {
        let name = entry(&mut peers, PeerRole::Browser);
        let p = peers.get_mut(&name).expect("inserted");
        browser_path(p, stats);
    }
    for p in peers.values_mut() {
        if let (Some(l), Some(r)) = (&p.local, &p.remote_selected)
            && let (Some(lp), Some(rp)) = (l.priority, r.priority)
        {
            p.pair_priority = Some(if p.controlling {
                pair_priority(lp, rp)
            } else {
                pair_priority(rp, lp)
            });
        }
        p.why = why(p);
    }
    turn.to_peer_bytes = bytes.values().map(|b| b.0).sum();
    turn.from_peer_bytes = bytes.values().map(|b| b.1).sum();
    PathReport {
        peers: peers.into_values().collect(),
        turn: any_turn.then_some(turn),
    }
}

/// A browser's candidates, pairs and selected pair from one `getStats()` snapshot.
fn browser_path(p: &mut PeerPath, stats: &Value) {
    let list = |k: &str| stats[k].as_array().cloned().unwrap_or_default();
    let (locals, remotes, pairs) = (
        list("local-candidate"),
        list("remote-candidate"),
        list("candidate-pair"),
    );
    let count = |cs: &[Value]| {
        let mut m = BTreeMap::new();
        for c in cs {
            if let Some(t) = c["candidateType"].as_str() {
                *m.entry(t.to_owned()).or_default() += 1;
            }
        }
        m
    };
    p.gathered = count(&locals);
    p.remote = count(&remotes);
    // A pair was tried if a check was sent on it (W3C: requestsSent, or a state past waiting).
    let tried = pairs.iter().filter(|x| {
        x["requestsSent"].as_u64().unwrap_or(0) > 0
            || matches!(
                x["state"].as_str(),
                Some("in-progress" | "succeeded" | "failed")
            )
    });
    p.pairs_tried = Some(tried.count());
    p.pairs_succeeded = Some(pairs.iter().filter(|x| x["state"] == "succeeded").count());
    let selected_id = stats["transport"]["selectedCandidatePairId"].as_str();
    if let Some(pair) = selected_id.and_then(|id| pairs.iter().find(|x| x["id"] == id)) {
        let find = |cs: &[Value], key: &str| cs.iter().find(|c| c["id"] == pair[key]).cloned();
        p.local = find(&locals, "localCandidateId").map(|c| from_stats(&c));
        p.remote_selected = find(&remotes, "remoteCandidateId").map(|c| from_stats(&c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_priority_follows_rfc_8445() {
        // Host/host on loopback, as webrtc-rs logs them.
        let host = 2_130_706_431;
        assert_eq!(
            pair_priority(host, host),
            (1u64 << 32) * host as u64 + 2 * host as u64
        );
        // The controlling side's larger priority adds the tie-break bit.
        assert_eq!(pair_priority(20, 10), (1u64 << 32) * 10 + 2 * 20 + 1);
        assert_eq!(pair_priority(10, 20), (1u64 << 32) * 10 + 2 * 20);
        assert_eq!(type_preference(host), 126);
        assert_eq!(type_preference(16_777_215), 0);
    }

    fn log(lines: &[&str]) -> Vec<Record> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    #[test]
    fn a_relayed_run_reads_as_path_rows() {
        let records = log(&[
            r#"{"t":0,"peer":"lab","kind":"session.start","schema":"rtclab.events/1","session_id":"x","started_at":"now","config":{"sender":"rust"}}"#,
            r#"{"t":0.1,"peer":"sender","kind":"ice.candidate","side":"local","type":"relay","protocol":"udp","address":"127.0.0.1","port":5000,"priority":16777215,"url":"turn:127.0.0.1:3478?transport=udp","relay_protocol":"udp"}"#,
            r#"{"t":0.1,"peer":"sender","kind":"ice.state","state":"checking"}"#,
            r#"{"t":0.2,"peer":"sender","kind":"ice.candidate","side":"remote","type":"relay","protocol":"udp","address":"127.0.0.1","port":6000,"priority":25042943}"#,
            r#"{"t":2.3,"peer":"sender","kind":"ice.state","state":"connected"}"#,
            r#"{"t":2.5,"peer":"sender","kind":"ice.selected_pair","local":{"type":"relay","protocol":"udp","address":"127.0.0.1","port":5000,"priority":16777215},"remote":{"type":"relay","protocol":"udp","address":"127.0.0.1","port":6000,"priority":25042943}}"#,
            r#"{"t":0.1,"peer":"lab","kind":"turn.allocation_created","client":"127.0.0.1:1","username":"1:a","relay":"127.0.0.1:5000","transport":"udp","lifetime_s":600}"#,
            r#"{"t":1,"peer":"lab","kind":"turn.bytes","relay":"127.0.0.1:5000","to_peer_bytes":100,"to_peer_packets":1,"from_peer_bytes":10,"from_peer_packets":1}"#,
            r#"{"t":2,"peer":"lab","kind":"turn.bytes","relay":"127.0.0.1:5000","to_peer_bytes":300,"to_peer_packets":3,"from_peer_bytes":30,"from_peer_packets":3}"#,
            r#"{"t":2,"peer":"lab","kind":"turn.bytes","relay":"127.0.0.1:5001","to_peer_bytes":5,"to_peer_packets":1,"from_peer_bytes":7,"from_peer_packets":1}"#,
            r#"{"t":0.3,"peer":"browser","kind":"browser.event","what":"ice state","detail":{"state":"checking"}}"#,
            r#"{"t":0.8,"peer":"browser","kind":"browser.event","what":"ice state","detail":{"state":"connected"}}"#,
            r#"{"t":3,"peer":"browser","kind":"browser.stats","stats":{"transport":{"selectedCandidatePairId":"P1"},"candidate-pair":[{"id":"P1","localCandidateId":"L1","remoteCandidateId":"R1","state":"succeeded"},{"id":"P2","localCandidateId":"L2","remoteCandidateId":"R1","state":"frozen"}],"local-candidate":[{"id":"L1","candidateType":"relay","protocol":"udp","address":"127.0.0.1","port":6000,"priority":25042943,"url":"turn:127.0.0.1:3478?transport=tcp","relayProtocol":"tcp"},{"id":"L2","candidateType":"relay","protocol":"udp","address":"127.0.0.1","port":6001,"priority":25042942}],"remote-candidate":[{"id":"R1","candidateType":"relay","protocol":"udp","address":"127.0.0.1","port":5000,"priority":16777215}]}}"#,
        ]);
        let r = extract(&records);
        let sender = r.peers.iter().find(|p| p.peer == "sender").unwrap();
        assert!(sender.controlling);
        assert_eq!(sender.gathered.get("relay"), Some(&1));
        assert_eq!(sender.pairs_tried, None, "webrtc-rs reports no pairs");
        let local = sender.local.as_ref().unwrap();
        // The polled pair has no URL; the gathered candidate lends it.
        assert_eq!(
            local.url.as_deref(),
            Some("turn:127.0.0.1:3478?transport=udp")
        );
        assert_eq!(
            sender.pair_priority,
            Some(pair_priority(16_777_215, 25_042_943))
        );
        assert!((sender.connect_s.unwrap() - 2.2).abs() < 1e-9);
        assert!(sender.why.starts_with("policy relay"), "{}", sender.why);

        let browser = r.peers.iter().find(|p| p.peer == "browser").unwrap();
        assert!(!browser.controlling);
        assert_eq!(
            (browser.pairs_tried, browser.pairs_succeeded),
            (Some(1), Some(1))
        );
        let local = browser.local.as_ref().unwrap();
        assert_eq!(local.relay_protocol.as_deref(), Some("tcp"));
        // Both ends compute the same pair priority, G being the sender's (offerer's) candidate.
        assert_eq!(browser.pair_priority, sender.pair_priority);
        assert!((browser.connect_s.unwrap() - 0.5).abs() < 1e-9);

        let turn = r.turn.unwrap();
        assert_eq!(turn.allocations, 1);
        // Cumulative counters: the last line per allocation, summed over allocations.
        assert_eq!((turn.to_peer_bytes, turn.from_peer_bytes), (305, 37));
    }
}
