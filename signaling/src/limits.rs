//! The server's limits against careless or hostile clients (issue 18, findings 3–5): how fast one
//! connection may send, how long a WebSocket may stay silent, how long an HTTP request head may
//! take, how many connections one client address may hold, and how long shutdown waits.
//! Also the process's open-files limit, which caps how many clients the server can hold at all
//! ([`raise_open_files_limit`], issue 17).
//!
//! The constants are the defaults; [`crate::AppState`] has a `with_…` method for each, so that
//! tests can use short values and a load test from one address can raise the per-address cap.
//!
//! Time comes from tokio's clock ([`tokio::time::Instant`]) throughout, so that tests may pause
//! and advance it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::MAX_MESSAGE_BYTES;

/// Messages one connection may send at once before the rate limit applies (the token bucket's
/// capacity).
///
/// A whole negotiation is far below it: an offer and an answer (a few more on an ICE restart or
/// renegotiation) and a few dozen trickled candidates per peer — RFC 8445 §6.1.2.5 caps an ICE
/// agent's candidate pairs at 100 by default, so real agents stay well under 100 candidates —
/// plus the page's `browser.event` messages. It must also stay below the per-peer send queue (256
/// messages in `ws`): then whatever the limit lets through fits in the *receiving* peer's queue
/// even if that peer has not read a single message yet, so a flood can no longer get the reader
/// kicked as "not reading" (issue 18 finding 3).
pub const MESSAGE_BURST: u32 = 200;

/// Messages per second one connection may send once its burst is used up (the bucket's refill
/// rate). The busiest steady sender is the web page: one `browser.stats` event per second
/// (`web/app.js`), so 50/s is 50 times what a real client needs, and still small enough that the
/// relayed traffic stays within what the other peer's queue absorbs.
pub const MESSAGE_RATE_PER_SEC: u32 = 50;

/// How often the server pings an idle WebSocket (RFC 6455 §5.5.2: the client must answer a Ping
/// with a Pong; browsers and tungstenite do so on their own). Well under the 30–60 s after which
/// NATs and proxies commonly drop idle TCP flows.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// A WebSocket from which nothing at all (no message, no Pong, RFC 6455 §5.5.3) arrived for this
/// long is closed: three missed pings, so one lost or late Pong is not fatal.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// How long a client may take to send a complete HTTP request head (request line and headers),
/// from the moment the server starts reading it (the connection's start, or the end of the
/// previous response on a kept-alive connection). A browser sends its head in one packet; ten
/// seconds is for a very slow link. Half-sent heads held forever were issue 18 finding 5.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent TCP connections (plain HTTP or upgraded WebSocket) one client IP address may hold;
/// more are closed as soon as they are accepted. A browser uses up to 6 HTTP connections per host
/// plus one WebSocket per tab, and `rtclab run` two peers, so 64 leaves room for many tabs while
/// stopping one address from holding thousands (issue 18 finding 5: 3,000 half-sent requests).
/// A load test driving many clients from one address must raise it
/// ([`crate::AppState::with_max_connections_per_ip`]).
pub const MAX_CONNECTIONS_PER_IP: usize = 64;

/// How long shutdown waits, after the signal, for open connections and WebSocket sessions to
/// finish (sessions are sent close 1001 at once); whatever is still open then is dropped, so a
/// client holding a half-sent request cannot keep the server from exiting (issue 18 finding 4).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

// A burst of maximal messages is bounded memory: 200 × 64 KiB = 12.5 MiB per sender at worst.
const _: () = assert!((MESSAGE_BURST as usize) * MAX_MESSAGE_BYTES <= 16 * 1024 * 1024);

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to its hard limit and
/// returns the soft limit now in force.
///
/// Every WebSocket client is a socket, that is a file descriptor. The usual soft limit is 1,024
/// (a default kept for old programs that use `select()`, which cannot watch higher descriptors;
/// tokio uses epoll), while the hard limit is commonly 4,096 to 1,048,576. Measured with
/// `benches/load.rs`: `rtclab serve` holds about 1,012 clients under a 1,024 limit, and the
/// 1,013th connection fails with "Too many open files" (EMFILE), so the server's accept loop
/// raises the limit when it starts, as the Go runtime does for every Go program. Any process may
/// raise its soft limit up to the hard one; only the hard limit needs privileges. Child processes
/// started afterwards inherit the raised limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // No hard limit (`None`, RLIM_INFINITY) does not happen for open files on Linux (the kernel
    // caps them at fs.nr_open); leave such a limit as it is rather than guess a number.
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        return Ok(limit.current.unwrap_or(u64::MAX));
    };
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )?;
    Ok(hard)
}

