//! The signaling protocol: JSON text frames over `/ws?room=NAME`, tagged by `type`.
//!
//! A client joins a room by connecting. The server answers `joined` (with how many peers are
//! present) and tells the peer already there `peer-joined`. `offer`, `answer`, `candidate` and
//! `bye` are relayed verbatim to the other peer of the room. A peer that leaves (bye or closed
//! socket) makes the server send `peer-left` to the other. Anything the server cannot accept is
//! answered with `error` and the connection (and the room) stays up, except `room-full`, after
//! which the server closes the third peer's socket.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
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
        /// One event object; the server validates and stamps it.
        event: serde_json::Value,
    },
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
}
