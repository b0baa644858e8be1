//! The signaling server: shared state, the router and its plain HTTP routes, and serving it.
//! The WebSocket sessions are in `ws`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::control::{self, ImpairControl};
use crate::error::{AppError, ServerError};
use crate::issuer::IceIssuer;
use crate::limits::Limits;
use crate::protocol::ServerMessage;
use crate::rooms::Rooms;
use crate::ws;

/// Called with (room, event) for every browser `event` message; must not block.
pub type EventHook = Arc<dyn Fn(&str, serde_json::Value) + Send + Sync>;
/// Called with (room, peers now in it) after a peer joined; must not block.
pub type JoinHook = Arc<dyn Fn(&str, usize) + Send + Sync>;
/// Finds the event log of a room's current (or last) session, for `GET /api/log?room=NAME`.
pub type LogLookup = Arc<dyn Fn(&str) -> Option<PathBuf> + Send + Sync>;

/// Shared server state: the rooms, the web directory and the hooks.
pub struct AppState {
    /// Directory served at `/` (normally `web/`); `None` serves a short note instead.
    pub web_dir: Option<PathBuf>,
    /// Receives browser `event` messages; without it they are dropped.
    pub on_event: Option<EventHook>,
    /// Told about every successful join.
    pub on_join: Option<JoinHook>,
    /// Where `GET /api/log` finds a room's log; without it the route answers 404.
    pub log_lookup: Option<LogLookup>,
    /// Issues each joining peer its STUN/TURN servers and TURN credentials.
    pub ice: Option<IceIssuer>,
    /// Live impairment control behind `/api/impair` and `/api/scenarios`; without it those
    /// routes answer 404 with a note.
    pub control: Option<Arc<dyn ImpairControl>>,
    /// Origins allowed besides the server's own and loopback ([`crate::origin`]).
    pub allowed_origins: Vec<String>,
    rooms: Mutex<Rooms<ws::Peer>>,
    /// Flipped to `true` on shutdown; every WebSocket session watches it.
    pub(crate) shutdown: watch::Sender<bool>,
    /// WebSocket sessions running (including those still closing); shutdown waits for zero.
    pub(crate) sessions: watch::Sender<usize>,
    /// Rate limit, keepalive, timeouts and connection cap (see [`crate::limits`]).
    pub(crate) limits: Limits,
}

impl AppState {
    /// State with no rooms and no hooks, serving `web_dir` if given.
    pub fn new(web_dir: Option<PathBuf>) -> Self {
        Self {
            web_dir,
            on_event: None,
            on_join: None,
            log_lookup: None,
            ice: None,
            control: None,
            allowed_origins: Vec::new(),
            rooms: Mutex::new(Rooms::new()),
            shutdown: watch::Sender::new(false),
            sessions: watch::Sender::new(0),
            limits: Limits::default(),
        }
    }

    /// Sets the per-connection message rate limit: a token bucket of `burst` messages refilled
    /// at `per_second` (defaults [`crate::limits::MESSAGE_BURST`] and
    /// [`crate::limits::MESSAGE_RATE_PER_SEC`]). A connection over it gets `error`
    /// `rate-limited` and is closed with 1008.
    pub fn with_message_rate(mut self, burst: u32, per_second: u32) -> Self {
        self.limits.message_burst = burst;
        self.limits.message_rate_per_sec = per_second;
        self
    }

