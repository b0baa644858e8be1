//! The STUN/TURN servers of one `rtclab run`, as its scenario's `[ice]` table asks: rtclab's
//! embedded server or a real coturn on a free loopback port, a secret made for the run, and the
//! [`IceIssuer`] through which the run's signaling server hands each peer its own TURN REST
//! credentials in `joined`.

use crate::config::{IcePolicy, IceServer};
use crate::error::PeerError;
use rtclab_events::{Event, EventSink, PeerRole};
use rtclab_scenarios::{IcePolicyName, IceSpec, TurnKind, TurnTransport};
use rtclab_signaling::IceIssuer;
use rtclab_turn::coturn::{Coturn, CoturnConfig};
use rtclab_turn::{SystemWallClock, TurnConfig, TurnServer, WallClock};
use std::path::{Path, PathBuf};

/// A running server of a run.
enum Server {
    Embedded(TurnServer),
    /// coturn and the temp folder of its log and database.
    Coturn(Coturn, tempfile::TempDir),
}

/// The servers a run started and what the peers are told about them.
pub(crate) struct RunIce {
    server: Option<Server>,
    /// What `joined` hands out (the browser uses it as is; Rust peers do unless `rust_servers`).
    pub issuer: Option<IceIssuer>,
    /// Servers set on the Rust peers directly: a TCP TURN URL is useless to them (webrtc-rs 0.21
    /// skips it), so when the browser gets one, they get the same server's UDP URL.
    pub rust_servers: Option<Vec<IceServer>>,
    /// The Rust peers' policy (and the browser's, when it receives).
    pub policy: IcePolicy,
}

impl RunIce {
    /// Starts what `spec` asks for; `turn.*` events of the embedded server go to `sink`.
    pub async fn start(spec: &IceSpec, sink: &EventSink) -> Result<RunIce, PeerError> {
        let policy = match spec.policy {
            IcePolicyName::All => IcePolicy::All,
            IcePolicyName::Relay => IcePolicy::Relay,
        };
        let mut me = RunIce {
            server: None,
            issuer: None,
            rust_servers: None,
            policy,
        };
        if spec.turn == TurnKind::None && !spec.stun {
            return Ok(me);
        }
        // Only this process hands out credentials, so a random secret per run is enough.
        let secret = format!("{:032x}", rand::random::<u128>());
        let note = |message: String| {
            sink.emit(
                PeerRole::Lab,
                Event::Note {
                    level: "info".into(),
                    message,
                },
            )
        };
        let (stun_url, turn_udp, turn_tcp) = match spec.turn {
            TurnKind::None | TurnKind::Embedded => {
                let s = TurnServer::start(
                    TurnConfig::loopback_any_port(secret.clone()),
                    Some(sink.clone()),
                )
                .await
                .map_err(|e| PeerError::Failed(format!("embedded STUN/TURN server: {e}")))?;
                note(format!(
                    "embedded STUN/TURN server on udp {} (turn.* events below)",
                    s.udp_addr()
                ));
                let urls = (s.stun_url(), Some(s.turn_url()), None);
                me.server = Some(Server::Embedded(s));
                urls
            }
            TurnKind::Coturn => {
                let dir = tempfile::tempdir().map_err(|source| PeerError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let c = Coturn::start(CoturnConfig::loopback(secret.clone(), dir.path()))
                    .await
                    .map_err(|e| PeerError::Failed(format!("coturn: {e}")))?;
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
                            level: "warn".into(),
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
