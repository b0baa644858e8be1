//! Relay sockets: one UDP socket per allocation on the relay IP, wrapped to count what is
//! relayed (the `turn` crate counts bytes only behind its `metrics` feature, one way, and
//! reports them only when an allocation closes), and optionally handed to a [`RelayHook`]
//! first (`rtclab relay` impairs and observes each allocation's traffic there). The same
//! wrapper enforces the per-allocation bandwidth cap ([`crate::bandwidth`]).

use crate::bandwidth::TokenBucket;
use async_trait::async_trait;
use rtclab_events::Clock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

/// Cumulative traffic of one relay socket.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Bytes sent from the relay to peers.
    pub to_peer_bytes: AtomicU64,
    /// Packets sent from the relay to peers.
    pub to_peer_packets: AtomicU64,
    /// Bytes received from peers.
    pub from_peer_bytes: AtomicU64,
    /// Packets received from peers.
    pub from_peer_packets: AtomicU64,
    /// Bytes the client sent to peers that the bandwidth cap dropped.
    pub to_peer_dropped_bytes: AtomicU64,
    /// Packets the client sent to peers that the bandwidth cap dropped.
    pub to_peer_dropped_packets: AtomicU64,
    /// Bytes from peers that the bandwidth cap dropped.
    pub from_peer_dropped_bytes: AtomicU64,
    /// Packets from peers that the bandwidth cap dropped.
    pub from_peer_dropped_packets: AtomicU64,
}

impl RelayCounters {
    /// (to_peer_bytes, to_peer_packets, from_peer_bytes, from_peer_packets) now.
    pub fn snapshot(&self) -> [u64; 4] {
        [
            self.to_peer_bytes.load(Ordering::Relaxed),
            self.to_peer_packets.load(Ordering::Relaxed),
            self.from_peer_bytes.load(Ordering::Relaxed),
            self.from_peer_packets.load(Ordering::Relaxed),
        ]
    }

    /// What the bandwidth cap dropped: (to_peer_bytes, to_peer_packets, from_peer_bytes,
    /// from_peer_packets) now.
    pub fn dropped(&self) -> [u64; 4] {
        [
            self.to_peer_dropped_bytes.load(Ordering::Relaxed),
            self.to_peer_dropped_packets.load(Ordering::Relaxed),
            self.from_peer_dropped_bytes.load(Ordering::Relaxed),
            self.from_peer_dropped_packets.load(Ordering::Relaxed),
        ]
    }
}

/// Counters of every live relay socket, by relayed address. The `to_peer_*`/`from_peer_*`
/// counters count what passed the bandwidth cap; the `*_dropped_*` ones what it dropped.
pub type RelayRegistry = Arc<Mutex<HashMap<SocketAddr, Arc<RelayCounters>>>>;

/// Turns each new relay socket into the connection the `turn` server relays through.
///
/// The socket is the allocation's own (bound on the relay IP); what the server then sends on
/// the returned connection goes from the client to its peers, what it receives from it goes to
/// the client. So a hook sits exactly on one client's access link through the relay. The
/// counters of `turn.bytes` wrap the returned connection: they count what the `turn` server
/// handed over and got back.
pub trait RelayHook: Send + Sync {
    /// Wraps the allocation's socket, bound to `relay`; an error fails the Allocate request.
    fn wrap(
        &self,
        socket: std::net::UdpSocket,
        relay: SocketAddr,
    ) -> std::io::Result<Arc<dyn Conn + Send + Sync>>;
}

