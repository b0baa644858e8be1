//! The accept loop behind `serve` and `serve_with_shutdown`: HTTP/1.1 connections served with
//! hyper directly rather than through `axum::serve`, because `axum::serve` offers neither of the
//! two limits issue 18 (finding 5) asks for, nor a bounded shutdown (finding 4):
//!
//! - a **header read timeout**: hyper's HTTP/1 `header_read_timeout`, which needs a timer
//!   (`TokioTimer`) that `axum::serve` does not set, so a half-sent request head or a silent TCP
//!   connection was held forever. The timer runs from when hyper starts reading a head: the
//!   connection's start, and the end of each response on a kept-alive connection;
//! - a **cap on connections per client address**, checked on accept;
//! - a **shutdown deadline**: connections get hyper's graceful shutdown, but whatever is still
//!   open after [`SHUTDOWN_DEADLINE`] is dropped (`axum::serve` waits forever for a connection in
//!   the middle of a request head).
//!
//! It also raises the process's open-files limit to the hard limit when it starts
//! ([`raise_open_files_limit`]): every client is a file descriptor, and the usual soft limit of
//! 1,024 stopped `rtclab serve` at about 1,012 clients (issue 17, measured by `benches/load.rs`).
//!
//! Only HTTP/1.1 is served: browsers use HTTP/2 only over TLS, WebSockets (RFC 6455) upgrade from
//! HTTP/1.1, and hyper's HTTP/1 builder has the header timeout.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tower::ServiceExt as _;

use crate::AppState;
use crate::limits::{ConnectionCounts, ConnectionSlot, SHUTDOWN_DEADLINE, raise_open_files_limit};
use crate::server::app;

/// Serves [`app`] on `listener` until the process ends, with the limits of `state` (header read
/// timeout, connections per address; see [`crate::limits`]).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use rtclab_signaling::{AppState, bind, serve};
/// let (listener, addr) = bind("127.0.0.1:8080".parse()?).await?;
/// println!("open http://{addr}/");
/// serve(listener, Arc::new(AppState::new(Some("web".into())))).await?;
/// # Ok(()) }
/// ```
pub async fn serve(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    run(listener, state, std::future::pending()).await
}

/// Serves [`app`] until `signal` completes; then stops accepting, closes every WebSocket session
/// (1001), lets in-flight HTTP requests finish, and returns once all is done or after
/// [`crate::limits::SHUTDOWN_DEADLINE`] (2 s), whichever comes first, dropping whatever is still
/// open (a client holding a half-sent request cannot keep the server alive).
pub async fn serve_with_shutdown(
    listener: TcpListener,
    state: Arc<AppState>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(listener, state, signal).await
}

/// Pause after an accept error that is not about one connection (e.g. EMFILE, out of file
/// descriptors): retrying at once would spin; axum::serve and hyper's examples wait 1 s too.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `state`'s router on `listener` until `signal` completes, then shuts down within
/// [`SHUTDOWN_DEADLINE`].
pub(crate) async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Each connection is a file descriptor: without this, the usual soft limit of 1,024 stops
    // the server at about 1,012 clients (see `raise_open_files_limit`).
    match raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(err) => {
            tracing::warn!(%err, "cannot raise the open files limit; the server may refuse connections past it")
        }
    }
    let router = app(Arc::clone(&state));
    let counts = ConnectionCounts::default();
    // Tells connection tasks to shut down gracefully.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Connection tasks, so that shutdown can wait for them and then drop the stragglers (dropping
    // a JoinSet aborts its tasks).
    let mut connections = JoinSet::new();
    let mut signal = pin!(signal);

    'accept: loop {
        tokio::select! {
            () = &mut signal => break 'accept,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let max = state.limits.max_connections_per_ip;
                    let Some(slot) = counts.try_acquire(peer.ip(), max) else {
                        // Closed without a response: an answer would cost what the cap saves.
                        // Debug, not warn: a flood of these must not flood the log too.
                        tracing::debug!(%peer, max, "refusing connection: too many from this address");
                        drop(stream);
                        continue;
                    };
                    let conn = serve_connection(
                        stream,
                        router.clone(),
                        slot,
                        stop_rx.clone(),
                        state.limits.header_read_timeout,
                    );
                    connections.spawn(conn);
                }
                Err(err) if is_per_connection(&err) => {
                    tracing::debug!(%err, "accept failed for one connection");
                }
                Err(err) => {
                    tracing::error!(%err, "accept failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut signal => break 'accept,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            },
            // Reap finished connections, or the set would keep one entry per connection ever.
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!(%err, "connection task panicked");
                }
            }
        }
    }

    let deadline = Instant::now() + SHUTDOWN_DEADLINE;
    // No new connections from here on.
    drop(listener);
    // Upgraded WebSockets are not HTTP connections any more: they end on this (close 1001).
    state.close_all_sessions();
    stop_tx.send_replace(true);
    let drained = timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
        // Each session sends its close frame and waits briefly for the client's.
        let mut sessions = state.sessions.subscribe();
        drop(sessions.wait_for(|running| *running == 0).await);
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            sessions = *state.sessions.borrow(),
            deadline = ?SHUTDOWN_DEADLINE,
            "shutdown deadline passed; dropping what is still open"
        );
    }
    // Dropping the set aborts the connection tasks that are left (and frees their slots).
    connections.shutdown().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset or aborted before we took it);
/// the listener is fine and the next accept can follow at once.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one TCP connection until it ends or, after `stop`, until its graceful shutdown is done
/// (the task is aborted if that takes past the deadline).
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    slot: ConnectionSlot,
    mut stop: watch::Receiver<bool>,
    header_read_timeout: Duration,
) {
    // Signaling messages are small and latency-bound; Nagle's algorithm would hold them back
    // waiting for an ACK. Failing to set it changes nothing else, so the error is ignored.
    let _ = stream.set_nodelay(true);
    // Every request carries the connection's slot, so that a WebSocket upgraded from it keeps the
    // slot for as long as the session runs (`ws::ws_handler`).
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(slot.clone());
        request.map(Body::new)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut conn = pin!(
        builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades()
    );
    tokio::select! {
        result = conn.as_mut() => {
            // Header timeouts, resets and parse errors all end here; none is the server's fault.
            if let Err(err) = result {
                tracing::debug!(%err, "HTTP connection ended with an error");
            }
            return;
        }
        // The `Ref` that `wait_for` yields is not `Send`; drop it inside the branch future. An
        // error (the sender gone) also means: stop.
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {}
    }
    // Finish the request in flight, if any, then close; an idle connection closes at once.
    conn.as_mut().graceful_shutdown();
    if let Err(err) = conn.await {
        tracing::debug!(%err, "HTTP connection ended with an error during shutdown");
    }
}
