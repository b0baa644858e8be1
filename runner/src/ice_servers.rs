//! The one way rtclab starts STUN/TURN servers, for `rtclab run`, `rtclab demo` and
//! `rtclab serve`.
//!
//! - [`start_embedded`]: rtclab's embedded server on a loopback address (all three commands);
//! - [`IceServers::for_run`]: what one `rtclab run` needs, as its scenario's `[ice]` table asks:
//!   the embedded server or a real coturn on a free loopback port, a secret made for the run,
//!   and the [`IceIssuer`] through which the run's signaling server hands each peer its own TURN
//!   REST credentials in `joined`.

use crate::error::RunError;
use rtclab_events::{Event, EventSink, PeerRole};
use rtclab_peer::config::{IcePolicy, IceServer};
use rtclab_scenarios::{IcePolicyName, IceSpec, TurnKind, TurnTransport};
use rtclab_signaling::IceIssuer;
use rtclab_turn::coturn::{Coturn, CoturnConfig};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// A running server of a run.
enum Server {
    Embedded(TurnServer),
    /// coturn and the temp folder of its log and database.
    Coturn(Coturn, tempfile::TempDir),
}

/// The servers a run started and what the peers are told about them.
pub struct IceServers {
    server: Option<Server>,
    /// What `joined` hands out (the browser uses it as is; Rust peers do unless `rust_servers`).
    pub issuer: Option<IceIssuer>,
    /// Servers set on the Rust peers directly: a TCP TURN URL is useless to them (webrtc-rs 0.21
    /// skips it), so when the browser gets one, they get the same server's UDP URL.
    pub rust_servers: Option<Vec<IceServer>>,
    /// The Rust peers' policy (and the browser's, when it receives).
    pub policy: IcePolicy,
}

impl IceServers {
    /// Starts what `spec` asks for; `turn.*` events of the embedded server go to `sink`.
    pub async fn for_run(spec: &IceSpec, sink: &EventSink) -> Result<IceServers, RunError> {
        let policy = match spec.policy {
            IcePolicyName::All => IcePolicy::All,
            IcePolicyName::Relay => IcePolicy::Relay,
        };
        let mut me = IceServers {
            server: None,
            issuer: None,
            rust_servers: None,
            policy,
        };
        if spec.turn == TurnKind::None && !spec.stun {
            return Ok(me);
        }
        let secret = random_secret();
        let note = |message: String| {
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: rtclab_events::NoteLevel::Info,
                    message,
                },
            )
        };
        let (stun_url, turn_udp, turn_tcp) = match spec.turn {
            TurnKind::None | TurnKind::Embedded => {
                let s = start_embedded(
                    &Embedded {
                        addr: ANY_LOOPBACK_PORT,
                        fallback_to_free_port: false,
                    },
                    &secret,
                    Some(sink.clone()),
                )
                .await?;
                note(format!(
                    "embedded STUN/TURN server on udp {} (turn.* events below)",
                    s.udp_addr()
                ));
                let urls = (s.stun_url(), Some(s.turn_url()), None);
                me.server = Some(Server::Embedded(s));
                urls
            }
            TurnKind::Coturn => {
                let dir = tempfile::tempdir().map_err(|source| RunError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let c = Coturn::start(CoturnConfig::loopback(secret.clone(), dir.path()))
                    .await
                    .map_err(|e| RunError::Failed(format!("coturn: {e}")))?;
                note(format!(
                    "coturn on udp+tcp {} (its log is copied to turnserver.log; coturn writes no turn.* events)",
                    c.addr()
                ));
                let urls = (
                    c.stun_url(),
                    Some(c.turn_url("udp")),
                    Some(c.turn_url("tcp")),
                );
                me.server = Some(Server::Coturn(c, dir));
                urls
            }
        };
        let stun_urls = if spec.stun { vec![stun_url] } else { vec![] };
        let mut turn_urls = Vec::new();
        if spec.turn != TurnKind::None {
            match (spec.transport, &turn_udp, &turn_tcp) {
                (TurnTransport::Tcp, Some(udp), Some(tcp)) => {
                    turn_urls.push(tcp.clone());
                    let c = rtclab_turn::credentials::issue(
                        &secret,
                        "run.rust",
                        SystemWallClock.unix_now_s(),
                        rtclab_turn::DEFAULT_TTL,
                    );
                    let mut servers: Vec<IceServer> =
                        stun_urls.iter().map(IceServer::stun).collect();
                    servers.push(IceServer::turn(udp.clone(), c.username, c.password));
                    me.rust_servers = Some(servers);
                }
                (_, Some(udp), _) => turn_urls.push(udp.clone()),
                _ => {}
            }
        }
        me.issuer = Some(IceIssuer::new(secret, stun_urls, turn_urls));
        Ok(me)
    }

    /// Stops the server (the embedded one writes its allocations' last `turn.*` lines); copies
    /// coturn's log into `out`.
    pub async fn stop(self, out: &Path, sink: &EventSink) {
        match self.server {
            None => {}
            Some(Server::Embedded(s)) => {
                if let Err(e) = s.shutdown().await {
                    sink.emit(
                        PeerRole::Lab,
                        Event::Note {
                            level: rtclab_events::NoteLevel::Warn,
                            message: format!("TURN server shutdown: {e}"),
                        },
                    );
                }
            }
            Some(Server::Coturn(c, _dir)) => {
                let to: PathBuf = out.join("turnserver.log");
                let _ = std::fs::copy(c.log(), to);
                drop(c);
            }
        }
    }
}

/// Any free port on 127.0.0.1.
pub const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A random shared secret for TURN REST credentials. Enough when only this process hands out
/// credentials (the secret never leaves it).
pub fn random_secret() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Where the embedded STUN/TURN server listens.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// UDP address; must be loopback (port 0: any free port).
    pub addr: SocketAddr,
    /// If `addr`'s port is taken (a second demo, another STUN server on 3478), use a free port
    /// instead of failing.
    pub fallback_to_free_port: bool,
}

/// Starts rtclab's embedded STUN/TURN server with REST credentials under `secret`; its `turn.*`
/// events go to `sink`. Lab mode relays to loopback peers only, so the listener must be
/// loopback: a public address would need a real allow-list.
pub async fn start_embedded(
    at: &Embedded,
    secret: &str,
    sink: Option<EventSink>,
) -> Result<TurnServer, RunError> {
    if !at.addr.ip().is_loopback() {
        return Err(RunError::Failed(format!(
            "--turn {}: the embedded TURN server listens on loopback only",
            at.addr
        )));
    }
    let mut config = TurnConfig::loopback(secret.to_owned());
    config.udp_addr = at.addr;
    match TurnServer::start(config.clone(), sink.clone()).await {
        Ok(s) => Ok(s),
        Err(first) if at.fallback_to_free_port && at.addr.port() != 0 => {
            config.udp_addr.set_port(0);
            let s = TurnServer::start(config, sink)
                .await
                .map_err(|e| RunError::Failed(format!("embedded STUN/TURN server: {e}")))?;
            println!(
                "rtclab: TURN port {} unavailable ({first}); using {}",
                at.addr.port(),
                s.udp_addr()
            );
            Ok(s)
        }
        Err(e) => Err(RunError::Failed(format!(
            "embedded STUN/TURN server on {}: {e}",
            at.addr
        ))),
    }
}
