//! The `/ws?room=NAME` WebSocket handler: one task per connection, relaying through the room
//! registry.
//!
//! Every message bound for a peer goes through that peer's bounded queue and is enqueued with
//! `try_send` while the registry lock is held. So nothing ever waits under the lock, and each peer
//! sees events in registry order (`joined` before anything relayed to it, `peer-left` before a
//! later `peer-joined`). A peer whose queue overflows is not reading its socket; it is
//! disconnected ("kicked") rather than silently losing signaling messages.
//!
//! The *sender* is limited too (issue 18 finding 3): each connection spends a token per incoming
//! frame from a token bucket ([`crate::limits::MESSAGE_BURST`] and
//! [`crate::limits::MESSAGE_RATE_PER_SEC`]), and a connection out of tokens gets `rate-limited`
//! and is closed with 1008. Because the burst is smaller than the queue, what the limit lets
//! through always fits in the other peer's queue, so a flooder is closed before its victim could
//! be kicked. And every session is pinged; one from which nothing arrives for the idle timeout is
//! closed (finding 5).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, timeout};

use crate::AppState;
use crate::error::AppError;
use crate::limits::{ConnectionSlot, TokenBucket};
use crate::protocol::{
    ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, ServerMessage, validate_room_name,
};
use crate::rooms::PeerId;

/// Limit handed to axum for whole messages and single frames. Deliberately well above
/// [`MAX_MESSAGE_BYTES`]: axum closes the socket when its limit is exceeded, whereas the protocol
/// promises an `error` (`too-large`) and an intact room. So we enforce `MAX_MESSAGE_BYTES`
/// ourselves and keep axum's limit only as a memory guard against absurd frames.
const TRANSPORT_LIMIT_BYTES: usize = 1024 * 1024;

/// Read buffer per WebSocket connection. tungstenite's default, 128 KiB, was most of the ~142 KiB
/// the server held per client in the 1,000-client load bench (docs/results/signaling-load.md).
/// Signaling messages are a few KiB; a larger message still arrives, in more reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Messages that may wait for one peer's socket; signaling needs an offer/answer and a few dozen
/// candidates, so this only fills up when the client stops reading.
pub(crate) const QUEUE_LEN: usize = 256;
// A sender's burst must fit in a receiving peer's queue (limits::MESSAGE_BURST), so what gets
// through the rate limit never overflows a reader that has not read yet.
const _: () = assert!((crate::limits::MESSAGE_BURST as usize) < QUEUE_LEN);
/// How long one write may take before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the client's half of the close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Longest quoted parser error in an `error` message; serde may echo the offending value.
const MAX_QUOTED_ERROR: usize = 200;

/// A connected peer as the registry stores it: where to send its messages.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    tx: mpsc::Sender<ServerMessage>,
    kick: Arc<Notify>,
}

impl Peer {
    /// Queues a message without waiting; a full queue disconnects the (non-reading) peer.
    pub(crate) fn deliver(&self, msg: ServerMessage) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("peer's outgoing queue is full (not reading?); disconnecting it");
                self.kick.notify_one();
            }
            // The connection task is already finishing; it leaves the room itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Query string of `/ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct WsParams {
    room: Option<String>,
}

/// `GET /ws?room=NAME`: upgrades, then runs the session. An invalid room name is reported over
/// the socket (`bad-room`, then close) rather than as HTTP 400, because browsers hide the HTTP
/// status of a failed upgrade from JavaScript.
///
/// `slot` is the connection's place in the per-address connection count (absent when the router
/// is driven without the server's accept loop, e.g. in tests): the session keeps it, so that an
/// upgraded connection counts until the session ends, not just until the HTTP exchange does.
pub(crate) async fn ws_handler(
    State(state): State<Arc<AppState>>,
    slot: Option<Extension<ConnectionSlot>>,
    query: Result<Query<WsParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    state.check_origin(&headers).map_err(AppError::Origin)?;
    let upgrade = upgrade?;
    let Query(params) = query?;
    let room = params.room.unwrap_or_default();
    Ok(upgrade
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .max_frame_size(TRANSPORT_LIMIT_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_failed_upgrade(|err| tracing::debug!(%err, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            session(socket, state, room).await;
        }))
}

/// Why a session ended; decides the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Bye,
    ClientClosed,
    Failed,
    Kicked,
    Shutdown,
    /// The client sent frames faster than its token bucket allows.
    RateLimited,
    /// Nothing (no message, no Pong) arrived within the idle timeout.
    TimedOut,
}

