//! The signaling protocol: JSON text frames over `/ws?room=NAME`, tagged by `type`.
//!
//! A client joins a room by connecting. The server answers `joined` (with how many peers are
//! present) and tells the peer already there `peer-joined`. `offer`, `answer`, `candidate` and
//! `bye` are relayed verbatim to the other peer of the room. A peer that leaves (bye or closed
//! socket) makes the server send `peer-left` to the other. Anything the server cannot accept is
//! answered with `error` and the connection (and the room) stays up, except `room-full`, after
//! which the server closes the third peer's socket, and `rate-limited` (a client flooding the
//! server), after which it closes the flooder's socket with 1008 (policy violation).
//!
//! Room names are part of the protocol too ([`validate_room_name`]), so that a client can refuse
//! a bad name before connecting. Everything here is plain data with no I/O, and is available
//! without the crate's `server` feature.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest text frame the server accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Peers per room.
pub const MAX_PEERS_PER_ROOM: usize = 2;
/// Longest accepted room name, in characters (all of them ASCII).
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// Why a room name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoomNameError {
    /// No name (or an empty one) was given.
    #[error(
        "no room name given; connect to /ws?room=NAME with NAME made of 1-64 characters of A-Z a-z 0-9 _ . -"
    )]
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME_LEN`].
    #[error("room name is {0} characters long; use at most 64 characters of A-Z a-z 0-9 _ . -")]
    TooLong(usize),
    /// The name contains a character outside `[A-Za-z0-9_.-]`.
    #[error("room name contains {0:?}; use only A-Z a-z 0-9 _ . - (at most 64 characters)")]
    BadChar(char),
}

/// Checks a room name: 1–64 characters of `[A-Za-z0-9_.-]`. The server answers a bad name with
/// [`ErrorCode::BadRoom`] and this error's message.
pub fn validate_room_name(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(RoomNameError::BadChar(c));
    }
    // Checked after the characters so that the length is in bytes == characters.
    if name.len() > MAX_ROOM_NAME_LEN {
        return Err(RoomNameError::TooLong(name.len()));
    }
    Ok(())
}

/// An ICE candidate as the browser's `RTCIceCandidateInit` spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` attribute (RFC 8839 §5.1); empty string = end of candidates.
    pub candidate: String,
    /// The media section id.
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section index.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    /// ICE username fragment.
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// A STUN or TURN server as the browser's `RTCIceServer` spells it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerInfo {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN REST username (`expiry:user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of debug output (and so out of tracing).
        f.debug_struct("IceServerInfo")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Messages a client sends.
///
/// Parsing is strict: a field the message does not have (`{"type":"bye","x":1}`), a missing or
/// mistyped field, or an `event` that is not a JSON object is an error, so that a client's
/// mistake is answered instead of half-understood. (The server answers such a message with
/// `error` / [`ErrorCode::UnknownMessage`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Deserialized through `WireClientMessage`, which does the strict checking; serializing uses
// this enum's own (identical) shape.
#[serde(tag = "type", rename_all = "kebab-case", from = "WireClientMessage")]
pub enum ClientMessage {
    /// SDP offer, relayed to the other peer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// SDP answer, relayed to the other peer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate, relayed to the other peer.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// The peer is leaving; the other peer gets `peer-left`.
    Bye,
    /// A JSON-lines event from a browser, for the session log (see the browser bridge).
    Event {
        /// One event object (parsing refuses anything but a JSON object); the server validates
        /// and stamps it.
        event: serde_json::Value,
    },
}

/// What [`ClientMessage`] parses from: the same messages, with the strictness serde does not
/// give the public enum.
///
/// - `deny_unknown_fields` is ignored for the *unit* variants of an internally tagged enum (serde
///   accepts `{"type":"bye","x":1}` as `Bye`; serde-rs/serde#2123, issue 18 finding 9), but
///   honoured for an empty struct variant; so `bye` is `Bye {}` here while the public variant
///   stays `ClientMessage::Bye`, which clients construct.
/// - `event` must be an object (an event-log record), not any JSON value.
///
/// The inner [`IceCandidate`] stays lenient on purpose: it is the browser's
/// `RTCIceCandidate.toJSON()`, which the W3C may extend, and it is relayed, not interpreted.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum WireClientMessage {
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: IceCandidate,
    },
    Bye {},
    Event {
        #[serde(deserialize_with = "json_object")]
        event: serde_json::Value,
    },
}

impl From<WireClientMessage> for ClientMessage {
    fn from(wire: WireClientMessage) -> Self {
        match wire {
            WireClientMessage::Offer { sdp } => ClientMessage::Offer { sdp },
            WireClientMessage::Answer { sdp } => ClientMessage::Answer { sdp },
            WireClientMessage::Candidate { candidate } => ClientMessage::Candidate { candidate },
            WireClientMessage::Bye {} => ClientMessage::Bye,
            WireClientMessage::Event { event } => ClientMessage::Event { event },
        }
    }
}

