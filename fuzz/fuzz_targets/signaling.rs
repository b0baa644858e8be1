//! The signaling protocol and the room registry, fed a *sequence* of connections and frames.
//!
//! The input is lines, one action each: a peer slot (`0`-`7`), a letter, then the rest of the
//! line. `j NAME` connects the slot to room NAME, `t TEXT` sends a text frame, `c` closes the
//! connection, and any other letter reads the rest as a [`ServerMessage`]. Each frame goes
//! through the same two parsing steps as the server's WebSocket handler (JSON, then
//! [`ClientMessage`]), and what the handler would do with it (relay, bye, leave) is done to a
//! [`Rooms`] registry. A simple model of who is in which room checks the
//! registry after every step. Example: `0jr1\n1jr1\n0t{"type":"offer","sdp":"v=0"}\n1c`.
//!
//! Also checked: a parsed message serialises and parses back to itself, and any text parses as
//! a [`ServerMessage`] (what a client reads) without a panic.
#![no_main]

use rtclab_fuzz::fuzz_target;
use rtclab_signaling::protocol::MAX_MESSAGE_BYTES;
use rtclab_signaling::rooms::PeerId;
use rtclab_signaling::{ClientMessage, Rooms, ServerMessage, validate_room_name};

/// Connection slots; few, so that sequences often meet in one room.
const SLOTS: usize = 8;

/// One connection of the model: its room and the id the registry gave it.
#[derive(Clone)]
struct Conn {
    room: String,
    id: PeerId,
}

/// The registry and the model it is checked against.
struct Lab {
    rooms: Rooms<usize>,
    conns: [Option<Conn>; SLOTS],
}

impl Lab {
    /// Slots in `room`, in join order (the registry keeps that order too).
    fn members(&self, room: &str, order: &[usize]) -> Vec<usize> {
        order
            .iter()
            .copied()
            .filter(|&s| self.conns[s].as_ref().is_some_and(|c| c.room == room))
            .collect()
    }

    fn check(&self, order: &[usize]) {
        let mut rooms: Vec<&str> = self
            .conns
            .iter()
            .flatten()
            .map(|c| c.room.as_str())
            .collect();
        rooms.sort_unstable();
        rooms.dedup();
        assert_eq!(
            self.rooms.room_count(),
            rooms.len(),
            "empty rooms are dropped"
        );
        assert_eq!(self.rooms.peer_count(), self.conns.iter().flatten().count());
        for room in rooms {
            let members = self.members(room, order);
            assert!(members.len() <= 2, "a room holds two peers");
            assert_eq!(self.rooms.members(room), members);
            assert_eq!(self.rooms.peers_in(room), members.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lab = Lab {
        rooms: Rooms::new(),
        conns: Default::default(),
    };
    // Slots in the order they joined, to compare with the registry's member order.
    let mut order: Vec<usize> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let [slot, op, rest @ ..] = line else {
            continue;
        };
        let slot = usize::from(*slot) % SLOTS;
        // WebSocket text frames and query strings are UTF-8 by the time the server sees them.
        let rest = String::from_utf8_lossy(rest);
        match op {
            b'j' => join(&mut lab, &mut order, slot, &rest),
            b't' => {
                if frame(&lab, slot, &rest) {
                    leave(&mut lab, &mut order, slot);
                }
            }
            b'c' => leave(&mut lab, &mut order, slot),
            _ => {
                // What a client reads: must not panic, whatever the server (or a stranger) sent.
                if let Ok(msg) = serde_json::from_str::<ServerMessage>(&rest) {
                    let text = serde_json::to_string(&msg).expect("a server message serialises");
                    let again: ServerMessage =
                        serde_json::from_str(&text).expect("a server message parses back");
                    assert_eq!(again, msg);
                }
            }
        }
        lab.check(&order);
    }
});

/// A connection to `/ws?room=NAME`.
fn join(lab: &mut Lab, order: &mut Vec<usize>, slot: usize, room: &str) {
    if lab.conns[slot].is_some() {
        return; // one connection joins once
    }
    if let Err(e) = validate_room_name(room) {
        assert!(!e.to_string().is_empty());
        return;
    }
    let before = lab.members(room, order);
    match lab.rooms.join(room, slot) {
        Ok(joined) => {
            assert!(before.len() < 2);
            assert_eq!(joined.peers, before.len() + 1);
            assert_eq!(joined.others, before);
            lab.conns[slot] = Some(Conn {
                room: room.to_owned(),
                id: joined.id,
            });
            order.push(slot);
        }
        Err(full) => {
            assert_eq!(before.len(), 2, "refused a join to a room with space");
            assert_eq!(full.room, room);
        }
    }
}

/// The socket closed (or the peer said bye): the registry forgets it, and the others are told.
fn leave(lab: &mut Lab, order: &mut Vec<usize>, slot: usize) {
    let Some(conn) = lab.conns[slot].take() else {
        return;
    };
    order.retain(|&s| s != slot);
    let left = lab.rooms.leave(&conn.room, conn.id);
    assert_eq!(left, Some(lab.members(&conn.room, order)));
    assert_eq!(lab.rooms.leave(&conn.room, conn.id), None, "leaving twice");
}

/// One text frame, as the server's handler treats it; true when the peer leaves (bye).
fn frame(lab: &Lab, slot: usize, text: &str) -> bool {
    let Some(conn) = &lab.conns[slot] else {
        return false;
    };
    if text.len() > MAX_MESSAGE_BYTES {
        return false;
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let Ok(msg) = serde_json::from_value::<ClientMessage>(value) else {
        // Strict parsing is the same from text as from a value.
        assert!(serde_json::from_str::<ClientMessage>(text).is_err());
        return false;
    };
    // What a Rust client would have sent for this message parses back to it.
    let again = serde_json::to_string(&msg).expect("a client message serialises");
    assert_eq!(
        serde_json::from_str::<ClientMessage>(&again).expect("a client message parses back"),
        msg
    );
    let others = lab.rooms.others(&conn.room, conn.id);
    assert!(others.len() <= 1 && !others.contains(&slot));
    matches!(msg, ClientMessage::Bye)
}