/// What to do after one incoming frame.
enum Flow {
    Continue,
    Stop(End),
}

/// Removes the peer from its room when dropped, telling the other peer `peer-left`. A guard so
/// that the room is cleaned up however the session ends (error, panic in a hook, cancelled task).
struct Membership {
    state: Arc<AppState>,
    room: String,
    id: PeerId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.state.lock_rooms();
        if let Some(others) = rooms.leave(&self.room, self.id) {
            tracing::info!(room = %self.room, peers = others.len(), "peer left");
            for other in &others {
                other.deliver(ServerMessage::PeerLeft);
            }
        }
    }
}

/// Counts a running session in [`AppState`] while alive, so that shutdown can wait (up to its
/// deadline) for every session to send its close frame.
struct Running(Arc<AppState>);

impl Running {
    fn new(state: &Arc<AppState>) -> Self {
        state.sessions.send_modify(|n| *n += 1);
        Self(Arc::clone(state))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.sessions.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One connection, from join to close.
async fn session(mut socket: WebSocket, state: Arc<AppState>, room: String) {
    let _running = Running::new(&state);
    if let Err(err) = validate_room_name(&room) {
        tracing::info!(%err, "refusing bad room name");
        refuse(socket, ErrorCode::BadRoom, err.to_string()).await;
        return;
    }

    let (tx, mut rx) = mpsc::channel(QUEUE_LEN);
    let me = Peer {
        tx,
        kick: Arc::new(Notify::new()),
    };
    let joined = {
        let mut rooms = state.lock_rooms();
        rooms.join(&room, me.clone()).inspect(|joined| {
            // Under the lock, so `joined` is queued before anything the other peer relays.
            me.deliver(ServerMessage::Joined {
                room: room.clone(),
                peers: joined.peers,
                ice_servers: state
                    .ice
                    .as_ref()
                    .map(|ice| ice.issue(&format!("{room}.{}", joined.id)))
                    .unwrap_or_default(),
            });
            for other in &joined.others {
                other.deliver(ServerMessage::PeerJoined);
            }
        })
    };
    let joined = match joined {
        Ok(joined) => joined,
        Err(full) => {
            tracing::info!(%room, "refusing peer: room full");
            refuse(socket, ErrorCode::RoomFull, full.to_string()).await;
            return;
        }
    };
    tracing::info!(%room, peers = joined.peers, "peer joined");
    let membership = Membership {
        state: Arc::clone(&state),
        room: room.clone(),
        id: joined.id,
    };
    // Outside the lock: the hook may well look at the state (e.g. to start a peer).
    if let Some(hook) = &state.on_join {
        hook(&room, joined.peers);
    }

    let conn = Connection {
        state: &state,
        room: &room,
        me: &me,
        id: joined.id,
    };
    let mut shutdown = state.shutdown.subscribe();
    let limits = state.limits;
    let mut bucket = TokenBucket::new(
        limits.message_burst,
        limits.message_rate_per_sec,
        Instant::now(),
    );
    // RFC 6455 §5.5.2: a Ping must be answered with a Pong. The first ping goes out one interval
    // after the join; a client that keeps sending needs no ping to stay, but gets them anyway,
    // which costs two bytes every interval. `interval_at` panics on a zero period; 1 ms is the
    // least a test could want.
    let ping_every = limits.ping_interval.max(Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Reset by every frame that arrives (a Pong or anything else proves the client is there).
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let end = loop {
        // Outgoing and incoming are served by one task; this is fine because enqueueing never
        // blocks (try_send), so two sessions can never wait on each other.
        tokio::select! {
            out = rx.recv() => {
                // `me` holds a sender, so the queue cannot close while we loop.
                let Some(msg) = out else { break End::Failed };
                if !send_json(&mut socket, &msg).await {
                    break End::Failed;
                }
            }
            frame = socket.recv() => match frame {
                Some(Ok(frame)) => {
                    let now = Instant::now();
                    idle.as_mut().reset(now + limits.idle_timeout);
                    // Every frame but Close costs a token: Pings too, since each one makes the
                    // server queue a Pong. The limited frame is not handled.
                    if !matches!(frame, Message::Close(_)) && !bucket.try_take(now) {
                        break End::RateLimited;
                    }
                    match conn.on_frame(frame) {
                        Flow::Continue => {}
                        Flow::Stop(end) => break end,
                    }
                }
                Some(Err(err)) => {
                    tracing::debug!(%room, %err, "WebSocket error");
                    break End::Failed;
                }
                None => break End::ClientClosed,
            },
            () = me.kick.notified() => break End::Kicked,
            _ = ping.tick() => {
                let sent = timeout(SEND_TIMEOUT, socket.send(Message::Ping(Default::default())));
                if !matches!(sent.await, Ok(Ok(()))) {
                    break End::Failed;
                }
            }
            () = &mut idle => break End::TimedOut,
            // The `Ref` that `wait_for` yields is not `Send`; drop it inside the branch future.
            () = async { drop(shutdown.wait_for(|stop| *stop).await) } => break End::Shutdown,
        }
    };
    tracing::debug!(%room, ?end, "session ending");
    drop(membership);

    let (code, reason) = match end {
        // The socket is gone or already closing; nothing more can be sent.
        End::ClientClosed | End::Failed => return,
        End::Bye => (close_code::NORMAL, "bye"),
        End::Kicked => (close_code::POLICY, "not reading messages"),
        End::Shutdown => (close_code::AWAY, "server shutting down"),
        // RFC 6455 §7.4.1: 1008 is the generic "violates its policy" code.
        End::RateLimited => (close_code::POLICY, "message rate limit exceeded"),
        // RFC 6455 §7.4.1 has no code for a timeout; 1001 ("going away") is what the server is
        // doing with this connection. The client is probably gone and never sees it anyway.
        End::TimedOut => (
            close_code::AWAY,
            "no message or pong within the idle timeout",
        ),
    };
    // Deliver what was queued before leaving (e.g. an error reply), then close properly.
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        if !send_json(&mut socket, &msg).await {
            return;
        }
    }
    if end == End::RateLimited {
        tracing::warn!(%room, "client exceeded the message rate limit; closing it");
        // Sent here, after the queue, rather than queued: the queue may be full of the flooder's
        // own error replies, and this one must arrive.
        let message = format!(
            "more than {} messages at once or {} per second; signaling needs an offer, an answer \
             and a few dozen candidates, so this connection is closed",
            limits.message_burst, limits.message_rate_per_sec
        );
        let error = ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message,
        };
        if !send_json(&mut socket, &error).await {
            return;
        }
    }
    if end == End::TimedOut {
        tracing::info!(%room, timeout = ?limits.idle_timeout, "closing silent WebSocket");
    }
    close(socket, code, reason).await;
}

/// Per-session context for handling incoming frames.
struct Connection<'a> {
    state: &'a AppState,
    room: &'a str,
    me: &'a Peer,
    id: PeerId,
}

