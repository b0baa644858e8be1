//! `rtclab`: the command line. It parses arguments and calls the library crates; nothing else.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rtclab_events::{EventSink, read_log};
use rtclab_media::Codec;
use rtclab_peer::{CcKind, IcePolicy, PeerConfig, Role};
use rtclab_report::Summary;
use rtclab_runner::RunRequest;
use rtclab_scenarios::{ReceiverKind, Scenario};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "rtclab",
    version,
    about = "A WebRTC real-time media lab: run, watch and impair real-time video."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: signaling server, Rust sender and Rust receiver in this process.
    Run(RunArgs),
    /// Run variants of a scenario and compare them in one table.
    Sweep {
        /// Scenario file.
        file: PathBuf,
        /// KEY=V1,V2,... (KEY dotted, e.g. downlink.loss_pct, or loss, delay, jitter, rate, codec).
        #[arg(long)]
        set: String,
        /// Output folder [default: runs/sweep-<scenario>-<unix time>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override each variant's duration, in seconds.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<f64>,
        /// Runs at once. In virtual time runs only share CPU (~1.3 cores each); in real time
        /// they share the cores as they go, and `./lab bench` measures how many sessions this
        /// machine holds before frames are lost (docs/sweeps.md).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Run only shard I of N of the sweep's runs (I from 0), or auto/N: I from
        /// RTCLAB_SHARD_INDEX, JOB_COMPLETION_INDEX (Kubernetes) or SLURM_ARRAY_TASK_ID (Slurm).
        /// Join the shards' folders with `rtclab report merge`.
        #[arg(long)]
        shard: Option<rtclab_runner::ShardSpec>,
        /// Runs per variant, each with the next seed; the table shows the median and the spread.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        repeat: u16,
        /// Every variant on a virtual clock (as `rtclab run --virtual-time`), and an error for a
        /// variant that cannot have one. Without --virtual-time or --real-time, a sweep runs on
        /// a virtual clock wherever it can (Rust peers, no STUN/TURN server): as fast as the CPU
        /// allows, the same every time, and --jobs only shares CPU.
        #[arg(long, conflicts_with = "real_time")]
        virtual_time: bool,
        /// Every variant in real time (to measure what this machine holds, say).
        #[arg(long)]
        real_time: bool,
    },
    /// Benchmarks that compare senders on the same emulated link.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Hands-on labs that run several scenarios and explain the result.
    #[command(subcommand)]
    Lab(LabCommand),
    /// The browser demo: serve the page, and send video to every browser that opens it.
    Demo {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Video codec the Rust sender prefers, h264 or vp8 (the page can choose the other).
        #[arg(long, default_value = "h264")]
        codec: Codec,
        /// Video file to send, looped [default: FFmpeg testsrc2 pattern].
        #[arg(long)]
        source: Option<PathBuf>,
        /// Room in the printed URL.
        #[arg(long, default_value = "demo")]
        room: String,
        /// Folder for session logs.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Folder with the web page [default: web/ of the repository].
        #[arg(long)]
        web: Option<PathBuf>,
        /// Congestion controller of the Rust sender: rtclab (rtclab's own) or stock (webrtc-rs's GCC).
        #[arg(long, default_value = "rtclab")]
        cc: CcKind,
        /// The embedded STUN/TURN server's UDP address (loopback; a free port is used if this
        /// one is taken). The page's "relay only" switch relays through it.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3478")]
        turn: std::net::SocketAddr,
        /// Run without the STUN/TURN server (host candidates only; "relay only" then fails).
        #[arg(long)]
        no_turn: bool,
        /// Play this scenario's network (its impairment and schedule, from scenarios/ or any
        /// file) against every session from its start; the page can change it live. The file's
        /// codec, size and duration are not used.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Shared secret of the TURN REST credentials (also RTCLAB_TURN_SECRET) [default: a
        /// random one per run].
        #[arg(long, env = "RTCLAB_TURN_SECRET", hide_env_values = true)]
        turn_secret: Option<String>,
        /// Also let web pages from this origin (e.g. https://app.example:8443) open the
        /// WebSocket and change the network; the server's own pages and loopback pages always
        /// may, pages from elsewhere may not. Repeatable.
        #[arg(long, value_name = "ORIGIN")]
        allow_origin: Vec<String>,
    },
    /// Run the signaling server (and the web page) only.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Folder with the web page.
        #[arg(long, default_value = "web")]
        web: PathBuf,
        #[command(flatten)]
        turn: TurnArgs,
        /// Concurrent connections one client address may hold (a load test that drives many
        /// clients from one machine raises it).
        #[arg(long, default_value_t = rtclab_signaling::limits::MAX_CONNECTIONS_PER_IP)]
        max_connections_per_ip: usize,
        /// Also let web pages from this origin (e.g. https://app.example:8443) open the
        /// WebSocket and change the network; the server's own pages and loopback pages always
        /// may, pages from elsewhere may not. Repeatable.
        #[arg(long, value_name = "ORIGIN")]
        allow_origin: Vec<String>,
    },
    /// An impairing TURN relay for any WebRTC app: every allocation's relayed traffic crosses
    /// the scenario's network (downlink = what that client receives, uplink = what it sends),
    /// logged per allocation with the RTP headers the relay can read. Prints the iceServers to
    /// give your app; the same HTTP server takes live changes (POST /api/impair) and serves
    /// web/call.html, a call between two browser tabs through the relay.
    Relay {
        /// Scenario whose network every allocation starts with (its schedule runs from the
        /// allocation's creation) [default: a clean link until changed live].
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// HTTP address: signaling, web/call.html, /api/impair.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
        /// The TURN server's UDP address (relay sockets bind to the same IP). Loopback unless
        /// --allow-peers names a lab network.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3478")]
        turn: std::net::SocketAddr,
        /// Log folder [default: runs/relay-<unix time>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Impair only the clients whose TURN REST user is USER (the part after `expiry:`);
        /// the others pass unimpaired [default: every client].
        #[arg(long, value_name = "USER")]
        impair: Option<String>,
        /// Peer ranges the relay may send to besides loopback, comma-separated (e.g.
        /// 192.168.1.0/24). Private, CGNAT, link-local and unique-local ranges only; a public
        /// host must be named as one address.
        #[arg(long, value_delimiter = ',', value_name = "CIDR")]
        allow_peers: Vec<String>,
        /// Cap each allocation at KBPS kbit/s in each direction (coturn's max-bps, in bytes/s,
        /// is KBPS × 125); datagrams above it are dropped and logged [default: no cap].
        #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(1..))]
        max_allocation_kbps: Option<u32>,
        /// Shared secret of the TURN REST credentials (also RTCLAB_TURN_SECRET) [default: a
        /// random one per run].
        #[arg(long, env = "RTCLAB_TURN_SECRET", hide_env_values = true)]
        turn_secret: Option<String>,
        /// Also let web pages from this origin (e.g. https://app.example:8443) open the
        /// WebSocket and change the network; the server's own pages and loopback pages always
        /// may, pages from elsewhere may not. Repeatable.
        #[arg(long, value_name = "ORIGIN")]
        allow_origin: Vec<String>,
    },
    /// Run one Rust peer against a signaling server.
    Peer {
        /// Signaling server, e.g. ws://127.0.0.1:8080.
        #[arg(long)]
        signal: String,
        /// Room to join.
        #[arg(long)]
        room: String,
        /// Send or receive video: send or recv.
        #[arg(long)]
        role: Role,
        /// Video codec (sender): h264 or vp8.
        #[arg(long, default_value = "h264")]
        codec: Codec,
        /// Video file to send, looped [default: FFmpeg testsrc2 pattern].
        #[arg(long)]
        source: Option<PathBuf>,
        /// Encoded width.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        /// Encoded height.
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Frames per second.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Event log path [default: runs/peer-<role>-<unix time>/events.jsonl].
        #[arg(long)]
        log: Option<PathBuf>,
        /// Congestion controller of the Rust sender: rtclab (rtclab's own) or stock (webrtc-rs's GCC).
        #[arg(long, default_value = "rtclab")]
        cc: CcKind,
        #[command(flatten)]
        ice: IceArgs,
        /// Offer/accept FlexFEC-03; used only when both peers pass it.
        #[arg(long)]
        fec: bool,
    },
    /// List the scenarios in a folder with their descriptions.
    Scenarios {
        /// Folder to list [default: `scenarios/` here, else the one in the checkout the binary
        /// was built in].
        dir: Option<PathBuf>,
    },
    /// Summarise a run folder (or an events.jsonl) from its event log; `report merge` joins
    /// the shards of a sweep.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Report {
        /// Run folder or log file.
        #[arg(required = true)]
        path: Option<PathBuf>,
        #[command(subcommand)]
        merge: Option<ReportCommand>,
    },
}

