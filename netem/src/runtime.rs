//! `ImpairedRuntime`: a webrtc-rs [`Runtime`] that impairs every UDP socket it wraps.
//!
//! Everything is delegated to the inner runtime except `wrap_udp_socket`, whose sockets send
//! through the egress model and receive through the ingress model. Time comes only from the
//! inner runtime (`now`, `sleep`), so the same code runs on the wall clock (tokio) and on the
//! virtual clock of webrtc-rs' `runtime-mock`.

use crate::accounting::{DirectionStats, Link};
use crate::config::{ConfigError, Impairment, ImpairmentConfig, Schedule};
use crate::events::{change_event, stats_event};
use crate::model::LiveModel;
use crate::model::{Delivery, Impairer};
use crate::shared::{EgressMeta, Ingress, Shared, Side, Signal, lock};
use crate::socket::ImpairedSocket;
use futures::future::select;
use rtclab_events::{EventSink, PeerRole};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime, Transmit,
};

/// Period of `impair.stats`: once a second, like `media.stats`.
const STATS_PERIOD: Duration = Duration::from_secs(1);

/// Totals of both directions, for a run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImpairmentStats {
    /// The media direction.
    pub downlink: DirectionStats,
    /// The feedback direction.
    pub uplink: DirectionStats,
    /// Due egress packets the inner socket refused to send (counted as delivered by the model).
    pub send_errors: u64,
}

/// A webrtc-rs runtime that impairs the UDP traffic of the peer it is given to.
pub struct ImpairedRuntime {
    shared: Arc<Shared>,
}

impl fmt::Debug for ImpairedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImpairedRuntime")
            .field("inner", &self.shared.inner)
            .field("side", &self.shared.side)
            .finish()
    }
}

/// Options for [`ImpairedRuntime`]; start with [`ImpairedRuntime::builder`].
pub struct ImpairedRuntimeBuilder {
    inner: Arc<dyn Runtime>,
    impairment: Impairment,
    seed: u64,
    sink: Option<EventSink>,
    side: Side,
    start: Option<Instant>,
    label: Option<String>,
}

impl ImpairedRuntimeBuilder {
    /// Seed of every random decision (default 0); the same seed gives the same pattern.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where `impair.stats` and `impair.change` go (default: nowhere).
    pub fn sink(mut self, sink: EventSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Whose sockets are wrapped (default [`Side::Sender`]).
    pub fn side(mut self, side: Side) -> Self {
        self.side = side;
        self
    }

    /// Time zero of the schedules (default: the inner runtime's `now()` at `build`).
    pub fn start(mut self, start: Instant) -> Self {
        self.start = Some(start);
        self
    }

    /// Source named in the `impair.change` lines of the schedule (default `scenario`); `rtclab
    /// run` passes `scenario NAME`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Validates the impairment and builds the runtime.
    pub fn build(self) -> Result<Arc<ImpairedRuntime>, ConfigError> {
        let start = self.start.unwrap_or_else(|| self.inner.now());
        let pick = |link: Link| -> &Schedule {
            match link {
                Link::Downlink => &self.impairment.downlink,
                Link::Uplink => &self.impairment.uplink,
            }
        };
        // Validate both directions up front so an error names the right one.
        self.impairment.validate()?;
        let egress_link = self.side.egress();
        let ingress_link = self.side.ingress();
        let mut egress = Impairer::new(egress_link, pick(egress_link), start, self.seed)?;
        let mut ingress = Impairer::new(ingress_link, pick(ingress_link), start, self.seed)?;
        if let Some(label) = &self.label {
            egress.set_label(label.clone());
            ingress.set_label(label.clone());
        }
        Ok(Arc::new(ImpairedRuntime {
            shared: Arc::new(Shared {
                inner: self.inner,
                side: self.side,
                start,
                sink: self.sink,
                egress: Mutex::new(egress),
                egress_signal: Arc::new(Signal::default()),
                report_signal: Arc::new(Signal::default()),
                ingress: Mutex::new(Ingress {
                    engine: ingress,
                    sockets: HashMap::new(),
                }),
                send_errors: AtomicU64::new(0),
                next_socket: AtomicU64::new(0),
                tasks: Once::new(),
            }),
        }))
    }
}

impl ImpairedRuntime {
    /// Impairs the sender's sockets (egress = downlink) over `inner`, schedules starting now.
    pub fn new(
        inner: Arc<dyn Runtime>,
        impairment: Impairment,
        seed: u64,
        sink: Option<EventSink>,
    ) -> Result<Arc<Self>, ConfigError> {
        let mut b = Self::builder(inner, impairment).seed(seed);
        if let Some(sink) = sink {
            b = b.sink(sink);
        }
        b.build()
    }