/// A JSON object as a `Value`, with an error that says what was expected instead of serde's
/// generic "invalid type".
fn json_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Value, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    if value.is_object() {
        return Ok(value);
    }
    let got = match &value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    Err(serde::de::Error::custom(format!(
        "\"event\" must be a JSON object such as {{\"kind\":\"browser.event\"}}, not {got}"
    )))
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// You are in the room; `peers` counts you too (1 or 2).
    Joined {
        /// Room name.
        room: String,
        /// Peers now in the room, including you.
        peers: usize,
        /// STUN/TURN servers for your peer connection, TURN ones with credentials issued for
        /// you alone (absent when the server has no TURN secret).
        #[serde(rename = "iceServers", default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServerInfo>,
    },
    /// Another peer joined your room.
    PeerJoined,
    /// The other peer left (bye, closed socket or vanished).
    PeerLeft,
    /// Relayed offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Relayed answer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// Relayed candidate.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Relayed bye.
    Bye,
    /// A line of the room's session log, pushed by the server (the browser page charts and
    /// lists these); peers that do not care ignore it.
    Event {
        /// One event-log record.
        event: serde_json::Value,
    },
    /// Something you sent was refused; `code` is stable, `message` says what to do.
    Error {
        /// Machine-readable reason, one of [`ErrorCode`].
        code: ErrorCode,
        /// Human-readable explanation with the fix.
        message: String,
    },
}

/// Stable error codes of `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The text frame is not valid JSON.
    MalformedJson,
    /// Valid JSON, but not a known message (unknown `type` or bad fields).
    UnknownMessage,
    /// The frame exceeds [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// The room already has [`MAX_PEERS_PER_ROOM`] peers; the socket is closed after this.
    RoomFull,
    /// The room name is missing or invalid (1–64 chars of `[A-Za-z0-9_.-]`).
    BadRoom,
    /// A relayed message was sent while alone in the room.
    NoPeer,
    /// The client sent messages faster than the server's per-connection rate limit allows (see
    /// the server's `limits` module); the server closes the socket (1008) after this.
    RateLimited,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert_eq!(validate_room_name("a"), Ok(()));
        assert_eq!(validate_room_name("Room_1.test-2"), Ok(()));
        assert_eq!(validate_room_name(&"x".repeat(64)), Ok(()));
        assert_eq!(validate_room_name(""), Err(RoomNameError::Empty));
        assert_eq!(
            validate_room_name(&"x".repeat(65)),
            Err(RoomNameError::TooLong(65))
        );
        assert_eq!(validate_room_name("a b"), Err(RoomNameError::BadChar(' ')));
        assert_eq!(validate_room_name("a/b"), Err(RoomNameError::BadChar('/')));
        assert_eq!(validate_room_name("é"), Err(RoomNameError::BadChar('é')));
    }

    /// Issue 18 finding 9: extra fields, including on `bye`, and a non-object `event` are refused;
    /// everything the page (`web/app.js`) and the peer (`rtclab-peer`) send still parses.
    #[test]
    fn client_messages_are_strict() {
        let parse = |text: &str| serde_json::from_str::<ClientMessage>(text);
        for bad in [
            r#"{"type":"bye","x":1}"#,
            r#"{"type":"offer","sdp":"v=0","x":1}"#,
            r#"{"type":"event","event":5}"#,
            r#"{"type":"event","event":"text"}"#,
            r#"{"type":"event","event":[1]}"#,
            r#"{"type":"event","event":null}"#,
            r#"{"type":"event","event":{},"x":1}"#,
            r#"{"type":"event"}"#,
        ] {
            assert!(parse(bad).is_err(), "accepted {bad}");
        }
        let err = parse(r#"{"type":"event","event":5}"#).expect_err("non-object event");
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
        let err = parse(r#"{"type":"bye","x":1}"#).expect_err("bye with a field");
        assert!(err.to_string().contains("unknown field `x`"), "{err}");

        // What web/app.js sends (its send() calls), and what the peer serializes.
        let good = [
            (r#"{"type":"bye"}"#, ClientMessage::Bye),
            (
                r#"{"type":"offer","sdp":"v=0\r\n"}"#,
                ClientMessage::Offer {
                    sdp: "v=0\r\n".into(),
                },
            ),
            (
                r#"{"type":"answer","sdp":"v=0"}"#,
                ClientMessage::Answer { sdp: "v=0".into() },
            ),
            (
                r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}"#,
                ClientMessage::Candidate {
                    candidate: IceCandidate {
                        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
                        sdp_mid: Some("0".into()),
                        sdp_mline_index: Some(0),
                        username_fragment: Some("u".into()),
                    },
                },
            ),
            (
                r#"{"type":"event","event":{"kind":"browser.event","what":"x","detail":{}}}"#,
                ClientMessage::Event {
                    event: serde_json::json!({"kind":"browser.event","what":"x","detail":{}}),
                },
            ),
        ];
        for (text, expected) in good {
            assert_eq!(parse(text).expect(text), expected);
            // The round trip: what a Rust client serializes parses back to the same message.
            let again = serde_json::to_string(&expected).expect("serialize");
            assert_eq!(parse(&again).expect(&again), expected);
        }
        // Browsers may send null for an absent sdpMid / sdpMLineIndex: still accepted.
        let nulls = r#"{"type":"candidate","candidate":{"candidate":"","sdpMid":null,"sdpMLineIndex":null,"usernameFragment":null}}"#;
        assert!(parse(nulls).is_ok());
    }
}

#[cfg(test)]
mod float_tests {
    use super::*;

    /// Found by the `signaling` fuzz target in CI: an event's number with a long mantissa did not
    /// survive a round trip. serde_json's default float parser is fast but not always correctly
    /// rounded; `float_roundtrip` (on in the workspace) makes text → f64 → text → f64 exact, so
    /// the event log and the page see the same `t` the peer wrote.
    #[test]
    fn event_numbers_survive_a_round_trip() {
        let text = r#"{"type": "event", "event": {"t": 6666666660000000002985325346928896675.52, "kind": "note"}}"#;
        let msg: ServerMessage = serde_json::from_str(text).expect("parses");
        let again: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&msg).expect("serialises"))
                .expect("parses back");
        assert_eq!(again, msg);
    }
}
