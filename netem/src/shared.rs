//! The state an impaired runtime shares with its sockets and its tasks: the two direction models,
//! the per-socket inboxes, and what a packet carries through them. A file of its own so that
//! `runtime.rs` and `socket.rs` both depend on it rather than on each other.

use crate::accounting::Link;
use crate::model::{Impairer, Packet};
use rtclab_events::EventSink;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::task::{Poll, Waker};
use std::time::Instant;
use webrtc::runtime::{AsyncUdpSocket, EcnCodepoint, Runtime};

/// Which peer's sockets a runtime wraps; decides which direction is egress and which ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The media sender: egress = downlink, ingress = uplink.
    #[default]
    Sender,
    /// The media receiver: egress = uplink, ingress = downlink.
    Receiver,
}

impl Side {
    /// The direction this side's outgoing packets travel.
    pub fn egress(self) -> Link {
        match self {
            Side::Sender => Link::Downlink,
            Side::Receiver => Link::Uplink,
        }
    }

    /// The direction this side's incoming packets travel.
    pub fn ingress(self) -> Link {
        match self {
            Side::Sender => Link::Uplink,
            Side::Receiver => Link::Downlink,
        }
    }
}

/// Where an egress packet goes once it is due.
#[derive(Clone)]
pub(crate) struct EgressMeta {
    pub socket: Arc<dyn AsyncUdpSocket>,
    pub destination: SocketAddr,
    pub ecn: Option<EcnCodepoint>,
    pub src_ip: Option<IpAddr>,
}

/// Where an ingress packet came from, and which wrapped socket it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IngressMeta {
    pub socket: u64,
    pub addr: SocketAddr,
    pub ecn: Option<EcnCodepoint>,
    pub dst_ip: Option<IpAddr>,
}

/// Packets the ingress model has released for one wrapped socket.
#[derive(Default)]
pub(crate) struct Inbox {
    pub ready: VecDeque<Packet<IngressMeta>>,
    pub waker: Option<Waker>,
}

/// Locks a mutex, carrying on past a poisoned one: the data are counters and queues that stay
/// consistent between statements, and losing the media path over a panic elsewhere is worse.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wake-up with a stored permit, so a notification between "check" and "wait" is not lost.
#[derive(Default)]
pub(crate) struct Signal {
    flag: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Sets the permit and wakes the waiter, if any.
    pub fn notify(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }

    /// Completes once a permit is (or was) set, consuming it.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Unpin + '_ {
        futures::future::poll_fn(move |cx| {
            if self.flag.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *lock(&self.waker) = Some(cx.waker().clone());
            // Re-check after registering: a notify in between found no waker but set the flag.
            if self.flag.swap(false, Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// The ingress model and the per-socket queues it releases packets into.
pub(crate) struct Ingress {
    pub engine: Impairer<IngressMeta>,
    pub sockets: HashMap<u64, Inbox>,
}

/// State shared by the runtime, its sockets and its tasks.
pub(crate) struct Shared {
    pub inner: Arc<dyn Runtime>,
    pub side: Side,
    pub start: Instant,
    pub sink: Option<EventSink>,
    pub egress: Mutex<Impairer<EgressMeta>>,
    pub egress_signal: Arc<Signal>,
    /// Wakes the reporting task after a live change.
    pub report_signal: Arc<Signal>,
    pub ingress: Mutex<Ingress>,
    pub send_errors: AtomicU64,
    /// Ids handed to wrapped sockets.
    pub next_socket: AtomicU64,
    /// Starts the egress and statistics tasks once, with the first socket.
    pub tasks: Once,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the egress task see that it has nothing left to serve.
        self.egress_signal.notify();
    }
}