    /// Sets how often WebSocket sessions are pinged and how long one may stay silent (no message,
    /// no Pong) before it is closed (defaults [`crate::limits::PING_INTERVAL`] and
    /// [`crate::limits::IDLE_TIMEOUT`]). Make `timeout` a few `interval`s, so that one late Pong
    /// is not fatal.
    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.limits.ping_interval = interval;
        self.limits.idle_timeout = timeout;
        self
    }

    /// Sets how long a client may take to send a complete HTTP request head (default
    /// [`crate::limits::HEADER_READ_TIMEOUT`]); a connection that has not sent one by then is
    /// closed. Applies to [`crate::serve`] and [`crate::serve_with_shutdown`], not to [`app`] driven by hand.
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// Sets how many connections (HTTP or WebSocket) one client IP address may hold at once
    /// (default [`crate::limits::MAX_CONNECTIONS_PER_IP`]; 0 is taken as 1); further ones are
    /// closed on accept. A load test driving many clients from one address must raise it.
    pub fn with_max_connections_per_ip(mut self, max: usize) -> Self {
        self.limits.max_connections_per_ip = max.max(1);
        self
    }

    /// Sets the hook for browser `event` messages.
    pub fn with_event_hook(
        mut self,
        hook: impl Fn(&str, serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    /// Sets the hook called after each join.
    pub fn with_join_hook(mut self, hook: impl Fn(&str, usize) + Send + Sync + 'static) -> Self {
        self.on_join = Some(Arc::new(hook));
        self
    }

    /// Sets how `GET /api/log?room=NAME` finds a room's event log.
    pub fn with_log_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<PathBuf> + Send + Sync + 'static,
    ) -> Self {
        self.log_lookup = Some(Arc::new(lookup));
        self
    }

    /// Also lets pages from these origins (`https://host:port`) use the WebSocket and the
    /// live control (`--allow-origin`).
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Whether a request with these `Origin` and `Host` headers may go on; the refusal
    /// otherwise.
    pub fn check_origin(&self, headers: &axum::http::HeaderMap) -> Result<(), String> {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let origin = get(axum::http::header::ORIGIN);
        if crate::origin::allowed(origin, get(axum::http::header::HOST), &self.allowed_origins) {
            Ok(())
        } else {
            tracing::debug!(?origin, "refused a page from another origin");
            Err(crate::origin::refusal(origin.unwrap_or("?")))
        }
    }

    /// Serves live impairment control (`/api/impair`, `/api/scenarios`) through `control`.
    pub fn with_control(mut self, control: Arc<dyn ImpairControl>) -> Self {
        self.control = Some(control);
        self
    }

    /// Gives every joining peer these STUN/TURN servers, with TURN credentials of its own.
    pub fn with_ice(mut self, ice: IceIssuer) -> Self {
        self.ice = Some(ice);
        self
    }

    /// Queues `msg` for every peer in `room` (used to push session-log lines to the page).
    pub fn broadcast(&self, room: &str, msg: &ServerMessage) {
        for peer in self.lock_rooms().members(room) {
            peer.deliver(msg.clone());
        }
    }

    /// Rooms with at least one peer.
    pub fn room_count(&self) -> usize {
        self.lock_rooms().room_count()
    }

    /// Peers connected across all rooms.
    pub fn peer_count(&self) -> usize {
        self.lock_rooms().peer_count()
    }

    /// Ends every WebSocket session with close code 1001 (server going away); used on shutdown.
    pub fn close_all_sessions(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn lock_rooms(&self) -> MutexGuard<'_, Rooms<ws::Peer>> {
        // Every registry operation completes its update before anything that could panic, so a
        // poisoned lock still guards consistent data; keep serving instead of cascading panics.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("web_dir", &self.web_dir)
            .field("on_event", &self.on_event.is_some())
            .field("on_join", &self.on_join.is_some())
            .field("control", &self.control.is_some())
            .field("rooms", &self.room_count())
            .field("peers", &self.peer_count())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The router: `/ws`, `/health`, `/api/log`, the live control routes (`/api/scenarios`,
/// `/api/impair`), and static files of the web directory as the fallback.
pub fn app(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/ws", get(ws::ws_handler))
        .route("/health", get(health))
        .route("/api/log", get(log_file))
        .route("/api/scenarios", get(control::catalog))
        .route(
            "/api/impair",
            get(control::get_state)
                .post(control::post_change)
                .layer(DefaultBodyLimit::max(control::MAX_CONTROL_BYTES)),
        );
    let router = match state.web_dir.as_deref().filter(|dir| dir.is_dir()) {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => {
            // A missing web/ should not look like a broken server: explain at `/`.
            tracing::debug!(web_dir = ?state.web_dir, "no web directory; / serves a note");
            router.route("/", get(no_web_dir))
        }
    };
    router.with_state(state)
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    rooms: usize,
    peers: usize,
}

async fn health(State(state): State<Arc<AppState>>) -> axum::Json<Health> {
    let rooms = state.lock_rooms();
    axum::Json(Health {
        status: "ok",
        rooms: rooms.room_count(),
        peers: rooms.peer_count(),
    })
}

/// Query of `GET /api/log`.
#[derive(Debug, serde::Deserialize)]
struct LogQuery {
    room: String,
}

/// `GET /api/log?room=NAME`: the room's session log as a JSON-lines download.
async fn log_file(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<LogQuery>,
) -> Result<impl IntoResponse, AppError> {
    let path = state
        .log_lookup
        .as_ref()
        .and_then(|lookup| lookup(&q.room))
        .ok_or_else(|| AppError::NoLog(q.room.clone()))?;
    let body = tokio::fs::read(&path)
        .await
        .map_err(|_| AppError::NoLog(q.room.clone()))?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/x-ndjson".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"rtclab-{}.jsonl\"", q.room),
            ),
        ],
        body,
    ))
}

async fn no_web_dir() -> impl IntoResponse {
    Html(
        "<!doctype html><title>rtclab signaling</title>\
         <p>rtclab signaling server is running, but no web directory is configured \
         (or it does not exist), so there is no page to show. Start it with the path of \
         rtclab's <code>web/</code> directory. WebSocket: <code>/ws?room=NAME</code>, \
         status: <a href=\"/health\">/health</a>.</p>\n",
    )
}

/// Binds a listener; pass port 0 for any free port. Returns the actual address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServerError::LocalAddr)?;
    Ok((listener, local))
}