/// Binds each allocation's relay socket on `ip`, port chosen by the OS.
pub struct CountingRelayGenerator {
    /// Address the relay sockets bind to and advertise.
    pub ip: IpAddr,
    /// Where each new socket's counters are registered.
    pub registry: RelayRegistry,
    /// Wraps each socket before it is counted (none: a plain tokio socket).
    pub hook: Option<Arc<dyn RelayHook>>,
    /// Per-allocation cap, kbit/s in each direction ([`crate::Policy::max_relay_kbps`]).
    pub max_kbps: Option<u32>,
    /// Monotonic time for the cap's token buckets.
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl RelayAddressGenerator for CountingRelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if use_ipv4 != self.ip.is_ipv4() {
            return Err(turn::Error::Other(format!(
                "relay address family of {} not requested",
                self.ip
            )));
        }
        let socket = std::net::UdpSocket::bind(SocketAddr::new(self.ip, requested_port))
            .map_err(|e| turn::Error::Other(format!("bind relay socket: {e}")))?;
        let addr = socket
            .local_addr()
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        let conn: Arc<dyn Conn + Send + Sync> = match &self.hook {
            Some(hook) => hook
                .wrap(socket, addr)
                .map_err(|e| turn::Error::Other(format!("relay socket {addr}: {e}")))?,
            None => {
                socket
                    .set_nonblocking(true)
                    .map_err(|e| turn::Error::Other(format!("relay socket: {e}")))?;
                Arc::new(
                    UdpSocket::from_std(socket)
                        .map_err(|e| turn::Error::Other(format!("relay socket: {e}")))?,
                )
            }
        };
        let counters = Arc::new(RelayCounters::default());
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr, counters.clone());
        Ok((
            Arc::new(CountingConn {
                inner: conn,
                counters,
                cap: self.max_kbps.map(|kbps| Cap {
                    clock: self.clock.clone(),
                    to_peer: Mutex::new(TokenBucket::from_kbps(kbps)),
                    from_peer: Mutex::new(TokenBucket::from_kbps(kbps)),
                }),
            }),
            addr,
        ))
    }
}

/// A relay connection that counts what passes through it, and drops what exceeds the cap.
struct CountingConn {
    inner: Arc<dyn Conn + Send + Sync>,
    counters: Arc<RelayCounters>,
    cap: Option<Cap>,
}

/// One token bucket per direction, as coturn treats "input and output network streams
/// separately" (`max-bps`): a flood one way cannot starve the other (a receiver's feedback,
/// the other side of the call), and an asymmetric call is judged on each direction alone.
struct Cap {
    clock: Arc<dyn Clock>,
    to_peer: Mutex<TokenBucket>,
    from_peer: Mutex<TokenBucket>,
}

/// Which way a datagram crosses the relay. The two directions are capped and counted apart
/// (see [`Cap`]), so this picks the bucket and counters a datagram is charged to.
#[derive(Clone, Copy, Debug)]
enum Direction {
    /// From the client, through the relay socket, to a peer.
    ToPeer,
    /// From a peer, through the relay socket, to the client.
    FromPeer,
}

impl Cap {
    /// Whether `bytes` more fit in `dir`'s bucket now (taken from it if so).
    fn admit(&self, dir: Direction, bytes: usize) -> bool {
        let bucket = match dir {
            Direction::ToPeer => &self.to_peer,
            Direction::FromPeer => &self.from_peer,
        };
        let now = self.clock.now();
        bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(now, bytes)
    }
}

#[async_trait]
impl Conn for CountingConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        loop {
            let n = self.inner.recv(buf).await?;
            if self.admit(Direction::FromPeer, n) {
                self.count_in(n);
                return Ok(n);
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        // A datagram over the cap is dropped here, before the `turn` server relays it to the
        // client; the next one is waited for.
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            if self.admit(Direction::FromPeer, n) {
                self.count_in(n);
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        if !self.admit(Direction::ToPeer, buf.len()) {
            return Ok(buf.len());
        }
        let n = self.inner.send(buf).await?;
        self.count_out(n);
        Ok(n)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        // Over the cap: dropped as a full link would drop it, reported as sent (an error would
        // make the `turn` server log a failure for what is policy).
        if !self.admit(Direction::ToPeer, buf.len()) {
            return Ok(buf.len());
        }
        let n = self.inner.send_to(buf, target).await?;
        self.count_out(n);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

impl CountingConn {
    /// Whether a datagram of `n` bytes going `dir` is within the cap; counted as dropped in
    /// `dir`'s counters if not. What passes is counted by the caller, not here: a datagram to
    /// a peer counts only once the inner socket has sent it (and as many bytes as it sent).
    fn admit(&self, dir: Direction, n: usize) -> bool {
        let Some(cap) = &self.cap else {
            return true;
        };
        if cap.admit(dir, n) {
            return true;
        }
        let c = &self.counters;
        let (bytes, packets) = match dir {
            Direction::ToPeer => (&c.to_peer_dropped_bytes, &c.to_peer_dropped_packets),
            Direction::FromPeer => (&c.from_peer_dropped_bytes, &c.from_peer_dropped_packets),
        };
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        packets.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn count_in(&self, n: usize) {
        self.counters
            .from_peer_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counters
            .from_peer_packets
            .fetch_add(1, Ordering::Relaxed);
    }

    fn count_out(&self, n: usize) {
        self.counters
            .to_peer_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counters
            .to_peer_packets
            .fetch_add(1, Ordering::Relaxed);
    }
}
