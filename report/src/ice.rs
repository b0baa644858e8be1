//! The ICE rows of a log, extracted once: the candidates each peer logged and the pairs it
//! selected. The report's tables, the ICE path section and `summary.json` all read these.

use rtclab_events::{Candidate, Event, Record, Side};
use serde::{Deserialize, Serialize};

/// An ICE candidate one peer logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IceCandidateRow {
    /// The peer that logged it.
    pub peer: String,
    /// `local` (gathered) or `remote` (learned).
    pub side: String,
    /// host, srflx, prflx or relay.
    pub candidate_type: String,
    /// udp or tcp.
    pub protocol: String,
    /// address:port.
    pub address: String,
    /// Base address:port of a srflx/prflx/relay candidate.
    pub related_address: Option<String>,
    /// STUN/TURN server it came from.
    pub url: Option<String>,
}

/// A pair ICE selected, as one peer saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectedPairRow {
    /// When it was selected, s.
    pub t_s: f64,
    /// The peer that logged it.
    pub peer: String,
    /// The pair, from that peer's side.
    #[serde(flatten)]
    pub pair: PathSummary,
}

/// The ICE path a session used, as one side saw it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PathSummary {
    /// Local candidate type (host, srflx, prflx, relay).
    pub local_type: String,
    /// Local transport protocol.
    pub local_protocol: String,
    /// Local address:port.
    pub local_address: String,
    /// Remote candidate type.
    pub remote_type: String,
    /// Remote transport protocol.
    pub remote_protocol: String,
    /// Remote address:port.
    pub remote_address: String,
}

impl PathSummary {
    /// The same pair told from the other end (a receiver's view, told from the sender's side).
    pub fn reversed(self) -> PathSummary {
        PathSummary {
            local_type: self.remote_type,
            local_protocol: self.remote_protocol,
            local_address: self.remote_address,
            remote_type: self.local_type,
            remote_protocol: self.local_protocol,
            remote_address: self.local_address,
        }
    }
}

/// A candidate's transport address as the log writes it everywhere: `address:port`.
pub fn endpoint(c: &Candidate) -> String {
    format!("{}:{}", c.address, c.port)
}

/// Every distinct candidate of the log, in order of first appearance (trickle and the end of
/// gathering may log the same candidate twice).
pub fn candidate_rows(records: &[Record]) -> Vec<IceCandidateRow> {
    let mut rows: Vec<IceCandidateRow> = Vec::new();
    for r in records {
        if let Event::IceCandidate { side, candidate } = &r.event {
            let row = IceCandidateRow {
                peer: r.peer.to_string(),
                side: match side {
                    Side::Local => "local",
                    Side::Remote => "remote",
                }
                .to_owned(),
                candidate_type: candidate.typ.clone(),
                protocol: candidate.protocol.clone(),
                address: endpoint(candidate),
                related_address: candidate.related_address.as_ref().map(|a| {
                    match candidate.related_port {
                        Some(p) => format!("{a}:{p}"),
                        None => a.clone(),
                    }
                }),
                url: candidate.url.clone(),
            };
            if !rows.contains(&row) {
                rows.push(row);
            }
        }
    }
    rows
}

/// Every `ice.selected_pair` line of the log, in order.
pub fn selected_pairs(records: &[Record]) -> Vec<SelectedPairRow> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::IceSelectedPair { local, remote, .. } => Some(SelectedPairRow {
                t_s: r.t,
                peer: r.peer.to_string(),
                pair: PathSummary {
                    local_type: local.typ.clone(),
                    local_protocol: local.protocol.clone(),
                    local_address: endpoint(local),
                    remote_type: remote.typ.clone(),
                    remote_protocol: remote.protocol.clone(),
                    remote_address: endpoint(remote),
                },
            }),
            _ => None,
        })
        .collect()
}