/// `rtclab report ...` beyond one run.
#[derive(Subcommand)]
enum ReportCommand {
    /// Join the folders of a sharded sweep (`rtclab sweep --shard`) into one table: sweep.txt,
    /// sweep.json and sweep.html, rows in sweep order whatever shard ran them.
    Merge {
        /// The shards' folders (each a sweep's --out), or single runs' folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the joined table [default: the first folder].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `rtclab bench ...`.
#[derive(Subcommand)]
enum LabCommand {
    /// Failures and mitigations: each failure scenario run without and with one mitigation
    /// (FEC, a lower start bitrate, resolution scaling, a larger jitter buffer) on the same
    /// seeded link; prints failure → what the viewer saw → what the network did → mitigation →
    /// measured effect, and writes failures.md.
    Failures {
        /// Output folder [default: runs/lab-failures-<unix time>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only these cases, comma-separated (random-loss, burst-loss, start-above-capacity,
        /// capacity-drop, jitter).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Override every case's duration, in seconds (short runs; may cut a failure off).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<f64>,
        /// Folder of the shipped scenarios [default: scenarios/ here or in the checkout].
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// What a viewer gets on delayed, lossy links: the Rust receiver against headless Chromium,
    /// receiving from the same Rust sender over the same seeded link, over a grid of one-way
    /// delay × loss (each way), with and without a rate cap. Prints a table, writes a heat map.
    Qoe {
        /// One-way delays (each way), ms.
        #[arg(long, value_delimiter = ',', default_value = "0,50,100,200")]
        delays: Vec<f64>,
        /// Random loss (each way, from 4 s on, after the handshakes), %.
        #[arg(long, value_delimiter = ',', default_value = "0,1,3,5,10")]
        losses: Vec<f64>,
        /// Downlink caps, kbps; `none` for no cap.
        #[arg(long, value_delimiter = ',', default_value = "none,2500")]
        caps: Vec<String>,
        /// Receivers to compare: rust, browser.
        #[arg(long, value_delimiter = ',', default_value = "rust,browser")]
        receivers: Vec<ReceiverKind>,
        /// Seconds per run.
        #[arg(long, default_value_t = 20.0, value_parser = parse_duration)]
        duration: f64,
        /// Seed of every link.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output folder [default: runs/bench-qoe-<unix time>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run each scenario with rtclab's controller, the stock GCC and headless Chromium as the
    /// sender, and print one comparison table (plus a comparison plot per scenario).
    Cc {
        /// Scenario files (e.g. scenarios/rfc8867-5.1.toml scenarios/bandwidth-drop.toml).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Output folder [default: runs/bench-cc-<unix time>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override every scenario's duration, in seconds.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<f64>,
        /// Senders to compare, comma-separated.
        #[arg(long, default_value = "rtclab,stock,chromium", value_delimiter = ',')]
        senders: Vec<String>,
        /// Legs at once. The Chromium leg keeps real time: run it alone (--jobs 1) when its
        /// figures must not share the CPU.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Run only shard I of N of the bench's legs (I from 0), or auto/N (as `rtclab sweep`).
        /// Join the shards' folders with `rtclab report merge`.
        #[arg(long)]
        shard: Option<rtclab_runner::ShardSpec>,
        /// The Rust legs on a virtual clock, and an error if the chromium leg is asked for.
        /// Without --virtual-time or --real-time, the Rust legs run on a virtual clock and the
        /// chromium leg in real time.
        #[arg(long, conflicts_with = "real_time")]
        virtual_time: bool,
        /// Every leg in real time.
        #[arg(long)]
        real_time: bool,
    },
}

/// `rtclab run`'s arguments.
#[derive(Args)]
struct RunArgs {
    /// Scenario file (see `rtclab scenarios`).
    file: PathBuf,
    /// Output folder [default: runs/<scenario>-<unix time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the scenario's duration, in seconds.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<f64>,
    /// Override the scenario's codec: h264 or vp8.
    #[arg(long)]
    codec: Option<Codec>,
    /// Override the scenario's seed (every random draw of the impairment).
    #[arg(long)]
    seed: Option<u64>,
    /// Override the scenario's receiver: rust (rtclab's Rust receiver) or browser (headless
    /// Chromium).
    #[arg(long)]
    receiver: Option<ReceiverKind>,
    /// Congestion controller of the Rust sender: rtclab (rtclab's own) or stock (webrtc-rs's GCC).
    #[arg(long, default_value = "rtclab")]
    cc: CcKind,
    /// Protect the video with FlexFEC-03 (1 repair packet per 5 media packets) between the Rust
    /// peers, as if the scenario said `fec = true`.
    #[arg(long)]
    fec: bool,
    /// Keep the configured resolution: the Rust sender does not scale down with the target
    /// (frames are still skipped when over budget).
    #[arg(long)]
    no_scaling: bool,
    /// The Rust receiver's jitter buffer holds every frame at least this long, in ms (a larger
    /// buffer: more latency, fewer late frames); at most 1000.
    #[arg(long, value_name = "MS", value_parser = parse_playout_delay)]
    min_playout_delay: Option<u64>,
    /// Run both Rust peers on one virtual clock: the run takes as long as its CPU work, not its
    /// duration (Rust receiver only, no STUN/TURN; docs/virtual-time.md).
    #[arg(long)]
    virtual_time: bool,
}

/// Parses `--min-playout-delay`: whole milliseconds, 0-1000 (the jitter buffer's bound).
fn parse_playout_delay(text: &str) -> Result<u64, String> {
    let ms: u64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))?;
    if ms > 1000 {
        return Err(format!(
            "{ms} ms is above the jitter buffer's 1000 ms bound; use 0-1000"
        ));
    }
    Ok(ms)
}

/// `rtclab serve`: STUN/TURN for the peers that join.
#[derive(clap::Args)]
struct TurnArgs {
    /// Start the embedded STUN/TURN server (UDP) on this address, e.g. 127.0.0.1:3478.
    #[arg(long, value_name = "ADDR")]
    turn: Option<std::net::SocketAddr>,
    /// Shared secret of the TURN REST credentials handed to each joining peer (also settable as
    /// RTCLAB_TURN_SECRET) [default with --turn: a random one].
    #[arg(long, env = "RTCLAB_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// An external TURN URL to hand out with credentials under --turn-secret (e.g. a coturn
    /// with use-auth-secret); repeatable.
    #[arg(long = "turn-url", value_name = "URL")]
    turn_urls: Vec<String>,
}

/// `rtclab peer`: which ICE path to use.
#[derive(clap::Args)]
struct IceArgs {
    /// all: any candidate; relay: only through a TURN server. Without --stun/--turn the peer
    /// uses the servers the signaling server hands out (`rtclab serve --turn`).
    #[arg(long, default_value = "all")]
    ice_policy: IcePolicy,
    /// STUN server URL, e.g. stun:127.0.0.1:3478; repeatable.
    #[arg(long, value_name = "URL")]
    stun: Vec<String>,
    /// TURN server URL, e.g. turn:127.0.0.1:3478?transport=udp; repeatable. webrtc-rs 0.21 uses
    /// UDP TURN URLs only.
    #[arg(long, value_name = "URL")]
    turn: Vec<String>,
    /// Make TURN REST credentials from this shared secret (also RTCLAB_TURN_SECRET).
    #[arg(long, env = "RTCLAB_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// TURN username (instead of --turn-secret).
    #[arg(long)]
    turn_username: Option<String>,
    /// TURN password (instead of --turn-secret).
    #[arg(long)]
    turn_password: Option<String>,
}

impl IceArgs {
    /// Sets `cfg`'s ICE policy and servers.
    fn apply(self, cfg: &mut PeerConfig, user: &str) -> Result<()> {
        cfg.ice_policy = self.ice_policy;
        for url in self.stun {
            cfg.ice_servers.push(rtclab_peer::IceServer::stun(url));
        }
        if !self.turn.is_empty() {
            let (username, password) =
                match (self.turn_secret, self.turn_username, self.turn_password) {
                    (_, Some(u), Some(p)) => (u, p),
                    (Some(secret), None, None) => {
                        let c = rtclab_turn::credentials::issue(
                            &secret,
                            user,
                            unix_time(),
                            rtclab_turn::DEFAULT_TTL,
                        );
                        (c.username, c.password)
                    }
                    _ => bail!(
                        "--turn needs --turn-secret, or both --turn-username and --turn-password"
                    ),
                };
            cfg.ice_servers.push(rtclab_peer::IceServer {
                urls: self.turn,
                username,
                credential: password,
            });
        }
        Ok(())
    }
}

/// Parses a `--duration` in seconds with the scenario file's own rule for `duration_s`, so a
/// value the file refuses (0, negative, NaN, infinite, over an hour) is refused here too, before
/// anything starts, instead of panicking when it becomes a `Duration`.
fn parse_duration(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    rtclab_scenarios::check_duration_s(seconds)?;
    Ok(seconds)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, so that `kill` also ends a run cleanly.
async fn ctrl_c() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                // No SIGINT handler could be installed: only SIGTERM ends the run.
                std::future::pending::<()>().await;
            }
        }
        _ = term => {}
    }
}

