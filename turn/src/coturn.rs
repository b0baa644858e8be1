//! A real coturn (`turnserver`, Debian package `coturn`) on loopback, configured for the same
//! TURN REST credentials as rtclab's own server, for interop tests and comparisons.
//!
//! Started with `use-auth-secret` + `static-auth-secret`, no TLS/DTLS, listening and relaying on
//! 127.0.0.1 only, every peer denied except the allow-list, its log and database in a temp dir.
//! The process is killed when the handle drops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use stun::agent::TransactionId;
use stun::message::{BINDING_REQUEST, Getter, Message, Setter};
use stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

/// How long coturn gets to answer its first STUN binding (it starts in ~0.1 s here; the margin
/// is for a loaded 2-core CI machine).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why coturn could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CoturnError {
    /// `turnserver` is not installed.
    #[error(
        "coturn's turnserver is not installed ({0}); run ./lab test (or apt-get install coturn)"
    )]
    Missing(std::io::Error),
    /// Files or sockets for it could not be made.
    #[error("coturn setup: {0}")]
    Io(#[from] std::io::Error),
    /// It did not answer STUN in time or exited; the log's tail says why.
    #[error("coturn did not come up on {addr}: {why}; log {log}:\n{tail}")]
    NotReady {
        /// Its listener.
        addr: SocketAddr,
        /// What was seen.
        why: String,
        /// Its log file.
        log: String,
        /// The last lines of the log.
        tail: String,
    },
}

/// A running coturn.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// Peers coturn may relay to: only these IPs (everything else is denied).
#[derive(Debug, Clone)]
pub struct CoturnConfig {
    /// Shared secret of the REST credentials.
    pub secret: String,
    /// Realm.
    pub realm: String,
    /// Allowed peer IPs.
    pub allowed_peers: Vec<IpAddr>,
    /// Folder for its log, pid file and database (must exist).
    pub dir: PathBuf,
}

impl CoturnConfig {
    /// Lab settings: realm `rtclab`, only 127.0.0.1 as peer.
    pub fn loopback(secret: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        CoturnConfig {
            secret: secret.into(),
            realm: "rtclab".to_owned(),
            allowed_peers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            dir: dir.into(),
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (coturn listens on both).
fn free_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no port free for both UDP and TCP"))
}

impl Coturn {
    /// Starts coturn on a free loopback port and waits until it answers a STUN binding.
    pub async fn start(config: CoturnConfig) -> Result<Self, CoturnError> {
        let port = free_port()?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let log = config.dir.join("turnserver.log");
        let mut cmd = Command::new("turnserver");
        cmd.arg("-n") // no config file: everything is on this command line
            .arg("--listening-ip=127.0.0.1")
            .arg(format!("--listening-port={port}"))
            .arg("--relay-ip=127.0.0.1")
            .arg("--use-auth-secret")
            .arg(format!("--static-auth-secret={}", config.secret))
            .arg(format!("--realm={}", config.realm))
            .arg("--no-tls")
            .arg("--no-dtls")
            .arg("--no-cli")
            // coturn refuses loopback peers unless told; the deny-all + allow-list below then
            // narrows relaying to exactly the allowed IPs.
            .arg("--allow-loopback-peers")
            .arg("--denied-peer-ip=0.0.0.0-255.255.255.255")
            .arg("--denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            .arg(format!("--log-file={}", log.display()))
            .arg("--simple-log")
            .arg(format!(
                "--pidfile={}",
                config.dir.join("turnserver.pid").display()
            ))
            .arg(format!("--db={}", config.dir.join("turndb").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for ip in &config.allowed_peers {
            cmd.arg(format!("--allowed-peer-ip={ip}"));
        }
        // Drop kills coturn on every exit that runs destructors; this covers `kill -9` too.
        crate::child::die_with_parent(&mut cmd);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoturnError::Missing(e));
            }
            Err(e) => return Err(e.into()),
        };
        let mut me = Coturn {
            child,
            addr,
            dir: config.dir,
        };
        me.wait_ready(&log).await?;
        Ok(me)
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<(), CoturnError> {
        let not_ready = |why: String| CoturnError::NotReady {
            addr: self.addr,
            why,
            log: log.display().to_string(),
            tail: tail(log),
        };
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(not_ready(format!("turnserver exited: {status}")));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(not_ready(format!("no STUN answer in {READY_TIMEOUT:?}")));
            }
            if binding(&socket, self.addr).await.is_some() {
                return Ok(());
            }
        }
    }

    /// Its UDP/TCP listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `turn:` URL over `transport` (udp or tcp).
    pub fn turn_url(&self, transport: &str) -> String {
        format!("turn:{}?transport={transport}", self.addr)
    }

    /// `stun:` URL.
    pub fn stun_url(&self) -> String {
        format!("stun:{}", self.addr)
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("turnserver.log")
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One STUN binding request (RFC 8489 §6); the mapped address if answered within 200 ms.
async fn binding(socket: &UdpSocket, server: SocketAddr) -> Option<SocketAddr> {
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> =
        vec![Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
    m.build(&setters).ok()?;
    socket.send_to(&m.raw, server).await.ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let mut resp = Message {
        raw: buf[..n].to_vec(),
        ..Default::default()
    };
    resp.decode().ok()?;
    let mut xor = XorMappedAddress::default();
    xor.get_from(&resp).ok()?;
    Some(SocketAddr::new(xor.ip, xor.port))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