    /// All options: side, start, seed, sink.
    pub fn builder(inner: Arc<dyn Runtime>, impairment: Impairment) -> ImpairedRuntimeBuilder {
        ImpairedRuntimeBuilder {
            inner,
            impairment,
            seed: 0,
            sink: None,
            side: Side::Sender,
            start: None,
            label: None,
        }
    }

    /// Whose sockets this runtime wraps.
    pub fn side(&self) -> Side {
        self.shared.side
    }

    /// Time zero of the schedules.
    pub fn start(&self) -> Instant {
        self.shared.start
    }

    /// The runtime everything is delegated to.
    pub fn inner(&self) -> &Arc<dyn Runtime> {
        &self.shared.inner
    }

    /// Totals of both directions up to now.
    pub fn stats(&self) -> ImpairmentStats {
        let now = self.shared.inner.now();
        let egress = {
            let mut e = lock(&self.shared.egress);
            e.handle_timeout(now);
            e.stats()
        };
        let ingress = {
            let mut i = lock(&self.shared.ingress);
            i.engine.handle_timeout(now);
            i.engine.stats()
        };
        let (downlink, uplink) = match self.shared.side {
            Side::Sender => (egress, ingress),
            Side::Receiver => (ingress, egress),
        };
        ImpairmentStats {
            downlink,
            uplink,
            send_errors: self.shared.send_errors.load(Ordering::Relaxed),
        }
    }

    /// Replaces the fields `config` sets on one direction now, outside the schedule; `source`
    /// is logged with the `impair.change` (`page`, `api`, ...).
    pub fn apply(
        &self,
        link: Link,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        self.live(link, |d, now| d.apply(now, config, source))
    }

    /// Makes `config` one direction's whole setting now: fields it does not set are turned off.
    pub fn replace(
        &self,
        link: Link,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        self.live(link, |d, now| d.replace(now, config, source))
    }

    /// Plays `impairment` from now on both directions (base settings now, steps at their times
    /// counted from now), its changes logged with `label` as their source. Both directions are
    /// checked before either changes, so a bad schedule leaves the link as it was.
    pub fn play(&self, impairment: &Impairment, label: &str) -> Result<(), ConfigError> {
        impairment.validate()?;
        for link in [Link::Downlink, Link::Uplink] {
            let schedule = match link {
                Link::Downlink => &impairment.downlink,
                Link::Uplink => &impairment.uplink,
            };
            self.live(link, |d, now| d.play(now, schedule, label))?;
        }
        Ok(())
    }

    /// A clean link both ways from now, with no schedule left to play.
    pub fn reset(&self, source: &str) {
        for link in [Link::Downlink, Link::Uplink] {
            let _ = self.live(link, |d, now| {
                d.reset(now, source);
                Ok(())
            });
        }
    }

    /// 100 % loss on `link` from now for `length`, then back to what it was.
    pub fn outage(&self, link: Link, length: Duration, source: &str) {
        let _ = self.live(link, |d, now| {
            d.outage(now, length, source);
            Ok(())
        });
    }

    /// The settings in force on `link` now.
    pub fn settings(&self, link: Link) -> ImpairmentConfig {
        self.live_read(link, |d| d.config().clone())
    }

    /// Runs a live change on one direction's model at the runtime's `now`, then wakes the
    /// egress task (a new rate or delay changes when packets are due) and the reporting task
    /// (so the `impair.change` line is written at once, not at the next statistics tick).
    fn live<M>(&self, link: Link, change: M) -> Result<(), ConfigError>
    where
        M: FnOnce(&mut dyn LiveModel, Instant) -> Result<(), ConfigError>,
    {
        let now = self.shared.inner.now();
        let result = if link == self.shared.side.egress() {
            change(&mut *lock(&self.shared.egress), now)
        } else {
            change(&mut lock(&self.shared.ingress).engine, now)
        };
        self.shared.egress_signal.notify();
        self.shared.report_signal.notify();
        result
    }

    fn live_read<R>(&self, link: Link, read: impl FnOnce(&dyn LiveModel) -> R) -> R {
        if link == self.shared.side.egress() {
            read(&*lock(&self.shared.egress))
        } else {
            read(&lock(&self.shared.ingress).engine)
        }
    }

