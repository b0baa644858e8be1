//! The room registry: which peers are in which room. A plain data structure with no I/O, so the
//! join/leave rules can be unit-tested; the WebSocket layer decides what to send.

use std::collections::HashMap;

use thiserror::Error;

use crate::protocol::MAX_PEERS_PER_ROOM;
// Room names belong to the protocol, so that clients can check them without the server feature;
// re-exported so that `rooms::validate_room_name` and friends keep working.
pub use crate::protocol::{MAX_ROOM_NAME_LEN, RoomNameError, validate_room_name};

/// Identifies one peer (one WebSocket connection) for the life of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A join was refused because the room already has [`MAX_PEERS_PER_ROOM`] peers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("room '{room}' already has two peers; pick another room name")]
pub struct RoomFull {
    /// The room that is full.
    pub room: String,
}

/// The outcome of a successful [`Rooms::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined<H> {
    /// The new peer's id, needed to leave or to find the others.
    pub id: PeerId,
    /// Peers in the room now, including the new one.
    pub peers: usize,
    /// Handles of the peers that were already there (to tell them `peer-joined`).
    pub others: Vec<H>,
}

/// Rooms of at most [`MAX_PEERS_PER_ROOM`] peers, each peer carrying a handle `H` (in the server,
/// the sending end of its connection's queue).
#[derive(Debug)]
pub struct Rooms<H> {
    rooms: HashMap<String, Vec<(PeerId, H)>>,
    next_id: u64,
}

impl<H> Default for Rooms<H> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
            next_id: 0,
        }
    }
}

impl<H: Clone> Rooms<H> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a peer to `room` (creating it), unless the room is full.
    pub fn join(&mut self, room: &str, handle: H) -> Result<Joined<H>, RoomFull> {
        let members = self.rooms.entry(room.to_owned()).or_default();
        if members.len() >= MAX_PEERS_PER_ROOM {
            return Err(RoomFull {
                room: room.to_owned(),
            });
        }
        let others = members.iter().map(|(_, h)| h.clone()).collect();
        let id = PeerId(self.next_id);
        self.next_id += 1;
        members.push((id, handle));
        Ok(Joined {
            id,
            peers: members.len(),
            others,
        })
    }

    /// Removes a peer and returns the handles of those still in the room (to tell them
    /// `peer-left`). Leaving twice, or a room that is gone, returns `None`.
    pub fn leave(&mut self, room: &str, id: PeerId) -> Option<Vec<H>> {
        let members = self.rooms.get_mut(room)?;
        let pos = members.iter().position(|(p, _)| *p == id)?;
        members.remove(pos);
        let others: Vec<H> = members.iter().map(|(_, h)| h.clone()).collect();
        // Empty rooms are dropped so that the registry does not grow with every name ever used.
        if members.is_empty() {
            self.rooms.remove(room);
        }
        Some(others)
    }

    /// Handles of every peer in `room`.
    pub fn members(&self, room: &str) -> Vec<H> {
        self.rooms
            .get(room)
            .map(|members| members.iter().map(|(_, h)| h.clone()).collect())
            .unwrap_or_default()
    }

    /// Handles of the peers in `room` other than `id`.
    pub fn others(&self, room: &str, id: PeerId) -> Vec<H> {
        self.rooms
            .get(room)
            .map(|members| {
                members
                    .iter()
                    .filter(|(p, _)| *p != id)
                    .map(|(_, h)| h.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<H> Rooms<H> {
    /// Rooms with at least one peer.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Peers across all rooms.
    pub fn peer_count(&self) -> usize {
        self.rooms.values().map(Vec::len).sum()
    }

    /// Peers in one room (0 if it does not exist).
    pub fn peers_in(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_join_is_alone_second_sees_first() {
        let mut rooms = Rooms::new();
        let a = rooms.join("r", "a").expect("first join");
        assert_eq!(a.peers, 1);
        assert!(a.others.is_empty());
        let b = rooms.join("r", "b").expect("second join");
        assert_eq!(b.peers, 2);
        assert_eq!(b.others, vec!["a"]);
        assert_ne!(a.id, b.id);
        assert_eq!(rooms.others("r", a.id), vec!["b"]);
        assert_eq!(rooms.others("r", b.id), vec!["a"]);
        assert_eq!(rooms.room_count(), 1);
        assert_eq!(rooms.peer_count(), 2);
    }

    #[test]
    fn third_join_is_refused_and_room_unchanged() {
        let mut rooms = Rooms::new();
        let a = rooms.join("r", "a").expect("a");
        let b = rooms.join("r", "b").expect("b");
        let err = rooms.join("r", "c").expect_err("room is full");
        assert_eq!(
            err.to_string(),
            "room 'r' already has two peers; pick another room name"
        );
        assert_eq!(rooms.peers_in("r"), 2);
        assert_eq!(rooms.others("r", a.id), vec!["b"]);
        assert_eq!(rooms.others("r", b.id), vec!["a"]);
    }

    #[test]
    fn leave_reports_remaining_and_allows_rejoin() {
        let mut rooms = Rooms::new();
        let a = rooms.join("r", "a").expect("a");
        let b = rooms.join("r", "b").expect("b");
        assert_eq!(rooms.leave("r", b.id), Some(vec!["a"]));
        assert_eq!(rooms.peers_in("r"), 1);
        let c = rooms.join("r", "c").expect("room has space again");
        assert_eq!(c.peers, 2);
        assert_eq!(c.others, vec!["a"]);
        assert_ne!(c.id, b.id, "ids are not reused");
        assert_eq!(rooms.others("r", a.id), vec!["c"]);
    }

    #[test]
    fn leaving_twice_or_unknown_is_none() {
        let mut rooms = Rooms::new();
        let a = rooms.join("r", "a").expect("a");
        assert_eq!(rooms.leave("r", a.id), Some(vec![]));
        assert_eq!(rooms.leave("r", a.id), None);
        assert_eq!(rooms.leave("nope", a.id), None);
    }

    #[test]
    fn empty_rooms_are_removed() {
        let mut rooms = Rooms::new();
        let a = rooms.join("r", "a").expect("a");
        rooms.join("s", "b").expect("b");
        assert_eq!(rooms.room_count(), 2);
        rooms.leave("r", a.id);
        assert_eq!(rooms.room_count(), 1);
        assert_eq!(rooms.peers_in("r"), 0);
        assert_eq!(rooms.peer_count(), 1);
    }

    #[test]
    fn rooms_are_independent() {
        let mut rooms = Rooms::new();
        rooms.join("r", "a").expect("a");
        rooms.join("r", "b").expect("b");
        let c = rooms.join("s", "c").expect("other room is not full");
        assert_eq!(c.peers, 1);
        assert!(c.others.is_empty());
    }
}