impl Connection<'_> {
    /// Handles one incoming frame; never fails, problems are answered with `error`.
    fn on_frame(&self, frame: Message) -> Flow {
        match frame {
            Message::Text(text) => self.on_text(text.as_str()),
            Message::Binary(_) => {
                self.reply_error(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not part of the protocol; send JSON messages as text frames"
                        .to_owned(),
                );
                Flow::Continue
            }
            // axum answers pings itself.
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => Flow::Stop(End::ClientClosed),
        }
    }

    fn on_text(&self, text: &str) -> Flow {
        if text.len() > MAX_MESSAGE_BYTES {
            self.reply_error(
                ErrorCode::TooLarge,
                format!(
                    "message is {} bytes; the limit is {MAX_MESSAGE_BYTES} bytes per message \
                     (send ICE candidates one per message)",
                    text.len()
                ),
            );
            return Flow::Continue;
        }
        // Two steps, so that "not JSON" and "not one of our messages" get different codes.
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                self.reply_error(
                    ErrorCode::MalformedJson,
                    format!(
                        "not valid JSON ({}); send one JSON object per text frame, \
                         e.g. {{\"type\":\"offer\",\"sdp\":\"...\"}}",
                        brief(&err)
                    ),
                );
                return Flow::Continue;
            }
        };
        let msg: ClientMessage = match serde_json::from_value(value) {
            Ok(msg) => msg,
            Err(err) => {
                self.reply_error(
                    ErrorCode::UnknownMessage,
                    format!(
                        "not a known message ({}); expected an object whose \"type\" is one of \
                         offer {{sdp}}, answer {{sdp}}, candidate {{candidate}}, bye, event {{event}}",
                        brief(&err)
                    ),
                );
                return Flow::Continue;
            }
        };
        match msg {
            ClientMessage::Offer { sdp } => self.relay(ServerMessage::Offer { sdp }),
            ClientMessage::Answer { sdp } => self.relay(ServerMessage::Answer { sdp }),
            ClientMessage::Candidate { candidate } => {
                self.relay(ServerMessage::Candidate { candidate })
            }
            ClientMessage::Bye => {
                // Leaving alone is not an error: there is just nobody to tell. The other peer
                // gets `peer-left` right after this, when the membership is dropped.
                let rooms = self.state.lock_rooms();
                for other in rooms.others(self.room, self.id) {
                    other.deliver(ServerMessage::Bye);
                }
                return Flow::Stop(End::Bye);
            }
            ClientMessage::Event { event } => match &self.state.on_event {
                Some(hook) => hook(self.room, event),
                // Events are for the session log only; never relayed to the other peer.
                None => tracing::trace!(room = %self.room, "browser event ignored (no hook)"),
            },
        }
        Flow::Continue
    }

    /// Sends `msg` to the other peer of the room, or `no-peer` back if there is none.
    fn relay(&self, msg: ServerMessage) {
        let rooms = self.state.lock_rooms();
        let others = rooms.others(self.room, self.id);
        if others.is_empty() {
            self.me.deliver(ServerMessage::Error {
                code: ErrorCode::NoPeer,
                message: format!(
                    "you are alone in room '{}'; wait for peer-joined before sending offer, \
                     answer or candidate",
                    self.room
                ),
            });
            return;
        }
        tracing::debug!(room = %self.room, ?msg, "relaying");
        for other in &others {
            other.deliver(msg.clone());
        }
    }

    fn reply_error(&self, code: ErrorCode, message: String) {
        tracing::debug!(room = %self.room, ?code, %message, "refusing message");
        // Through the queue rather than the socket, so it stays in order with queued messages.
        self.me.deliver(ServerMessage::Error { code, message });
    }
}

/// The parser error, cut short (serde may quote a large part of the input).
fn brief(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.char_indices().nth(MAX_QUOTED_ERROR) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// Sends one server message; `false` if the socket is unusable.
async fn send_json(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    let text = match serde_json::to_string(msg) {
        Ok(text) => text,
        Err(err) => {
            // Cannot happen for these types; skipping the message keeps the session alive.
            tracing::error!(%err, "cannot serialize server message");
            return true;
        }
    };
    matches!(
        timeout(SEND_TIMEOUT, socket.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// Sends `error` and closes: for peers that never get into a room.
async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    if send_json(&mut socket, &ServerMessage::Error { code, message }).await {
        close(socket, close_code::POLICY, "refused").await;
    }
}

/// Sends a close frame and waits briefly for the client's, so browsers see a clean close.
async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if let Ok(Ok(())) = timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await {
        let _ = timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = socket.recv().await {}
        })
        .await;
    }
}
