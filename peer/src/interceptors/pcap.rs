//! `rtp.pcap`: the decrypted RTP and RTCP of a session as UDP between the peers' addresses, for
//! Wireshark (`tshark -d udp.port==PORT,rtp -r rtp.pcap`).
//!
//! The wire tap sees packets after SRTP decryption (inbound) and before encryption (outbound),
//! with the transport addresses, so each one is written as an IPv4/UDP datagram (link type RAW,
//! one IP packet per record). DTLS and STUN never reach the interceptor chain and are absent.

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// IPv4 TTL written into the synthetic headers (any value works for Wireshark).
const TTL: u8 = 64;

/// A pcap file being written; cloneable and unbuffered (a few hundred packets a second), so a
/// crash or Ctrl-C loses nothing already captured.
#[derive(Clone)]
pub struct PcapSink {
    inner: Arc<Mutex<Option<PcapWriter<File>>>>,
    /// (local, remote) of the selected candidate pair: the interceptor chain does not carry
    /// the socket addresses, so the peer sets them once ICE has chosen a path.
    addrs: Arc<Mutex<(SocketAddr, SocketAddr)>>,
    path: PathBuf,
    /// Wall-clock time of the session start (pcap timestamps are absolute).
    base: Duration,
}

impl std::fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink")
            .field("path", &self.path)
            .finish()
    }
}

impl PcapSink {
    /// Creates `path`; `base` is the session start as time since the Unix epoch.
    pub fn create(path: &Path, base: Duration) -> std::io::Result<Self> {
        let file = File::create(path)?;
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ..Default::default()
        };
        let writer = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
        Ok(PcapSink {
            inner: Arc::new(Mutex::new(Some(writer))),
            addrs: Arc::new(Mutex::new((
                SocketAddr::from(([127, 0, 0, 1], 0)),
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ))),
            path: path.to_owned(),
            base,
        })
    }

    /// Sets the addresses of the selected candidate pair (local, remote).
    pub fn set_path(&self, local: SocketAddr, remote: SocketAddr) {
        *self.addrs.lock().unwrap_or_else(|e| e.into_inner()) = (local, remote);
    }

    /// Writes one payload sent (`outbound`) or received at `at` (session time).
    pub fn write(&self, at: Duration, outbound: bool, payload: &[u8]) {
        let (local, remote) = *self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        let (src, dst) = if outbound {
            (local, remote)
        } else {
            (remote, local)
        };
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
            // rtclab runs on 127.0.0.1; IPv6 sessions are simply not captured.
            return;
        };
        let builder = PacketBuilder::ipv4(s.octets(), d.octets(), TTL).udp(src.port(), dst.port());
        let mut datagram = Vec::with_capacity(builder.size(payload.len()));
        if builder.write(&mut datagram, payload).is_err() {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(writer) = guard.as_mut() {
            let len = datagram.len() as u32;
            let ok = writer
                .write_packet(&PcapPacket::new(self.base + at, len, &datagram))
                .is_ok();
            // A write error (disk full) stops the capture rather than the media.
            if !ok {
                *guard = None;
            }
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
