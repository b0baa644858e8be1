//! The peer's side of the signaling protocol: a WebSocket to `/ws?room=NAME`.

use crate::error::PeerError;
use futures::{SinkExt, StreamExt};
use rtclab_signaling::protocol::{ClientMessage, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A joined room: send with `tx`, receive with `rx` (closed when the socket closes).
pub struct SignalClient {
    /// Messages to the server.
    pub tx: mpsc::UnboundedSender<ClientMessage>,
    /// Messages from the server; `None` once the socket is gone.
    pub rx: mpsc::UnboundedReceiver<ServerMessage>,
    // Where this client connected, so a peer whose signaling drops mid-session can rejoin.
    base: String,
    room: String,
}

impl SignalClient {
    /// Where this client connected, to connect again later (owned, so a background task can
    /// keep it while the client itself is replaced).
    pub fn reconnect_handle(&self) -> ReconnectHandle {
        ReconnectHandle {
            base: self.base.clone(),
            room: self.room.clone(),
        }
    }
}

/// A signaling server and room to connect to again; see [`SignalClient::reconnect_handle`].
#[derive(Debug, Clone)]
pub struct ReconnectHandle {
    base: String,
    room: String,
}

impl ReconnectHandle {
    /// Connects again to the same server and room (a new WebSocket, a new `joined`).
    pub async fn connect(&self) -> Result<SignalClient, PeerError> {
        connect(&self.base, &self.room).await
    }
}

/// Builds the WebSocket URL for `room` from a server base URL (`ws://`, `http://` or `host:port`).
pub fn room_url(base: &str, room: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        format!("ws://{base}")
    };
    let base = base.trim_end_matches("/ws");
    format!("{base}/ws?room={room}")
}

/// Connects to the signaling server and joins `room`.
pub async fn connect(base: &str, room: &str) -> Result<SignalClient, PeerError> {
    let url = room_url(base, room);
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| {
        PeerError::Signaling(format!(
            "cannot reach the signaling server at {url}: {e}; is `rtclab serve` running there?"
        ))
    })?;
    let (mut write, mut read) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (in_tx, in_rx) = mpsc::unbounded_channel::<ServerMessage>();
    tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let Ok(text) = serde_json::to_string(&msg) else {
                continue;
            };
            if write.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = write.close().await;
    });
    tokio::spawn(async move {
        while let Some(frame) = read.next().await {
            match frame {
                Ok(Message::Text(text)) => match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(msg) => {
                        if in_tx.send(msg).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!("ignoring unparsable signaling message: {e}"),
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    Ok(SignalClient {
        tx: out_tx,
        rx: in_rx,
        base: base.to_owned(),
        room: room.to_owned(),
    })
}

/// Two peers in one room with no server between them, for runs in virtual time (no TCP there):
/// the room's messages, as `rtclab serve` would send and relay them, from tasks on `runtime`.
/// The first client is told it joined alone and then that a peer joined; the second that it
/// joined as the second peer. Offers, answers and candidates pass to the other peer; `bye` is
/// passed on and followed by `peer-left`, as is a client dropped; events are not relayed (the
/// server only logs them).
pub fn in_memory_room(
    runtime: &std::sync::Arc<dyn webrtc::runtime::Runtime>,
    room: &str,
) -> (SignalClient, SignalClient) {
    let joined = |peers| ServerMessage::Joined {
        room: room.to_owned(),
        peers,
        ice_servers: Vec::new(),
    };
    let (a_out, a_out_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (b_out, b_out_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (a_in, a_in_rx) = mpsc::unbounded_channel::<ServerMessage>();
    let (b_in, b_in_rx) = mpsc::unbounded_channel::<ServerMessage>();
    let _ = a_in.send(joined(1));
    let _ = b_in.send(joined(2));
    let _ = a_in.send(ServerMessage::PeerJoined);
    for (mut from, to) in [(a_out_rx, b_in), (b_out_rx, a_in)] {
        runtime.spawn(Box::pin(async move {
            while let Some(msg) = from.recv().await {
                let relayed = match msg {
                    ClientMessage::Offer { sdp } => ServerMessage::Offer { sdp },
                    ClientMessage::Answer { sdp } => ServerMessage::Answer { sdp },
                    ClientMessage::Candidate { candidate } => {
                        ServerMessage::Candidate { candidate }
                    }
                    ClientMessage::Bye => {
                        let _ = to.send(ServerMessage::Bye);
                        break;
                    }
                    ClientMessage::Event { .. } => continue,
                };
                if to.send(relayed).is_err() {
                    return;
                }
            }
            let _ = to.send(ServerMessage::PeerLeft);
        }));
    }
    let client = |tx, rx| SignalClient {
        tx,
        rx,
        // Nowhere to reconnect to: the room lives as long as the run.
        base: String::new(),
        room: room.to_owned(),
    };
    (client(a_out, a_in_rx), client(b_out, b_in_rx))
}

#[cfg(test)]
mod tests {
    use super::room_url;

    #[test]
    fn base_urls_become_room_urls() {
        assert_eq!(
            room_url("ws://127.0.0.1:8080", "a"),
            "ws://127.0.0.1:8080/ws?room=a"
        );
        assert_eq!(room_url("http://h:1/", "a"), "ws://h:1/ws?room=a");
        assert_eq!(room_url("h:1", "a"), "ws://h:1/ws?room=a");
        assert_eq!(room_url("ws://h:1/ws", "a"), "ws://h:1/ws?room=a");
    }
}