    /// Starts the egress sender and (with a sink) the reporting task, once, on the runtime the
    /// first socket is wrapped on (a constructor may run outside any runtime).
    fn ensure_tasks(&self) {
        self.shared.tasks.call_once(|| {
            let weak = Arc::downgrade(&self.shared);
            let signal = self.shared.egress_signal.clone();
            let rt = self.shared.inner.clone();
            self.shared
                .inner
                .spawn(Box::pin(egress_task(weak, signal, rt)))
                .detach();
            if let Some(sink) = self.shared.sink.clone() {
                let weak = Arc::downgrade(&self.shared);
                let rt = self.shared.inner.clone();
                let start = self.shared.start;
                let wake = self.shared.report_signal.clone();
                self.shared
                    .inner
                    .spawn(Box::pin(report_task(weak, rt, sink, start, wake)))
                    .detach();
            }
        });
    }
}

/// Sends egress packets through their inner socket when the model releases them.
async fn egress_task(weak: Weak<Shared>, signal: Arc<Signal>, rt: Arc<dyn Runtime>) {
    let mut due: Vec<Delivery<EgressMeta>> = Vec::new();
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let now = rt.now();
        let deadline = {
            let mut egress = lock(&shared.egress);
            while let Some(d) = egress.poll_output(now) {
                due.push(d);
            }
            egress.poll_timeout()
        };
        for d in due.drain(..) {
            let meta = &d.packet.meta;
            let transmit = Transmit {
                destination: meta.destination,
                ecn: meta.ecn,
                contents: &d.packet.payload,
                segment_size: None,
                src_ip: meta.src_ip,
            };
            let sent = futures::future::poll_fn(|cx| meta.socket.poll_send(cx, &transmit)).await;
            if let Err(e) = sent {
                shared.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, to = %meta.destination, "impaired send failed");
            }
        }
        // Hold no strong reference while idle, so dropping the runtime and its sockets ends
        // this task.
        drop(shared);
        match deadline {
            Some(at) => {
                // Whichever comes first: the next due packet, or a new one from poll_send.
                let sleep = rt.sleep(at.saturating_duration_since(now));
                let _ = select(sleep, signal.wait()).await;
            }
            None => signal.wait().await,
        }
    }
}

/// Emits `impair.change` at every schedule step and `impair.stats` every second.
async fn report_task(
    weak: Weak<Shared>,
    rt: Arc<dyn Runtime>,
    sink: EventSink,
    start: Instant,
    wake: Arc<Signal>,
) {
    let mut next_tick = start + STATS_PERIOD;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let now = rt.now();
        let tick = now >= next_tick;
        let mut events = Vec::new();
        let mut next_change: Option<Instant> = None;
        // Downlink first, then uplink, whichever is egress here.
        let mut per_link = Vec::with_capacity(2);
        {
            let mut e = lock(&shared.egress);
            per_link.push(report(&mut e, now, tick, &mut next_change));
        }
        {
            let mut i = lock(&shared.ingress);
            per_link.push(report(&mut i.engine, now, tick, &mut next_change));
        }
        if shared.side == Side::Receiver {
            per_link.reverse();
        }
        for (changes, stats) in per_link {
            events.extend(changes);
            events.extend(stats);
        }
        drop(shared);
        for event in events {
            sink.emit(PeerRole::Lab, event);
        }
        if tick {
            while next_tick <= now {
                next_tick += STATS_PERIOD;
            }
        }
        let due = next_change.map_or(next_tick, |c| c.min(next_tick));
        // A live change wakes it early, so its line follows the change within milliseconds.
        let sleep = rt.sleep(due.saturating_duration_since(now));
        let _ = select(sleep, wake.wait()).await;
    }
}

/// One direction's pending change events and, on a tick, its stats event.
fn report<M: Clone>(
    d: &mut Impairer<M>,
    now: Instant,
    tick: bool,
    next_change: &mut Option<Instant>,
) -> (Vec<rtclab_events::Event>, Option<rtclab_events::Event>) {
    d.handle_timeout(now);
    let changes = d.take_changes().iter().map(change_event).collect();
    let stats = tick.then(|| {
        let interval = d.take_interval(now);
        stats_event(&d.stats(), &interval)
    });
    if let Some(at) = d.next_change_at() {
        *next_change = Some(next_change.map_or(at, |c| c.min(at)));
    }
    (changes, stats)
}

impl Runtime for ImpairedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.shared.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.shared.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.shared.inner.wrap_udp_socket(socket)?;
        self.ensure_tasks();
        let id = self.shared.next_socket.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(ImpairedSocket::new(
            id,
            inner,
            self.shared.clone(),
        )))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        // TCP (ICE-TCP, TURN over TCP) passes unimpaired; see README.md.
        self.shared.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.shared.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.shared.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.shared.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.shared.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.shared.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.shared.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.shared.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "impaired"
    }
}
