//! ICE candidates in event form: from webrtc-rs structs and from `candidate:` SDP lines.

use rtc::peer_connection::transport::RTCIceCandidate;
use rtclab_events::Candidate;

/// Converts a webrtc-rs candidate (local, remote or one side of a pair) to its event form.
pub fn from_rtc(c: &RTCIceCandidate, url: Option<&str>) -> Candidate {
    Candidate {
        typ: c.typ.to_string(),
        protocol: c.protocol.to_string(),
        address: c.address.clone(),
        port: c.port,
        related_address: (!c.related_address.is_empty()).then(|| c.related_address.clone()),
        related_port: (!c.related_address.is_empty()).then_some(c.related_port),
        priority: Some(c.priority),
        foundation: (!c.foundation.is_empty()).then(|| c.foundation.clone()),
        url: url.filter(|u| !u.is_empty()).map(str::to_owned),
        relay_protocol: (c.typ.to_string() == "relay")
            .then(|| url.and_then(turn_transport))
            .flatten(),
    }
}

/// The client-to-server transport of a TURN URL (RFC 7065 §3.1): `turns:` is TLS, otherwise the
/// `transport` parameter, UDP by default. `None` for a URL that is not TURN.
pub fn turn_transport(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    match scheme {
        "turns" => Some("tls".to_owned()),
        "turn" => Some(
            rest.split_once("?transport=")
                .map_or("udp", |(_, t)| t)
                .to_ascii_lowercase(),
        ),
        _ => None,
    }
}

/// Parses an RFC 8839 §5.1 `candidate:` attribute; `None` if it is not one (or is the empty
/// end-of-candidates marker).
pub fn parse_candidate_line(line: &str) -> Option<Candidate> {
    let line = line.trim().trim_start_matches("a=");
    let rest = line.strip_prefix("candidate:")?;
    let mut it = rest.split_whitespace();
    let foundation = it.next()?.to_owned();
    let _component = it.next()?;
    let protocol = it.next()?.to_lowercase();
    let priority = it.next()?.parse().ok();
    let address = it.next()?.to_owned();
    let port = it.next()?.parse().ok()?;
    if it.next()? != "typ" {
        return None;
    }
    let typ = it.next()?.to_owned();
    let mut c = Candidate {
        typ,
        protocol,
        address,
        port,
        priority,
        foundation: Some(foundation),
        ..Default::default()
    };
    while let Some(key) = it.next() {
        let value = it.next();
        match key {
            "raddr" => c.related_address = value.map(str::to_owned),
            "rport" => c.related_port = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_relay_candidates() {
        let host = parse_candidate_line(
            "candidate:1467250027 1 udp 2122260223 127.0.0.1 46243 typ host generation 0",
        )
        .unwrap();
        assert_eq!((host.typ.as_str(), host.port), ("host", 46243));
        assert_eq!(host.priority, Some(2122260223));
        assert_eq!(host.related_address, None);

        let relay = parse_candidate_line(
            "a=candidate:3 1 UDP 41885439 127.0.0.1 50001 typ relay raddr 127.0.0.1 rport 40000",
        )
        .unwrap();
        assert_eq!(relay.typ, "relay");
        assert_eq!(relay.protocol, "udp");
        assert_eq!(relay.related_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(relay.related_port, Some(40000));
    }

    #[test]
    fn turn_transport_comes_from_the_url() {
        assert_eq!(
            turn_transport("turn:127.0.0.1:3478?transport=udp").as_deref(),
            Some("udp")
        );
        assert_eq!(
            turn_transport("turn:127.0.0.1:3478?transport=tcp").as_deref(),
            Some("tcp")
        );
        assert_eq!(
            turn_transport("turn:127.0.0.1:3478").as_deref(),
            Some("udp")
        );
        assert_eq!(
            turn_transport("turns:127.0.0.1:5349").as_deref(),
            Some("tls")
        );
        assert_eq!(turn_transport("stun:127.0.0.1:3478"), None);
    }

    #[test]
    fn rejects_non_candidates() {
        assert!(parse_candidate_line("").is_none());
        assert!(parse_candidate_line("candidate:1 1 udp").is_none());
        assert!(parse_candidate_line("m=video 9 UDP/TLS/RTP/SAVPF 96").is_none());
    }
}