/// The server's limits; [`crate::AppState`] holds one, set through its `with_…` methods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Token bucket capacity, see [`MESSAGE_BURST`].
    pub(crate) message_burst: u32,
    /// Token bucket refill per second, see [`MESSAGE_RATE_PER_SEC`].
    pub(crate) message_rate_per_sec: u32,
    /// See [`PING_INTERVAL`].
    pub(crate) ping_interval: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub(crate) idle_timeout: Duration,
    /// See [`HEADER_READ_TIMEOUT`].
    pub(crate) header_read_timeout: Duration,
    /// See [`MAX_CONNECTIONS_PER_IP`].
    pub(crate) max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            message_burst: MESSAGE_BURST,
            message_rate_per_sec: MESSAGE_RATE_PER_SEC,
            ping_interval: PING_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
        }
    }
}

/// A token bucket: holds up to `capacity` tokens, gains `rate` per second, and each message takes
/// one. So a sender may burst `capacity` messages, then keep up `rate` per second forever.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (a new connection may send its burst at once).
    pub(crate) fn new(capacity: u32, rate_per_sec: u32, now: Instant) -> Self {
        Self {
            capacity: f64::from(capacity),
            rate: f64::from(rate_per_sec),
            tokens: f64::from(capacity),
            last: now,
        }
    }

    /// Takes a token for one message at `now`; `false` if there is none (over the limit).
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        // `saturating_`: an `now` earlier than the last one (callers' clocks) adds nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Open connections per client address, for [`MAX_CONNECTIONS_PER_IP`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionCounts {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionCounts {
    /// A slot for one more connection from `ip`, or `None` if it already holds `max`.
    pub(crate) fn try_acquire(&self, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
        // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d; count it as a.b.c.d.
        let ip = ip.to_canonical();
        let mut counts = self.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot(Arc::new(SlotGuard {
            counts: self.clone(),
            ip,
        })))
    }

    /// Connections `ip` holds now.
    #[cfg(test)]
    pub(crate) fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Updates are single statements that cannot panic half-way; a poisoned map is consistent.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in [`ConnectionCounts`], released when the last clone is dropped. The
/// connection task holds one, and every request of the connection carries a clone (as a request
/// extension), so that an upgraded WebSocket session, which outlives the HTTP connection task,
/// keeps counting until it ends.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlot(
    #[expect(
        dead_code,
        reason = "never read: held only so that its Drop releases the slot"
    )]
    Arc<SlotGuard>,
);

#[derive(Debug)]
struct SlotGuard {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            // Forget addresses with no connection, so the map does not grow with every client.
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(200, 50, start);
        for i in 0..200 {
            assert!(bucket.try_take(start), "message {i} of the burst");
        }
        assert!(!bucket.try_take(start), "201st message at once");
        // 50/s: one token every 20 ms.
        assert!(!bucket.try_take(start + Duration::from_millis(19)));
        assert!(bucket.try_take(start + Duration::from_millis(20)));
        assert!(!bucket.try_take(start + Duration::from_millis(20)));
        // One second later: 50 more, not 51.
        let later = start + Duration::from_millis(1020);
        for i in 0..50 {
            assert!(bucket.try_take(later), "refilled token {i}");
        }
        assert!(!bucket.try_take(later));
        // A long pause refills to the burst, never beyond it.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..200 {
            assert!(bucket.try_take(much_later));
        }
        assert!(!bucket.try_take(much_later));
    }

    #[test]
    fn bucket_sustains_its_rate() {
        // 50 messages a second for a minute, after the burst is spent, all pass.
        let start = Instant::now();
        let mut bucket = TokenBucket::new(200, 50, start);
        for _ in 0..200 {
            assert!(bucket.try_take(start));
        }
        for i in 1..=3000u64 {
            assert!(
                bucket.try_take(start + Duration::from_millis(20 * i)),
                "message {i} at 50/s"
            );
        }
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1, 1, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_secs(5)));
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
        assert!(bucket.try_take(start + Duration::from_secs(1)));
    }

    #[test]
    fn open_files_limit_is_raised_to_the_hard_limit() {
        let raised = raise_open_files_limit().expect("raise RLIMIT_NOFILE");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(limit.current, Some(raised));
        assert_eq!(limit.current, limit.maximum);
        // Again: nothing left to raise, same answer.
        assert_eq!(raise_open_files_limit().expect("raise again"), raised);
    }

    #[test]
    fn connection_slots_are_capped_per_address_and_released() {
        let counts = ConnectionCounts::default();
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let first = counts.try_acquire(a, 2).expect("first");
        let second = counts.try_acquire(mapped, 2).expect("second, same address");
        assert!(counts.try_acquire(a, 2).is_none(), "third from a");
        assert!(counts.try_acquire(b, 2).is_some(), "another address");
        // A clone (a WebSocket session's) keeps the slot until it is dropped too.
        let session = second.clone();
        drop(second);
        assert_eq!(counts.count(a), 2);
        drop(session);
        assert_eq!(counts.count(a), 1);
        let third = counts.try_acquire(a, 2).expect("slot freed");
        drop((first, third));
        assert_eq!(counts.count(a), 0);
        assert!(counts.lock().is_empty(), "no entry left for idle addresses");
    }
}