/// Ends the process after a panic in any thread or task that happened while a session's event
/// log was open: the log is closed first with `session.end` naming the panic, then the process
/// exits with 101, the code of an uncaught panic.
///
/// Without this, tokio catches a panicking task's panic and the run goes on with a piece
/// missing (no more stats, or no more video), and the log never says why. A panic with no log
/// open (a signaling server's connection task, say) keeps its old behaviour: that task ends and
/// the server goes on.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let message = info.payload_as_str().unwrap_or("a panic without a message");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let closed = rtclab_events::end_open_logs(&format!("panic: {message}{at}"));
        if closed > 0 {
            eprintln!(
                "rtclab: a task panicked (a bug in rtclab; please report it with the log): \
                 {closed} event log(s) closed with session.end naming the panic; exiting"
            );
            std::process::exit(101);
        }
    }));
}

/// Fault injection for the log-integrity tests (`cli/tests/log_survives.rs`):
/// `RTCLAB_FAULT=panic-on-usr1` makes a task panic when the process gets SIGUSR1, so a test can
/// cause a panic at a moment it chooses (once media flows). Unset, nothing listens for SIGUSR1.
const FAULT_ENV: &str = "RTCLAB_FAULT";

fn inject_panic_on_usr1() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                usr1.recv().await;
                panic!("fault injected by {FAULT_ENV}=panic-on-usr1");
            });
        }
        Err(e) => eprintln!("rtclab: {FAULT_ENV}: cannot listen for SIGUSR1: {e}"),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match cli().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and the causes that add something: a cause whose words are already in a message
/// above it is left out. rtclab's errors name their cause in their own message ("cannot open
/// video file X: Invalid data found ..."), and the full chain printed the same sentence two or
/// three times.
fn error_report(e: &anyhow::Error) -> String {
    let mut seen = vec![e.to_string()];
    let mut out = format!("Error: {e}");
    let mut header = false;
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !seen.iter().any(|s| s.contains(&text)) {
            if !header {
                out.push_str("\n\nCaused by:");
                header = true;
            }
            out.push_str("\n    ");
            out.push_str(&text);
        }
        seen.push(text);
    }
    out
}

/// Parses the command line and runs the command.
async fn cli() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RTCLAB_LOG")
                // webrtc-rs warns about routine ICE steps; rtclab's own warnings are what matter.
                // Its TURN relayer logs every refused permission as an error, which in the lab
                // is the expected refusal of a non-loopback peer: the TURN server's own
                // `turn.refused` events say so in words (`rtclab demo` prints them once).
                .unwrap_or_else(|_| {
                    "error,webrtc::peer_connection::transport::turn_relayer=off,\
                     rtclab=warn,rtclab_peer=warn,rtclab_signaling=warn"
                        .into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    install_panic_hook();
    if std::env::var_os(FAULT_ENV).is_some_and(|v| v == "panic-on-usr1") {
        inject_panic_on_usr1();
    }
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Serve {
            addr,
            web,
            turn,
            max_connections_per_ip,
            allow_origin,
        } => serve(&addr, web, turn, max_connections_per_ip, allow_origin).await,
        Command::Demo {
            addr,
            codec,
            source,
            room,
            out,
            web,
            cc,
            turn,
            no_turn,
            turn_secret,
            scenario,
            allow_origin,
        } => {
            let scenario = match scenario {
                Some(file) => {
                    let s = Scenario::load(&file)?;
                    Some(rtclab_runner::live::Entry::new(
                        s,
                        rtclab_runner::live::Kind::Scenario,
                        file,
                    ))
                }
                None => None,
            };
            let mut sender = PeerConfig::new(Role::Sender);
            sender.codec = codec;
            sender.cc = cc;
            if let Some(p) = source {
                rtclab_media::check_video_file(&p).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
                sender.source = rtclab_media::SourceSpec::File(p);
            }
            rtclab_signaling::validate_room_name(&room)
                .map_err(|e| anyhow::anyhow!("--room {room:?}: {e}"))?;
            let web = web.unwrap_or_else(rtclab_runner::demo::default_web_dir);
            if !rtclab_runner::demo::is_web_dir(&web) {
                eprintln!(
                    "rtclab demo: warning: {} has no index.html; the page will be missing (use --web DIR)",
                    web.display()
                );
            }
            if rtclab_runner::demo::is_web_dir(&web)
                && !web.join("node_modules/uplot/dist/uPlot.esm.js").is_file()
            {
                eprintln!(
                    "rtclab demo: warning: {} has no node_modules/uplot (the charting library), so \
                     the page cannot draw its charts; run `./lab demo` (it installs it) or `npm ci \
                     --prefix {}`",
                    web.display(),
                    web.display()
                );
            }
            let addr: std::net::SocketAddr = addr.parse().with_context(|| {
                format!("--addr {addr:?} is not an IP:port such as 127.0.0.1:8080")
            })?;
            let cfg = rtclab_runner::demo::DemoConfig {
                addr,
                web_dir: web,
                out,
                room,
                sender,
                turn: (!no_turn).then_some(rtclab_runner::demo::DemoTurn {
                    addr: turn,
                    secret: turn_secret,
                }),
                scenarios_dir: rtclab_runner::paths::default_scenarios_dir(),
                scenario,
                allowed_origins: allow_origin,
            };
            rtclab_runner::demo::run_demo(cfg, webrtc_runtime()?, ctrl_c(), |url| {
                println!("rtclab demo: open {url}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await?;
            Ok(())
        }
        Command::Relay {
            scenario,
            addr,
            turn,
            out,
            impair,
            allow_peers,
            max_allocation_kbps: cap,
            turn_secret,
            allow_origin,
        } => {
            let (scenario, seed) = match scenario {
                Some(file) => {
                    let s = Scenario::load(&file)?;
                    let seed = s.seed;
                    (
                        Some(rtclab_runner::live::Entry::new(
                            s,
                            rtclab_runner::live::Kind::Scenario,
                            file,
                        )),
                        seed,
                    )
                }
                None => (None, 1),
            };
            let allowed_peers = if allow_peers.is_empty() {
                rtclab_turn::AllowedPeers::Loopback
            } else {
                rtclab_turn::policy::lab_peers(&allow_peers).map_err(|e| anyhow::anyhow!(e))?
            };
            let out =
                out.unwrap_or_else(|| PathBuf::from("runs").join(format!("relay-{}", unix_time())));
            let cfg = rtclab_runner::relay::RelayConfig {
                http_addr: addr,
                turn_addr: turn,
                out: out.clone(),
                scenario: scenario.clone(),
                impair_user: impair,
                allowed_peers,
                secret: turn_secret,
                web_dir: rtclab_runner::demo::default_web_dir(),
                scenarios_dir: rtclab_runner::paths::default_scenarios_dir(),
                seed,
                allowed_origins: allow_origin,
                max_relay_kbps: cap,
            };
            rtclab_runner::relay::run_relay(cfg, webrtc_runtime()?, ctrl_c(), |ready| {
                println!("rtclab relay: TURN on udp {}", ready.turn);
                match &scenario {
                    Some(e) => println!(
                        "rtclab relay: every allocation starts with scenario {} (downlink = what the client receives, uplink = what it sends)",
                        e.name
                    ),
                    None => println!("rtclab relay: no scenario: a clean link until changed live"),
                }
                println!(
                    "rtclab relay: iceServers {} (give them to your app with iceTransportPolicy \"relay\"; valid 1 h)",
                    ready.ice_servers
                );
                println!(
                    "rtclab relay: control http://{}/api/impair?room=relay (POST {{\"action\":\"set\",\"downlink\":{{\"loss_pct\":5}}}})",
                    ready.http
                );
                println!(
                    "rtclab relay: page http://{}/call.html?room=relay (open it in two tabs)",
                    ready.http
                );
                println!("rtclab relay: logs in {}", out.display());
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await?;
            Ok(())
        }
        Command::Peer {
            signal,
            room,
            role,
            codec,
            source,
            width,
            height,
            fps,
            log,
            cc,
            ice,
            fec,
        } => {
            let mut cfg = PeerConfig::new(role);
            cfg.codec = codec;
            if let Some(p) = source {
                cfg.source = rtclab_media::SourceSpec::File(p);
            }
            cfg.size = rtclab_media::Resolution { width, height };
            cfg.fps = fps;
            cfg.cc = cc;
            ice.apply(
                &mut cfg,
                &format!(
                    "{room}.{}",
                    if role == Role::Sender { "send" } else { "recv" }
                ),
            )?;
            cfg.fec = fec;
            peer(&signal, &room, cfg, log).await
        }
        Command::Scenarios { dir } => {
            scenarios(&dir.unwrap_or_else(rtclab_runner::paths::default_scenarios_dir))
        }
        Command::Sweep {
            file,
            set,
            out,
            duration,
            jobs,
            shard,
            repeat,
            virtual_time,
            real_time,
        } => {
            let Some((key, values)) = set.split_once('=') else {
                bail!("--set {set:?}: expected KEY=V1,V2,... such as loss=0,1,5");
            };
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("scenario");
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("sweep-{stem}-{}", unix_time()))
            });
            let shard = resolve_shard(shard)?;
            let mut req = rtclab_runner::SweepRequest::new(file, key.to_owned(), values, out);
            req.duration_s = duration;
            req.jobs = usize::from(jobs);
            req.shard = shard;
            req.repeat = usize::from(repeat);
            req.clock = clock_choice(virtual_time, real_time);
            eprintln!(
                "rtclab: sweeping {key} over {} values{}{} into {}",
                req.values.len(),
                if repeat > 1 {
                    format!(", {repeat} seeds each")
                } else {
                    String::new()
                },
                if shard == rtclab_runner::Shard::ALL {
                    String::new()
                } else {
                    format!(", shard {shard}")
                },
                req.out.display()
            );
            let (rows, table) = rtclab_runner::run_sweep(&req, ctrl_c()).await?;
            if rows.is_empty() {
                println!(
                    "shard {shard}: nothing to run (the sweep has {} runs); nothing written",
                    req.values.len() * req.repeat
                );
                return Ok(());
            }
            println!("{table}");
            println!("\nsweep: {}", req.out.join("sweep.txt").display());
            Ok(())
        }
        Command::Report {
            merge: Some(ReportCommand::Merge { dirs, out }),
            ..
        } => {
            let out = out.unwrap_or_else(|| dirs[0].clone());
            let (rows, table) = rtclab_runner::merge_sweep(&dirs, &out)?;
            println!("{table}");
            let runs: usize = rows.iter().map(|r| r.runs.len()).sum();
            println!(
                "\nmerged {runs} runs of {} variants from {} folders: {}",
                rows.len(),
                dirs.len(),
                out.join("sweep.html").display()
            );
            Ok(())
        }
        Command::Report { path, .. } => match path {
            Some(path) => report(&path),
            None => bail!("rtclab report: give a run folder, or `merge DIR...`"),
        },
        Command::Bench(BenchCommand::Qoe {
            delays,
            losses,
            caps,
            receivers,
            duration,
            seed,
            out,
        }) => {
            let caps =
                caps.iter()
                    .map(|c| match c.trim() {
                        "none" => Ok(None),
                        kbps => kbps.parse::<f64>().map(Some).map_err(|_| {
                            anyhow::anyhow!("--caps {kbps:?}: a rate in kbps or none")
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?;
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("bench-qoe-{}", unix_time()))
            });
            let req = rtclab_runner::bench_qoe::QoeBenchRequest {
                delays_ms: delays,
                losses_pct: losses,
                caps_kbps: caps,
                receivers,
                duration_s: duration,
                seed,
                out: out.clone(),
                web_dir: None,
            };
            let (_, table) = rtclab_runner::bench_qoe::run_qoe_bench(&req, ctrl_c(), |run| {
                eprintln!("rtclab bench qoe: running {run}");
            })
            .await
            .with_context(|| format!("bench failed; what ran is in {}", out.display()))?;
            println!("{table}");
            println!(
                "\nbench: {} (heat map: {})",
                out.join("qoe.txt").display(),
                out.join("qoe.svg").display()
            );
            Ok(())
        }
        Command::Lab(LabCommand::Failures {
            out,
            only,
            duration,
            scenarios,
        }) => {
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("lab-failures-{}", unix_time()))
            });
            let req = rtclab_runner::lab_failures::FailuresRequest {
                out: out.clone(),
                scenarios_dir: scenarios
                    .unwrap_or_else(rtclab_runner::paths::default_scenarios_dir),
                only,
                duration_s: duration,
            };
            let (_, table) = rtclab_runner::lab_failures::run_failures_lab(&req, ctrl_c(), |run| {
                eprintln!("rtclab lab failures: running {run}");
            })
            .await
            .with_context(|| format!("lab failed; what ran is in {}", out.display()))?;
            println!("{table}");
            println!(
                "
lab: {} (with each mitigation's reason: {})",
                out.join("failures.txt").display(),
                out.join("failures.md").display()
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Cc {
            scenarios,
            out,
            duration,
            senders,
            jobs,
            shard,
            virtual_time,
            real_time,
        }) => {
            let legs = senders
                .iter()
                .map(|s| s.trim().parse::<rtclab_runner::bench::Leg>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--senders: {e}"))?;
            let out = out
                .unwrap_or_else(|| PathBuf::from("runs").join(format!("bench-cc-{}", unix_time())));
            let mut req = rtclab_runner::bench::BenchRequest::new(scenarios, legs, out.clone());
            req.duration_s = duration;
            req.jobs = usize::from(jobs);
            req.shard = resolve_shard(shard)?;
            req.clock = clock_choice(virtual_time, real_time);
            let (_, table) = rtclab_runner::bench::run_cc_bench(&req, ctrl_c(), |leg| match leg {
                rtclab_runner::bench::LegEvent::Started(leg) => {
                    eprintln!("rtclab bench cc: running {leg}")
                }
                rtclab_runner::bench::LegEvent::Finished(leg) => {
                    eprintln!("rtclab bench cc: finished {leg}")
                }
            })
            .await
            .with_context(|| format!("bench failed; what ran is in {}", out.display()))?;
            println!("{table}");
            println!(
                "\nbench: {} (plots: <scenario>/comparison.svg)",
                out.join("bench.txt").display()
            );
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let RunArgs {
        file,
        out,
        duration,
        codec,
        seed,
        receiver,
        cc,
        fec,
        no_scaling,
        min_playout_delay,
        virtual_time,
    } = args;
    let mut scenario = Scenario::load(&file)?;
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}", scenario.name, unix_time()))
    });
    eprintln!(
        "rtclab: running {} for {} s, output in {}",
        scenario.name,
        duration.unwrap_or(scenario.duration_s),
        out.display()
    );
    let total = duration.unwrap_or(scenario.duration_s);
    if let Some(warning) = scenario.cut_short(total) {
        eprintln!("rtclab: note: {warning}");
    }
    let bar = progress_bar(total);
    let mut req = RunRequest::new(scenario, out.clone());
    req.duration_s = duration;
    req.codec = codec;
    req.receiver = receiver;
    req.cc = Some(cc);
    req.fec = fec;
    req.resolution_scaling = !no_scaling;
    req.min_playout_delay = std::time::Duration::from_millis(min_playout_delay.unwrap_or(0));
    req.virtual_time = virtual_time;
    req.on_record = Some(progress_listener(bar.clone()));
    let outcome = rtclab_runner::run_scenario(req, ctrl_c()).await;
    bar.finish_and_clear();
    let outcome = outcome
        .with_context(|| format!("run failed; the event log so far is in {}", out.display()))?;
    rtclab_report::print_summary(&outcome.summary, &mut std::io::stdout())?;
    println!();
    println!("events:  {}", outcome.events.display());
    println!("summary: {}", outcome.summary_path.display());
    if outcome.reason != "completed" {
        println!("ended:   {}", outcome.reason);
    }
    Ok(())
}

/// `--shard`: the slice to run, with `auto` read from the scheduler's variables; all without it.
fn resolve_shard(spec: Option<rtclab_runner::ShardSpec>) -> Result<rtclab_runner::Shard> {
    Ok(match spec {
        Some(spec) => spec.resolve(|name| std::env::var(name).ok())?,
        None => rtclab_runner::Shard::ALL,
    })
}

/// The clock of a sweep's or bench's runs from `--virtual-time` / `--real-time` (clap refuses
/// both at once): virtual wherever a run can have it, unless told.
fn clock_choice(virtual_time: bool, real_time: bool) -> rtclab_runner::Clock {
    match (virtual_time, real_time) {
        (true, _) => rtclab_runner::Clock::Virtual,
        (_, true) => rtclab_runner::Clock::Real,
        _ => rtclab_runner::Clock::Auto,
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(total_s: f64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new((total_s * 10.0).round() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {elapsed:>4}  target {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Moves the bar with the session clock and shows the latest target bitrate and loss.
fn progress_listener(bar: indicatif::ProgressBar) -> rtclab_events::Listener {
    use rtclab_events::Event;
    let state = std::sync::Mutex::new((0.0_f64, 0_u64, 0_u64));
    Arc::new(move |r: &rtclab_events::Record| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match &r.event {
            Event::BweEstimate { target_bps, .. } => s.0 = *target_bps,
            Event::MediaStats(m) if m.direction == rtclab_events::MediaDirection::Recv => {
                (s.1, s.2) = (m.lost, m.packets)
            }
            _ => return,
        }
        let loss = if s.2 > 0 {
            s.1 as f64 * 100.0 / (s.1 + s.2) as f64
        } else {
            0.0
        };
        bar.set_position((r.t * 10.0) as u64);
        bar.set_message(format!("{:.0} kbps  loss {loss:.1} %", s.0 / 1000.0));
    })
}

async fn serve(
    addr: &str,
    web: PathBuf,
    turn: TurnArgs,
    max_connections_per_ip: usize,
    allow_origin: Vec<String>,
) -> Result<()> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("--addr {addr:?} is not an IP:port such as 127.0.0.1:8080"))?;
    let (listener, bound) = rtclab_signaling::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; is another rtclab already running there? try --addr 127.0.0.1:0"))?;
    let web = web.is_dir().then_some(web);
    println!("rtclab signaling server on http://{bound} (WebSocket: ws://{bound}/ws?room=NAME)");
    let mut state = rtclab_signaling::AppState::new(web)
        .with_max_connections_per_ip(max_connections_per_ip)
        .with_allowed_origins(allow_origin);
    let secret = match (&turn.turn, turn.turn_secret) {
        (_, Some(s)) => Some(s),
        (Some(_), None) => Some(rtclab_runner::ice_servers::random_secret()),
        (None, None) if !turn.turn_urls.is_empty() => {
            bail!("--turn-url needs --turn-secret (the secret the TURN server checks)")
        }
        (None, None) => None,
    };
    let mut server = None;
    let (mut stun_urls, mut turn_urls) = (Vec::new(), turn.turn_urls);
    if let (Some(turn_addr), Some(secret)) = (turn.turn, &secret) {
        let at = rtclab_runner::ice_servers::Embedded {
            addr: turn_addr,
            fallback_to_free_port: false,
        };
        let s = rtclab_runner::ice_servers::start_embedded(&at, secret, None).await?;
        println!(
            "rtclab STUN/TURN server on {} (UDP; REST credentials are handed to each peer on join)",
            s.udp_addr()
        );
        stun_urls.push(s.stun_url());
        turn_urls.insert(0, s.turn_url());
        server = Some(s);
    }
    if let Some(secret) = secret {
        state = state.with_ice(rtclab_signaling::IceIssuer::new(
            secret, stun_urls, turn_urls,
        ));
    }
    rtclab_signaling::serve_with_shutdown(listener, Arc::new(state), ctrl_c()).await?;
    if let Some(s) = server {
        s.shutdown().await?;
    }
    Ok(())
}

async fn peer(signal: &str, room: &str, cfg: PeerConfig, log: Option<PathBuf>) -> Result<()> {
    let role_name = match cfg.role {
        Role::Sender => "send",
        Role::Receiver => "recv",
    };
    let log = log.unwrap_or_else(|| {
        PathBuf::from("runs")
            .join(format!("peer-{role_name}-{}", unix_time()))
            .join("events.jsonl")
    });
    let runtime = webrtc_runtime()?;
    let sink = EventSink::create(
        &log,
        Arc::new(rtclab_peer::clock::RuntimeClock(runtime.clone())),
        None,
        cfg.describe(),
    )?;
    eprintln!(
        "rtclab: {role_name} peer in room {room}; event log {}",
        log.display()
    );
    let result = rtclab_peer::run_peer(signal, room, cfg, sink.clone(), runtime, ctrl_c()).await;
    let reason = match &result {
        Ok(rtclab_peer::PeerExit::Shutdown) => "interrupted".to_owned(),
        Ok(rtclab_peer::PeerExit::PeerLeft) => "peer left".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let summary = Summary::from_records(&read_log(&log)?);
    sink.end(&reason, serde_json::to_value(&summary)?)?;
    rtclab_report::print_summary(&summary, &mut std::io::stdout())?;
    result.with_context(|| format!("peer failed; see {}", log.display()))?;
    Ok(())
}

fn webrtc_runtime() -> Result<Arc<dyn rtclab_peer::Runtime>> {
    match rtclab_peer::default_runtime() {
        Some(rt) => Ok(rt),
        None => bail!("webrtc-rs was built without a runtime"),
    }
}

fn scenarios(dir: &Path) -> Result<()> {
    let shown = rtclab_runner::paths::shown(dir);
    let all = rtclab_scenarios::list(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot list the scenarios in {shown}: {e}. Run rtclab from its checkout, or name \
             the folder: rtclab scenarios PATH/TO/scenarios"
        )
    })?;
    if all.is_empty() {
        bail!("no scenario files (*.toml) in {shown}");
    }
    println!("scenarios in {shown}:");
    for (path, s) in all {
        match s {
            Ok(s) => {
                println!(
                    "{}  ({} s, {})  {}",
                    s.name,
                    s.duration_s,
                    s.codec.as_str(),
                    path.display()
                );
                for line in s.description.lines() {
                    println!("    {line}");
                }
            }
            Err(e) => println!("{}: INVALID: {e}", path.display()),
        }
    }
    Ok(())
}

/// Prints a run's tables (from its log) and regenerates its `report.html` next to the log.
fn report(path: &Path) -> Result<()> {
    let log = if path.is_dir() {
        path.join("events.jsonl")
    } else {
        path.to_owned()
    };
    // Leniently: a log cut by a full disk, with a stray line, or left by a killed run still
    // reports what it holds (issue 18 #8), the damage named here and in the report's notes.
    let (records, damage) = rtclab_events::read_log_lenient(&log)?;
    if !damage.is_empty() {
        eprintln!("rtclab: warning: {}: {damage}", log.display());
    }
    let summary = Summary::from_records(&records);
    let mut report = rtclab_report::RunReport::from_records(&records);
    report.note_damage(&damage);
    let merged = rtclab_report::summary::merged(&summary, &report);
    rtclab_report::print_tables(&report, &merged, &mut std::io::stdout())?;
    let dir = log.parent().unwrap_or(Path::new("."));
    let html = rtclab_report::write_html(&report, &merged, dir)
        .with_context(|| format!("cannot write the report into {}", dir.display()))?;
    println!("\nreport: {}", html.display());
    Ok(())
}
